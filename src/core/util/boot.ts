// Which boot of the host this is, and when it began: the activity log records the boot its
// lease was written in, so that a restart can tell a host crash (no process of the old boot
// can write any more: a write after it carries an mtime past this boot's start) from a tracker
// killed while the host ran on (another program may have written inside the lease window,
// with an mtime no later than the tracker's own writes).
import fs from 'node:fs'
import os from 'node:os'

const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id'

/** This boot's id (16 bytes), or zeros when the kernel does not say. VDREP_TEST_BOOT_ID (32 hex) stands in for it in tests. */
export function bootId(): Buffer {
  const fake = process.env.VDREP_TEST_BOOT_ID
  const text = fake ?? readOr(BOOT_ID_FILE)
  const hex = text.replace(/[^0-9a-f]/gi, '')
  return hex.length === 32 ? Buffer.from(hex, 'hex') : Buffer.alloc(16)
}

/** When this boot began (ms since the epoch, from the uptime). VDREP_TEST_BOOT_TIME_MS stands in for it in tests. */
export function bootTimeMs(): number {
  const fake = Number(process.env.VDREP_TEST_BOOT_TIME_MS)
  return Number.isFinite(fake) && fake > 0 ? fake : Date.now() - os.uptime() * 1000
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}
