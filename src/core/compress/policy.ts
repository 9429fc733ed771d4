// What `--compress` means, and the level `auto` picks as the transfer goes. `auto` decides by
// two measured rates instead of guessing which of the link or the CPU bounds the transfer:
//   C, the compressor's rate: input bytes per ms of a worker's time (compress-pool.ts), per
//     level, times the workers there are. A busy host measures a lower C: the workers' time is
//     wall time, which counts the cores they did not get.
//   D, the carrier's drain rate while sending raw: bytes per ms spent handing them to it (SSH
//     encryption, waits for the link). Raw windows only: while compressing the link may have room.
// Compression runs beside the sending (a pipeline), so compressed the transfer goes at about
// min(C, D / ratio) raw bytes per ms and raw at D: it compresses while C clearly beats D
// (START), and stops once it no longer does (HOLD), per window of raw bytes. Both modes' end-to-end
// rates are also kept, and once both are measured on the same link raw wins by HOLD, and
// compressing by START, whatever the model says: on a host short of CPU the model undersells
// compression (bytes not sent also save both ends' encryption and copies) and on loopback it may
// oversell it. Every measure skips SETTLE_BYTES after a switch between raw and compressed (the
// buffers before the link fill or drain then). It starts compressing; after two windows it measures
// raw (a settling stretch, then a window) unless the compressed stream drained SLOW_LINK times
// slower than the compressor fed it (a slow link compresses from the start; a fast one goes off).
// Each mode is re-measured now and then, less often while that changes nothing, and raw never while
// the carrier bounds the compressed stream (carrier ms x raw / wire > wall: raw could only be slower).
import {UsageError} from '../errors.js'
import {MAX_LEVEL, MIN_LEVEL} from './codec.js'
import {FixedLevel, type AutoMeasures, type LevelChooser} from './level-chooser.js'
/** `auto`, `none`, or a fixed zstd level (MIN_LEVEL..MAX_LEVEL). */
export type CompressSetting = 'auto' | 'none' | number

export function parseCompress(text: string, what = '--compress'): CompressSetting {
  const t = text.trim().toLowerCase()
  if (t === 'auto' || t === 'none') return t
  const n = Number(t)
  if (/^\d+$/.test(t) && n >= MIN_LEVEL && n <= MAX_LEVEL) return n
  throw new UsageError('BAD_COMPRESS', `${what} '${text}' is neither 'auto', 'none' nor a level ${MIN_LEVEL}..${MAX_LEVEL}`, {
    hint: 'for example --compress auto (the default), --compress none, or --compress 3',
  })
}

/** A stored setting as a CLI value (absent: auto). */
export function compressText(c: CompressSetting | undefined): string {
  return c === undefined ? 'auto' : String(c)
}

/** Levels auto uses when compressing: 1, or 3 where the compressor is far faster than the link. */
export const AUTO_LEVELS = [1, 3] as const
/** Raw bytes per measured window. */
export const WINDOW_BYTES = 8 << 20
/**
 * Raw bytes not measured after a switch between raw and compressed: the SSH channel's window,
 * the sockets and the link's queue (several MiB) fill or drain first, so a raw window right
 * after compressing ran at the CPU's speed and a compressed one after raw waited on raw bytes
 * (both measures made raw look faster than it was: auto sent 751 MB where level 1 sends 580).
 */
export const SETTLE_BYTES = 16 << 20
/** Windows between re-measures of the mode not in use; doubled after one that changed nothing. */
export const REPROBE_WINDOWS = 16
export const MAX_REPROBE_WINDOWS = 128
/** Start compressing when C beats D by this much; keep compressing while it beats D by HOLD. */
export const START = 1.25
export const HOLD = 1.05
/** Level 3 needs this much more headroom than level 1 (it costs about twice the CPU for a few percent fewer bytes). */
const LEVEL3_HEADROOM = 2
/** Level 3's rate before it is measured, as a share of level 1's. */
const LEVEL3_SHARE = 0.4
/** An end-to-end rate measured while the carrier's rate was more than this factor away is stale (a busy host moves D by tens of percent between windows). */
const STALE_D = 2
/** The compressed stream drains this many times slower than the compressor feeds it: the link is slow, raw is not measured first. */
const SLOW_LINK = 2
/** Windows compressed before raw is first measured. */
const FIRST_PROBE = 2
/** Weight of a new measure in the running averages. */
const EWMA = 0.5

export type {AutoMeasures, LevelChooser} from './level-chooser.js'

export function levelChooser(setting: 'auto' | number, workers = 1, now: () => number = () => performance.now(), trace = false): LevelChooser {
  return setting === 'auto' ? new AutoLevel(workers, now, trace) : new FixedLevel(setting)
}

interface Realized {
  rate: number
  /** The raw carrier rate when it was measured (undefined: none measured yet). */
  d: number | undefined
}

const avg = (old: number | undefined, v: number) => (old === undefined ? v : old * (1 - EWMA) + v * EWMA)

