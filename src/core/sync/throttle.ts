// A token bucket for --bwlimit (or the disk's `bandwidth` setting): callers await `take(n)`
// before sending n bytes. With a shared budget (`push --all --jobs N`), the bytes are also
// drawn from it, so the transfers running at once stay under the budget together.
import type {PsfHeader} from '../psf/header.js'
import type {SharedBudget} from './shared-budget.js'

export class Throttle {
  private tokens: number
  private last = performance.now()

  constructor(
    private readonly bytesPerSecond: number,
    private readonly shared?: SharedBudget,
  ) {
    this.tokens = bytesPerSecond / 10
  }

  async take(n: number): Promise<void> {
    await this.takeOwn(n)
    await this.shared?.take(n)
  }

  private async takeOwn(n: number): Promise<void> {
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

/** A transfer's throttle: the flag, else the disk's `bandwidth` setting, else none; plus the shared budget. */
export function throttleFor(h: PsfHeader, opts: {bwlimitBytesPerSecond?: number; sharedBudget?: SharedBudget}): Throttle {
  return new Throttle(opts.bwlimitBytesPerSecond ?? h.settings.bwlimitBytesPerSecond ?? 0, opts.sharedBudget)
}
