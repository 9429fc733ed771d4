// One bandwidth budget for every transfer this process runs at once (`push --all --jobs N`,
// `bandwidth-budget` in the config file): a token bucket the transfers draw from in turn. The
// waiters queue first come, first served, so two transfers under one budget each get about
// half of it and neither starves behind the other's larger chunks. In-process only: two vdrep
// processes do not share a budget.

interface Waiter {
  n: number
  resolve: () => void
}

export class SharedBudget {
  private tokens: number
  private last = performance.now()
  private readonly queue: Waiter[] = []
  private timer: NodeJS.Timeout | null = null
  /** At most this much may go out in one burst (a quarter second's worth). */
  private readonly burst: number

  constructor(readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new RangeError('a shared budget needs a positive rate')
    this.burst = bytesPerSecond / 4
    this.tokens = bytesPerSecond / 10
  }

  /** Resolves once `n` bytes may be sent; a request larger than a burst waits for a full burst. */
  take(n: number): Promise<void> {
    return new Promise((resolve) => {
      this.queue.push({n, resolve})
      this.pump()
    })
  }

  private refill(): void {
    const now = performance.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond)
    this.last = now
  }

  private pump(): void {
    if (this.timer) return
    this.refill()
    while (this.queue.length > 0) {
      const head = this.queue[0]
      const need = Math.min(head.n, this.burst)
      if (this.tokens < need) {
        const waitMs = ((need - this.tokens) / this.bytesPerSecond) * 1000
        this.timer = setTimeout(
          () => {
            this.timer = null
            this.pump()
          },
          Math.max(1, waitMs),
        )
        return
      }
      // A request larger than the burst goes into debt: the bytes are accounted all the same.
      this.tokens -= head.n
      this.queue.shift()
      head.resolve()
    }
  }
}
