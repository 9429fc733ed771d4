// Bounds-checked cursor reader and a small writer, so decoders read fields in spec order
// and a short or hostile buffer fails with a typed error naming the field, never a RangeError.
import {ProtocolError} from '../errors.js'

export type DecodeErrorFactory = (field: string, detail: string) => Error

const defaultError: DecodeErrorFactory = (field, detail) => new ProtocolError('FRAME_TRUNCATED', `malformed input: ${field}: ${detail}`)

export class BufferReader {
  private pos = 0
  constructor(
    private readonly buf: Buffer,
    private readonly fail: DecodeErrorFactory = defaultError,
  ) {}

  get offset(): number {
    return this.pos
  }
  get remaining(): number {
    return this.buf.length - this.pos
  }

  private need(n: number, field: string): void {
    if (this.pos + n > this.buf.length) throw this.fail(field, `needs ${n} bytes at offset ${this.pos}, only ${this.remaining} left`)
  }

  u8(field: string): number {
    this.need(1, field)
    return this.buf.readUInt8(this.pos++)
  }
  u16(field: string): number {
    this.need(2, field)
    const v = this.buf.readUInt16LE(this.pos)
    this.pos += 2
    return v
  }
  u32(field: string): number {
    this.need(4, field)
    const v = this.buf.readUInt32LE(this.pos)
    this.pos += 4
    return v
  }
  /** 64-bit value that must fit a JS number exactly (offsets, sizes, counts). */
  u64(field: string): number {
    this.need(8, field)
    const v = this.buf.readBigUInt64LE(this.pos)
    this.pos += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(field, `value ${v} is out of range`)
    return Number(v)
  }
  big64(field: string): bigint {
    this.need(8, field)
    const v = this.buf.readBigUInt64LE(this.pos)
    this.pos += 8
    return v
  }
  bytes(n: number, field: string): Buffer {
    this.need(n, field)
    const v = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return v
  }
  /** A u16-length-prefixed UTF-8 string, capped. */
  str16(field: string, max: number): string {
    const n = this.u16(`${field} length`)
    if (n > max) throw this.fail(field, `length ${n} exceeds the limit of ${max}`)
    return this.bytes(n, field).toString('utf8')
  }
  end(field: string): void {
    if (this.remaining !== 0) throw this.fail(field, `${this.remaining} unexpected trailing bytes`)
  }
}

export class BufferWriter {
  private readonly buf: Buffer
  private pos = 0
  constructor(size: number) {
    this.buf = Buffer.alloc(size)
  }
  u8(v: number): this {
    this.buf.writeUInt8(v, this.pos++)
    return this
  }
  u16(v: number): this {
    this.buf.writeUInt16LE(v, this.pos)
    this.pos += 2
    return this
  }
  u32(v: number): this {
    this.buf.writeUInt32LE(v >>> 0, this.pos)
    this.pos += 4
    return this
  }
  u64(v: number | bigint): this {
    this.buf.writeBigUInt64LE(BigInt(v), this.pos)
    this.pos += 8
    return this
  }
  bytes(b: Uint8Array): this {
    this.buf.set(b, this.pos)
    this.pos += b.length
    return this
  }
  str16(s: string): this {
    const b = Buffer.from(s, 'utf8')
    return this.u16(b.length).bytes(b)
  }
  skip(n: number): this {
    this.pos += n
    return this
  }
  get offset(): number {
    return this.pos
  }
  /** The bytes written so far (or the whole fixed-size buffer with `whole`). */
  finish(whole = false): Buffer {
    return whole ? this.buf : this.buf.subarray(0, this.pos)
  }
}

export function strByteLength(s: string): number {
  return 2 + Buffer.byteLength(s, 'utf8')
}
