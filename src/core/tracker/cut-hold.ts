// A consistency group's cut on one member's tracker (doc/group-commit.md): the write gate
// stays closed after the freeze, so the VM gets no completion of a write that started after
// it, until the group push says every member is frozen (`release`). The hold is a lease: a
// coordinator that dies or hangs (kill -9, SIGSTOP, a cut link) cannot stall the VM's writes
// past `leaseMs`. A lease that ran out reopens the gate itself and is reported by `release`,
// so the coordinator knows the cut no longer holds across members and fails the group push.

/** The longest a group push may hold one member's writes (the VM waits that long at most). */
export const MAX_HOLD_MS = 30_000

export interface HoldOutcome {
  /** The lease ran out before the release: writes resumed on their own, the cut is void. */
  expired: boolean
  /** How long the writes were held. */
  heldMs: number
}

export class CutHold {
  private expiredAt: number | null = null
  private releasedAt: number | null = null
  private readonly timer: NodeJS.Timeout
  private readonly startedMs = Date.now()

  constructor(
    private readonly reopen: () => void,
    readonly leaseMs: number,
    onExpire: () => void,
  ) {
    this.timer = setTimeout(() => {
      if (this.releasedAt !== null) return
      this.expiredAt = Date.now()
      this.reopen()
      onExpire()
    }, leaseMs)
    this.timer.unref()
  }

  get holding(): boolean {
    return this.expiredAt === null && this.releasedAt === null
  }

  /** Reopen the gate (once); says whether the lease had run out first. */
  release(): HoldOutcome {
    clearTimeout(this.timer)
    if (this.releasedAt === null) {
      this.releasedAt = Date.now()
      this.reopen()
    }
    const end = this.expiredAt ?? this.releasedAt
    return {expired: this.expiredAt !== null, heldMs: end - this.startedMs}
  }
}
