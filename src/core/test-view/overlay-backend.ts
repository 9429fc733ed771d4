// The writable view of a test boot: a restore point with a copy-on-write side file over it.
// Writes land in the side file (at their own offsets, a sparse file the size of the disk), in
// grains of GRAIN bytes; a grain partly written is first filled from the view (read-modify-
// write). Reads take each grain from where it lives now: the point, the side file, or zeros.
// The replica is never written: the point reader only reads it.
//
// The cap bounds the side file: a write that needs more grains than the cap has left fails
// whole with ENOSPC (the NBD client sees ENOSPC) and writes nothing. Zeroed and trimmed whole
// grains are holes in the side file and cost nothing. Flush and FUA do nothing on purpose: the
// view is thrown away when the test stops, and after a crash too.
import type {FileHandle} from 'node:fs/promises'
import {punchHole} from '../native/holes.js'
import type {PointReader} from '../points/point-reader.js'
import type {NbdBackend, NbdExtent} from '../tracker/nbd/backend.js'
import {RangeLocks} from '../tracker/nbd/range-lock.js'
import {formatBytes} from '../util/units.js'

export const GRAIN = 64 * 1024

const enum Where {
  POINT = 0,
  SIDE = 1,
  ZERO = 2,
}

export class OverlayBackend implements NbdBackend {
  private readonly where: Uint8Array
  /** Side-file grains holding data, and those reserved by writes under way. */
  private used = 0
  /** Grain-aligned exclusion between writes (two writes into one grain must not both fill it). */
  private readonly grains = new RangeLocks()
  writes = 0
  bytesWritten = 0

  constructor(
    private readonly point: PointReader,
    private readonly side: FileHandle,
    readonly exportName: string,
    readonly capBytes: number,
  ) {
    this.where = new Uint8Array(Math.ceil(point.size / GRAIN))
  }

  get size(): number {
    return this.point.size
  }

  /** Bytes the side file holds now. */
  get sideBytes(): number {
    return this.used * GRAIN
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const g0 = Math.floor(offset / GRAIN)
    const g1 = Math.floor((offset + length - 1) / GRAIN)
    let allPoint = true
    for (let g = g0; g <= g1 && allPoint; g++) allPoint = this.where[g] === Where.POINT
    if (allPoint) return this.point.read(offset, length)
    const out = Buffer.allocUnsafe(length)
    for (let g = g0; g <= g1;) {
      const w = this.where[g]
      let h = g
      while (h + 1 <= g1 && this.where[h + 1] === w) h++
      const from = Math.max(offset, g * GRAIN)
      const to = Math.min(offset + length, (h + 1) * GRAIN)
      const dst = out.subarray(from - offset, to - offset)
      if (w === Where.ZERO) dst.fill(0)
      else if (w === Where.SIDE) await preadAll(this.side, dst, from)
      else (await this.point.read(from, to - from)).copy(dst)
      g = h + 1
    }
    return out
  }

  async write(offset: number, data: Buffer): Promise<void> {
    const start = Math.floor(offset / GRAIN) * GRAIN
    const end = Math.min(this.size, Math.ceil((offset + data.length) / GRAIN) * GRAIN)
    const unlock = await this.grains.acquire(start, end - start, true)
    let reserved = 0
    try {
      let needed = 0
      for (let g = start / GRAIN; g * GRAIN < end; g++) if (this.where[g] !== Where.SIDE) needed++
      if ((this.used + needed) * GRAIN > this.capBytes) throw full(this.capBytes, this.used * GRAIN)
      this.used += needed
      reserved = needed
      let buf = data
      if (start !== offset || end !== offset + data.length) {
        // The grains' other bytes come from the view as it is (point, side file or zeros).
        buf = await this.read(start, end - start)
        data.copy(buf, offset - start)
      }
      await pwriteAll(this.side, buf, start)
      for (let g = start / GRAIN; g * GRAIN < end; g++) this.where[g] = Where.SIDE
      reserved = 0
      this.writes++
      this.bytesWritten += data.length
    } finally {
      this.used -= reserved // a failed write gives its reservation back
      unlock()
    }
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    const end = offset + length
    const [zs, ze] = this.wholeGrains(offset, end)
    if (ze <= zs) return this.write(offset, Buffer.alloc(length))
    if (offset < zs) await this.write(offset, Buffer.alloc(zs - offset))
    await this.zeroGrains(zs, ze)
    if (end > ze) await this.write(ze, Buffer.alloc(end - ze))
  }

  async trim(offset: number, length: number): Promise<void> {
    // Only whole grains: a trimmed range may read as zeros or keep its data, so the rest keeps it.
    const [zs, ze] = this.wholeGrains(offset, offset + length)
    if (ze > zs) await this.zeroGrains(zs, ze)
  }

  /** The whole grains inside [offset, end) (the disk's last, short grain counts when the range reaches the end). */
  private wholeGrains(offset: number, end: number): [number, number] {
    const zs = Math.ceil(offset / GRAIN) * GRAIN
    const ze = end >= this.size ? this.size : Math.floor(end / GRAIN) * GRAIN
    return [zs, ze]
  }

  private async zeroGrains(start: number, end: number): Promise<void> {
    const unlock = await this.grains.acquire(start, end - start, true)
    try {
      let freed = 0
      for (let g = start / GRAIN; g * GRAIN < end; g++) {
        if (this.where[g] === Where.SIDE) freed++
        this.where[g] = Where.ZERO
      }
      // The side file's copy of those grains is never read again; give its space back.
      // Where no hole can be punched, the grains' bytes stay in the side file and stay counted.
      if (freed > 0 && punchHole(this.side.fd, start, end - start)) this.used -= freed
    } finally {
      unlock()
    }
  }

  async flush(): Promise<void> {
    // Nothing to make durable: the view is discarded at the end of the test (see above).
  }

  async blockStatus(_offset: number, length: number): Promise<NbdExtent[]> {
    return [{length, hole: false, zero: false}]
  }
}

function full(cap: number, used: number): Error {
  return Object.assign(new Error(`the test view is full: its side file has used ${formatBytes(used)} of its cap of ${formatBytes(cap)}`), {
    code: 'ENOSPC',
  })
}

async function preadAll(fh: FileHandle, dst: Buffer, pos: number): Promise<void> {
  for (let got = 0; got < dst.length;) {
    const {bytesRead} = await fh.read(dst, got, dst.length - got, pos + got)
    if (bytesRead === 0) {
      dst.fill(0, got) // past the side file's end: never written, reads as zeros
      return
    }
    got += bytesRead
  }
}

async function pwriteAll(fh: FileHandle, src: Buffer, pos: number): Promise<void> {
  for (let off = 0; off < src.length;) {
    const {bytesWritten} = await fh.write(src, off, src.length - off, pos + off)
    off += bytesWritten
  }
}
