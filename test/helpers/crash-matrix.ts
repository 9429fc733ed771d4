// The crash matrix (issue 6): kill -9 of the client, of the receiver (`vdrep serve`) and of
// the tracker (`vdrep track`), at seeded random points in time, during a full sync and
// during a push, over SSH (a real OpenSSH sshd, test/helpers/sshd.ts). After each kill the
// normal commands recover (rerun fullsync or push; restart serve or track) and the matrix
// checks what users rely on:
//
//  - the replica is at a point in time of the source: for a full sync, either marked
//    incomplete in its state file or equal to the source (as before or after the change);
//    for a push, right after the crash (and the receiver's restart) byte-equal to the
//    previous pushed point or to the new one, never a mix;
//  - no change written before the crash is lost: after a tracker kill, every block that
//    differs from the replica is marked in the change record once the tracker is back, and
//    every acknowledged write is marked or already on the replica;
//  - the next sync ends equal (cmp), and an interrupted full sync resumes from the resume
//    point its state file recorded.
//
// Delays come from a seeded PRNG (one stream per kind, so one kind replays alone); the seed is
// printed. Used by test/integration/crash-matrix.test.ts (a few points per kind) and by
// bench/crash-matrix.ts (the bench-length run: `node dist/bench/crash-matrix.js --points 20`).
import assert from 'node:assert/strict'
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {createHash} from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {Region} from '../../src/core/psf/layout.js'
import {ENTRY_HEADER_SIZE, JOURNAL_HEADER_SIZE, JOURNAL_TRAILER_SIZE, journalPathFor} from '../../src/core/delta/journal.js'
import {readReplicaState} from '../../src/core/receiver/replica-state.js'
import {bitmapBlocks, checkEnded, startTracker, type RunningTracker} from '../core/tracker/tracker-helpers.js'
import {TrackerControlClient} from '../../src/core/tracker/control-client.js'
import {collect, startVdrep, vdrep, type CliResult} from './cli.js'
import {makeMixedDisk, seededBytes, tempDir} from './disks.js'
import {freePort, startSshd, type Sshd} from './sshd.js'

const run = promisify(execFile)
const MiB = 1 << 20
export const BS = 64 * 1024
export const DISK_SIZE = 32 * MiB
const BLOCKS = DISK_SIZE / BS
/** Distinct blocks a full-sync point changes (16 MiB at --bwlimit 5M: about 3 s on the wire). */
const FULLSYNC_CHANGE_BLOCKS = 256
const FULLSYNC_ARGS = ['--bwlimit', '5M', '--checkpoint-bytes', '1M']
/** Blocks a push point ships (8 MiB at --bwlimit 4M: about 2 s on the wire). */
const PUSH_BLOCKS = 128
const PUSH_ARGS = ['--bwlimit', '4M']
/** Kills land uniformly in [min, max) ms after the command starts (it needs ~0.7 s to connect), mostly mid-transfer. */
const KILL_WINDOW = {fullsync: [100, 4500], push: [100, 3600]} as const
const killDelay = (rng: Rng, sync: keyof typeof KILL_WINDOW) => KILL_WINDOW[sync][0] + rng.int(KILL_WINDOW[sync][1] - KILL_WINDOW[sync][0])

export const CRASH_KINDS = ['fullsync-client', 'fullsync-receiver', 'fullsync-tracker', 'push-client', 'push-receiver', 'push-tracker'] as const
export type CrashKind = (typeof CRASH_KINDS)[number]

export interface KindReport {
  kind: CrashKind
  points: number
  /** outcome label → how many points ended that way */
  outcomes: Record<string, number>
  /** for pushes: how the blocks were marked (with a tracker, or --scan) → points */
  modes: Record<string, number>
  seconds: number
}

/** The seed: VDREP_CRASH_SEED, else a fresh one (printed by the callers so a failure replays). */
export function crashSeed(explicit?: string | number): number {
  const v = explicit ?? process.env.VDREP_CRASH_SEED
  if (v !== undefined && v !== '') {
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`crash matrix: the seed must be a whole number >= 0, not '${v}'`)
    return n >>> 0
  }
  return (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) >>> 0
}

export interface Rng {
  next(): number
  int(n: number): number
}

