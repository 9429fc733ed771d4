// How many connections `vdrep serve` holds at once: in total (every accepted socket until it
// closes, refused ones included, checked before anything else so that a refusal costs no
// peer lookup and no allocation beyond the accept) and per uid (the sessions served for one
// owner). Refusals are counted and reported in one log line per interval, not one each, so a
// flood writes nothing per connection.

export const DEFAULT_MAX_CONNECTIONS = 64
export const DEFAULT_MAX_CONNECTIONS_PER_UID = 16
/** At most one log line about refusals per this long. */
export const REFUSAL_REPORT_MS = 10_000

export interface ConnectionLimits {
  maxConnections: number
  maxConnectionsPerUid: number
}

export class ConnectionCaps {
  private open = 0
  private readonly perUid = new Map<number, number>()
  private refusedOverTotal = 0
  private refusedOverUid = 0
  private refusedPeers = 0
  private lastReport = 0

  constructor(
    readonly limits: ConnectionLimits,
    private readonly log: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get openConnections(): number {
    return this.open
  }

  /** Counts one accepted socket; false (and nothing counted) when the total cap is reached. */
  admit(): boolean {
    if (this.open >= this.limits.maxConnections) {
      this.refusedOverTotal++
      this.report()
      return false
    }
    this.open++
    return true
  }

  /** The admitted socket closed. */
  closed(): void {
    this.open--
  }

  /** Counts one session for `uid`; false when that uid has its cap. Release with endSession. */
  startSession(uid: number): boolean {
    const n = this.perUid.get(uid) ?? 0
    if (n >= this.limits.maxConnectionsPerUid) {
      this.refusedOverUid++
      this.report()
      return false
    }
    this.perUid.set(uid, n + 1)
    return true
  }

  endSession(uid: number): void {
    const n = (this.perUid.get(uid) ?? 1) - 1
    if (n <= 0) this.perUid.delete(uid)
    else this.perUid.set(uid, n)
  }

  /**
   * A connection from a uid that may not connect (or an unknown one): counted; `describe`
   * (called only when a line is due) says who, for the line that reports it.
   */
  refusedPeer(describe: () => string): void {
    this.refusedPeers++
    this.report(describe)
  }

  /** Sessions now counted for `uid`. */
  sessionsOf(uid: number): number {
    return this.perUid.get(uid) ?? 0
  }

  private report(describe?: () => string): void {
    const t = this.now()
    if (t - this.lastReport < REFUSAL_REPORT_MS) return
    this.lastReport = t
    if (describe !== undefined) {
      this.refusedPeers--
      this.log(describe())
    }
    const parts: string[] = []
    if (this.refusedPeers > 0) parts.push(`${this.refusedPeers} from other users or unknown peers`)
    if (this.refusedOverTotal > 0) parts.push(`${this.refusedOverTotal} over the cap of ${this.limits.maxConnections} connections`)
    if (this.refusedOverUid > 0) parts.push(`${this.refusedOverUid} over the cap of ${this.limits.maxConnectionsPerUid} per user`)
    this.refusedPeers = this.refusedOverTotal = this.refusedOverUid = 0
    if (parts.length > 0) this.log(`refused ${parts.join(', ')} (counted since the last such line)`)
  }
}
