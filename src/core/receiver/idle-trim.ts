// `vdrep serve` gives its memory back between sessions. A session's buffers (socket slabs,
// expanded runs, aligned write buffers) are freed only when V8 collects their objects, and
// freed memory stays resident (keepFreedMemory, native/performance-hints.ts, keeps it mapped
// for the next buffer: fresh pages cost a page fault each). Measured, 4 GiB mixed disk over
// SSH: 3 fresh full syncs, 3 compressed, 3 seed syncs and a push took one serve from 61 to
// 203 MiB resident, and 30 pushes from 104 to 130. So once no session has run for
// IDLE_DELAY_MS, the serve collects its garbage and hands the freed pages back: the next
// session starts from the working set, not from the last one's high-water mark.
import vm from 'node:vm'
import v8 from 'node:v8'
import {trimFreedMemory} from '../native/performance-hints.js'

/** Quiet this long (no session running) before the serve collects and trims: short, so that
 * back-to-back runs (a bench, a group's members) are trimmed between them; the work takes
 * milliseconds (a full collection of a ~15 MiB heap and one malloc_trim). */
export const IDLE_DELAY_MS = 250

let collect: (() => void) | null | undefined

/**
 * A full garbage collection, where this V8 allows it; null where not. The flag exposes `gc`
 * to contexts made after it, so one made here gets it and the serve's own context is untouched.
 */
function collector(): (() => void) | null {
  if (collect !== undefined) return collect
  try {
    v8.setFlagsFromString('--expose-gc')
    const gc: unknown = vm.runInNewContext('typeof gc === "function" ? gc : null')
    collect = typeof gc === 'function' ? (gc as () => void) : null
  } catch {
    collect = null
  }
  return collect
}

export class IdleTrim {
  private timer: NodeJS.Timeout | undefined
  /** Trims done (tests). */
  trims = 0

  constructor(
    /** Sessions running now. */
    private readonly running: () => number,
    private readonly delayMs = IDLE_DELAY_MS,
  ) {}

  /** A session ended: trim once none has run for delayMs (a session that starts meanwhile postpones it). */
  sessionEnded(): void {
    if (this.timer) this.timer.refresh()
    else this.timer = setTimeout(this.fire, this.delayMs).unref()
  }

  /** No trim pending (the serve stops). */
  cancel(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private readonly fire = (): void => {
    this.timer = undefined
    if (this.running() > 0) return // the session that is running now ends with its own sessionEnded()
    collector()?.()
    trimFreedMemory()
    this.trims++
  }
}