/** auto: compress while the compressor outruns the link (see the top of the file). */
export class AutoLevel implements LevelChooser {
  readonly used = new Set<number>()
  /** Compressor input bytes per ms of one worker, per level. */
  private readonly rateC = new Map<number, number>()
  /** Carrier bytes per ms over settled raw windows: what compressing competes with. */
  private rateD: number | undefined
  /** Carrier bytes per ms over the last compressed window: the link's rate only when it bounds them. */
  private lastDOn: number | undefined
  /**
   * The last compressed window spent so much of its time in the carrier that its bytes raw would
   * have taken longer there alone (carrier ms x raw / wire > the window's wall time): the link or
   * the carrier bounds the transfer, and raw, more bytes through it, cannot be faster.
   */
  private carrierBound = false
  /** A raw probe was skipped for carrierBound: it is made as soon as that no longer holds. */
  private skipped = false
  /** End-to-end raw bytes per ms of windows sent raw (off) and compressed (on), with D then (STALE_D). */
  private realized: {off?: Realized; on?: Realized} = {}
  // Starts compressing at level 1: a link not yet measured may be slow, and a push too small to
  // fill a window still gets it there; a fast link pays for one window and a probe at most.
  private lvl: number = AUTO_LEVELS[0]
  private winRaw = 0
  private winWire = 0
  private winCarrierMs = 0
  private winStart: number | undefined
  /** Mode of the last piece sent; raw bytes left before the new mode is measured. */
  private lastOn: boolean | undefined
  private settleLeft = 0
  private windows = 0
  private history = ''
  /** This window's compressor input bytes and worker ms, per level. */
  private readonly winC = new Map<number, {tried: number; ms: number}>()
  /** Windows left in the current mode before the other one is measured again: the first after two (see decide()). */
  private untilProbe = FIRST_PROBE
  private probeEvery = REPROBE_WINDOWS
  /** The level to return to after a probe (-1: not probing). */
  private probeFrom = -1

  private readonly trace: string[] | undefined
  private readonly t0: number

  constructor(
    private readonly workers = 1,
    private readonly now: () => number = () => performance.now(),
    trace = false,
  ) {
    this.trace = trace ? [] : undefined
    this.t0 = now()
  }

  current(): number {
    return this.lvl
  }

  level(): number {
    this.used.add(this.lvl)
    return this.lvl
  }

  compressed(level: number, tried: number, ms: number): void {
    // Summed over the window, then divided: a random piece's quick sample must not weigh like a text
    // piece compressed whole. Counted while settling too: a worker's time is not the buffers'.
    const w = this.winC.get(level) ?? {tried: 0, ms: 0}
    w.tried += tried
    w.ms += ms
    this.winC.set(level, w)
  }

  carried(wireBytes: number, ms: number): void {
    this.winWire += wireBytes
    this.winCarrierMs += ms
  }

  sent(rawBytes: number, level: number): void {
    const on = level > 0
    // Into compressing it waits twice as long: the raw backlog drains at the link's rate while
    // the compressor feeds faster (16 MiB left the bench's compressed window waiting on it).
    if (this.lastOn !== undefined && on !== this.lastOn) {
      this.settleLeft = on ? 2 * SETTLE_BYTES : SETTLE_BYTES
      this.note(`settle ${on ? 'on' : 'off'}`)
    }
    this.lastOn = on
    if (this.settleLeft > 0) {
      // The buffers between here and the receiver fill (after compressing) or drain (after raw)
      // at the switch: neither rate means anything until they have.
      this.settleLeft -= rawBytes
      this.winRaw = this.winWire = this.winCarrierMs = 0
      this.winStart = undefined
      return
    }
    this.winStart ??= this.now()
    this.winRaw += rawBytes
    if (this.winRaw < WINDOW_BYTES) return
    const wall = Math.max(this.now() - this.winStart, 0.001)
    const line =
      this.trace &&
      `L${level} ${(this.winRaw / 1e6).toFixed(1)}MB wire ${(this.winWire / 1e6).toFixed(1)} ${wall.toFixed(0)}ms carrier ${this.winCarrierMs.toFixed(0)}ms`
    if (this.winCarrierMs > 0) {
      const d = this.winWire / Math.max(this.winCarrierMs, 0.001)
      if (on) {
        this.lastDOn = d
        this.carrierBound = (this.winCarrierMs * this.winRaw) / Math.max(this.winWire, 1) > wall * HOLD
      } else this.rateD = avg(this.rateD, d)
    }
    for (const [l, w] of this.winC) if (w.tried > 0) this.rateC.set(l, avg(this.rateC.get(l), w.tried / Math.max(w.ms, 0.001)))
    this.winC.clear()
    const key = on ? 'on' : 'off'
    // Windows before raw was measured (the first two: compressed on this thread, the worker not
    // yet started) are replaced, not averaged in: they halved the compressed rate on the bench.
    const prev = this.realized[key]
    this.realized[key] = {rate: prev?.d === undefined ? this.winRaw / wall : avg(prev.rate, this.winRaw / wall), d: this.rateD}
    this.winRaw = this.winWire = this.winCarrierMs = 0
    this.winStart = undefined
    this.windows++
    if (this.history.length < 256) this.history += String(level)
    this.lvl = this.decide()
    if (line) {
      const m = this.measured()
      this.note(`${line} C ${JSON.stringify(m.compressor)} D ${m.carrier} on ${m.realized.on} off ${m.realized.off} -> ${this.lvl}`)
    }
  }

