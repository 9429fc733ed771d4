// The receiver's own record of a replica, in `<replica>.vdrep` beside it (mode 0600):
// whether the replica is complete, how far an interrupted full sync got (durable), and
// the identity and sequence the client checks before trusting a delta.
//
// Envelope (little-endian): magic "VDRSTATE" (8), version u16, reserved u16, body length
// u32 (<= MAX_BODY), crc32 of the body u32, body = JSON. Written by temp + fsync + rename.
import fs from 'node:fs/promises'
import zlib from 'node:zlib'
import {StateError} from '../errors.js'
import {writeFileAtomic} from '../util/fs-atomic.js'

export const STATE_MAGIC = Buffer.from('VDRSTATE', 'ascii')
export const STATE_VERSION = 1
export const STATE_HEADER_SIZE = 20
export const MAX_STATE_BODY = 16 * 1024

export interface ReplicaState {
  replicaId: string
  complete: boolean
  /** Blocks below this index are durable on the replica (an interrupted full sync resumes here). */
  resumeBlock: number
  diskSize: number
  blockSize: number
  hashAlgo: number
  generation: number
  lastSeq: number
  /** Whole-disk digest proved at the last complete full sync (hex). */
  digest: string
  /** The replica file's stat at the last commit: anything else means it changed behind us. */
  size: number
  mtimeNs: string
  ctimeNs: string
  updatedMs: number
  /**
   * Why the replica takes no delta until a full sync, when the receiver itself cannot trust it
   * (an interrupted apply replayed onto a replica that had changed meanwhile). A full sync
   * that completes clears it.
   */
  doubt?: string
  /** Something other than vdrep wrote the replica (found at a journal replay): refused as REPLICA_DIVERGED until a full sync the user chose. */
  diverged?: boolean
  /** The commit id of the last proved full sync or committed push (hex), and the one before it. */
  commit?: string
  prevCommit?: string
  /**
   * The restore-point chain the records in `<replica>.vdrep-points/` must carry (hex, 16 bytes):
   * set before the first pre-image of a chain is captured, cleared when a full sync starts, so a
   * record left from before a full sync never links into the new chain.
   */
  pointsChain?: string
  /** When the last push committed or the last full sync was proved (ms since the epoch): the current point's time. */
  commitMs?: number
  /**
   * The last proved full sync: the sequence it left the replica at (a full sync keeps the push
   * sequence) and when. The point of that sequence is the full sync's contents, not the push that
   * first reached it, and every earlier point is gone: a group record naming this replica at or
   * below that sequence, or written before then, is of an earlier instant (group/points.ts).
   */
  fullSync?: {seq: number; ms: number}
  /** The restore-point retention policy of this replica (points/retention.ts); absent: the default. */
  retention?: string
  /** Where the source says it is (its DESCRIBE_SOURCE after a full sync): for `vdrep replicas`, never for trust. */
  source?: {host: string; disk: string}
  /** The source's RPO, from the same description. */
  rpoSeconds?: number
  /** The last test boots of this replica's points (`vdrep test stop` records them; test-view/record.ts), oldest first. */
  tests?: TestRecord[]
  /** The last commit was a final push (the source handed over at this sequence): `failover --planned` needs it. */
  final?: {seq: number; ms: number}
  /** Promoted by a failover (doc/failover.md): fenced against every source, whatever the flags. */
  promoted?: PromotedInfo
  /** Failovers behind this replica (a reprotect carries the count over). */
  epoch?: number
}

export interface PromotedInfo {
  epoch: number
  /** The replica's last sequence when it was promoted. */
  atSeq: number
  ms: number
  /** The source it was a replica of, and the id of its own new record (`<replica>.psf`). */
  oldReplicaId: string
  newReplicaId: string
  planned: boolean
  /** Time from the last commit to the failover (ms): the writes that may be lost when not planned. */
  lossWindowMs: number
  /** `--at`: the point rolled back to, and whether the rollback and the record are complete. */
  rollbackTo?: number
  rollbackDone: boolean
}

