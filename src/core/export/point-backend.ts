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

  async blockStatus(_offset: number, length: number): Promise<NbdExtent[]> {
    // Every byte is reported as data: a point's zero runs are not worth a second index walk here.
    return [{length, hole: false, zero: false}]
  }
}
