// The source side under a power cut of the protected host (issue 22): the disk and its `.psf`.
// Three recorded runs, with the source folder as the root:
//  - "psf during a push": a push of blocks marked by `track --scan` (freeze: active → in-flight,
//    the commit, the in-flight bitmap cleared, the block hash index updated);
//  - "psf during a scan": `track --scan` of blocks written while no tracker ran (the bits, then
//    the stamp): a record that lost bits still doubts itself, and the local check it demands
//    (run here, as a push runs it) must find them;
//  - "tracker": `vdrep track --nbd` while qemu-io writes through its export (with a push through
//    it between two rounds of writes, or not), then a clean stop.
// Each crash state is checked on the bitmaps alone (the tracker's promise, "a dirty bit is
// durable before the data it covers", and the push's, "a failed or cut push hands its blocks
// back"; a tracker that did not stop cleanly also verifies the disk against the block hash
// index, which would rescue a lost bit and hide the bug): the `.psf` must open (or be refused
// with a typed error), and every block where the disk differs from the point the record says the
// replica holds (its last sequence) must be marked in the active or in-flight bitmap.
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {ChangeRecord} from '../../../src/core/change-record/change-record.js'
import {canVerify, curedByVerification} from '../../../src/core/change-record/doubt.js'
import {SourceDisk} from '../../../src/core/disk/source-disk.js'
import {stampOf, type DiskStamp} from '../../../src/core/psf/disk-stamp.js'
import {verifyOwnedRecord} from '../../../src/core/verification/verify-record.js'
import {VdrepError} from '../../../src/core/errors.js'
import {readReplicaState} from '../../../src/core/receiver/replica-state.js'
import {vdrep} from '../cli.js'
import {makeMixedDisk, scribbleBlocks} from '../disks.js'
import {describeLoss, type CrashStateRef} from './crash-states.js'
import {buildTimeline, crashState, takeSnapshot, type Timeline} from './fs-model.js'
import {recordingEnv, recordVdrep} from './record.js'
import {decodeRecording, type Recorded} from './recording.js'
import {startTracker} from '../../core/tracker/tracker-helpers.js'

const BS = 16 * 1024
const DISK = 1 << 20

export interface SourceScenario {
  kind: 'psf-push' | 'psf-scan' | 'tracker'
  dir: string
  realRoot: string
  disk: string
  replica: string
  ops: Recorded[]
  timeline: Timeline
  /** The disk's bytes at each sequence the replica had or got. */
  points: Map<number, Buffer>
}

