// The decoder fuzz properties, shared by bench/fuzz.ts (10000 cases each) and
// test/core/fuzz.test.ts (1000 each). Every decoder, fed random bytes and mutated valid
// encodings, must either decode cleanly (and what it returns must hold up) or throw a
// VdrepError; nothing else may escape. FrameReader is checked against an independent
// reference parser and must never allocate a payload larger than MAX_PAYLOAD.
import {decodeCompressedRun, encodeCompressedRunFields, MAX_RUN_BLOCKS, MAX_RUN_BYTES} from '../src/core/protocol/compressed-data.js'
import assert from 'node:assert/strict'
import zlib from 'node:zlib'
import fc from 'fast-check'
import {StateError, VdrepError} from '../src/core/errors.js'
import {decodeFrameHeader, encodeFrameHeader, FRAME_MAGIC, MAX_PAYLOAD} from '../src/core/protocol/frame.js'
import * as m from '../src/core/protocol/messages.js'
import {isKnownHashAlgo} from '../src/core/hash/block-hash.js'
import {decodeHeader, encodeHeader, pickHeader, validBlockSize} from '../src/core/psf/header.js'
import {decodePage} from '../src/core/psf/page.js'
import * as j from '../src/core/delta/journal.js'
import {decodeReplicaState, encodeReplicaState} from '../src/core/receiver/replica-state.js'
import {decodeRoomInfo, encodeRoomInfo} from '../src/core/protocol/room-messages.js'
import * as a from './fuzz-arbitraries.js'
import {decodeGroupRecord, encodeGroupRecord} from '../src/core/group/record.js'
import * as g from '../src/core/protocol/group-messages.js'
import {clean, hexOf, largestAllocation, readThrough, referenceParse, SocketFeeder, target, type FuzzTarget, type RefResult} from './fuzz-harness.js'

export type {FuzzReport, FuzzTarget} from './fuzz-harness.js'

const pokedFrames = a.poked(a.validFrames, [
  [0, 1],
  [1, 1],
  [2, 1],
  [3, 1],
  [4, 4],
])
const frameHeaderTarget = target(
  'frame header',
  fc.oneof(a.bytes(12), a.mutated(a.validFrames), pokedFrames, a.oversizedFrame),
  (b) => {
    const want = referenceParse(b.subarray(0, 8))
    const got = clean(() => decodeFrameHeader(b))
    if (b.length < 8) {
      assert.equal(got, undefined)
      return false
    }
    const wantError = want.end === 'FRAME_TRUNCATED' ? null : want.end // 8 bytes alone: no payload to check here
    if (wantError) {
      assert.throws(
        () => decodeFrameHeader(b),
        (e: unknown) => e instanceof VdrepError && e.code === wantError,
      )
      return false
    }
    assert.ok(got)
    assert.deepEqual(encodeFrameHeader(got.type, got.length), b.subarray(0, 8))
    assert.ok(got.length <= MAX_PAYLOAD && b.readUInt16LE(0) === FRAME_MAGIC)
    return true
  },
  hexOf,
)

const streamArb = fc.record({
  input: fc.oneof(a.bytes(64), a.validFrames, {weight: 4, arbitrary: a.mutated(a.validFrames)}, pokedFrames, {weight: 2, arbitrary: a.oversizedFrame}),
  cuts: fc.array(fc.nat({max: 4096}), {maxLength: 6}),
})

const frameReaderTarget = target(
  'frame reader',
  streamArb,
  async ({input, cuts}) => {
    let got: RefResult | undefined
    const largest = await largestAllocation(async () => void (got = await readThrough(input, cuts, true)))
    assert.deepEqual(got, referenceParse(input))
    assert.ok(largest <= MAX_PAYLOAD, `allocated ${largest} bytes`)
    return got?.end === null
  },
  ({input, cuts}) => `${hexOf(input)} cut at ${cuts.join(',')}`,
)

// The receiver's reader on `vdrep serve`'s ports: the same streams over a real socket, read
// through the FrameReader over a taken-over socket (slabs, lent bodies, the fast path for buffered fields).
const socketReaderTarget: FuzzTarget = {
  name: 'socket frame reader (serve)',
  async run(runs, seed) {
    const feeder = await SocketFeeder.start()
    try {
      return await target(
        this.name,
        streamArb,
        async ({input, cuts}) => {
          let got: RefResult | undefined
          const largest = await largestAllocation(async () => void (got = await feeder.readThrough(input, cuts, true)))
          assert.deepEqual(got, referenceParse(input))
          assert.ok(largest <= MAX_PAYLOAD, `allocated ${largest} bytes`)
          return got?.end === null
        },
        ({input, cuts}) => `${hexOf(input)} cut at ${cuts.join(',')}`,
      ).run(runs, seed)
    } finally {
      await feeder.close()
    }
  },
}

