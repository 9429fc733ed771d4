// Input generators for the decoder fuzzer (bench/fuzz.ts, test/core/fuzz.test.ts): random
// bytes, valid encodings of every format, and mutations of them (bit flips, cuts, inserts,
// removals, boundary values written over length and count fields).
import {encodeCompressedRunFields, MAX_RUN_BLOCKS, MAX_RUN_BYTES} from '../src/core/protocol/compressed-data.js'
import zlib from 'node:zlib'
import fc from 'fast-check'
import {encodeFrameHeader, FrameType, MAX_PAYLOAD, type FrameTypeId} from '../src/core/protocol/frame.js'
import * as m from '../src/core/protocol/messages.js'
import {encodeRoomInfo, type RoomReplicaKind} from '../src/core/protocol/room-messages.js'
import {encodeHeader, type PsfHeader} from '../src/core/psf/header.js'
import {IdentityKind, NO_IDENTITY, type DiskIdentity} from '../src/core/psf/disk-identity.js'
import {PAGE_PAYLOAD_SIZE, Region, type RegionId} from '../src/core/psf/layout.js'
import {encodePage} from '../src/core/psf/page.js'
import {encodeEntryHeader, encodeJournalHeader, encodeJournalTrailer, EntryKind} from '../src/core/delta/journal.js'
import {encodeReplicaState, type ReplicaState} from '../src/core/receiver/replica-state.js'

export const bytes = (max: number) => fc.uint8Array({maxLength: max}).map((u) => Buffer.from(u))
const exactly = (n: number) => fc.uint8Array({minLength: n, maxLength: n}).map((u) => Buffer.from(u))
const u64 = fc.oneof(fc.maxSafeNat(), fc.constantFrom(0, 1, 2 ** 32, Number.MAX_SAFE_INTEGER))
const u32 = fc.integer({min: 0, max: 0xffffffff})
const text = (max: number) => fc.string({unit: 'binary', maxLength: max})

/** Bulk pseudo-random bytes from a seed (xorshift32): cheaper than one generated value per byte. */
export function prngBytes(seed: number, n: number): Buffer {
  let x = seed | 0 || 0x9e3779b9
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}
export const bulkBytes = (min: number, max: number) => fc.tuple(fc.integer(), fc.integer({min, max})).map(([s, n]) => prngBytes(s, n))

// ---- mutations ----

const BOUNDARY_32 = [0, 1, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 1024, 1025, 4096, 4097, 16384, 16385, MAX_PAYLOAD, MAX_PAYLOAD + 1]
const BOUNDARY_64 = [0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]

type Mutation =
  | {kind: 'flip'; at: number; mask: number}
  | {kind: 'cut'; at: number}
  | {kind: 'insert'; at: number; data: Buffer}
  | {kind: 'remove'; at: number; n: number}
  | {kind: 'u16' | 'u32'; at: number; value: number}
  | {kind: 'u64'; at: number; value: bigint}

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  {weight: 4, arbitrary: fc.record({kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({min: 1, max: 255})})},
  fc.record({kind: fc.constant('cut' as const), at: fc.nat()}),
  fc.record({kind: fc.constant('insert' as const), at: fc.nat(), data: bytes(8)}),
  fc.record({kind: fc.constant('remove' as const), at: fc.nat(), n: fc.integer({min: 1, max: 8})}),
  fc.record({kind: fc.constant('u16' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x1000, 0x1001, 0xffff)}),
  {weight: 2, arbitrary: fc.record({kind: fc.constant('u32' as const), at: fc.nat(), value: fc.constantFrom(...BOUNDARY_32)})},
  fc.record({kind: fc.constant('u64' as const), at: fc.nat(), value: fc.constantFrom(...BOUNDARY_64)}),
)

export function mutate(input: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(input)
  for (const mu of muts) {
    const at = b.length === 0 ? 0 : mu.at % (b.length + (mu.kind === 'cut' || mu.kind === 'insert' ? 1 : 0))
    switch (mu.kind) {
      case 'flip':
        if (b.length > 0) b[at] ^= mu.mask
        break
      case 'cut':
        b = b.subarray(0, at)
        break
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), mu.data, b.subarray(at)])
        break
      case 'remove':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + mu.n)])
        break
      default: {
        const width = mu.kind === 'u16' ? 2 : mu.kind === 'u32' ? 4 : 8
        if (b.length < width) break
        const pos = Math.min(at, b.length - width)
        if (mu.kind === 'u16') b.writeUInt16LE(mu.value, pos)
        else if (mu.kind === 'u32') b.writeUInt32LE(mu.value, pos)
        else b.writeBigUInt64LE(BigInt(mu.value), pos)
      }
    }
  }
  return Buffer.from(b)
}

