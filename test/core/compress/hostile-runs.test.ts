// Hostile DATA_Z frames against a real receiver session (full-sync port, in-memory carrier):
// a run that expands past its bound, a lying uncompressed length, garbage, a wrong codec, a run
// past the disk, oversized fields, a DATA_Z nobody agreed to, and bad hashes inside a good frame.
// Each is refused with its protocol error, and nothing reaches the replica.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import {seededText, tempDir} from '../../helpers/disks.js'
import {blockHasher, HashAlgo} from '../../../src/core/hash/block-hash.js'
import {duplexPair} from '../../../src/core/transport/duplex-pair.js'
import {encodeFrameHeader, FrameType, PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {FrameReader} from '../../../src/core/protocol/frame-reader.js'
import {decodeError, decodeHelloOk, encodeHello, HelloFlag, SyncMode} from '../../../src/core/protocol/messages.js'
import {encodeCompressedRunFields} from '../../../src/core/protocol/compressed-data.js'
import {handleConnection} from '../../../src/core/receiver/session.js'
import {Codec, Compressor} from '../../../src/core/compress/codec.js'

const BS = 4096
const BLOCKS = 8
const KEY = Buffer.alloc(16, 7)
const h = blockHasher(HashAlgo.BLAKE3, KEY)

function hello(offer: boolean): Buffer {
  return encodeHello({
    version: PROTOCOL_VERSION,
    mode: SyncMode.FULLSYNC,
    hashAlgo: HashAlgo.BLAKE3,
    blockSize: BS,
    diskSize: BS * BLOCKS,
    replicaId: KEY,
    flags: offer ? HelloFlag.COMPRESS : 0,
    ...(offer ? {codecs: [Codec.ZSTD]} : {}),
    lastCommit: Buffer.alloc(16),
    nextCommit: Buffer.alloc(16, 1),
    path: 'r.img',
  })
}

const frame = (type: number, ...parts: Buffer[]) => {
  const payload = Buffer.concat(parts)
  return Buffer.concat([encodeFrameHeader(type as never, payload.length), payload])
}

const packed = (src: Buffer) => Buffer.from(new Compressor().compress(src, 3, src.length) as Buffer)
const hashes = (data: Buffer, count: number) => Buffer.concat(Array.from({length: count}, (_, i) => h.hash(data.subarray(i * BS, (i + 1) * BS))))
const runFrame = (first: number, count: number, rawLength: number, data: Buffer, hs = hashes(data, count), codec: number = Codec.ZSTD) =>
  frame(FrameType.DATA_Z, encodeCompressedRunFields({first, count, rawLength, codec, hashes: hs}), data)

describe('hostile DATA_Z frames against the receiver', () => {
  let root: string
  beforeEach(async () => {
    root = await tempDir()
  })
  afterEach(async () => {
    await fs.rm(root, {recursive: true, force: true})
  })

  /** Send the hello (with or without the offer) and `frames`; the receiver's codec answer and ERROR code. */
  async function attack(offer: boolean, frames: Buffer[]): Promise<{codec?: number; code?: string; message?: string}> {
    const [client, server] = duplexPair()
    const served = handleConnection(server, {root})
    const reader = new FrameReader(client)
    client.write(frame(FrameType.HELLO, hello(offer)))
    const ok = await reader.next()
    assert.equal(ok?.type, FrameType.HELLO_OK)
    const codec = decodeHelloOk(ok.payload, offer).codec
    // As a client does: blocks only after their statuses (a DATA before it is refused on its own).
    assert.equal((await reader.next())?.type, FrameType.BLOCK_STATUS)
    for (const f of frames) client.write(f)
    client.end()
    let err: ReturnType<typeof decodeError> | undefined
    for (let f = await reader.next().catch(() => null); f; f = await reader.next().catch(() => null))
      if (f.type === FrameType.ERROR) err = decodeError(f.payload)
    await served
    return {codec, code: err?.code, message: err?.message}
  }

  async function assertNothingWritten(): Promise<void> {
    const replica = await fs.readFile(path.join(root, 'r.img'))
    assert.ok(replica.equals(Buffer.alloc(BS * BLOCKS)), 'a refused run left bytes on the replica')
  }

  const text = seededText('hostile', 4 * BS)

  const cases: [string, () => Buffer[], RegExp][] = [
    [
      'a run that expands past its declared length (zip bomb)',
      () => [runFrame(0, 1, BS, packed(Buffer.alloc(1 << 20, 0x61)), hashes(text, 1))],
      /COMPRESSED_RUN_BAD/,
    ],
    ['a lying uncompressed length (shorter than its blocks)', () => [runFrame(0, 2, BS, packed(text.subarray(0, BS)), hashes(text, 2))], /COMPRESSED_RUN_BAD/],
    [
      'a lying uncompressed length (longer than its blocks)',
      () => [runFrame(0, 1, 2 * BS, packed(text.subarray(0, 2 * BS)), hashes(text, 1))],
      /COMPRESSED_RUN_BAD/,
    ],
    ['garbage for data', () => [runFrame(0, 2, 2 * BS, seededText('junk', 900), hashes(text, 2))], /COMPRESSED_RUN_BAD/],
    ['a codec nobody agreed on', () => [runFrame(0, 1, BS, packed(text.subarray(0, BS)), hashes(text, 1), 2)], /FRAME_MALFORMED/],
    ['a run past the end of the disk', () => [runFrame(BLOCKS - 1, 2, 2 * BS, packed(text.subarray(0, 2 * BS)), hashes(text, 2))], /BLOCK_OUT_OF_RANGE/],
    ['an uncompressed length over the cap', () => [runFrame(0, 1, (4 << 20) + 1, packed(text.subarray(0, BS)), hashes(text, 1))], /FRAME_MALFORMED/],
    ['a count over the cap', () => [runFrame(0, 1025, BS, packed(text.subarray(0, BS)), Buffer.alloc(1025 * 32))], /FRAME_MALFORMED/],
    ['"compressed" data as long as the run', () => [runFrame(0, 1, BS, text.subarray(0, BS), hashes(text, 1))], /FRAME_MALFORMED/],
    [
      'hashes cut short',
      () => [frame(FrameType.DATA_Z, encodeCompressedRunFields({first: 0, count: 4, rawLength: 4 * BS, codec: 1, hashes: Buffer.alloc(40)}))],
      /FRAME_MALFORMED/,
    ],
    ['good data under wrong hashes', () => [runFrame(0, 4, 4 * BS, packed(text), Buffer.alloc(4 * 32, 9))], /BLOCK_BAD_HASH/],
  ]
  for (const [what, frames, code] of cases) {
    it(`refuses ${what}, writes nothing`, async () => {
      const r = await attack(true, frames())
      assert.equal(r.codec, Codec.ZSTD, 'the receiver agreed on zstd')
      assert.match(r.code ?? 'no ERROR frame', code, r.message)
      await assertNothingWritten()
    })
  }

  it('refuses a DATA_Z when the hello agreed on no codec (an old client), writes nothing', async () => {
    const r = await attack(false, [runFrame(0, 4, 4 * BS, packed(text))])
    assert.equal(r.codec, undefined, 'no codec byte in a HELLO_OK to a hello without the offer')
    assert.match(r.code ?? '', /FRAME_UNEXPECTED/)
    await assertNothingWritten()
  })
})
