// Buffers reused across a transfer instead of allocated fresh for every block. A pool is a
// lender: what take() gives is lent until give(), the release of the carrier's ownership rule
// (protocol/lent-buffers.ts) wherever such a buffer crosses the carrier.

/**
 * Reusable buffers for hot transfer loops: the tracker's payloads that span socket reads, a
 * push's block reads. A fresh buffer of 64 KiB or more is a new allocation whose pages the
 * kernel faults in on first touch (on this VM a fault costs more than the copy) and, being
 * external memory, drives V8 into full garbage collections: 30% of the tracker's CPU at
 * 64 KiB writes before this. `take` lends one; `give` takes back what `take` lent (anything
 * else is ignored) once nothing reads it any more.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>()
  private readonly lent = new WeakSet<Buffer>()
  private cached = 0

  constructor(
    /** Bytes kept for reuse at most. */
    private readonly maxCached: number,
    /** Larger buffers are not kept. */
    private readonly maxSize: number,
    /** Where fresh buffers come from (aligned memory, for one). */
    private readonly allocate?: (n: number) => Buffer,
  ) {}

  readonly take = (n: number): Buffer => {
    const b = this.free.get(n)?.pop()
    if (b) {
      this.cached -= n
      this.lent.add(b)
      return b
    }
    const fresh = this.allocate?.(n) ?? Buffer.allocUnsafeSlow(n)
    if (n <= this.maxSize) this.lent.add(fresh)
    return fresh
  }

  give(b: Buffer): void {
    if (!this.lent.has(b)) return
    this.lent.delete(b)
    if (this.cached + b.length > this.maxCached) return
    let list = this.free.get(b.length)
    if (!list) this.free.set(b.length, (list = []))
    list.push(b)
    this.cached += b.length
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
    if (--this.users === 0) this.pool.give(this.buf)
  }
}