/** A field of a fixed layout: offset and width in bytes. */
export type Field = readonly [offset: number, width: 1 | 2 | 4 | 8]
const BOUNDARY: Record<1 | 2 | 4 | 8, ReadonlyArray<number | bigint>> = {
  1: [0, 1, 2, 3, 4, 0x7f, 0x80, 0xff],
  2: [0, 1, 2, 0x1000, 0x1001, 0x7fff, 0xffff],
  4: [...BOUNDARY_32, 2048, 3 * 4096, 4 << 20, (4 << 20) + 1, 8 << 20],
  8: BOUNDARY_64,
}
/** One named field of a valid encoding overwritten with a boundary value (the caller fixes any crc). */
export const poked = (valid: fc.Arbitrary<Buffer>, fields: Field[]) =>
  fc.tuple(valid, fc.constantFrom(...fields), fc.nat()).map(([input, [off, width], i]) => {
    const b = Buffer.from(input)
    if (b.length < off + width) return b
    const v = BOUNDARY[width][i % BOUNDARY[width].length]
    if (width === 8) b.writeBigUInt64LE(BigInt(v), off)
    else b.writeUIntLE(Number(v), off, width)
    return b
  })

export const mutated = (valid: fc.Arbitrary<Buffer>) => fc.tuple(valid, fc.array(mutationArb, {minLength: 1, maxLength: 4})).map(([b, ms]) => mutate(b, ms))

/** Random bytes, valid encodings, and mutated valid encodings, in one mix. */
export const hostile = (valid: fc.Arbitrary<Buffer>, randomMax = 128) =>
  fc.oneof({weight: 2, arbitrary: bytes(randomMax)}, {weight: 1, arbitrary: valid}, {weight: 5, arbitrary: mutated(valid)})

// ---- valid encodings ----

export const frameTypes = Object.values(FrameType) as FrameTypeId[]
/**
 * A DATA frame with a block behind its fields. Random payloads rarely get past the fields
 * (fast-check keeps arrays small), so without these the readers' body paths (a view of the
 * receive buffer, or a copy when the block straddles reads) went unfuzzed.
 */
const dataFrame = fc.tuple(u64, exactly(m.DATA_FIELDS_SIZE - 8), fc.uint8Array({minLength: 1, maxLength: 3000, size: 'max'})).map(([block, hash, data]) => {
  const payload = Buffer.concat([m.encodeDataFields(block, hash), data])
  return Buffer.concat([encodeFrameHeader(FrameType.DATA, payload.length), payload])
})
const anyFrame = fc.tuple(fc.constantFrom(...frameTypes), bytes(80)).map(([t, p]) => Buffer.concat([encodeFrameHeader(t, p.length), p]))
export const validFrames = fc
  .array(fc.oneof({weight: 3, arbitrary: anyFrame}, {weight: 1, arbitrary: dataFrame}), {maxLength: 4})
  .map((frames) => Buffer.concat(frames))
/** Good frames, then a header claiming more than MAX_PAYLOAD, then whatever. */
export const oversizedFrame = fc
  .tuple(validFrames, fc.constantFrom(...frameTypes), fc.integer({min: MAX_PAYLOAD + 1, max: 0xffffffff}), bytes(16))
  .map(([good, t, length, tail]) => {
    const h = encodeFrameHeader(t, 0)
    h.writeUInt32LE(length, 4)
    return Buffer.concat([good, h, tail])
  })

const rec = <T>(model: {[K in keyof T]: fc.Arbitrary<T[K]>}) => fc.record(model, {noNullPrototype: true}) as unknown as fc.Arbitrary<T>

/** Short strings, or strings that cross `limit` bytes with multi-byte characters at the edge. */
const nearLimit = (limit: number) =>
  fc.oneof(
    text(40),
    fc.tuple(fc.integer({min: limit - 8, max: limit + 2}), text(4)).map(([n, t]) => `${'c'.repeat(n)}${t}`),
  )

