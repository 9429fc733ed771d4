// Orders requests that touch overlapping bytes of one export, across all connections:
// a request waits for every earlier in-flight request whose range overlaps its own when
// either of the two writes. Reads run side by side; writes to disjoint ranges too.
// Registration is synchronous, so arrival order is the order applied.

interface Held {
  offset: number
  end: number
  exclusive: boolean
  /** Made only when a later request has to wait for this one (most never do). */
  released: Promise<void> | null
  release: (() => void) | null
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
    const got = this.take(offset, length, exclusive)
    return typeof got === 'function' ? Promise.resolve(got) : got
  }

  /**
   * acquire() without a promise when nothing conflicts (the common case: an NBD request costs
   * no promise and no microtask for its lock); else the promise of the unlock.
   */
  take(offset: number, length: number, exclusive: boolean): Unlock | Promise<Unlock> {
    const end = offset + length
    let waits: Promise<void>[] | undefined
    for (const h of this.held) {
      if (h.offset < end && offset < h.end && (exclusive || h.exclusive)) (waits ??= []).push(releasedOf(h))
    }
    const entry: Held = {offset, end, exclusive, released: null, release: null}
    this.held.add(entry)
    const unlock: Unlock = () => {
      if (this.held.delete(entry)) entry.release?.()
    }
    if (waits === undefined) return unlock
    return (waits.length === 1 ? waits[0] : Promise.all(waits)).then(() => unlock)
  }
}

function releasedOf(h: Held): Promise<void> {
  h.released ??= new Promise<void>((resolve) => (h.release = resolve))
  return h.released
}

/**
 * Each export's RangeLocks, shared by the connections of one server. A class, not a closure
 * per server: the request loop calls `for` as a connection starts, and V8 compiles that call
 * for the one function it saw; a closure of another server (the tracker's warm-up serves a
 * scratch export first) is another function, and the VM's first request threw the compiled
 * request loop away ("wrong call target"). A method is the same function for every server.
 */
export class ExportLocks {
  private readonly byExport = new Map<object, RangeLocks>()

  for(key: object): RangeLocks {
    let l = this.byExport.get(key)
    if (!l) this.byExport.set(key, (l = new RangeLocks()))
    return l
  }
}