const HEX16 = /^[0-9a-f]{32}$/
const safe = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0

/** Why a `promoted` field is malformed, or null. */
function promotedProblem(p: unknown): string | null {
  if (typeof p !== 'object' || p === null) return 'not an object'
  const v = p as Partial<PromotedInfo>
  for (const k of ['epoch', 'atSeq', 'ms', 'lossWindowMs'] as const) if (!safe(v[k])) return k
  for (const k of ['oldReplicaId', 'newReplicaId'] as const) if (typeof v[k] !== 'string' || !HEX16.test(v[k])) return k
  if (typeof v.planned !== 'boolean' || typeof v.rollbackDone !== 'boolean') return 'planned / rollbackDone'
  if (v.rollbackTo !== undefined && !safe(v.rollbackTo)) return 'rollbackTo'
  return null
}

/** One ended test of a point: which point (its sequence and commit time), when, and for how long. */
export interface TestRecord {
  seq: number
  /** The point's commit time (ms since the epoch): a sequence alone could name a later chain's point. */
  pointMs: number
  startedMs: number
  endedMs: number
}

/** Test records kept in the state (the newest); each is ~80 bytes of the 16 KiB body. */
export const MAX_TEST_RECORDS = 16

export function statePathFor(replica: string): string {
  return `${replica}.vdrep`
}

export function encodeReplicaState(s: ReplicaState): Buffer {
  const body = Buffer.from(JSON.stringify(s), 'utf8')
  if (body.length > MAX_STATE_BODY) throw new RangeError('replica state too large')
  const head = Buffer.alloc(STATE_HEADER_SIZE)
  STATE_MAGIC.copy(head, 0)
  head.writeUInt16LE(STATE_VERSION, 8)
  head.writeUInt32LE(body.length, 12)
  head.writeUInt32LE(zlib.crc32(body), 16)
  return Buffer.concat([head, body])
}

const corrupt = (detail: string) => new StateError('REPLICA_STATE_CORRUPT', `the replica state file is corrupt: ${detail}`)