/** Encoder output for each message, including values at and just past the decoder's limits. */
export const validMessages: Record<string, fc.Arbitrary<Buffer>> = {
  HELLO: fc
    .tuple(
      rec<m.Hello>({
        version: fc.integer({min: 0, max: 0xffff}),
        mode: fc.integer({min: 0, max: 255}),
        hashAlgo: fc.integer({min: 0, max: 255}),
        blockSize: u32,
        diskSize: u64,
        replicaId: exactly(16),
        flags: u32,
        lastCommit: exactly(16),
        nextCommit: exactly(16),
        path: text(64),
      }),
      // With flag COMPRESS: a codec list, up to just past MAX_CODECS.
      fc.array(fc.integer({min: 0, max: 255}), {maxLength: m.MAX_CODECS + 1}),
    )
    .map(([h, codecs]) => m.encodeHello(h.flags & m.HelloFlag.COMPRESS ? {...h, codecs} : h)),
  HELLO_OK: rec<m.HelloOk>({
    version: fc.integer({min: 0, max: 0xffff}),
    state: fc.integer({min: 0, max: 255}),
    replicaSize: u64,
    resumeBlock: u64,
    replicaId: exactly(16),
    generation: u64,
    lastSeq: u64,
  }).map(m.encodeHelloOk),
  ERROR: rec<m.ErrorMsg>({exitCode: fc.integer({min: 0, max: 255}), code: nearLimit(64), message: nearLimit(2048), hint: nearLimit(1024)}).map(m.encodeError),
  BLOCK_STATUS: fc.oneof(
    fc
      .tuple(u64, fc.array(fc.constantFrom(0, 1, 2), {minLength: 1, maxLength: 12}))
      .chain(([start, kinds]) =>
        exactly(32 * kinds.filter((k) => k === 1).length).map((hashes) => m.encodeBlockStatus({startBlock: start, kinds: Uint8Array.from(kinds), hashes})),
      ),
    // a whole batch of zero kinds at, or just past, MAX_STATUS_BATCH
    fc
      .integer({min: m.MAX_STATUS_BATCH - 1, max: m.MAX_STATUS_BATCH + 2})
      .map((n) => m.encodeBlockStatus({startBlock: 0, kinds: new Uint8Array(n), hashes: Buffer.alloc(0)})),
  ),
  DATA: fc.tuple(u64, exactly(32), bytes(64)).map(([block, hash, data]) => Buffer.concat([m.encodeDataFields(block, hash), data])),
  RANGE: fc.tuple(u64, u64).map(([s, c]) => m.encodeRange(s, c)),
  U64: u64.map(m.encodeU64),
  DONE: fc.tuple(u64, exactly(32)).map(([blockCount, digest]) => m.encodeDone({blockCount, digest})),
  VERIFY_RESULT: fc.tuple(fc.boolean(), exactly(32)).map(([ok, digest]) => m.encodeVerifyResult({ok, digest})),
  BUNDLE_BEGIN: rec<m.BundleBegin>({seq: u64, blockCount: u64, diskSize: u64}).map(m.encodeBundleBegin),
  BUNDLE_END: rec<m.BundleEnd>({seq: u64, blockCount: u64, digest: exactly(32)}).map(m.encodeBundleEnd),
  COMMITTED: rec<m.Committed>({seq: u64, journalMs: u32, applyMs: u32}).map(m.encodeCommitted),
  KEEPALIVE: fc.constant(Buffer.alloc(0)),
  ROOM_INFO: fc.tuple(fc.integer({min: 0, max: 4}), fc.constantFrom(0, 1), u64, u64, u64, u64).map(([kind, flags, size, allocated, x, y]) =>
    encodeRoomInfo({
      replica: kind as RoomReplicaKind,
      flags,
      replicaSize: kind === 0 || kind === 2 ? 0 : size,
      replicaAllocated: kind === 0 || kind === 2 ? 0 : allocated,
      freeBytes: Math.min(x, y),
      totalBytes: Math.max(x, y),
    }),
  ),
  // Fields at and past their caps, hashes for `count` blocks (or not), and a body.
  DATA_Z: fc
    .tuple(u64, fc.integer({min: 0, max: MAX_RUN_BLOCKS + 1}), fc.integer({min: 0, max: MAX_RUN_BYTES + 1}), fc.integer({min: 0, max: 3}), bytes(96))
    .chain(([first, count, rawLength, codec, data]) =>
      exactly(32 * Math.min(count, 4)).map((hashes) => Buffer.concat([encodeCompressedRunFields({first, count, rawLength, codec, hashes}), data])),
    ),
}