  private note(text: string): void {
    if (this.trace && this.trace.length < 512) this.trace.push(`${(this.now() - this.t0).toFixed(0)} ${text}`)
  }

  /** What auto measured, in MB/s (bytes per ms / 1000). */
  measured(): AutoMeasures {
    const mb = (v: number | undefined) => (v === undefined ? undefined : Math.round(v / 100) / 10)
    return {
      compressor: Object.fromEntries([...this.rateC].map(([l, v]) => [l, mb(v) as number])),
      carrier: mb(this.rateD),
      realized: {off: mb(this.realized.off?.rate), on: mb(this.realized.on?.rate)},
      windows: this.windows,
      history: this.history,
      ...(this.trace ? {trace: this.trace} : {}),
    }
  }

  private decide(): number {
    const model = this.modelLevel()
    if (this.probeFrom >= 0) {
      // A probe just ended: keep what the measures say now, and wait longer for the next if nothing changed.
      const settled = this.vetoed(model)
      this.probeEvery = settled > 0 === this.probeFrom > 0 ? Math.min(MAX_REPROBE_WINDOWS, this.probeEvery * 2) : REPROBE_WINDOWS
      this.untilProbe = this.probeEvery
      this.probeFrom = -1
      this.skipped = false
      return settled
    }
    const next = this.vetoed(model)
    if (next > 0 !== this.lvl > 0) {
      this.untilProbe = this.probeEvery
      this.skipped = false
      return next
    }
    // A link that bounds even the compressed stream is slow whatever raw would do, so compressing
    // goes on without measuring raw (a slow link compresses from its start). Judged on the second
    // window: the buffers before the link took most of the first at any speed (at 100 Mbit/s).
    if (this.windows === FIRST_PROBE && next > 0 && this.linkBoundCompressed()) this.untilProbe = this.probeEvery
    if (this.skipped && next > 0 && !this.carrierBound) this.untilProbe = 1
    if (--this.untilProbe > 0) return next
    // A raw probe is not worth its bytes while the carrier bounds the compressed stream (each
    // cost ~24 MiB sent raw on the 1 Gbit/s bench link, and a noisy raw window could keep it raw
    // for 16 more); it is due again later, and at once the compressed stream stops being bound.
    this.skipped = next > 0 && this.carrierBound
    if (this.skipped) {
      this.untilProbe = this.probeEvery
      return next
    }
    // Measure the other mode (a settling stretch, then one window): the link or the load may have changed.
    this.probeFrom = next
    return next > 0 ? 0 : AUTO_LEVELS[0]
  }

  /**
   * The compressed stream drained over SLOW_LINK times slower than the compressor fed it: the
   * link bounds it, and raw (more bytes through it) cannot be faster. A carrier starved of CPU
   * also drains slowly (busy hosts; the probe after REPROBE_WINDOWS corrects that), and C from
   * the first window is wall time on the sending thread: 40-50 MB/s at 100 Mbit/s under load 13
   * on 2 cores, so the factor stays small.
   */
  private linkBoundCompressed(): boolean {
    const c1 = this.rateC.get(AUTO_LEVELS[0])
    return c1 !== undefined && this.lastDOn !== undefined && this.lastDOn * SLOW_LINK < c1 * this.workers
  }

  /** The level the two rates call for (0: raw). */
  private modelLevel(): number {
    // Before raw was measured, compressing goes on only where the link bounds the compressed stream.
    const d = this.rateD ?? (this.linkBoundCompressed() ? this.lastDOn : undefined)
    if (d === undefined) return this.lvl
    const c1 = this.rateC.get(1)
    if (c1 === undefined) return AUTO_LEVELS[0] // never measured: measure it
    const margin = this.lvl > 0 ? HOLD : START
    if (c1 * this.workers <= d * margin) return 0
    const c3 = this.rateC.get(3) ?? c1 * LEVEL3_SHARE
    const margin3 = this.lvl === 3 ? HOLD : START
    return c3 * this.workers > d * margin3 * LEVEL3_HEADROOM ? 3 : 1
  }

  /** The mode measured faster end to end (both on this link) wins, whatever the model says. */
  private vetoed(level: number): number {
    const fresh = (r: Realized | undefined) =>
      r && r.d !== undefined && this.rateD !== undefined && Math.max(r.d / this.rateD, this.rateD / r.d) <= STALE_D ? r.rate : undefined
    const on = fresh(this.realized.on)
    const off = fresh(this.realized.off)
    if (on === undefined || off === undefined) return level
    // Raw wins by HOLD (never slower than none); compressing against the model needs START (a
    // single noisy window on a busy host must not turn it on).
    if (level > 0 && on * HOLD < off) return 0
    if (level === 0 && on > off * START) return AUTO_LEVELS[0]
    return level
  }
}