/** mulberry32, keyed by (seed, label) so each kind has its own replayable stream. */
export function makeRng(seed: number, label: string): Rng {
  let a = createHash('sha256').update(`${seed}:${label}`).digest().readUInt32LE(0)
  const next = () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {next, int: (n) => Math.floor(next() * n)}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function until(what: string, test: () => boolean | Promise<boolean>, ms = 30_000, every = 25): Promise<void> {
  const end = Date.now() + ms
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(every)
  }
}

async function cmpEqual(a: string, b: string): Promise<boolean> {
  return run('cmp', ['-s', a, b]).then(
    () => true,
    () => false,
  )
}

async function sha(file: string): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex')
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  )
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** `vdrep serve` on fixed ports; killed with -9 and started again by the receiver kinds. */
class Receiver {
  private text = ''
  private constructor(
    readonly child: ChildProcess,
    readonly done: Promise<CliResult>,
  ) {
    child.stderr!.on('data', (d: Buffer) => (this.text += d.toString()))
  }

  static async start(root: string, ports: [number, number]): Promise<Receiver> {
    for (let attempt = 0; ; attempt++) {
      const child = startVdrep(['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])])
      const r = new Receiver(child, collect(child))
      await until('vdrep serve to listen', () => /listening on/.test(r.text) || !running(child), 20_000)
      if (running(child)) return r
      const out = await r.done
      if (attempt >= 20 || !/PORT_IN_USE|already listens/.test(out.stderr + r.text)) throw new Error(`vdrep serve did not start: ${r.text}`)
      await sleep(250) // the old receiver's port is not free yet
    }
  }

  log(): string {
    return this.text
  }

  async kill9(): Promise<void> {
    if (running(this.child)) this.child.kill('SIGKILL')
    await this.done
  }

  async stop(): Promise<CliResult> {
    if (running(this.child)) this.child.kill('SIGTERM')
    return this.done
  }
}

interface Write {
  block: number
  pattern: number
}

interface QemuRun {
  child: ChildProcess
  /** Resolves with the number of writes acknowledged (a prefix of the list) once qemu-io exits. */
  done: Promise<number>
}

/** Full-block writes through the tracker's NBD export by qemu-io, in order, optionally paced. */
function qemuWrites(uri: string, writes: Write[], pauseMs = 0): QemuRun {
  const child = spawn('qemu-io', ['-f', 'raw', uri], {stdio: ['pipe', 'pipe', 'pipe']})
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  child.stdin!.on('error', () => {})
  const lines: string[] = []
  for (const w of writes) {
    lines.push(`write -P ${w.pattern} ${w.block * BS} ${BS}`)
    if (pauseMs > 0) lines.push(`sleep ${pauseMs}`)
  }
  child.stdin!.end(lines.join('\n') + '\nquit\n')
  const done = new Promise<number>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', () => {
      const offsets = [...out.matchAll(/wrote \d+\/\d+ bytes at offset (\d+)/g)].map((m) => Number(m[1]))
      for (let i = 0; i < offsets.length; i++) {
        if (offsets[i] !== writes[i].block * BS) return reject(new Error(`qemu-io acknowledged writes out of order: ${out.slice(0, 2000)}`))
      }
      resolve(offsets.length)
    })
  })
  return {child, done}
}

/**
 * `count` writes of whole blocks with fill patterns that identify them: for one block, no two
 * writes (and not the block's current contents, when those are one repeated byte) share a
 * pattern, so the replica's bytes tell which writes it holds.
 */
function planWrites(rng: Rng, base: Buffer, count: number, opts: {distinct?: boolean; prior?: Write[]} = {}): Write[] {
  const used = new Map<number, Set<number>>()
  const usedOf = (b: number) => {
    let s = used.get(b)
    if (!s) {
      s = new Set<number>()
      const blk = base.subarray(b * BS, (b + 1) * BS)
      if (blk.equals(Buffer.alloc(BS, blk[0]))) s.add(blk[0])
      used.set(b, s)
    }
    return s
  }
  for (const w of opts.prior ?? []) usedOf(w.block).add(w.pattern)
  const out: Write[] = []
  const chosen = new Set<number>()
  while (out.length < count) {
    const block = rng.int(BLOCKS)
    if (opts.distinct && chosen.has(block)) continue
    const s = usedOf(block)
    if (s.size >= 200) continue
    let pattern: number
    do pattern = 1 + rng.int(255)
    while (s.has(pattern))
    s.add(pattern)
    chosen.add(block)
    out.push({block, pattern})
  }
  return out
}

