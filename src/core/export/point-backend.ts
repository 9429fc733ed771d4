// A restore point as an NBD export: reads come from the point reader (the undo records laid
// over the replica, the view fixed while pushes commit); nothing can write. The server is run
// read-only (NBD_FLAG_READ_ONLY, writes refused with EPERM before they reach here); these
// methods refuse too, in case a caller forgets.
import type {NbdBackend, NbdExtent} from '../tracker/nbd/backend.js'
import type {PointReader} from '../points/point-reader.js'

const readOnly = (): Error => Object.assign(new Error('the export of a restore point is read-only'), {code: 'EROFS'})

export class PointBackend implements NbdBackend {
  constructor(
    private readonly reader: PointReader,
    readonly exportName: string,
  ) {}

  get size(): number {
    return this.reader.size
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return this.reader.read(offset, length)
  }

  async write(): Promise<void> {
    throw readOnly()
  }

  async writeZeroes(): Promise<void> {
    throw readOnly()
  }

  async trim(): Promise<void> {
    throw readOnly()
  }

  async flush(): Promise<void> {
    // Nothing is ever written: nothing to make durable.
  }

  async blockStatus(offset: number, length: number): Promise<NbdExtent[]> {
    if (!this.reader.extents) return [{length, hole: false, zero: false}]
    // Zero runs are reported as holes too: nothing of the point is stored for them.
    const runs = await this.reader.extents(offset, length)
    return runs.length > 0 ? runs.map((r) => ({length: r.length, hole: r.zero, zero: r.zero})) : [{length, hole: false, zero: false}]
  }
}
