// The direct writer's staging memory (direct-writes.ts): a few aligned buffers, taken for a
// run and given back once its write is done, allocated on first need and kept for the session.
import {DiskIoError} from '../errors.js'
import {alignedBuffer} from '../native/direct-io.js'

export class StagingBuffers {
  private readonly free: Buffer[] = []
  private allocated = 0
  private readonly waiting: Array<() => void> = []

  constructor(
    /** Buffers at most. */
    private readonly count: number,
    private readonly size: number,
  ) {}

  /** A free buffer (or a new one while fewer than `count` exist), else undefined: no promise when one is at hand. */
  takeNow(): Buffer | undefined {
    const buf = this.free.pop()
    if (buf) return buf
    if (this.allocated >= this.count) return undefined
    const fresh = alignedBuffer(this.size)
    if (!fresh) throw new DiskIoError('no aligned memory for direct writes') // openDirect checked for the addon
    this.allocated++
    return fresh
  }

  /** A buffer, once one is given back if none is free. */
  async take(): Promise<Buffer> {
    for (;;) {
      const buf = this.takeNow()
      if (buf) return buf
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    }
  }

  giveBack(buf: Buffer): void {
    this.free.push(buf)
    this.waiting.shift()?.()
  }
}
