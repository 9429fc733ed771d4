// Which slots of the activity log a transaction fills: the empty ones first (in slot order),
// then those of the least recently used extents. A transaction needs a few (the window of a
// sequential stream, the cold extents of the writes that came together); sorting every slot
// (2026 by default) with a key function on the event loop, at each transaction, cost a cold
// tracker more than the rest of the commit, so the best few are kept in one pass.
import {EMPTY_SLOT} from '../psf/activity-log.js'

/** Past this many, a full sort is cheaper than the insertion below. */
const INSERTION_MAX = 64

/**
 * Up to `want` slots to fill, best first. A slot is free (key -1) when empty or when the extent
 * it names is not hot in it (`slotOf`); else its key is its extent's last use.
 */
export function slotsToFill(want: number, slots: Uint32Array, slotOf: Int32Array, lastUse: Float64Array): number[] {
  const k = Math.min(want, slots.length)
  const keyOf = (s: number): number => {
    const e = slots[s]
    return e === EMPTY_SLOT || slotOf[e] !== s ? -1 : lastUse[s]
  }
  if (k <= 0) return []
  if (k > INSERTION_MAX) {
    const all = Array.from({length: slots.length}, (_, i) => i)
    return all.sort((a, b) => keyOf(a) - keyOf(b)).slice(0, k) // stable: slot order among equals
  }
  const best: number[] = []
  const keys: number[] = []
  for (let s = 0; s < slots.length; s++) {
    const key = keyOf(s)
    if (best.length === k && key >= keys[k - 1]) continue
    // Insert after the equal keys (slot order among equals); when full, the last one drops out.
    let i = best.length === k ? k - 1 : best.length
    while (i > 0 && keys[i - 1] > key) {
      keys[i] = keys[i - 1]
      best[i] = best[i - 1]
      i--
    }
    keys[i] = key
    best[i] = s
  }
  return best
}