const patternCache = new Map<number, Buffer>()
function patternBlock(p: number): Buffer {
  let b = patternCache.get(p)
  if (!b) patternCache.set(p, (b = Buffer.alloc(BS, p)))
  return b
}

/**
 * Is `replica` the disk as of some point of the write sequence (base, then writes[0..k))?
 * Returns such a k, or a description of the first block that fits no single point.
 */
export function pointInTime(replica: Buffer, base: Buffer, writes: Write[]): {k: number} | {torn: string} {
  const byBlock = new Map<number, number[]>()
  writes.forEach((w, i) => {
    const l = byBlock.get(w.block) ?? []
    l.push(i)
    byBlock.set(w.block, l)
  })
  let lo = 0
  let hi = writes.length
  for (let b = 0; b < BLOCKS; b++) {
    const r = replica.subarray(b * BS, (b + 1) * BS)
    const idx = byBlock.get(b) ?? []
    let range: [number, number] | undefined
    if (r.equals(base.subarray(b * BS, (b + 1) * BS))) range = [0, idx[0] ?? writes.length]
    else {
      for (let p = 0; p < idx.length && !range; p++) if (r.equals(patternBlock(writes[idx[p]].pattern))) range = [idx[p] + 1, idx[p + 1] ?? writes.length]
    }
    if (!range) return {torn: `replica block ${b} holds bytes the source never had at any point of this run`}
    lo = Math.max(lo, range[0])
    hi = Math.min(hi, range[1])
    if (lo > hi)
      return {torn: `replica block ${b} is from a different point in time than the blocks before it (writes ${range[0]}..${range[1]} vs ${lo}..${hi})`}
  }
  return {k: lo}
}

/**
 * The blocks the record holds as not shipped. With a tracker running, its own set (asked over
 * the control socket, read-only): with the activity log, a bit reaches the .psf lazily, and the
 * tracker's memory is the record (a crash of it is covered by the log's hot extents, checked at
 * its restart). Without one, the .psf's bitmaps.
 */
async function markedBlocks(disk: string): Promise<Set<number>> {
  const tracker = await TrackerControlClient.tryConnect(disk)
  if (tracker) {
    try {
      const {bitmap} = await tracker.pending()
      const out = new Set<number>()
      for (let b = 0; b < bitmap.blockCount; b++) if (bitmap.get(b)) out.add(b)
      return out
    } finally {
      await tracker.close()
    }
  }
  return new Set([...(await bitmapBlocks(disk, Region.ACTIVE)), ...(await bitmapBlocks(disk, Region.INFLIGHT))])
}

interface KindDisk {
  kind: CrashKind
  disk: string
  replica: string
  /** NBD socket of the tracker */
  sock: string
  uri: string
  tracker?: RunningTracker
}

export interface CrashMatrixOptions {
  seed: number
  log?: (line: string) => void
}

export class CrashMatrix {
  private receiver!: Receiver
  private readonly children = new Set<ChildProcess>()
  private readonly disks = new Map<CrashKind, KindDisk>()

  private constructor(
    readonly seed: number,
    private readonly sshd: Sshd,
    private readonly dir: string,
    private readonly root: string,
    private readonly ports: [number, number],
    private readonly env: NodeJS.ProcessEnv,
    private readonly say: (line: string) => void,
  ) {}

  static async start(opts: CrashMatrixOptions): Promise<CrashMatrix> {
    const sshd = await startSshd()
    const dir = await tempDir('vdrep-crash-')
    const root = path.join(dir, 'root')
    await fs.mkdir(root)
    await fs.mkdir(path.join(dir, 'home'))
    const ports: [number, number] = [await freePort(), await freePort()]
    const m = new CrashMatrix(opts.seed, sshd, dir, root, ports, {HOME: path.join(dir, 'home'), SSH_AUTH_SOCK: ''}, opts.log ?? (() => {}))
    m.receiver = await Receiver.start(root, ports)
    return m
  }

  async stop(): Promise<void> {
    for (const k of this.disks.values()) if (k.tracker && running(k.tracker.child)) await k.tracker.stop('SIGKILL')
    for (const c of this.children) if (running(c)) c.kill('SIGKILL')
    await this.receiver?.stop()
    await this.sshd.stop()
    if (!process.env.VDREP_CRASH_KEEP) await fs.rm(this.dir, {recursive: true, force: true})
    else this.say(`crash matrix: files kept in ${this.dir}`)
  }

