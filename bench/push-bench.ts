// `npm run bench` section "push" (issue 5): `vdrep push` over SSH loopback after 1% and 10% of
// the 64 KiB blocks of a 4 GiB disk changed, beside `rsync --inplace --no-whole-file` over SSH
// (a rescan of both files) and vdrep's own full sync of the same change, plus the same changed
// bytes pushed from a sparse 4x larger disk (push time must not follow the disk size).
//
//   node dist/bench/push-bench.js [--size 4G] [--runs 3] [--dir DIR]
//
// Under `npm run bench` the section uses at least 4 GiB whatever --size says (the targets are
// about a 4 GiB disk); standalone, --size sets it (default 4G) for quicker runs.
//
// Set-up (untimed): a real OpenSSH sshd from the test harness and `vdrep serve` on free
// ports; the main disk is sparse-ish (1 MiB of random data at the start of every 4 MiB, the
// rest holes: a quarter of the disk is data), the large disk is 4x the size and sparse (16 MiB
// of data and whatever the changed blocks add); both are `vdrep init`ed to
// `user@127.0.0.1:PORT:/path` and fully synced once (the main disk's replica is seeded with a
// local sparse copy first, so that sync only compares); the rsync target is a sparse copy.
// rsync runs with --ignore-times so its size+mtime quick check never skips the file.
//
// Each run of a case changes the same blocks (chosen once with a seeded PRNG) with fresh random
// bytes, so the replica, the rsync target and the source differ in exactly those blocks when
// the timer starts: before every run the rsync target is brought back to the replica's state
// (the changed blocks copied in, untimed). Blocks are marked changed in the .psf directly, as
// `vdrep track` would have (the active bitmap plus the disk's stat), with no tracker running.
// Per run, in order: change -> `vdrep push --json` (timed; the 4x disk's push follows for the
// 1% case), rsync of the source to its target (timed), a second change -> `vdrep fullsync
// --json` (timed), then the rsync target is caught up (untimed). Medians are reported.
import type {ChildProcess} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {have, mbps, median, row, sh, type BenchOptions, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'
import {freePort, startSshd} from '../test/helpers/sshd.js'
import {runVdrep, startServe} from './ssh-bench.js'
import {markChanged} from '../test/helpers/change-record.js'
import {parseSize} from '../src/core/util/units.js'
import type {PushResult} from '../src/core/delta/push.js'

export const PUSH_SECTION = 'push'
const BLOCK = 64 * 1024
const MiB = 1 << 20
const GiB = 1 << 30
const DEFAULT_SIZE = 4 * GiB
const REGION = 4 * MiB
const DATA_PER_REGION = MiB

export const PushCase = {
  PUSH1: 'push1',
  RSYNC1: 'rsync1',
  FULL1: 'full1',
  PUSH1_BIG: 'push1big',
  PUSH10: 'push10',
  RSYNC10: 'rsync10',
  FULL10: 'full10',
} as const
type CaseKey = (typeof PushCase)[keyof typeof PushCase]

export const PHASES = ['startupMs', 'connectMs', 'readMs', 'sendMs', 'journalMs', 'applyMs'] as const
type Phase = (typeof PHASES)[number]
type Phases = Record<Phase, number>

export interface PushBenchRow extends BenchRow {
  key: CaseKey
  /** Median of the `seconds` vdrep reports itself (no process start-up). */
  engineSeconds?: number
  /** Median of each push phase, in ms (from `vdrep push --json`). */
  phases?: Phases
  bytesSent?: number
  diskSize: number
  changedBlocks: number
}

type Log = (line: string) => void

/** What `vdrep push --json` prints: the push result itself. */
type PushJson = PushResult

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

/** A fast deterministic byte stream (AES-256-CTR keystream of a seed). */
function keystream(seed: string): (n: number) => Buffer {
  const key = crypto.createHash('sha256').update(seed).digest()
  const c = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  let zeros = Buffer.alloc(0)
  return (n) => {
    if (zeros.length < n) zeros = Buffer.alloc(n)
    return c.update(zeros.subarray(0, n))
  }
}

/** A small seeded PRNG (mulberry32) for choosing blocks. */
function prng(seed: string): () => number {
  let a = crypto.createHash('sha256').update(seed).digest().readUInt32LE(0)
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `count` distinct blocks of `blocks`, sorted. */
function pickBlocks(blocks: number, count: number, seed: string): number[] {
  const next = prng(seed)
  const picks = new Set<number>()
  while (picks.size < count) picks.add(Math.floor(next() * blocks))
  return [...picks].sort((a, b) => a - b)
}

/** Sparse-ish disk: `dataLen` random bytes at the start of every `every` bytes, the rest holes. */
async function makeSparseDisk(file: string, size: number, seed: string, every: number, dataLen: number, limit = size): Promise<void> {
  const bytes = keystream(seed)
  const fh = await fs.open(file, 'w', 0o644)
  try {
    await fh.truncate(size)
    for (let off = 0; off < Math.min(size, limit); off += every) {
      const n = Math.min(dataLen, size - off)
      await fh.write(bytes(n), 0, n, off)
    }
    await fh.datasync()
  } finally {
    await fh.close()
  }
}

/** Fresh random bytes into each of `blocks`, made durable (untimed). */
async function writeChange(file: string, blocks: number[], seed: string): Promise<void> {
  const bytes = keystream(seed)
  const fh = await fs.open(file, 'r+')
  try {
    const batch = 64
    for (let i = 0; i < blocks.length; i += batch) {
      const n = Math.min(batch, blocks.length - i)
      const buf = bytes(n * BLOCK)
      for (let k = 0; k < n; k++) await fh.write(buf, k * BLOCK, BLOCK, blocks[i + k] * BLOCK)
    }
    await fh.datasync()
  } finally {
    await fh.close()
  }
}

/** Copy `blocks` from one file into another (to bring the rsync target to the replica's state). */
async function copyBlocks(from: string, to: string, blocks: number[]): Promise<void> {
  const src = await fs.open(from, 'r')
  const dst = await fs.open(to, 'r+')
  const buf = Buffer.alloc(BLOCK)
  try {
    for (const b of blocks) {
      const {bytesRead} = await src.read(buf, 0, BLOCK, b * BLOCK)
      await dst.write(buf, 0, bytesRead, b * BLOCK)
    }
    await dst.datasync()
  } finally {
    await src.close()
    await dst.close()
  }
}

/** True when `blocks` hold the same bytes in both files. */
async function sameBlocks(a: string, b: string, blocks: number[]): Promise<boolean> {
  const fa = await fs.open(a, 'r')
  const fb = await fs.open(b, 'r')
  const x = Buffer.alloc(BLOCK)
  const y = Buffer.alloc(BLOCK)
  try {
    for (const blk of blocks) {
      await fa.read(x, 0, BLOCK, blk * BLOCK)
      await fb.read(y, 0, BLOCK, blk * BLOCK)
      if (!x.equals(y)) return false
    }
    return true
  } finally {
    await fa.close()
    await fb.close()
  }
}

function gib(n: number): string {
  return n >= GiB ? `${(n / GiB).toFixed(n % GiB ? 1 : 0)} GiB` : `${(n / MiB).toFixed(0)} MiB`
}

export function caseName(key: CaseKey, size: number): string {
  const big = 4 * size
  switch (key) {
    case PushCase.PUSH1:
      return `vdrep push over ssh, 1% changed (${gib(size)} disk)`
    case PushCase.RSYNC1:
      return 'rsync --inplace --no-whole-file over ssh, 1% changed'
    case PushCase.FULL1:
      return 'vdrep fullsync over ssh, 1% changed'
    case PushCase.PUSH1_BIG:
      return `vdrep push over ssh, same blocks count (${gib(big)} sparse disk)`
    case PushCase.PUSH10:
      return `vdrep push over ssh, 10% changed (${gib(size)} disk)`
    case PushCase.RSYNC10:
      return 'rsync --inplace --no-whole-file over ssh, 10% changed'
    case PushCase.FULL10:
      return 'vdrep fullsync over ssh, 10% changed'
  }
}

export async function runPushBench(opts: BenchOptions & {log?: Log; pushSize?: number}): Promise<PushBenchRow[]> {
  const log: Log = opts.log ?? (() => {})
  const runs = opts.runs
  const size = Math.floor((opts.pushSize ?? Math.max(opts.size, DEFAULT_SIZE)) / REGION) * REGION
  if (size < 64 * MiB) throw new Error(`the push section needs a disk of at least 64 MiB (got ${size})`)
  const bigSize = 4 * size
  const work = opts.workDir
  const srcDir = path.join(work, 'src')
  const root = path.join(work, 'root')
  const home = path.join(work, 'home')
  for (const d of [srcDir, root, home]) await fs.mkdir(d, {recursive: true})
  const disk = path.join(srcDir, 'disk.img')
  const big = path.join(srcDir, 'big.img')
  const replica = path.join(root, 'disk.img')
  const bigReplica = path.join(root, 'big.img')
  const rsyncTarget = path.join(root, 'rsync.img')

  const nBlocks = size / BLOCK
  const blocks1 = pickBlocks(nBlocks, Math.max(1, Math.round(nBlocks * 0.01)), 'push-bench:1%')
  const blocks10 = pickBlocks(nBlocks, Math.max(1, Math.round(nBlocks * 0.1)), 'push-bench:10%')
  const blocksBig = pickBlocks(bigSize / BLOCK, blocks1.length, 'push-bench:big')
  const warm = blocks1.slice(0, 8)

  let t = performance.now()
  log(`push: generating a ${gib(size)} disk (1 MiB of random data in every 4 MiB, the rest holes) and a sparse ${gib(bigSize)} disk`)
  await makeSparseDisk(disk, size, 'push-bench:disk', REGION, DATA_PER_REGION)
  await makeSparseDisk(big, bigSize, 'push-bench:big', REGION, REGION, 16 * MiB)
  // The replica and the rsync target start as local sparse copies: the initial full sync then
  // only compares (the set-up is not what this section measures).
  sh(`cp --sparse=always '${disk}' '${rsyncTarget}' && cp --sparse=always '${disk}' '${replica}' && sync '${rsyncTarget}' '${replica}'`)
  log(`push: disks made in ${((performance.now() - t) / 1000).toFixed(1)} s`)

  const sshd = await startSshd()
  const ports: [number, number] = [await freePort(), await freePort()]
  const serve = await startServe(root, ports).catch(async (err) => {
    await sshd.stop()
    throw err
  })
  const rows: PushBenchRow[] = []
  try {
    const env = {HOME: home, SSH_AUTH_SOCK: ''}
    const sshCmd = `ssh -p ${sshd.port} -i '${sshd.clientKey.path}' -o UserKnownHostsFile='${sshd.knownHostsFile}' -o BatchMode=yes -o StrictHostKeyChecking=yes`
    for (const [src, dst] of [
      [disk, replica],
      [big, bigReplica],
    ] as const) {
      await runVdrep(
        [
          'init',
          src,
          '--to',
          `${sshd.user}@127.0.0.1:${sshd.port}:${dst}`,
          '--identity',
          sshd.clientKey.path,
          '--known-hosts',
          sshd.knownHostsFile,
          '--fullsync-port',
          String(ports[0]),
          '--delta-port',
          String(ports[1]),
          '--block-size',
          String(BLOCK),
        ],
        env,
      )
      t = performance.now()
      const r = JSON.parse(await runVdrep(['fullsync', src, '--json'], env)) as {bytesSent: number; seconds: number}
      log(
        `push: initial full sync of ${path.basename(src)} (${gib((await fs.stat(src)).size)}): ${((performance.now() - t) / 1000).toFixed(1)} s (engine ${r.seconds.toFixed(1)} s), ${(r.bytesSent / 1e6).toFixed(0)} MB sent`,
      )
    }

    const pushOnce = async (src: string, blocks: number[], seed: string): Promise<{wall: number; r: PushJson}> => {
      await writeChange(src, blocks, seed)
      await markChanged(src, blocks)
      const t0 = performance.now()
      const out = await runVdrep(['push', src, '--json'], env)
      const wall = (performance.now() - t0) / 1000
      const r = JSON.parse(out) as PushJson
      if (r.mode !== 'delta' || r.blocks !== blocks.length) throw new Error(`push of ${src} did not ship a delta of ${blocks.length} blocks: ${out}`)
      return {wall, r}
    }
    // Warm-up (untimed): one small push per disk, so module loading and the receiver are warm.
    await pushOnce(disk, warm, 'push-bench:warm')
    await pushOnce(big, blocksBig.slice(0, 8), 'push-bench:warm')
    await copyBlocks(disk, rsyncTarget, warm)
    sh(`cat '${disk}' '${replica}' '${rsyncTarget}' > /dev/null`)

    // --ignore-times: never skip the file on its size and mtime (the quick check), always rescan.
    const rsyncCmd = `rsync --inplace --no-whole-file --ignore-times -e "${sshCmd.replace(/"/g, '\\"')}" '${disk}' ${sshd.user}@127.0.0.1:'${rsyncTarget}'`
    const withRsync = have('rsync')
    if (!withRsync) log('push: rsync is not installed; its cases are skipped')

    const fractions = [
      {label: '1%', blocks: blocks1, push: PushCase.PUSH1, rsync: PushCase.RSYNC1, full: PushCase.FULL1, big: true},
      {label: '10%', blocks: blocks10, push: PushCase.PUSH10, rsync: PushCase.RSYNC10, full: PushCase.FULL10, big: false},
    ] as const
    for (const f of fractions) {
      const bytes = f.blocks.length * BLOCK
      log(
        `push: ${f.label} of the blocks (${f.blocks.length} blocks, ${(bytes / 1e6).toFixed(1)} MB): ${runs} run(s) of push${f.big ? ', push on the large disk' : ''}, rsync, fullsync`,
      )
      const pushes: Array<{wall: number; r: PushJson}> = []
      const bigPushes: Array<{wall: number; r: PushJson}> = []
      const rsyncs: number[] = []
      const fulls: Array<{wall: number; engine: number; bytesSent: number}> = []
      for (let i = 0; i < runs; i++) {
        // Here the source, its replica and the rsync target are equal.
        pushes.push(await pushOnce(disk, f.blocks, `push-bench:${f.label}:push:${i}`))
        if (f.big) bigPushes.push(await pushOnce(big, blocksBig, `push-bench:${f.label}:big:${i}`))
        if (withRsync) {
          const t0 = performance.now()
          sh(rsyncCmd)
          rsyncs.push((performance.now() - t0) / 1000)
          if (!(await sameBlocks(disk, rsyncTarget, f.blocks))) throw new Error(`rsync left the target different from the source (${f.label} run ${i + 1})`)
        } else await copyBlocks(disk, rsyncTarget, f.blocks)
        await writeChange(disk, f.blocks, `push-bench:${f.label}:fullsync:${i}`)
        const t0 = performance.now()
        const out = await runVdrep(['fullsync', disk, '--json'], env)
        const wall = (performance.now() - t0) / 1000
        const r = JSON.parse(out) as {seconds: number; bytesSent: number}
        fulls.push({wall, engine: r.seconds, bytesSent: r.bytesSent})
        await copyBlocks(disk, rsyncTarget, f.blocks)
        log(
          `push: ${f.label} run ${i + 1}: push ${pushes[i].wall.toFixed(2)} s${f.big ? `, large-disk push ${bigPushes[i].wall.toFixed(2)} s` : ''}${withRsync ? `, rsync ${rsyncs[i].toFixed(2)} s` : ''}, fullsync ${wall.toFixed(2)} s`,
        )
      }
      if (!(await sameBlocks(disk, replica, f.blocks))) throw new Error(`the replica differs from the source in the ${f.label} blocks after the runs`)
      rows.push(pushRow(f.push, size, pushes, bytes, size, f.blocks.length))
      if (f.big) {
        if (!(await sameBlocks(big, bigReplica, blocksBig))) throw new Error('the large replica differs from its source in the changed blocks')
        rows.push(pushRow(PushCase.PUSH1_BIG, size, bigPushes, bytes, bigSize, blocksBig.length))
      }
      if (withRsync)
        rows.push({
          ...row(PUSH_SECTION, caseName(f.rsync, size), rsyncs, bytes, `rescan of both ${gib(size)} files (with --ignore-times)`),
          key: f.rsync,
          diskSize: size,
          changedBlocks: f.blocks.length,
        })
      else
        rows.push({
          section: PUSH_SECTION,
          name: caseName(f.rsync, size),
          seconds: NaN,
          bytes: 0,
          runs: [],
          note: 'skipped: rsync is not installed',
          key: f.rsync,
          diskSize: size,
          changedBlocks: f.blocks.length,
        })
      const fr: PushBenchRow = {
        ...row(
          PUSH_SECTION,
          caseName(f.full, size),
          fulls.map((x) => x.wall),
          bytes,
        ),
        key: f.full,
        diskSize: size,
        changedBlocks: f.blocks.length,
      }
      fr.engineSeconds = median(fulls.map((x) => x.engine))
      fr.bytesSent = fulls[fulls.length - 1].bytesSent
      fr.note = `sent ${(fr.bytesSent / 1e6).toFixed(1)} MB; compares the whole ${gib(size)}`
      rows.push(fr)
    }
    if (
      !(await sameBlocks(
        disk,
        replica,
        [...new Set([...warm, ...blocks1, ...blocks10])].sort((a, b) => a - b),
      ))
    )
      throw new Error('the replica differs from the source in the changed blocks')
  } finally {
    await stopChild(serve)
    await sshd.stop()
  }
  return rows
}

function pushRow(key: CaseKey, size: number, runs: Array<{wall: number; r: PushJson}>, bytes: number, diskSize: number, changedBlocks: number): PushBenchRow {
  const r: PushBenchRow = {
    ...row(
      PUSH_SECTION,
      caseName(key, size),
      runs.map((x) => x.wall),
      bytes,
    ),
    key,
    diskSize,
    changedBlocks,
  }
  r.engineSeconds = median(runs.map((x) => x.r.seconds))
  r.bytesSent = runs[runs.length - 1].r.bytesSent
  const withPhases = runs.filter((x) => x.r.phases)
  if (withPhases.length) r.phases = Object.fromEntries(PHASES.map((p) => [p, median(withPhases.map((x) => x.r.phases![p]))])) as Phases
  r.note = `sent ${(r.bytesSent / 1e6).toFixed(1)} MB${r.phases ? `; ${phaseLine(r.phases, r.seconds)}` : ''}`
  return r
}

function ms(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`
}

/**
 * Phases as `vdrep push --json` reports them: start-up (process start to push()), connect (SSH
 * login + hello), read and send (the client's bundle loop), journal (the receiver, from the
 * first bundle frame to the synced journal: it overlaps read + send), apply. `other` is the
 * wall time left (process spawn and exit, lock, .psf, point in time, index update).
 */
export function phaseLine(p: Phases, wallSeconds: number): string {
  const stream = Math.max(p.readMs + p.sendMs, p.journalMs)
  const other = wallSeconds * 1000 - p.startupMs - p.connectMs - stream - p.applyMs
  return `startup ${ms(p.startupMs)}, connect ${ms(p.connectMs)}, read ${ms(p.readMs)}, send ${ms(p.sendMs)}, journal ${ms(p.journalMs)}, apply ${ms(p.applyMs)}, other ${ms(Math.max(0, other))}`
}

function get(rows: BenchRow[], key: CaseKey): PushBenchRow | undefined {
  const r = (rows as PushBenchRow[]).find((x) => x.key === key)
  return r && Number.isFinite(r.seconds) ? r : undefined
}

/** The targets of issue 5, on median wall times (node start-up and the SSH login included). */
export function pushChecks(rows: BenchRow[]): BenchCheck[] {
  const check = (label: string, target: string, num: CaseKey, den: CaseKey, ok: (ratio: number) => boolean): BenchCheck => {
    const a = get(rows, num)
    const b = get(rows, den)
    if (!a || !b) return {label, target, note: `skipped: ${!a ? num : den} did not run`}
    const ratio = a.seconds / b.seconds
    return {label, ratio, target, pass: ok(ratio)}
  }
  return [
    check('rsync over ssh 1% / vdrep push 1% (time)', '>= 5x', PushCase.RSYNC1, PushCase.PUSH1, (r) => r >= 5),
    check('push of the same blocks: 4x larger disk / main disk (time)', '0.8x..1.2x', PushCase.PUSH1_BIG, PushCase.PUSH1, (r) => r >= 0.8 && r <= 1.2),
    check('vdrep push 10% / vdrep push 1% (time)', '<= 10x', PushCase.PUSH10, PushCase.PUSH1, (r) => r <= 10),
  ]
}

/** Per-phase times of each push, what dominated, and the other ratios for context. */
export function pushContext(rows: BenchRow[]): string[] {
  const out: string[] = []
  for (const key of [PushCase.PUSH1, PushCase.PUSH1_BIG, PushCase.PUSH10]) {
    const r = get(rows, key)
    if (!r?.phases) continue
    const p = r.phases
    out.push(
      `${r.name}: ${(r.bytes / 1e6).toFixed(1)} MB changed in ${r.seconds.toFixed(2)} s wall (${mbps(r).toFixed(0)} MB/s), ${r.engineSeconds?.toFixed(2)} s in push()`,
    )
    out.push(`  phases (median ms): ${phaseLine(p, r.seconds)}`)
    const stream = Math.max(p.readMs + p.sendMs, p.journalMs)
    const parts: Array<[string, number]> = [
      ['start-up', p.startupMs],
      ['connect', p.connectMs],
      ['read+send/journal', stream],
      ['apply', p.applyMs],
      ['other', r.seconds * 1000 - p.startupMs - p.connectMs - stream - p.applyMs],
    ]
    parts.sort((a, b) => b[1] - a[1])
    out.push(
      `  largest: ${parts
        .slice(0, 2)
        .map(([n, v]) => `${n} ${((v / (r.seconds * 1000)) * 100).toFixed(0)}%`)
        .join(', ')} of the wall time; bundle stream ${(r.bytes / 1e6 / (stream / 1000)).toFixed(0)} MB/s`,
    )
  }
  const line = (label: string, a?: PushBenchRow, b?: PushBenchRow) => {
    if (a && b) out.push(`${label}: ${(a.seconds / b.seconds).toFixed(2)}x`)
  }
  line('vdrep fullsync 1% / vdrep push 1% (time)', get(rows, PushCase.FULL1), get(rows, PushCase.PUSH1))
  line('vdrep fullsync 10% / vdrep push 10% (time)', get(rows, PushCase.FULL10), get(rows, PushCase.PUSH10))
  line('rsync over ssh 10% / vdrep push 10% (time)', get(rows, PushCase.RSYNC10), get(rows, PushCase.PUSH10))
  line('rsync over ssh 1% / vdrep fullsync 1% (time)', get(rows, PushCase.RSYNC1), get(rows, PushCase.FULL1))
  out.push(
    "MB/s here is changed bytes per wall second; push wall times include node + oclif start-up, the SSH login and the receiver's fsyncs (rsync does not sync)",
  )
  return out
}

async function main(): Promise<number> {
  const {values} = parseArgs({options: {size: {type: 'string', default: '4G'}, runs: {type: 'string', default: '3'}, dir: {type: 'string'}}, strict: true})
  const size = parseSize(values.size, '--size')
  const runs = Number(values.runs)
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error(`--runs ${values.runs} is not a whole number between 1 and 50`)
  const workDir = await fs.mkdtemp(path.join(values.dir ?? '/var/tmp', 'vdrep-push-bench-'))
  // Output piped into `head` must not kill the run before sshd, `vdrep serve` and the folder are cleaned up.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})
  const log = (l: string) => process.stderr.write(`bench: ${l}\n`)
  log(`${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}, work folder ${workDir}`)
  const started = performance.now()
  const onSignal = (sig: NodeJS.Signals) => {
    void fs.rm(workDir, {recursive: true, force: true}).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const rows = await runPushBench({size, runs, workDir, log, pushSize: size})
    const w = (s = '') => process.stdout.write(`${s}\n`)
    w(`== push: ${gib(size)} disk over ssh loopback, median of ${runs} run(s), page cache warm`)
    for (const r of rows) {
      const secs = Number.isFinite(r.seconds) ? r.seconds.toFixed(2).padStart(7) : '      -'
      const rate = r.bytes > 0 && Number.isFinite(r.seconds) ? mbps(r).toFixed(0).padStart(5) : '    -'
      w(`${r.name.padEnd(64)} ${secs} s ${rate} MB/s  [${r.runs.map((x) => x.toFixed(2)).join(' ')}]${r.note ? `  ${r.note}` : ''}`)
    }
    w('context:')
    for (const c of pushContext(rows)) w(`  ${c}`)
    w('targets (median wall times):')
    for (const c of pushChecks(rows))
      w(
        `  ${c.pass === undefined ? 'SKIP' : c.pass ? 'PASS' : 'MISS'}  ${c.label}: ${c.ratio === undefined ? '-' : `${c.ratio.toFixed(2)}x`} (target ${c.target})${c.note ? ` — ${c.note}` : ''}`,
      )
    w(`(push section took ${((performance.now() - started) / 1000).toFixed(0)} s)`)
    w(
      JSON.stringify({
        bench: 'vdrep-push',
        size,
        runs,
        cpus: os.cpus().length,
        loadavg: Number(os.loadavg()[0].toFixed(2)),
        rows: rows.map((r) => ({...r, mbps: r.bytes > 0 && Number.isFinite(r.seconds) ? Number(mbps(r).toFixed(1)) : null})),
        checks: pushChecks(rows),
      }),
    )
    return 0
  } finally {
    await fs.rm(workDir, {recursive: true, force: true})
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = await main()