export const settingsArb = rec<PsfHeader['settings']>({
  target: text(40).filter((s) => s.length > 0),
  rpoSeconds: fc.integer({min: 1, max: 1e7}),
  fullsyncPort: fc.integer({min: 1, max: 65535}),
  deltaPort: fc.integer({min: 1, max: 65535}),
})
const big64 = fc.bigInt({min: 0n, max: 2n ** 64n - 1n})
export const psfHeaderArb = rec<PsfHeader>({
  flags: u32,
  counter: big64,
  diskSize: u64,
  blockSize: fc.integer({min: 12, max: 22}).map((e) => 2 ** e),
  hashAlgo: fc.constantFrom(1, 2, 3),
  replicaId: exactly(16),
  generation: u64,
  lastSeq: u64,
  lastSyncMs: u64,
  sourceSize: u64,
  sourceMtimeNs: big64,
  sourceCtimeNs: big64,
  pendingSeq: u64,
  createdMs: u64,
  settings: settingsArb,
  lastCommit: exactly(16),
  alExtents: fc.integer({min: 1, max: 65535}),
  alExtentShift: fc.integer({min: 22, max: 30}),
  identity: fc.oneof(
    fc.constant(NO_IDENTITY),
    rec<DiskIdentity>({kind: fc.constantFrom(IdentityKind.FILE, IdentityKind.BLOCK_DEVICE), dev: big64, ino: big64, path: fc.string({maxLength: 200})}),
  ),
})

/** Recompute a header slot's crc, so a mutation reaches the field checks behind it. */
export function fixSlotCrc(b: Buffer): Buffer {
  if (b.length >= 4096) b.writeUInt32LE(zlib.crc32(b.subarray(0, 4092)), 4092)
  return b
}
/** A valid slot whose settings JSON is replaced by any JSON text (crc fixed). */
const slotWithJson = fc
  .tuple(
    psfHeaderArb,
    fc.oneof(
      fc.json({maxDepth: 3}),
      settingsArb.chain((s) => fc.tuple(fc.constantFrom(...Object.keys(s)), fc.jsonValue({maxDepth: 2})).map(([k, v]) => JSON.stringify({...s, [k]: v}))),
    ),
  )
  .map(([h, json]) => {
    const slot = encodeHeader(h)
    const body = Buffer.from(json, 'utf8').subarray(0, 4092 - 144)
    slot.fill(0, 120, 4092)
    slot.writeUInt32LE(body.length, 140)
    body.copy(slot, 144)
    return fixSlotCrc(slot)
  })
export const psfSlot = fc.oneof(
  bulkBytes(4096, 4096),
  bulkBytes(0, 4200).map((b) => (b.length >= 8 ? Buffer.concat([Buffer.from('VDREPPSF'), b.subarray(8)]) : b)),
  psfHeaderArb.map(encodeHeader),
  mutated(psfHeaderArb.map(encodeHeader)),
  {weight: 3, arbitrary: mutated(psfHeaderArb.map(encodeHeader)).map(fixSlotCrc)},
  {
    weight: 3,
    arbitrary: poked(psfHeaderArb.map(encodeHeader), [
      [8, 2],
      [10, 2],
      [12, 4],
      [16, 8],
      [24, 8],
      [32, 4],
      [36, 1],
      [37, 1],
      [56, 8],
      [120, 4],
    ]).map(fixSlotCrc),
  },
  {weight: 2, arbitrary: slotWithJson},
)

export const regionArb = fc.constantFrom<RegionId>(Region.ACTIVE, Region.INFLIGHT, Region.INDEX)
export interface PageCase {
  page: Buffer
  region: RegionId
  no: number
}
/** A valid page, read back as its own region and number. */
export const pageArb: fc.Arbitrary<PageCase> = fc
  .tuple(regionArb, fc.integer({min: 0, max: 4}), fc.integer(), fc.integer({min: 0, max: PAGE_PAYLOAD_SIZE}))
  .map(([region, no, seed, n]) => ({page: encodePage(region, no, prngBytes(seed, n)), region, no}))
/** Recompute a page's crc (bytes 4..) so region and number checks are reached. */
export const fixPageCrc = (b: Buffer) => (b.length >= 4 ? (b.writeUInt32LE(zlib.crc32(b.subarray(4)), 0), b) : b)
const anyPlace = fc.record({region: regionArb, no: fc.integer({min: 0, max: 4})})
const mutatedPage = (fix: boolean) =>
  fc
    .tuple(pageArb, fc.array(mutationArb, {minLength: 1, maxLength: 4}))
    .map(([c, ms]) => ({...c, page: fix ? fixPageCrc(mutate(c.page, ms)) : mutate(c.page, ms)}))
