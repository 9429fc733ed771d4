// A token bucket for --bwlimit: callers await `take(n)` before sending n bytes.
export class Throttle {
  private tokens: number
  private last = performance.now()

  constructor(private readonly bytesPerSecond: number) {
    this.tokens = bytesPerSecond / 10
  }

  async take(n: number): Promise<void> {
    if (!(this.bytesPerSecond > 0)) return
    for (;;) {
      const now = performance.now()
      this.tokens = Math.min(this.bytesPerSecond / 4, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond)
      this.last = now
      if (this.tokens >= Math.min(n, this.bytesPerSecond / 4)) {
        this.tokens -= n
        return
      }
      const waitMs = ((Math.min(n, this.bytesPerSecond / 4) - this.tokens) / this.bytesPerSecond) * 1000
      await new Promise((r) => setTimeout(r, Math.max(1, waitMs)))
    }
  }
}