const oversizedTarget = target(
  'frame reader, oversized header on an open stream',
  fc.record({input: a.oversizedFrame, cuts: fc.array(fc.nat(), {maxLength: 3})}),
  async ({input, cuts}) => {
    let got: RefResult | undefined
    const largest = await largestAllocation(async () => void (got = await readThrough(input, cuts, false, 500)))
    assert.equal(got?.end, 'FRAME_TOO_LARGE')
    // The good frames ahead of it are at most 3048 bytes (a DATA frame with its block): nothing
    // near the oversized header's claim may be allocated.
    assert.ok(largest <= 4096, `allocated ${largest} bytes for good frames of at most 3048 bytes`)
    return false
  },
  ({input}) => hexOf(input),
)

// ---- messages ----

function messageTarget<T>(name: string, decode: (b: Buffer) => T, holds: (v: T, input: Buffer) => void): FuzzTarget {
  return target(
    `message ${name}`,
    a.hostile(a.validMessages[name]),
    (b) => {
      const v = clean(() => decode(b))
      if (v === undefined) return false
      holds(v, b)
      return true
    },
    hexOf,
  )
}
const utf8 = new TextDecoder('utf-8', {fatal: true})
function validUtf8(b: Buffer): boolean {
  try {
    utf8.decode(b)
    return true
  } catch {
    return false
  }
}
const reencodes =
  <T>(encode: (v: T) => Buffer) =>
  (v: T, b: Buffer) =>
    assert.deepEqual(encode(v), b)

const messageTargets = [
  messageTarget('HELLO', m.decodeHello, (v, b) => {
    assert.ok(Number.isSafeInteger(v.diskSize))
    const pathBytes = b.subarray(38)
    assert.ok(pathBytes.length <= m.MAX_PATH)
    if (validUtf8(pathBytes)) assert.deepEqual(m.encodeHello(v), b)
    else if (Buffer.byteLength(v.path) <= m.MAX_PATH) assert.deepEqual(m.decodeHello(m.encodeHello(v)), v) // U+FFFD in place of bad bytes
  }),
  messageTarget('HELLO_OK', m.decodeHelloOk, reencodes(m.encodeHelloOk)),
  messageTarget('ERROR', m.decodeError, (v) => {
    const again = m.decodeError(m.encodeError(v)) // the encoder clips to limits the decoder accepts
    assert.equal(again.exitCode, v.exitCode)
  }),
  messageTarget('BLOCK_STATUS', m.decodeBlockStatus, (v, b) => {
    assert.ok(v.kinds.length >= 1 && v.kinds.length <= m.MAX_STATUS_BATCH && v.kinds.every((k) => k <= 2))
    assert.equal(v.hashes.length, 32 * v.kinds.filter((k) => k === m.BlockKind.HASH).length)
    assert.deepEqual(m.encodeBlockStatus(v), b)
  }),
  messageTarget('DATA', m.decodeData, (v, b) => assert.deepEqual(Buffer.concat([m.encodeDataFields(v.block, v.hash), v.data]), b)),
  messageTarget(
    'RANGE',
    (b) => m.decodeRange(b, 'CHECKPOINT'),
    (v, b) => assert.deepEqual(m.encodeRange(v.start, v.count), b),
  ),
  messageTarget(
    'U64',
    (b) => m.decodeU64(b, 'CHECKPOINT_ACK'),
    (v, b) => assert.deepEqual(m.encodeU64(v), b),
  ),
  messageTarget('DONE', m.decodeDone, reencodes(m.encodeDone)),
  messageTarget('VERIFY_RESULT', m.decodeVerifyResult, reencodes(m.encodeVerifyResult)),
  messageTarget('BUNDLE_BEGIN', m.decodeBundleBegin, reencodes(m.encodeBundleBegin)),
  messageTarget('BUNDLE_END', m.decodeBundleEnd, reencodes(m.encodeBundleEnd)),
  messageTarget('COMMITTED', m.decodeCommitted, reencodes(m.encodeCommitted)),
  // Empty or refused: nothing else decodes.
  messageTarget('KEEPALIVE', m.decodeKeepalive, (_v, b) => assert.equal(b.length, 0)),
  messageTarget('ROOM_INFO', decodeRoomInfo, (v, b) => {
    assert.ok(v.freeBytes <= v.totalBytes)
    assert.deepEqual(encodeRoomInfo(v), b)
  }),
  messageTarget('DATA_Z', decodeCompressedRun, (v, b) => {
    // Every field within its cap before anything is decompressed, and nothing of the input lost.
    assert.ok(v.count >= 1 && v.count <= MAX_RUN_BLOCKS && v.rawLength >= 1 && v.rawLength <= MAX_RUN_BYTES)
    assert.ok(v.compressed.length >= 1 && v.compressed.length < v.rawLength && v.hashes.length === 32 * v.count)
    assert.deepEqual(Buffer.concat([encodeCompressedRunFields(v), v.compressed]), b)
  }),
]