/** Random pages, valid pages read at their place or elsewhere, and mutated pages (crc kept valid or not). */
export const pageCases: fc.Arbitrary<PageCase> = fc.oneof(
  fc.tuple(fc.oneof(bulkBytes(4096, 4096), bulkBytes(0, 4100)), anyPlace).map(([page, at]) => ({page, ...at})),
  pageArb,
  fc.tuple(pageArb, anyPlace).map(([c, at]) => ({page: c.page, ...at})),
  mutatedPage(false),
  {weight: 2, arbitrary: mutatedPage(true)},
)

export const replicaStateArb = rec<ReplicaState>({
  replicaId: exactly(16).map((b) => b.toString('hex')),
  complete: fc.boolean(),
  resumeBlock: u64,
  diskSize: u64,
  blockSize: u64,
  hashAlgo: u64,
  generation: u64,
  lastSeq: u64,
  digest: text(64),
  size: u64,
  mtimeNs: big64.map(String),
  ctimeNs: big64.map(String),
  updatedMs: u64,
})
/** Any body in a well-formed envelope (length and crc right), to reach the body checks. */
export function stateEnvelope(body: Buffer): Buffer {
  const head = Buffer.alloc(20)
  Buffer.from('VDRSTATE').copy(head)
  head.writeUInt16LE(1, 8)
  head.writeUInt32LE(body.length, 12)
  head.writeUInt32LE(zlib.crc32(body), 16)
  return Buffer.concat([head, body])
}
export const replicaStateBytes = fc.oneof(
  bytes(300),
  replicaStateArb.map(encodeReplicaState),
  {weight: 2, arbitrary: mutated(replicaStateArb.map(encodeReplicaState))},
  poked(replicaStateArb.map(encodeReplicaState), [
    [8, 2],
    [10, 2],
    [12, 4],
  ]),
  {weight: 2, arbitrary: mutated(replicaStateArb.map((s) => Buffer.from(JSON.stringify(s)))).map(stateEnvelope)},
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        replicaStateArb,
        fc.constantFrom<keyof ReplicaState>('replicaId', 'complete', 'resumeBlock', 'digest', 'mtimeNs', 'updatedMs'),
        fc.jsonValue({maxDepth: 2}),
      )
      .map(([s, k, v]) => stateEnvelope(Buffer.from(JSON.stringify({...s, [k]: v})))),
  },
  fc.json({maxDepth: 3}).map((j) => stateEnvelope(Buffer.from(j))),
)

/** Recompute a 64-byte journal header or trailer crc (over bytes 0..55). */
export const fixJournalCrc = (b: Buffer) => (b.length >= 60 ? (b.writeUInt32LE(zlib.crc32(b.subarray(0, 56)), 56), b) : b)
const withAndWithoutCrc = (valid: fc.Arbitrary<Buffer>, fields: Field[]) =>
  fc.oneof(
    bytes(80),
    valid,
    {weight: 2, arbitrary: mutated(valid)},
    {weight: 3, arbitrary: mutated(valid).map(fixJournalCrc)},
    {weight: 3, arbitrary: poked(valid, fields).map(fixJournalCrc)},
  )
export const journalHeaderBytes = withAndWithoutCrc(
  fc
    .record({blockSize: fc.integer({min: 12, max: 22}).map((e) => 2 ** e), seq: u64, diskSize: u64, replicaId: exactly(16), hashAlgo: fc.constantFrom(1, 2, 3)})
    .map(encodeJournalHeader),
  [
    [8, 2],
    [12, 4],
    [16, 8],
    [24, 8],
    [48, 1],
  ],
)
export const journalTrailerBytes = withAndWithoutCrc(fc.record({entryCount: u64, dataBytes: u64, digest: exactly(32)}).map(encodeJournalTrailer), [
  [8, 8],
  [16, 8],
])
const journalEntries = fc.oneof(
  fc.record({block: u64, hash: exactly(32)}).map((e) => encodeEntryHeader({kind: EntryKind.DATA, ...e})),
  fc.record({block: u64, count: u64.filter((n) => n > 0)}).map((e) => encodeEntryHeader({kind: EntryKind.ZERO, ...e})),
)
export const journalEntryBytes = fc.oneof(
  {weight: 3, arbitrary: hostile(journalEntries, 64)},
  poked(journalEntries, [
    [0, 8],
    [8, 1],
    [16, 8],
  ]),
)