  private vdrep(args: string[]): Promise<CliResult> {
    return vdrep(args, {env: this.env})
  }

  private start(args: string[]): {child: ChildProcess; done: Promise<CliResult>} {
    const child = startVdrep(args, {env: this.env})
    this.children.add(child)
    const done = collect(child).finally(() => this.children.delete(child))
    return {child, done}
  }

  private async diskFor(kind: CrashKind): Promise<KindDisk> {
    let k = this.disks.get(kind)
    if (k) return k
    const disk = path.join(this.dir, `${kind}.img`)
    const replica = path.join(this.root, `${kind}.img`)
    const sock = path.join(this.dir, `${kind}.nbd`)
    await makeMixedDisk(disk, DISK_SIZE, `${this.seed}:${kind}`)
    const init = await this.vdrep([
      'init',
      disk,
      '--to',
      `${this.sshd.user}@127.0.0.1:${this.sshd.port}:${replica}`,
      '--identity',
      this.sshd.clientKey.path,
      '--known-hosts',
      this.sshd.knownHostsFile,
      '--fullsync-port',
      String(this.ports[0]),
      '--delta-port',
      String(this.ports[1]),
    ])
    assert.equal(init.code, 0, init.stderr)
    const first = await this.vdrep(['fullsync', disk])
    assert.equal(first.code, 0, first.stderr)
    assert.ok(await cmpEqual(disk, replica), 'the first full sync ends equal')
    k = {kind, disk, replica, sock, uri: `nbd+unix:///${path.basename(disk)}?socket=${sock}`}
    this.disks.set(kind, k)
    return k
  }

  private async ensureTracker(k: KindDisk): Promise<RunningTracker> {
    if (k.tracker && running(k.tracker.child)) return k.tracker
    k.tracker = await startTracker(k.disk, ['--nbd', `unix:${k.sock}`], this.env)
    return k.tracker
  }

  private async stopTracker(k: KindDisk): Promise<void> {
    if (!k.tracker) return
    const t = k.tracker
    k.tracker = undefined
    if (!running(t.child)) return
    const r = await t.stop('SIGTERM')
    assert.equal(r.code, 0, `the tracker did not stop cleanly: ${r.stderr}`)
  }

  /** The receiver released the replica (its session ended): its flock can be taken. */
  private async replicaIdle(replica: string): Promise<void> {
    await sleep(300)
    const lock = `${replica}.vdrep.lock`
    await until(
      `the receiver to end its session on ${replica}`,
      async () =>
        !(await exists(lock)) ||
        (await run('flock', ['-n', '-E', '75', lock, 'true']).then(
          () => true,
          () => false,
        )),
      30_000,
      50,
    )
  }

  private async restartReceiver(): Promise<void> {
    this.receiver = await Receiver.start(this.root, this.ports)
  }

