// Files and descriptors for the tests of src/core/native/ and src/core/locks/: a temp folder,
// files of known content (synced, so their blocks are allocated), and fds closed after each test.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export const MiB = 1024 * 1024

export class FdFixtures {
  readonly dir: string
  private readonly fds: number[] = []

  constructor(prefix: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  }

  open(file: string, flags = 'r+'): number {
    const fd = fs.openSync(file, flags)
    this.fds.push(fd)
    return fd
  }

  closeAll(): void {
    for (const fd of this.fds.splice(0)) {
      try {
        fs.closeSync(fd)
      } catch {
        // already closed by the test
      }
    }
  }

  remove(): void {
    this.closeAll()
    fs.rmSync(this.dir, {recursive: true, force: true})
  }

  /** A file of `size` bytes of `fill`, synced so its blocks are allocated. */
  filledFile(name: string, size: number, fill: number): string {
    const file = path.join(this.dir, name)
    fs.writeFileSync(file, Buffer.alloc(size, fill))
    const fd = fs.openSync(file, 'r+')
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    return file
  }

  /** 16 MiB file, all hole except 1 MiB of data at 8 MiB. */
  sparseFile(name: string): string {
    const file = path.join(this.dir, name)
    const fd = fs.openSync(file, 'w+')
    fs.ftruncateSync(fd, 16 * MiB)
    fs.writeSync(fd, Buffer.alloc(MiB, 0xcd), 0, MiB, 8 * MiB)
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    return file
  }
}

export function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length)
  fs.readSync(fd, buf, 0, length, offset)
  return buf
}

export function isAll(buf: Buffer, byte: number): boolean {
  return buf.every((b) => b === byte)
}