async function must(args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  const r = await vdrep(args, {env})
  if (r.code !== 0) throw new Error(`vdrep ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
}

async function prepare(dir: string, seed: string): Promise<{src: string; disk: string; replica: string; points: Map<number, Buffer>}> {
  const src = path.join(dir, 'src')
  const rep = path.join(dir, 'rep')
  await fs.mkdir(src, {recursive: true})
  await fs.mkdir(rep, {recursive: true})
  const disk = path.join(src, 'disk.img')
  const replica = path.join(rep, 'disk.img')
  await makeMixedDisk(disk, DISK, seed, 64 * 1024)
  await must(['init', disk, '--to', replica, '--block-size', '16k'])
  await must(['fullsync', disk])
  const points = new Map<number, Buffer>()
  const seqNow = async () => (await readReplicaState(replica)).state!.lastSeq
  points.set(await seqNow(), await fs.readFile(disk))
  await scribbleBlocks(disk, BS, 4, `${seed}:earlier`)
  await must(['push', disk])
  points.set(await seqNow(), await fs.readFile(disk))
  return {src, disk, replica, points}
}

/** A push of `blocks` blocks marked by a scan, recorded on the source side. */
export async function recordPsfPushScenario(dir: string, opts: {seed?: string; blocks?: number; env?: NodeJS.ProcessEnv} = {}): Promise<SourceScenario> {
  const seed = opts.seed ?? 'powercut-psf'
  const {src, disk, replica, points} = await prepare(dir, seed)
  await scribbleBlocks(disk, BS, opts.blocks ?? 6, `${seed}:recorded`)
  await must(['track', disk, '--scan'])
  const snapshot = await takeSnapshot([src])
  const {result, ops} = await recordVdrep(['push', disk], [src], path.join(dir, 'push.pclog'), opts.env)
  if (result.code !== 0) throw new Error(`the recorded push exited ${result.code}: ${result.stderr}`)
  points.set((await readReplicaState(replica)).state!.lastSeq, await fs.readFile(disk))
  return {kind: 'psf-push', dir, realRoot: await fs.realpath(src), disk, replica, ops, timeline: buildTimeline(ops, snapshot), points}
}

/** `vdrep track --scan` of `blocks` changed blocks, recorded on the source side (the record gets the bits and the new stamp). */
export async function recordPsfScanScenario(dir: string, opts: {seed?: string; blocks?: number} = {}): Promise<SourceScenario> {
  const seed = opts.seed ?? 'powercut-scan'
  const {src, disk, replica, points} = await prepare(dir, seed)
  await scribbleBlocks(disk, BS, opts.blocks ?? 6, `${seed}:recorded`)
  const snapshot = await takeSnapshot([src])
  const {result, ops} = await recordVdrep(['track', disk, '--scan'], [src], path.join(dir, 'scan.pclog'))
  if (result.code !== 0) throw new Error(`the recorded scan exited ${result.code}: ${result.stderr}`)
  return {kind: 'psf-scan', dir, realRoot: await fs.realpath(src), disk, replica, ops, timeline: buildTimeline(ops, snapshot), points}
}

function qemuIo(uri: string, commands: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-io', ['-f', 'raw', '-t', 'writeback', uri], {stdio: ['pipe', 'pipe', 'pipe']})
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`qemu-io exited ${code}: ${out}`))))
    child.stdin.end(`${commands.join('\n')}\nquit\n`)
  })
}

/** qemu-io writes of `n` whole blocks (every third one written again in part: a block already dirty costs no bit). */
function writeCommands(n: number, salt: number): string[] {
  const commands: string[] = []
  for (let i = 0; i < n; i++) {
    const block = (i * 37 + 5 + salt * 11) % (DISK / BS)
    commands.push(`write -P ${(i * 29 + 7 + salt) & 0xff} ${block * BS} ${BS}`)
    if (i % 3 === 2) commands.push(`write -P ${(i * 31 + 3 + salt) & 0xff} ${block * BS + 4096} 4096`)
  }
  return [...commands, 'flush']
}

/**
 * `vdrep track --nbd` recorded while qemu-io writes `writes` blocks, then stopped cleanly. With
 * `push`, a push runs through the tracker between two rounds of writes: the tracker's freeze
 * (active → in-flight), its commit and the in-flight bits cleared are recorded too.
 */
export async function recordTrackerScenario(
  dir: string,
  opts: {seed?: string; writes?: number; push?: boolean; env?: NodeJS.ProcessEnv} = {},
): Promise<SourceScenario> {
  const seed = opts.seed ?? 'powercut-tracker'
  const {src, disk, replica, points} = await prepare(dir, seed)
  const snapshot = await takeSnapshot([src])
  const log = path.join(dir, 'track.pclog')
  const sock = path.join(dir, 'nbd.sock')
  const uri = `nbd+unix:///?socket=${sock}`
  const tracker = await startTracker(disk, ['--nbd', `unix:${sock}`], recordingEnv([src], log, opts.env))
  const n = opts.writes ?? 8
  let failed: unknown
  try {
    await qemuIo(uri, writeCommands(n, 0))
    if (opts.push) {
      await must(['push', disk])
      points.set((await readReplicaState(replica)).state!.lastSeq, await fs.readFile(replica))
      await qemuIo(uri, writeCommands(Math.max(2, n >> 1), 1))
    }
  } catch (err) {
    failed = err
  }
  const stopped = await tracker.stop('SIGTERM')
  if (failed) throw failed
  if (stopped.code !== 0) throw new Error(`the recorded tracker exited ${stopped.code ?? stopped.signal}: ${stopped.stderr}`)
  const ops = decodeRecording(await fs.readFile(log))
  return {kind: 'tracker', dir, realRoot: await fs.realpath(src), disk, replica, ops, timeline: buildTimeline(ops, snapshot), points}
}

type Marks = {get(b: number): boolean}

/** Blocks where `disk` differs from `base` that neither bitmap marks. */
function unmarked(disk: Buffer, base: Buffer, active: Marks, inflight: Marks): number[] {
  const out: number[] = []
  for (let b = 0; b * BS < disk.length; b++) {
    if (disk.subarray(b * BS, (b + 1) * BS).equals(base.subarray(b * BS, (b + 1) * BS))) continue
    if (!active.get(b) && !inflight.get(b)) out.push(b)
  }
  return out
}

/** The push's local check on the copy of the record (owned: it writes the marks), then what is still unmarked against `base`. */
async function unmarkedAfterCheck(copy: string, diskPath: string, disk: Buffer, base: Buffer, stamp: DiskStamp): Promise<number[]> {
  const owned = await ChangeRecord.openOwned(copy)
  const source = await SourceDisk.open(diskPath)
  try {
    await verifyOwnedRecord(owned, source, diskPath, stamp)
    const {active, inflight} = await owned.bitmaps()
    return unmarked(disk, base, active, inflight)
  } finally {
    await source.close()
    await owned.close()
  }
}

export interface SourceVerdict {
  outcome: string
  failure?: string
}

/** Check one crash state of the source folder: the `.psf` opens or is refused, and its bitmaps cover every changed block. */
export async function checkSourceState(sc: SourceScenario, s: CrashStateRef, scratch: string): Promise<SourceVerdict> {
  const fail = (why: string): SourceVerdict => ({outcome: 'failed', failure: `${sc.kind} ${s.label}: ${why} [${describeLoss(s, sc.ops)}]`})
  const files = crashState(sc.timeline, s.point, s.choice)
  const diskPath = path.join(sc.realRoot, path.basename(sc.disk))
  const disk = files.get(diskPath)
  const psf = files.get(`${diskPath}.psf`)
  if (!disk) return fail('the disk is gone')
  if (!psf) return fail('the .psf is gone')
  await fs.mkdir(scratch, {recursive: true})
  const copy = path.join(scratch, 'disk.img.psf')
  await fs.writeFile(copy, psf)
  let record: ChangeRecord
  try {
    record = await ChangeRecord.openReadOnly(copy)
  } catch (err) {
    if (err instanceof VdrepError) return {outcome: `refused (${err.code})`}
    return fail(`the .psf open threw an untyped error: ${(err as Error).message}`)
  }
  try {
    const h = record.header
    const {active, inflight, activeBad, inflightBad} = await record.bitmaps()
    const unmarkedAgainst = (seq: number): number[] | string => {
      const base = sc.points.get(seq)
      return base ? unmarked(disk, base, active, inflight) : `the .psf names sequence ${seq}, which the replica never had`
    }
    const atLast = unmarkedAgainst(h.lastSeq)
    const bad = activeBad.length + inflightBad.length > 0 ? ', a torn bitmap page read as all dirty' : ''
    if (Array.isArray(atLast) && atLast.length === 0) return {outcome: `covered at sequence ${h.lastSeq}${bad}`}
    // A push clears its in-flight bits only after the replica answered COMMITTED, and records
    // that sequence as pending before it sends: the next push finds the replica at the pending
    // sequence and adopts it (push.ts), so the bits must cover the disk against that point.
    if (h.pendingSeq !== 0) {
      const atPending = unmarkedAgainst(h.pendingSeq)
      if (Array.isArray(atPending) && atPending.length === 0) return {outcome: `covered at the pending sequence ${h.pendingSeq}${bad}`}
    }
    if (!Array.isArray(atLast)) return fail(atLast)
    // A push or a scan never writes the disk, so the record's doubt is judged against the disk
    // as it is: a record that doubts itself is checked against the block hash index before it is
    // trusted (push.ts), and that check must then mark what the bits miss. The tracker's states
    // are judged on the bits alone (its promise is that the bits are enough).
    if (sc.kind !== 'tracker') {
      const stamp = await stampOf(sc.disk)
      const doubts = record.doubts(stamp, {trackerRunning: false})
      if (doubts.length > 0 && doubts.every(curedByVerification) && canVerify(h)) {
        await record.close()
        const missed = await unmarkedAfterCheck(copy, sc.disk, disk, sc.points.get(h.lastSeq)!, stamp)
        if (missed.length === 0) return {outcome: `covered after the local check (${doubts.map((d) => d.kind).join(', ')})`}
        return fail(`block(s) ${missed.join(', ')} differ from sequence ${h.lastSeq}, and neither the bitmaps nor the local check against the index mark them`)
      }
      if (doubts.length > 0) return {outcome: `refused until a full sync (${doubts[0].kind})`}
    }
    return fail(`block(s) ${atLast.join(', ')} differ from sequence ${h.lastSeq} but no bitmap marks them`)
  } finally {
    await record.close().catch(() => {})
  }
}