  async run(kind: CrashKind, points: number): Promise<KindReport> {
    const started = performance.now()
    const rng = makeRng(this.seed, kind)
    const k = await this.diskFor(kind)
    const outcomes: Record<string, number> = {}
    const modes: Record<string, number> = {}
    for (let i = 0; i < points; i++) {
      const where = `crash matrix ${kind} point ${i + 1}/${points} (replay: VDREP_CRASH_SEED=${this.seed})`
      let outcome: string
      let mode: string | undefined
      try {
        if (kind.startsWith('fullsync')) outcome = await this.fullsyncPoint(k, rng, i)
        else ({outcome, mode} = await this.pushPoint(k, rng, i))
      } catch (err) {
        const e = err as Error
        const first = e.message
        e.message = `${where}: ${first}`
        if (e.stack) e.stack = e.stack.replace(first, e.message)
        throw e
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1
      if (mode) modes[mode] = (modes[mode] ?? 0) + 1
      this.say(`  ${kind} point ${i + 1}: ${outcome}${mode ? ` [${mode}]` : ''}`)
    }
    return {kind, points, outcomes, modes, seconds: (performance.now() - started) / 1000}
  }

  // --- full sync --------------------------------------------------------------------------

  private async fullsyncPoint(k: KindDisk, rng: Rng, i: number): Promise<string> {
    const victim = k.kind.split('-')[1] as 'client' | 'receiver' | 'tracker'
    const prevHash = await sha(k.replica)
    const base = await fs.readFile(k.disk)
    // Change a quarter to a half of the disk so the sync has seconds of work at the bwlimit.
    let acked: Write[] = []
    let stream: QemuRun | undefined
    let streamWrites: Write[] = []
    if (victim === 'tracker') {
      await this.ensureTracker(k)
      const w1 = planWrites(rng, base, FULLSYNC_CHANGE_BLOCKS, {distinct: true})
      const q = qemuWrites(k.uri, w1)
      assert.equal(await q.done, w1.length, 'qemu-io wrote through the tracker')
      acked = w1
      streamWrites = planWrites(rng, base, 150, {prior: w1})
    } else {
      const fh = await fs.open(k.disk, 'r+')
      try {
        const picked = new Set<number>()
        while (picked.size < FULLSYNC_CHANGE_BLOCKS) picked.add(rng.int(BLOCKS))
        for (const b of picked) await fh.write(seededBytes(`${this.seed}:${k.kind}:${i}:${b}`, BS), 0, BS, b * BS)
      } finally {
        await fh.close()
      }
    }
    const delay = killDelay(rng, 'fullsync')
    const sync = this.start(['fullsync', k.disk, ...FULLSYNC_ARGS])
    if (victim === 'tracker') stream = qemuWrites(k.uri, streamWrites, 12) // the VM keeps writing during the sync
    await Promise.race([sleep(delay), sync.done])
    const killedWhileRunning = running(sync.child)
    if (victim === 'client') sync.child.kill('SIGKILL')
    else if (victim === 'receiver') await this.receiver.kill9()
    else {
      k.tracker!.child.kill('SIGKILL')
      await k.tracker!.exited
      k.tracker = undefined
    }
    const r = await sync.done
    if (stream) {
      await sleep(200)
      if (running(stream.child)) stream.child.kill('SIGKILL')
      acked = [...acked, ...streamWrites.slice(0, await stream.done)]
    }
    if (victim === 'receiver') {
      if (killedWhileRunning && r.code !== 0) assert.equal(r.code, 7, `a client whose receiver died exits 7 (TRANSPORT): ${r.stderr}`)
      await this.restartReceiver()
    } else await this.replicaIdle(k.replica)

    // The replica: marked incomplete, or equal to the source before or after the change.
    const {state, error} = await readReplicaState(k.replica)
    assert.ok(state && !error, `the replica state file is readable after the crash: ${error?.message}`)
    let outcome: string
    if (r.code === 0) {
      assert.equal(state.complete, true, 'a full sync that exited 0 left a complete replica')
      if (victim !== 'tracker') assert.ok(await cmpEqual(k.disk, k.replica), 'a full sync that exited 0 left an equal replica')
      outcome = victim === 'tracker' ? 'the sync ended proved (exit 0)' : 'the sync had finished (exit 0)'
    } else if (state.complete) {
      const h = await sha(k.replica)
      if (h === prevHash) outcome = 'killed before the hello reached the receiver: replica untouched, complete'
      else {
        if (victim !== 'tracker') assert.ok(await cmpEqual(k.disk, k.replica), 'a replica marked complete equals the source')
        outcome =
          victim === 'tracker'
            ? `the replica was proved, the sync failed after (exit ${r.code}: its tracker was gone)`
            : 'killed after the proof: replica complete and equal'
      }
    } else outcome = state.resumeBlock > 0 ? 'incomplete, resumed from its durable resume point' : 'incomplete, before the first checkpoint (rerun from 0)'

    if (victim === 'tracker') {
      // No lost change: once the tracker is back, what differs from the replica is marked.
      await this.ensureTracker(k)
      // The restarted tracker marks what its activity log's hot extents hold behind the export.
      await checkEnded(k.disk)
      const marked = await markedBlocks(k.disk)
      const disk = await fs.readFile(k.disk)
      const replica = await fs.readFile(k.replica)
      const equal = (b: number) => disk.subarray(b * BS, (b + 1) * BS).equals(replica.subarray(b * BS, (b + 1) * BS))
      for (const w of acked)
        assert.ok(
          marked.has(w.block) || (state.complete && equal(w.block)),
          `block ${w.block} was written (acknowledged) before the tracker was killed but is not marked after its restart`,
        )
      if (state.complete)
        for (let b = 0; b < BLOCKS; b++)
          assert.ok(marked.has(b) || equal(b), `block ${b} differs from the complete replica but is not marked: the next push would lose it`)
    }

    // Recovery: the normal command, rerun; it resumes where the state file says, and ends equal.
    const again = await this.vdrep(['fullsync', k.disk, '--json'])
    assert.equal(again.code, 0, `the rerun of fullsync: ${again.stderr}`)
    const out = JSON.parse(again.stdout) as {resumedAtBlock: number}
    if (!state.complete) assert.equal(out.resumedAtBlock, state.resumeBlock, 'the rerun resumes at the durable resume point of the state file')
    assert.ok(await cmpEqual(k.disk, k.replica), 'after the rerun the replica equals the source')
    assert.equal((await readReplicaState(k.replica)).state?.complete, true)
    if (victim === 'tracker') {
      const p = await this.vdrep(['push', k.disk, '--no-fallback', '--json'])
      assert.equal(p.code, 0, `a push after the recovered full sync needs no full sync: ${p.stderr}`)
      assert.ok(await cmpEqual(k.disk, k.replica), 'after the push the replica equals the source')
    }
    return outcome
  }

  // --- push -------------------------------------------------------------------------------

  private async pushPoint(k: KindDisk, rng: Rng, i: number): Promise<{outcome: string; mode: string}> {
    const victim = k.kind.split('-')[1] as 'client' | 'receiver' | 'tracker'
    // With a tracker (the normal way) or without one (`track --scan` marks what changed).
    const withTracker = victim === 'tracker' || rng.next() < 0.6
    const base = await fs.readFile(k.disk)
    const prevHash = await sha(k.replica)
    assert.equal(prevHash, createHash('sha256').update(base).digest('hex'), 'each point starts from an equal replica')
    let w1: Write[] = []
    if (withTracker) {
      await this.ensureTracker(k)
      w1 = planWrites(rng, base, PUSH_BLOCKS, {distinct: true})
      assert.equal(await qemuWrites(k.uri, w1).done, w1.length)
    } else {
      await this.stopTracker(k)
      const fh = await fs.open(k.disk, 'r+')
      try {
        const picked = new Set<number>()
        while (picked.size < PUSH_BLOCKS) picked.add(rng.int(BLOCKS))
        for (const b of picked) await fh.write(seededBytes(`${this.seed}:${k.kind}:${i}:${b}`, BS), 0, BS, b * BS)
      } finally {
        await fh.close()
      }
      const scan = await this.vdrep(['track', k.disk, '--scan'])
      assert.equal(scan.code, 0, scan.stderr)
    }
    const newHash = await sha(k.disk)
    // Receiver kills: half at a time after the start, half just after the journal is complete
    // (inside apply / commit), where a torn replica would show.
    const afterJournal = victim === 'receiver' && rng.next() < 0.5
    const delay = afterJournal ? rng.int(60) : killDelay(rng, 'push')
    let w2: Write[] = []
    let stream: QemuRun | undefined
    if (victim === 'tracker') w2 = planWrites(rng, base, 150, {prior: w1})
    const push = this.start(['push', k.disk, ...PUSH_ARGS, '--json'])
    if (victim === 'tracker') stream = qemuWrites(k.uri, w2, 12)
    if (afterJournal) {
      const full = JOURNAL_HEADER_SIZE + PUSH_BLOCKS * (ENTRY_HEADER_SIZE + BS) + JOURNAL_TRAILER_SIZE
      const jp = journalPathFor(k.replica)
      await until('the journal to be complete', async () => !running(push.child) || ((await fs.stat(jp).catch(() => undefined))?.size ?? 0) >= full, 30_000, 2)
    }
    await Promise.race([sleep(delay), push.done])
    const killedWhileRunning = running(push.child)
    if (victim === 'client') push.child.kill('SIGKILL')
    else if (victim === 'receiver') await this.receiver.kill9()
    else {
      k.tracker!.child.kill('SIGKILL')
      await k.tracker!.exited
      k.tracker = undefined
    }
    const r = await push.done
    let acked = w1
    if (stream) {
      await sleep(200)
      if (running(stream.child)) stream.child.kill('SIGKILL')
      acked = [...w1, ...w2.slice(0, await stream.done)]
    }
    if (victim === 'receiver') {
      if (killedWhileRunning && r.code !== 0) assert.equal(r.code, 7, `a client whose receiver died exits 7 (TRANSPORT): ${r.stderr}`)
      await this.restartReceiver() // and look at the replica before any client comes
    } else await this.replicaIdle(k.replica)

    // The replica right after the crash: the previous point or the new one, never a mix.
    let outcome: string
    const trigger = victim !== 'receiver' ? '' : afterJournal ? 'killed once the journal was complete: ' : 'killed at a random time: '
    if (victim === 'tracker') {
      const pit = pointInTime(await fs.readFile(k.replica), base, [...w1, ...w2])
      assert.ok('k' in pit, `the replica is not a point in time of the source: ${'torn' in pit ? pit.torn : ''}`)
      outcome =
        pit.k === 0
          ? 'replica at the previous point'
          : `replica at a new point (push done before the kill${pit.k <= w1.length ? '' : ', with writes made during it'})`
    } else {
      const h = await sha(k.replica)
      assert.ok(
        h === prevHash || h === newHash,
        `the replica is neither the previous pushed point nor the new one (a torn replica)${r.code === 0 ? ' after a push that exited 0' : ''}`,
      )
      if (r.code === 0) assert.equal(h, newHash, 'a push that exited 0 committed the new point')
      outcome = `${trigger}replica at the ${h === prevHash ? 'previous' : 'new'} point`
    }
    assert.ok(
      !(await exists(journalPathFor(k.replica))),
      victim === 'receiver' ? 'the restarted receiver replayed or discarded the journal before serving' : 'no journal is left behind by a session that ended',
    )
    if (victim === 'receiver') {
      const recovered = /journal (replayed|discarded|already-applied) at start/.exec(this.receiver.log())?.[1]
      if (recovered) outcome += `, journal ${recovered} at restart`
    }

    if (victim === 'tracker' || withTracker) {
      // No lost change: with the tracker back, every block that differs from the replica is marked.
      await this.ensureTracker(k)
      // The restarted tracker marks what its activity log's hot extents hold behind the export.
      await checkEnded(k.disk)
      const marked = await markedBlocks(k.disk)
      const disk = await fs.readFile(k.disk)
      const replica = await fs.readFile(k.replica)
      const equal = (b: number) => disk.subarray(b * BS, (b + 1) * BS).equals(replica.subarray(b * BS, (b + 1) * BS))
      for (const w of acked)
        assert.ok(
          marked.has(w.block) || equal(w.block),
          `block ${w.block} was written (acknowledged) before the crash but is neither marked nor on the replica`,
        )
      for (let b = 0; b < BLOCKS; b++)
        assert.ok(marked.has(b) || equal(b), `block ${b} differs from the replica but is not marked: the next push would lose it`)
    }

    // Recovery: the next push ships what is missing and ends equal, without a full sync.
    const again = await this.vdrep(['push', k.disk, '--no-fallback', '--json'])
    assert.equal(again.code, 0, `the next push after the crash (exit ${again.code}): ${again.stderr}`)
    assert.ok(await cmpEqual(k.disk, k.replica), 'after the next push the replica equals the source')
    await this.replicaIdle(k.replica) // the receiver answers at its commit point, then removes the journal
    assert.ok(!(await exists(journalPathFor(k.replica))), 'no journal is left after the next push')
    return {outcome, mode: withTracker ? 'with a tracker' : 'without a tracker (--scan)'}
  }
}

export function formatReports(seed: number, reports: KindReport[], failedKinds = 0): string[] {
  const lines = [`crash matrix, seed ${seed} (replay: VDREP_CRASH_SEED=${seed}, or --seed ${seed} for the bench run)`]
  let total = 0
  for (const r of reports) {
    total += r.points
    const list = (o: Record<string, number>) =>
      Object.entries(o)
        .sort((a, b) => b[1] - a[1])
        .map(([what, n]) => `${n} × ${what}`)
        .join('; ')
    const modes = Object.keys(r.modes).length > 0 ? ` [${list(r.modes)}]` : ''
    lines.push(`${r.kind}: ${r.points} points tried in ${r.seconds.toFixed(0)} s, all recovered equal; outcomes: ${list(r.outcomes)}${modes}`)
  }
  lines.push(
    `total: ${total} points tried across ${reports.length} kinds, ${total} recovered equal, 0 failures${failedKinds > 0 ? `; ${failedKinds} more kind(s) FAILED (above)` : ''}`,
  )
  return lines
}