export function decodeReplicaState(b: Buffer): ReplicaState {
  if (b.length < STATE_HEADER_SIZE) throw corrupt(`only ${b.length} bytes`)
  if (!b.subarray(0, 8).equals(STATE_MAGIC)) throw new StateError('REPLICA_STATE_FOREIGN', 'the replica state file is not a vdrep file (bad magic)')
  const version = b.readUInt16LE(8)
  if (version !== STATE_VERSION) throw corrupt(`version ${version}, expected ${STATE_VERSION}`)
  // The crc covers only the body: a reserved field that is not zero is the one header change nothing else would catch.
  if (b.readUInt16LE(10) !== 0) throw corrupt(`reserved field 0x${b.readUInt16LE(10).toString(16)} is not zero`)
  const length = b.readUInt32LE(12)
  if (length > MAX_STATE_BODY) throw corrupt(`body length ${length} exceeds ${MAX_STATE_BODY}`)
  if (b.length !== STATE_HEADER_SIZE + length) throw corrupt(`body is ${b.length - STATE_HEADER_SIZE} bytes, header says ${length}`)
  const body = b.subarray(STATE_HEADER_SIZE)
  if (zlib.crc32(body) !== b.readUInt32LE(16)) throw corrupt('crc32 mismatch')
  let v: Partial<ReplicaState>
  try {
    v = JSON.parse(body.toString('utf8')) as Partial<ReplicaState>
  } catch {
    throw corrupt('body is not JSON')
  }
  const num = (k: keyof ReplicaState) => {
    if (!Number.isSafeInteger(v[k]) || (v[k] as number) < 0) throw corrupt(`field ${k}`)
  }
  if (typeof v !== 'object' || v === null) throw corrupt('body')
  if (typeof v.replicaId !== 'string' || !/^[0-9a-f]{32}$/.test(v.replicaId)) throw corrupt('field replicaId')
  if (typeof v.complete !== 'boolean') throw corrupt('field complete')
  for (const k of ['resumeBlock', 'diskSize', 'blockSize', 'hashAlgo', 'generation', 'lastSeq', 'size', 'updatedMs'] as const) num(k)
  for (const k of ['digest', 'mtimeNs', 'ctimeNs'] as const) if (typeof v[k] !== 'string') throw corrupt(`field ${k}`)
  for (const k of ['commit', 'prevCommit'] as const)
    if (v[k] !== undefined && (typeof v[k] !== 'string' || !/^[0-9a-f]{32}$/.test(v[k]))) throw corrupt(`field ${k}`)
  if (v.pointsChain !== undefined && (typeof v.pointsChain !== 'string' || !/^[0-9a-f]{32}$/.test(v.pointsChain))) throw corrupt('field pointsChain')
  if (v.commitMs !== undefined && (!Number.isSafeInteger(v.commitMs) || v.commitMs < 0)) throw corrupt('field commitMs')
  if (v.fullSync !== undefined && (typeof v.fullSync !== 'object' || v.fullSync === null || !safe(v.fullSync.seq) || !safe(v.fullSync.ms)))
    throw corrupt('field fullSync')
  if (v.retention !== undefined && (typeof v.retention !== 'string' || v.retention.length > 200)) throw corrupt('field retention')
  if (v.tests !== undefined && !validTests(v.tests)) throw corrupt('field tests')
  if (v.diverged !== undefined && typeof v.diverged !== 'boolean') throw corrupt('field diverged')
  if (v.final !== undefined && (typeof v.final !== 'object' || v.final === null || !safe(v.final.seq) || !safe(v.final.ms))) throw corrupt('field final')
  if (v.promoted !== undefined) {
    const why = promotedProblem(v.promoted)
    if (why) throw corrupt(`field promoted (${why})`)
  }
  if (v.epoch !== undefined && !safe(v.epoch)) throw corrupt('field epoch')
  if (v.doubt !== undefined && (typeof v.doubt !== 'string' || v.doubt.length > 500)) throw corrupt('field doubt')
  if (v.source !== undefined) {
    const s = v.source as unknown as Record<string, unknown>
    if (typeof s !== 'object' || s === null || typeof s.host !== 'string' || typeof s.disk !== 'string' || s.host.length > 255 || s.disk.length > 4096)
      throw corrupt('field source')
  }
  if (v.rpoSeconds !== undefined && (!Number.isSafeInteger(v.rpoSeconds) || v.rpoSeconds <= 0)) throw corrupt('field rpoSeconds')
  return v as ReplicaState
}

function validTests(t: unknown): boolean {
  if (!Array.isArray(t) || t.length > MAX_TEST_RECORDS) return false
  const keys = ['seq', 'pointMs', 'startedMs', 'endedMs'] as const
  return t.every(
    (r: unknown) =>
      typeof r === 'object' &&
      r !== null &&
      Object.keys(r).length === keys.length &&
      keys.every((k) => Number.isSafeInteger((r as Record<string, unknown>)[k]) && ((r as Record<string, number>)[k] ?? -1) >= 0),
  )
}

/** The state, or undefined when there is none; a corrupt file is reported, not trusted. */
export async function readReplicaState(replica: string): Promise<{state?: ReplicaState; error?: StateError}> {
  let b: Buffer
  try {
    b = await fs.readFile(statePathFor(replica))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw err
  }
  try {
    return {state: decodeReplicaState(b)}
  } catch (err) {
    if (err instanceof StateError) return {error: err}
    throw err
  }
}

/** Always a new file renamed into place, never in place: open point readers detect a move by the inode (points/point-reader.ts). */
export async function writeReplicaState(replica: string, s: ReplicaState): Promise<void> {
  await writeFileAtomic(statePathFor(replica), encodeReplicaState(s), 0o600)
}
