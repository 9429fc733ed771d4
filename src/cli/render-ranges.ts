// Block ranges as lines for a person (verify, fullsync --dry-run): byte offset and length,
// the blocks, and why. A long list is cut; --json always has all of them.
import type {BlockRange} from '../core/verify/ranges.js'

/** Lines printed before the list is cut. */
export const MAX_RANGE_LINES = 50

export function renderRanges(label: string, set: {ranges: BlockRange[]; truncated: boolean}): string[] {
  const out: string[] = []
  for (const r of set.ranges.slice(0, MAX_RANGE_LINES)) {
    const blocks = r.blocks === 1 ? `block ${r.firstBlock}` : `blocks ${r.firstBlock}-${r.firstBlock + r.blocks - 1}`
    out.push(`  ${label} ${r.reason}: bytes ${r.offset}-${r.offset + r.bytes - 1} (${r.bytes} bytes, ${blocks})`)
  }
  const more = set.ranges.length - MAX_RANGE_LINES
  if (more > 0 || set.truncated) out.push(`  ... ${more > 0 ? `${more} more ${label} range(s)` : 'more'}; --json lists them all`)
  return out
}