// ---- psf ----

/** What a decoded slot must satisfy, checked without the decoder. */
function slotHolds(slot: Buffer, r: ReturnType<typeof decodeHeader>): boolean {
  const magicOk = slot.length >= 8 && slot.subarray(0, 8).equals(Buffer.from('VDREPPSF'))
  if (!r.ok) {
    assert.ok(r.error instanceof StateError)
    assert.equal(r.foreign, slot.length >= 4096 && !magicOk)
    return false
  }
  assert.ok(slot.length >= 4096 && magicOk)
  assert.equal(slot.readUInt32LE(4092), zlib.crc32(slot.subarray(0, 4092)))
  const h = r.header
  assert.ok(validBlockSize(h.blockSize) && isKnownHashAlgo(h.hashAlgo) && Number.isSafeInteger(h.diskSize))
  assert.ok(typeof h.settings.target === 'string' && h.settings.target.length > 0)
  // Reserved bytes are covered by the crc, not checked. A format 1 or 2 slot has no activity
  // log (bytes 10-11 and 37 reserved): it encodes as format 3 once its owner migrated it.
  const v3 = h.alExtents > 0
  const fixed = Buffer.from(slot.subarray(0, 120)).fill(0, 38, 40)
  fixed.writeUInt16LE(3, 8)
  if (!v3) fixed.fill(0, 10, 12).fill(0, 37, 38)
  const again = encodeHeader(v3 ? h : {...h, alExtents: 1, alExtentShift: 22}).subarray(0, 120)
  if (!v3) again.fill(0, 10, 12).fill(0, 37, 38)
  assert.deepEqual(again, fixed)
  return true
}

const slotTarget = target('psf header slot', a.psfSlot, (slot) => slotHolds(slot, decodeHeader(slot)), hexOf)

const pickTarget = target(
  'psf pickHeader',
  fc.tuple(a.psfSlot, a.psfSlot, fc.boolean()),
  ([x, y, same]) => {
    const slotA = x.subarray(0, 4096)
    const slotB = same ? slotA : y.subarray(0, 4096)
    const ra = decodeHeader(slotA)
    const rb = decodeHeader(slotB)
    let picked: ReturnType<typeof pickHeader> | undefined
    try {
      picked = pickHeader(slotA, slotB)
    } catch (e) {
      assert.ok(e instanceof StateError, String(e))
      assert.ok(!ra.ok && !rb.ok)
      assert.equal(e.code === 'PSF_FOREIGN', ra.foreign && rb.foreign)
      return false
    }
    const [mine, other] = picked.slot === 0 ? [ra, rb] : [rb, ra]
    assert.ok(mine.ok)
    assert.deepEqual(picked.header, mine.header)
    if (other.ok) assert.ok(mine.header.counter > other.header.counter || (mine.header.counter === other.header.counter && picked.slot === 0))
    return true
  },
  ([x, y]) => `${hexOf(x)} / ${hexOf(y)}`,
)

const pageTarget = target(
  'psf page',
  a.pageCases,
  ({page, region, no}) => {
    const payload = decodePage(page, region, no)
    if (payload === undefined) return false
    assert.equal(page.length, 4096)
    assert.equal(page.readUInt32LE(0), zlib.crc32(page.subarray(4)))
    assert.ok(page[4] === region && page.readUInt32LE(8) === no)
    assert.deepEqual(payload, page.subarray(12))
    return true
  },
  ({page, region, no}) => `${hexOf(page)} region ${region} page ${no}`,
)

