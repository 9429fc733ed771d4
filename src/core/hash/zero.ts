// All-zero detection: zero blocks travel as run lengths and leave holes, so this runs on
// every block of a sync and must be cheap (memcmp against a shared zero page).
const ZERO_PAGE = Buffer.alloc(1 << 20)

export function isAllZero(buf: Buffer): boolean {
  for (let off = 0; off < buf.length; off += ZERO_PAGE.length) {
    const end = Math.min(buf.length, off + ZERO_PAGE.length)
    if (!buf.subarray(off, end).equals(ZERO_PAGE.subarray(0, end - off))) return false
  }
  return true
}
