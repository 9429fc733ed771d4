// Orders requests that touch overlapping bytes of one export, across all connections:
// a request waits for every earlier in-flight request whose range overlaps its own when
// either of the two writes. Reads run side by side; writes to disjoint ranges too.
// Registration is synchronous, so arrival order is the order applied.

interface Held {
  offset: number
  end: number
  exclusive: boolean
  released: Promise<void>
}

export type Unlock = () => void

export class RangeLocks {
  private readonly held = new Set<Held>()

  /** In-flight holders (for tests and shutdown accounting). */
  get size(): number {
    return this.held.size
  }

  /**
   * Take [offset, offset+length) shared (read) or exclusive (write). The slot is taken at
   * once; the promise resolves when earlier conflicting holders have released theirs.
   */
  acquire(offset: number, length: number, exclusive: boolean): Promise<Unlock> {
    const end = offset + length
    const waits: Promise<void>[] = []
    for (const h of this.held) {
      if (h.offset < end && offset < h.end && (exclusive || h.exclusive)) waits.push(h.released)
    }
    let release!: () => void
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    const entry: Held = {offset, end, exclusive, released}
    this.held.add(entry)
    const unlock: Unlock = () => {
      if (this.held.delete(entry)) release()
    }
    if (waits.length === 0) return Promise.resolve(unlock)
    return Promise.all(waits).then(() => unlock)
  }
}
