// A bounds-checked big-endian cursor over one option payload. Any read past the end, or a
// string that is not valid UTF-8, too long, or holds NUL, throws OptionDataError, which
// the handshake answers with NBD_REP_ERR_INVALID.

import {MAX_STRING_LENGTH} from './constants.js'

export class OptionDataError extends Error {}

const utf8 = new TextDecoder('utf-8', {fatal: true})

export class Cursor {
  private pos = 0

  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.pos
  }

  u16(field: string): number {
    this.need(2, field)
    const v = this.buf.readUInt16BE(this.pos)
    this.pos += 2
    return v
  }

  u32(field: string): number {
    this.need(4, field)
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }

  /** A string of `n` bytes (the length came from an earlier field). */
  string(n: number, field: string): string {
    if (n > MAX_STRING_LENGTH) throw new OptionDataError(`${field} is ${n} bytes, over the ${MAX_STRING_LENGTH}-byte limit`)
    this.need(n, field)
    const bytes = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    if (bytes.includes(0)) throw new OptionDataError(`${field} contains a NUL byte`)
    try {
      return utf8.decode(bytes)
    } catch {
      throw new OptionDataError(`${field} is not valid UTF-8`)
    }
  }

  /** The payload must be fully consumed. */
  end(what: string): void {
    if (this.remaining !== 0) throw new OptionDataError(`${what} has ${this.remaining} trailing bytes`)
  }

  private need(n: number, field: string): void {
    if (this.remaining < n) {
      throw new OptionDataError(`${field} needs ${n} bytes but only ${this.remaining} are left in the option`)
    }
  }
}
