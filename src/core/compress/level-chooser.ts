// What the run sender asks of a level policy (policy.ts: `auto`), and the policy of a fixed
// `--compress LEVEL`, which measures nothing.

export interface LevelChooser {
  /** The level for the next piece: 0 sends it raw. */
  level(): number
  /** The level the next piece would get, without counting it as used. */
  current(): number
  /** A worker compressed `tried` input bytes at `level` in `ms`. */
  compressed(level: number, tried: number, ms: number): void
  /** The carrier took `wireBytes` in `ms` (encryption and waits for the link). */
  carried(wireBytes: number, ms: number): void
  /** A piece of `rawBytes` went out (at the level it was given). Closes windows. */
  sent(rawBytes: number, level: number): void
  /** Every level used, for the result. */
  readonly used: ReadonlySet<number>
  /** auto: what it measured, in MB/s (the result shows it). */
  measured?(): AutoMeasures
}

/** auto's measures at the end of a transfer, MB/s (1 MB = 10^6 bytes). */
export interface AutoMeasures {
  /** Compressor input rate per worker, per level. */
  compressor: Record<number, number>
  /** Carrier drain rate. */
  carrier?: number
  /** End-to-end raw rates of windows sent raw (off) and compressed (on). */
  realized: {off?: number; on?: number}
  windows: number
  /** The level of each window, one digit each (the first 256). */
  history: string
  /** VDREP_AUTO_TRACE=1: one line per window (ms since start, level, MB, rates in MB/s, the decision). */
  trace?: string[]
}

/** `--compress LEVEL`: that level for every piece. */
export class FixedLevel implements LevelChooser {
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
  compressed(): void {}
  carried(): void {}
  sent(): void {}
}
