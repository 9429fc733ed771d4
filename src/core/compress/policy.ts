// What `--compress` means, and the level `auto` picks as the transfer goes. `auto` measures
// instead of guessing which of the link or the CPU bounds the transfer: it times the sending of
// the data (compression plus the wait for the carrier to take the bytes) per window of raw
// bytes at each rung of a short ladder (off, zstd 1, zstd 3), keeps the fastest, and
// re-probes its neighbours now and then. On a slow link compressing makes the waits shorter
// and it climbs; where the link is faster than the compressor (loopback) off measures faster
// and it goes off, so a fast link never pays for compression beyond its probes. It starts at
// the cheapest level.
import {UsageError} from '../errors.js'
import {MAX_LEVEL, MIN_LEVEL} from './codec.js'

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

/** auto's ladder: 0 is off (raw). */
export const AUTO_LADDER = [0, 1, 3] as const
/** Raw bytes per measured window. */
export const WINDOW_BYTES = 8 << 20
/** Windows between re-probes of the neighbours; doubled (up to MAX_REPROBE_WINDOWS) after each probe that changed nothing. */
export const REPROBE_WINDOWS = 32
export const MAX_REPROBE_WINDOWS = 128
/** Windows a re-probe takes at most (down, back, up, back). */
const PROBE_WINDOWS = 4
/** A neighbour must be this much faster to move to it (noise is not a reason). */
const HYSTERESIS = 1.05
/**
 * Climbing to an unmeasured, costlier level needs a clear win of the one below: a window's rate
 * swings by tens of percent on a busy machine, and a probe of level 3 costs about twice level 1's
 * CPU for a few percent fewer bytes (measured on the mixed disk).
 */
const CLIMB = 1.25

export interface LevelChooser {
  /** The level for the next run: 0 sends it raw. */
  level(): number
  /** A run of `rawBytes` was sent in `ms` (compression and the carrier's waits). */
  record(rawBytes: number, ms: number): void
  /** The level the next run would get, without counting it as used. */
  current(): number
  /** Every level used, for the result. */
  readonly used: ReadonlySet<number>
}

export function levelChooser(setting: 'auto' | number): LevelChooser {
  return setting === 'auto' ? new AutoLevel() : new FixedLevel(setting)
}

class FixedLevel implements LevelChooser {
  readonly used: Set<number>
  constructor(private readonly fixed: number) {
    this.used = new Set([fixed])
  }
  level(): number {
    return this.fixed
  }
  current(): number {
    return this.fixed
  }
  record(): void {}
}

/** Hill-climb over AUTO_LADDER on measured raw-bytes-per-second (see the top of the file). */
export class AutoLevel implements LevelChooser {
  readonly used = new Set<number>()
  // Starts at the cheapest level: a push too small to fill a window still gets it on a slow link,
  // and a fast one pays for one window at most before off is measured.
  private rung = 1
  private readonly rates: (number | undefined)[] = AUTO_LADDER.map(() => undefined)
  private windowBytes = 0
  private windowMs = 0
  private windows = 0
  private reprobeAt = REPROBE_WINDOWS
  private reprobeEvery = REPROBE_WINDOWS
  /** The rung a running re-probe started from (-1: none running), and when it is over. */
  private beforeProbe = -1
  private settleAt = 0
  /** The first window is not measured: the connection's windows and buffers are still opening. */
  private warm = false

  current(): number {
    return AUTO_LADDER[this.rung]
  }

  level(): number {
    const l = AUTO_LADDER[this.rung]
    this.used.add(l)
    return l
  }

  record(rawBytes: number, ms: number): void {
    this.windowBytes += rawBytes
    this.windowMs += ms
    if (this.windowBytes < WINDOW_BYTES) return
    if (!this.warm) {
      this.warm = true
      this.windowBytes = 0
      this.windowMs = 0
      return
    }
    const rate = this.windowBytes / Math.max(this.windowMs, 0.01)
    const old = this.rates[this.rung]
    this.rates[this.rung] = old === undefined ? rate : (old + rate) / 2
    this.windowBytes = 0
    this.windowMs = 0
    this.windows++
    if (this.beforeProbe < 0 && this.windows >= this.reprobeAt) {
      // Measure the neighbours again: the link or the load may have changed.
      this.beforeProbe = this.rung
      this.settleAt = this.windows + PROBE_WINDOWS
      this.rates.forEach((_, i) => i !== this.rung && (this.rates[i] = undefined))
    } else if (this.beforeProbe >= 0 && this.windows >= this.settleAt) {
      // A probe that settled where it started was only a cost: wait twice as long for the next.
      this.reprobeEvery = this.rung === this.beforeProbe ? Math.min(MAX_REPROBE_WINDOWS, this.reprobeEvery * 2) : REPROBE_WINDOWS
      this.reprobeAt = this.windows + this.reprobeEvery
      this.beforeProbe = -1
    }
    this.rung = this.nextRung()
  }

  /** For tests: the measured rates per rung. */
  measured(): readonly (number | undefined)[] {
    return this.rates
  }

  private nextRung(): number {
    const i = this.rung
    const here = this.rates[i] as number
    const up = i + 1 < AUTO_LADDER.length ? i + 1 : -1
    const down = i - 1
    // Look down whenever it is unknown; climb into the unknown only while climbing paid (or from off).
    if (down >= 0 && this.rates[down] === undefined) return down
    if (up >= 0 && this.rates[up] === undefined && (down < 0 || here > (this.rates[down] as number) * CLIMB)) return up
    let best = i
    for (const j of [down, up]) if (j >= 0 && (this.rates[j] as number) > (this.rates[best] as number) * HYSTERESIS) best = j
    return best
  }
}