const stateTarget = target(
  'replica state',
  a.replicaStateBytes,
  (b) => {
    const s = clean(() => decodeReplicaState(b))
    if (s === undefined) return false
    assert.ok(b.readUInt16LE(8) === 1 && b.readUInt16LE(10) === 0 && b.readUInt32LE(12) === b.length - 20, 'version 1, reserved 0, length of the body')
    assert.match(s.replicaId, /^[0-9a-f]{32}$/)
    for (const k of ['resumeBlock', 'diskSize', 'blockSize', 'hashAlgo', 'generation', 'lastSeq', 'size', 'updatedMs'] as const)
      assert.ok(Number.isSafeInteger(s[k]) && s[k] >= 0, k)
    assert.deepEqual(decodeReplicaState(encodeReplicaState(s)), s)
    return true
  },
  hexOf,
)

// ---- replica journal (header, entry header, trailer) ----

const journalTargets = [
  target(
    'journal header',
    a.journalHeaderBytes,
    (b) => {
      const h = clean(() => j.decodeJournalHeader(b))
      if (!h) return false
      assert.ok(validBlockSize(h.blockSize) && Number.isSafeInteger(h.seq) && Number.isSafeInteger(h.diskSize))
      assert.deepEqual(j.encodeJournalHeader(h).subarray(12, 49), b.subarray(12, 49))
      return true
    },
    hexOf,
  ),
  target(
    'journal entry header',
    a.journalEntryBytes,
    (b) => {
      const e = clean(() => j.decodeEntryHeader(b))
      if (!e) return false
      assert.ok(Number.isSafeInteger(e.block) && (e.kind === j.EntryKind.DATA || (Number.isSafeInteger(e.count) && e.count > 0)))
      assert.deepEqual(j.encodeEntryHeader(e).subarray(0, 9), b.subarray(0, 9))
      return true
    },
    hexOf,
  ),
  target(
    'journal trailer',
    a.journalTrailerBytes,
    (b) => {
      const t = clean(() => j.decodeJournalTrailer(b))
      if (!t) return false
      assert.ok(Number.isSafeInteger(t.entryCount) && Number.isSafeInteger(t.dataBytes))
      assert.deepEqual(j.encodeJournalTrailer(t).subarray(0, 56), b.subarray(0, 56))
      return true
    },
    hexOf,
  ),
]

// Consistency groups (doc/group-commit.md): the record on the replica host and the frames of a group push.
const groupMembers = fc.array(
  fc.record({
    path: fc.string({minLength: 1, maxLength: 40}),
    seq: fc.maxSafeNat(),
    replicaId: fc.uint8Array({minLength: 16, maxLength: 16}).map((u) => Buffer.from(u)),
    commitId: fc.uint8Array({minLength: 16, maxLength: 16}).map((u) => Buffer.from(u)),
  }),
  {minLength: 1, maxLength: 4},
)
const groupName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/)
const validGroupRecords = fc
  .record({name: groupName, groupSeq: fc.maxSafeNat(), committedMs: fc.maxSafeNat(), members: groupMembers})
  .map((r) => encodeGroupRecord(r))
const validGroupCommits = fc.record({name: groupName, members: groupMembers}).map((c) => g.encodeGroupCommit(c))
const groupTargets: FuzzTarget[] = [
  target(
    'group record',
    a.hostile(validGroupRecords, 200),
    (b) => {
      const r = clean(() => decodeGroupRecord(b))
      if (!r) return false
      assert.deepEqual(encodeGroupRecord(r), b)
      return true
    },
    hexOf,
  ),
  target(
    'message GROUP_COMMIT',
    a.hostile(validGroupCommits, 200),
    (b) => {
      const c = clean(() => g.decodeGroupCommit(b))
      if (!c) return false
      assert.deepEqual(g.encodeGroupCommit(c), b)
      return true
    },
    hexOf,
  ),
]

export const FUZZ_TARGETS: FuzzTarget[] = [
  frameHeaderTarget,
  frameReaderTarget,
  socketReaderTarget,
  oversizedTarget,
  ...messageTargets,
  slotTarget,
  pickTarget,
  pageTarget,
  stateTarget,
  ...journalTargets,
  ...groupTargets,
]
