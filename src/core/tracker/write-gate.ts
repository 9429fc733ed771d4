// Lets writes run side by side, and lets a freeze (or its end) run alone: `exclusive`
// closes the gate, waits for every write inside to leave, runs, then reopens. A write
// entering an open gate costs a counter increment and no promise.

export class WriteGate {
  private inside = 0
  private closed: Promise<void> | null = null
  private drained: (() => void) | null = null

  /** Writes inside the gate now. */
  get count(): number {
    return this.inside
  }

  /** Enter; undefined when entered at once (the fast path), else a promise that enters. */
  enter(): Promise<void> | undefined {
    if (this.closed === null) {
      this.inside++
      return undefined
    }
    return this.enterLater()
  }

  leave(): void {
    this.inside--
    if (this.inside === 0 && this.drained) {
      const d = this.drained
      this.drained = null
      d()
    }
  }

  /** Run `fn` with no write inside the gate; writes arriving meanwhile wait. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const reopen = await this.close()
    try {
      return await fn()
    } finally {
      reopen()
    }
  }

  /**
   * Close the gate and wait for every write inside to leave; returns the function that
   * reopens it (idempotent). Until then new writes wait, so the VM gets no completion of a
   * write that started after the close: a consistency group's cut (freezer.ts, hold).
   */
  async close(): Promise<() => void> {
    while (this.closed) await this.closed
    let open!: () => void
    this.closed = new Promise<void>((resolve) => (open = resolve))
    let reopened = false
    const reopen = () => {
      if (reopened) return
      reopened = true
      this.closed = null
      open()
    }
    try {
      if (this.inside > 0) await new Promise<void>((resolve) => (this.drained = resolve))
    } catch (err) {
      reopen()
      throw err
    }
    return reopen
  }

  private async enterLater(): Promise<void> {
    while (this.closed) await this.closed
    this.inside++
  }
}
