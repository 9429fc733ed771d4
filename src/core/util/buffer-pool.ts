// Reusable fixed-size buffers for a hot transfer loop. A fresh Buffer of 64 KiB or more is a
// new allocation whose pages the kernel faults in and zeroes on first touch; on this VM a push
// that read every block into a fresh buffer spent more CPU on those faults (in the thread pool
// doing the reads) than on the reads themselves. Buffers handed out come back with `release`.
export class BufferPool {
  private readonly free: Buffer[] = []

  /**
   * @param size bytes per buffer
   * @param keep how many released buffers to keep for reuse (more are left to the GC)
   */
  constructor(
    readonly size: number,
    private readonly keep = 64,
  ) {}

  /** A buffer of `size` bytes (contents undefined). */
  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)
  }

  release(buf: Buffer): void {
    if (buf.length === this.size && this.free.length < this.keep) this.free.push(buf)
  }

  /** Buffers waiting for reuse (for tests). */
  get idle(): number {
    return this.free.length
  }
}

/**
 * Counts the users of one pooled buffer and returns it to its pool when the last lets go.
 * The holder that acquired it counts as the first user.
 */
export class SharedLease {
  private users = 1

  constructor(
    private readonly pool: BufferPool,
    readonly buf: Buffer,
  ) {}

  retain(): () => void {
    this.users++
    let released = false
    return () => {
      if (released) return
      released = true
      this.drop()
    }
  }

  drop(): void {
    if (--this.users === 0) this.pool.release(this.buf)
  }
}
