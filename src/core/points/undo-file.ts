// One undo record opened for reading: header, trailer and index decoded and checked before
// anything in it is used; a data extent's crc32 is checked the first time it is read.
// The file stays open, so a record that retention deletes while a reader holds it still reads.
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import zlib from 'node:zlib'
import {
  corruptPoint,
  decodeUndoHeader,
  decodeUndoIndex,
  decodeUndoTrailer,
  UNDO_ENTRY_SIZE,
  UNDO_HEADER_SIZE,
  UNDO_TRAILER_SIZE,
  type UndoExtent,
  type UndoHeader,
} from './undo-format.js'

async function readFully(fh: fs.FileHandle, len: number, pos: number, file: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(len)
  let got = 0
  while (got < len) {
    const {bytesRead} = await fh.read(buf, got, len - got, pos + got)
    if (bytesRead === 0) throw corruptPoint(file, `ends early at offset ${pos + got}`)
    got += bytesRead
  }
  return buf
}

export class UndoFile {
  /** Extents whose crc32 has been checked (by index). */
  private readonly verified: Uint8Array

  private constructor(
    readonly path: string,
    readonly fh: fs.FileHandle,
    readonly header: UndoHeader,
    readonly extents: UndoExtent[],
    readonly size: number,
  ) {
    this.verified = new Uint8Array(extents.length)
  }

  /** Open and check a record; `expect` (from its name) must match its header. */
  static async open(file: string, expect?: {from: number; to: number}): Promise<UndoFile> {
    const fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      const st = await fh.stat()
      if (!st.isFile()) throw corruptPoint(file, 'not a regular file')
      if (st.size < UNDO_HEADER_SIZE + UNDO_TRAILER_SIZE) throw corruptPoint(file, `only ${st.size} bytes`)
      const header = decodeUndoHeader(await readFully(fh, UNDO_HEADER_SIZE, 0, file), file)
      if (expect && (header.fromSeq !== expect.from || header.toSeq !== expect.to))
        throw corruptPoint(file, `its header links points ${header.fromSeq} and ${header.toSeq}, its name ${expect.from} and ${expect.to}`)
      const trailer = decodeUndoTrailer(await readFully(fh, UNDO_TRAILER_SIZE, st.size - UNDO_TRAILER_SIZE, file), header, st.size, file)
      // Bounded by the trailer check: the index is exactly the bytes between data and trailer.
      const index = await readFully(fh, trailer.entryCount * UNDO_ENTRY_SIZE, trailer.indexOffset, file)
      return new UndoFile(file, fh, header, decodeUndoIndex(index, header, trailer, file), st.size)
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /** A whole data extent, its crc32 checked. */
  async readExtent(i: number): Promise<Buffer> {
    const e = this.extents[i]
    const data = await readFully(this.fh, e.count * this.header.blockSize, e.offset, this.path)
    if (zlib.crc32(data) !== e.crc) throw corruptPoint(this.path, `extent at block ${e.block} fails its crc32`)
    this.verified[i] = 1
    return data
  }

  /**
   * `len` bytes of extent `i` from byte `skip` of it into `dst`. The first touch reads and checks
   * the whole extent (one pread); later ones read only what is asked.
   */
  async readInto(i: number, skip: number, len: number, dst: Buffer, at: number): Promise<void> {
    if (!this.verified[i]) {
      const all = await this.readExtent(i)
      all.copy(dst, at, skip, skip + len)
      return
    }
    const e = this.extents[i]
    let got = 0
    while (got < len) {
      const {bytesRead} = await this.fh.read(dst, at + got, len - got, e.offset + skip + got)
      if (bytesRead === 0) throw corruptPoint(this.path, `ends early at offset ${e.offset + skip + got}`)
      got += bytesRead
    }
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {})
  }
}
