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

/** At most this long for the collection's freeing of dead buffers (it took one timer tick here). */
const SWEEP_WAIT_MS = 100
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let forced: (() => void) | null | undefined

/**
 * A forced full garbage collection (`gc()`), where this V8 allows it; null where not. The flag
 * exposes `gc` to contexts made after it, so one made here gets it and the serve's own context
 * is untouched. Only the fallback of collect() below: see there.
 */
function forcedCollector(): (() => void) | null {
  if (forced !== undefined) return forced
  try {
    v8.setFlagsFromString('--expose-gc')
    const gc: unknown = vm.runInNewContext('typeof gc === "function" ? gc : null')
    forced = typeof gc === 'function' ? (gc as () => void) : null
  } catch {
    forced = null
  }
  return forced
}

/**
 * A full collection that keeps the serve's optimized code. A forced one (`gc()`) drops the maps
 * (hidden classes) no live object uses, where an ordinary one keeps them a few collections
 * (V8's retained maps): between sessions no receiver, frame or reader object is alive, so a
 * forced collection deoptimized every hot function of the receive path ("weak objects"), and
 * each session compiled them all again (~100 TurboFan jobs; V8's threads 0.15-0.19 CPU-s of a
 * 1 GiB fresh sync's ~0.8 against 0.09-0.11 with the code kept). vm.measureMemory with eager
 * execution runs an ordinary full collection (incremental marking, finished at once) and
 * resolves once it is done: the session's buffers are freed as by gc(). It is experimental in
 * Node 20: its one-time ExperimentalWarning is kept out of the serve's log, and where it is
 * missing or fails the forced collection is the fallback.
 */
async function collect(): Promise<void> {
  const measure = (vm as {measureMemory?: (o: object) => Promise<unknown>}).measureMemory
  if (typeof measure === 'function') {
    const before = process.memoryUsage().arrayBuffers
    if (await quietly(() => measure({mode: 'summary', execution: 'eager'}))) {
      // Dead buffers' memory is freed by a background job that may not have run when the
      // collection resolves (malloc_trim then found nothing to give back): wait for it a little.
      for (let waited = 0; waited < SWEEP_WAIT_MS && process.memoryUsage().arrayBuffers >= before; waited += 5) await sleep(5)
      return
    }
  }
  forcedCollector()?.()
}

/** Whether `measure()` resolved; its ExperimentalWarning (emitted as it is called) never reaches stderr. */
async function quietly(measure: () => Promise<unknown>): Promise<boolean> {
  const emit = process.emitWarning
  // Only while measure() runs: an ExperimentalWarning then is its own (told by type, not text).
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as {type?: string} | undefined)?.type
    const experimental = (typeof warning === 'string' ? type : (warning.name ?? type)) === 'ExperimentalWarning'
    if (!experimental) (emit as (...a: unknown[]) => void).call(process, warning, ...rest)
  }) as typeof process.emitWarning
  let measured: Promise<unknown>
  try {
    measured = measure()
  } catch (err) {
    measured = Promise.reject(err as Error)
  } finally {
    process.emitWarning = emit
  }
  return measured.then(
    () => true,
    () => false,
  )
}

export class IdleTrim {
  private timer: NodeJS.Timeout | undefined
  /** Trims begun (tests); each is done at most SWEEP_WAIT_MS and a collection later. */
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
    this.trims++
    // A session that starts during the collection only finds fewer freed pages kept for it.
    void collect().then(() => trimFreedMemory())
  }
}
