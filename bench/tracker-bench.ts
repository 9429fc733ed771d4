// `npm run bench` section "tracker": write throughput into `vdrep track`'s NBD export beside
// `qemu-nbd -f raw -t -k SOCK` serving the same file in the same run, at queue depth 16:
//   seq 64k / seq 4k     nbdcopy --request-size=N --requests=16 --connections=1 (random data)
//   stride 64k / 4k      qemu-img bench -w -d 16 -S <prime * size>: qemu-img bench has no
//                        random mode, so a large prime stride scatters the writes over the disk
//   seq / stride 64k, 4k qd1  qemu-img bench -w -d 1 (sequential, then scattered): the latency
//                        one write costs the VM (issue 23)
// vdrep is measured two ways: "dirty" on blocks already marked (the steady state: a warmed-up,
// long-running tracker, each run right after a qemu-nbd run), and "first write" on a cleared
// bitmap and a cold activity log, as after a proved full sync (a write into a cold extent waits
// for one log transaction; a tracker started anew for each run). Targets (issue 23): dirty
// at most 1.2x qemu-nbd's time, sequential first writes at least 0.9x its throughput, scattered
// 4 KiB first writes at QD1 at most 2x its latency.
//
// Plus `vdrep track --scan` of a disk of random data (up to 1 GiB) against the raw hash
// throughput (the same bytes hashed from memory in 64 KiB blocks, one thread).
//
// Standalone: `node dist/bench/tracker-bench.js [--size 1G] [--runs 3]` prints the rows.
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {parseArgs} from 'node:util'
import {have, mbps, median, row, type BenchOptions, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'
import {blockHasher, HASH_LENGTH} from '../src/core/hash/block-hash.js'
import {Bitmap} from '../src/core/psf/bitmap.js'
import {HeaderFlag} from '../src/core/psf/header.js'
import {HASHES_PER_PAGE, Region} from '../src/core/psf/layout.js'
import {PsfFile, psfPathFor} from '../src/core/psf/psf-file.js'
import {TrackerControlClient} from '../src/core/tracker/control-client.js'
import {emptyActivityLog} from '../src/core/psf/activity-log.js'
import {STAMP_SETTLE_MS} from '../src/core/psf/disk-stamp.js'

const KiB = 1024
const MiB = 1024 * KiB
const DEPTH = 16
/** Untimed passes of each workload before its timed runs (see the loop). */
const WARM_PASSES = 3
const VDREP_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/run.js')

type Log = (line: string) => void

interface Workload {
  key: string
  /** Bytes written by one execution. */
  bytes: number
  ops: number
  /** Run against an NBD URI; resolves with the seconds it took. */
  run(uri: string): Promise<number>
}

export const TRACKER_SECTION = 'tracker'
export const Server = {
  QEMU: 'qemu-nbd',
  /** A tracker started anew on a cleared record and a cold log (its JIT cold too). */
  FIRST: 'vdrep track (first write, cold start)',
  /** A warm tracker whose bits a push just cleared (freeze, complete): the log stays hot. */
  AFTER_PUSH: 'vdrep track (first write after a push)',
  DIRTY: 'vdrep track (dirty)',
} as const

/** What a push does to the tracker's record, without shipping anything: every bit cleared. */
async function clearBitsLikeAPush(disk: string): Promise<void> {
  const c = await TrackerControlClient.connect(disk)
  try {
    await c.freeze({preserve: false})
    await c.complete(true)
  } finally {
    await c.close()
  }
}

function exec(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, {stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    let err = ''
    c.stdout.on('data', (d: Buffer) => (out += d.toString()))
    c.stderr.on('data', (d: Buffer) => (err += d.toString()))
    c.on('error', reject)
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`))))
  })
}

function nbdcopy(src: string, bytes: number, requestSize: number): Workload {
  return {
    key: `seq ${requestSize / KiB}k qd${DEPTH}`,
    bytes,
    ops: bytes / requestSize,
    async run(uri) {
      const t = performance.now()
      await exec('nbdcopy', [`--request-size=${requestSize}`, `--requests=${DEPTH}`, '--connections=1', src, uri])
      return (performance.now() - t) / 1000
    },
  }
}

/** qemu-img bench: `step` = size is sequential; a large prime multiple scatters the writes. */
function strided(size: number, count: number, step: number, depth = DEPTH): Workload {
  const kind = step === size ? 'seq' : 'stride'
  return {
    key: `${kind} ${size / KiB}k qd${depth}`,
    bytes: size * count,
    ops: count,
    async run(uri) {
      const out = await exec('qemu-img', ['bench', '-w', '-s', String(size), '-d', String(depth), '-c', String(count), '-S', String(step), '-f', 'raw', uri])
      const m = /Run completed in ([\d.]+) seconds/.exec(out)
      if (!m) throw new Error(`qemu-img bench printed no time: ${out}`)
      return Number(m[1])
    },
  }
}

function accepts(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({path: sock})
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/** Wait for a unix socket to accept connections. */
async function waitForSocket(sock: string, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before serving`)
    if (await accepts(sock)) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`${what} did not serve on ${sock}`)
}

async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((r) => child.once('close', r))
  child.kill(signal)
  await gone
}

/**
 * Clear the change record so the next tracker sees clean blocks and a cold activity log: as
 * after a proved full sync (an index the log could be checked against, so writes go through
 * it) and a clean stop (the disk's stamp now, so the start checks nothing).
 */
async function resetRecord(disk: string): Promise<void> {
  const psf = await PsfFile.open(psfPathFor(disk))
  try {
    const empty = new Bitmap(psf.layout.blockCount)
    await psf.writeBitmap(Region.ACTIVE, empty)
    await psf.writeBitmap(Region.INFLIGHT, empty)
    await psf.writeActivityLog(
      emptyActivityLog(psf.header.alExtents),
      Array.from({length: psf.layout.alPages}, (_, p) => p),
    )
    await new Promise((r) => setTimeout(r, STAMP_SETTLE_MS))
    const st = await fs.stat(disk, {bigint: true})
    const clean = HeaderFlag.CLEAN_SHUTDOWN | HeaderFlag.INDEX_VALID
    await psf.updateHeader((h) => ({
      flags: (h.flags | clean) & ~(HeaderFlag.NEEDS_FULL_SYNC | HeaderFlag.VERIFY_NEEDED),
      generation: Math.max(1, h.generation),
      sourceSize: Number(st.size),
      sourceMtimeNs: st.mtimeNs,
      sourceCtimeNs: st.ctimeNs,
    }))
  } finally {
    await psf.close()
  }
}

/**
 * `vdrep track --scan` of a disk of random data against the raw hash throughput: the same
 * number of bytes hashed in 64 KiB blocks from memory, no I/O. The index the scan compares
 * with is written directly (hashing the disk once), which is what a proved full sync leaves.
 */
async function scanRows(dir: string, size: number, runs: number, log: Log): Promise<BenchRow[]> {
  const disk = path.join(dir, 'scanned.img')
  log(`tracker: scan of ${size / MiB} MiB of random data x ${runs}`)
  spawnSync('dd', ['if=/dev/urandom', `of=${disk}`, 'bs=1M', `count=${size / MiB}`, 'status=none'])
  const init = spawnSync(VDREP_BIN, ['init', disk, '--to', path.join(dir, 'replica', 'scanned.img'), '-q'], {encoding: 'utf8'})
  if (init.status !== 0) throw new Error(`vdrep init failed: ${init.stderr}`)
  const psf = await PsfFile.open(psfPathFor(disk))
  let hasher
  try {
    hasher = blockHasher(psf.header.hashAlgo, psf.header.replicaId)
    const bs = psf.header.blockSize
    const fh = await fs.open(disk, 'r')
    const chunk = Buffer.allocUnsafe(HASHES_PER_PAGE * bs)
    for (let off = 0; off < size; off += chunk.length) {
      const {bytesRead} = await fh.read(chunk, 0, chunk.length, off)
      const hashes = Buffer.allocUnsafe(Math.ceil(bytesRead / bs) * HASH_LENGTH)
      for (let b = 0; b * bs < bytesRead; b++) hasher.hash(chunk.subarray(b * bs, Math.min(bytesRead, (b + 1) * bs))).copy(hashes, b * HASH_LENGTH)
      await psf.writeIndexPages(off / bs, hashes)
    }
    await fh.close()
    await psf.sync()
    await psf.updateHeader({flags: (psf.header.flags | HeaderFlag.INDEX_VALID) & ~HeaderFlag.NEEDS_FULL_SYNC, generation: 1})
  } finally {
    await psf.close()
  }
  const engine: number[] = []
  const wall: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    const r = spawnSync(VDREP_BIN, ['track', disk, '--scan', '--json'], {encoding: 'utf8'})
    wall.push((performance.now() - t) / 1000)
    if (r.status !== 0) throw new Error(`vdrep track --scan failed: ${r.stderr}`)
    const out = JSON.parse(r.stdout) as {seconds: number; blocksMarked: number}
    if (out.blocksMarked !== 0) throw new Error(`the scan marked ${out.blocksMarked} blocks of an unchanged disk`)
    engine.push(out.seconds)
  }
  const mem = Buffer.allocUnsafe(64 * MiB)
  for (let o = 0; o < mem.length; o += 4096) mem.writeUInt32LE((o * 2654435761) >>> 0, o) // not zero, not trivially compressible
  const hashOnly: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    for (let done = 0; done < size; done += mem.length) {
      for (let o = 0; o < mem.length && done + o < size; o += 64 * KiB) hasher.hash(mem.subarray(o, o + 64 * KiB))
    }
    hashOnly.push((performance.now() - t) / 1000)
  }
  const scan = row(TRACKER_SECTION, `scan ${size / MiB} MiB: vdrep track --scan`, engine, size)
  scan.note = `engine time; wall with start-up ${median(wall).toFixed(2)} s`
  const raw = row(TRACKER_SECTION, `scan ${size / MiB} MiB: ${hasher.name} of 64 KiB blocks in memory`, hashOnly, size)
  raw.note = 'raw hash throughput, one thread'
  return [scan, raw]
}

export async function runTrackerBench(opts: BenchOptions & {log?: Log}): Promise<BenchRow[]> {
  const log = opts.log ?? (() => {})
  const missing = ['qemu-nbd', 'qemu-img', 'nbdcopy'].filter((t) => !have(t))
  if (missing.length > 0) throw new Error(`the tracker bench needs ${missing.join(', ')} (Debian: qemu-utils, libnbd-bin)`)
  const dir = opts.workDir
  await fs.mkdir(path.join(dir, 'replica'), {recursive: true})
  // The writes below need no more than 1 GiB; keeps the section near a minute. Whole MiB for dd.
  const size = Math.max(MiB, Math.floor(Math.min(opts.size, 1 << 30) / MiB) * MiB)
  const disk = path.join(dir, 'tracked.img')
  const src64 = path.join(dir, 'src64.img')
  const src4 = path.join(dir, 'src4.img')
  // About a second per execution at this machine's speed, so that start-up noise stays small.
  const seqBytes = Math.min(size, 192 * MiB)
  const seq4Bytes = Math.min(size, 40 * MiB)
  log(`tracker: making a ${size / MiB} MiB allocated disk and ${seqBytes / MiB} MiB of random source data`)
  spawnSync('dd', ['if=/dev/zero', `of=${disk}`, 'bs=1M', `count=${size / MiB}`, 'status=none'])
  spawnSync('dd', ['if=/dev/urandom', `of=${src64}`, 'bs=1M', `count=${seqBytes / MiB}`, 'status=none'])
  spawnSync('dd', ['if=/dev/urandom', `of=${src4}`, 'bs=1M', `count=${seq4Bytes / MiB}`, 'status=none'])
  const init = spawnSync(VDREP_BIN, ['init', disk, '--to', path.join(dir, 'replica', 'tracked.img'), '-q'], {encoding: 'utf8'})
  if (init.status !== 0) throw new Error(`vdrep init failed: ${init.stderr}`)

  const blocks4 = Math.floor(size / (4 * KiB))
  const blocks64 = Math.floor(size / (64 * KiB))
  const workloads: Workload[] = [
    nbdcopy(src64, seqBytes, 64 * KiB),
    nbdcopy(src4, seq4Bytes, 4 * KiB),
    strided(64 * KiB, Math.min(6144, blocks64), 64 * KiB * 997),
    strided(4 * KiB, Math.min(12288, blocks4), 4 * KiB * 7919),
    // QD1: the latency a VM feels per write (issue 23), sequential and scattered.
    strided(64 * KiB, Math.min(3000, blocks64), 64 * KiB, 1),
    strided(4 * KiB, Math.min(6000, blocks4), 4 * KiB, 1),
    strided(64 * KiB, Math.min(3000, blocks64), 64 * KiB * 997, 1),
    strided(4 * KiB, Math.min(4000, blocks4), 4 * KiB * 7919, 1),
  ]

  const qSock = path.join(dir, 'qemu.sock')
  const vSock = path.join(dir, 'vdrep.sock')
  const qUri = `nbd+unix:///?socket=${qSock}`
  const vUri = `nbd+unix:///?socket=${vSock}`
  let qemu: ChildProcess | undefined
  let tracker: ChildProcess | undefined
  const startTracker = async () => {
    await fs.rm(vSock, {force: true})
    tracker = spawn(VDREP_BIN, ['track', disk, '--nbd', `unix:${vSock}`, '-q'], {stdio: 'ignore'})
    await waitForSocket(vSock, tracker, 'vdrep track')
  }
  const times = new Map<string, number[]>()
  const add = (w: Workload, server: string, s: number) => {
    const k = `${w.key}|${server}`
    times.set(k, [...(times.get(k) ?? []), s])
  }
  try {
    qemu = spawn('qemu-nbd', ['-f', 'raw', '-t', '-k', qSock, disk], {stdio: 'ignore'})
    await waitForSocket(qSock, qemu, 'qemu-nbd')
    await resetRecord(disk)
    await startTracker()
    // Each timed execution starts with no dirty pages left from the one before.
    const timed = async (w: Workload, uri: string) => {
      spawnSync('sync')
      return w.run(uri)
    }
    for (const w of workloads) {
      log(`tracker: ${w.key} (${w.ops} writes, ${(w.bytes / MiB).toFixed(0)} MiB) x ${opts.runs}`)
      // Warm-up: the page cache, every block it writes dirty, and a tracker past its JIT
      // warm-up. "Dirty" is the steady state of a tracker that runs for days: a freshly
      // started one took 0.27, 0.25, 0.21, 0.19 s for its first four passes of seq 64k here,
      // so runs timed on a tracker just restarted measured its start, not its steady state.
      for (let k = 0; k < WARM_PASSES; k++) await w.run(vUri)
      for (let i = 0; i < opts.runs; i++) {
        add(w, Server.QEMU, await timed(w, qUri))
        add(w, Server.DIRTY, await timed(w, vUri))
      }
      // The warm tracker after a push: every block clean again, its hot extents still hot.
      for (let i = 0; i < opts.runs; i++) {
        await clearBitsLikeAPush(disk)
        add(w, Server.AFTER_PUSH, await timed(w, vUri))
      }
      // A tracker on a cleared record and a cold log, started anew for each run: this pass
      // pays for the log transactions and the lazy bits (and leaves them set).
      for (let i = 0; i < opts.runs; i++) {
        await stop(tracker, 'SIGKILL')
        await resetRecord(disk)
        await startTracker()
        add(w, Server.FIRST, await timed(w, vUri))
      }
    }
  } finally {
    await stop(tracker, 'SIGKILL')
    await stop(qemu, 'SIGTERM')
  }
  const rows: BenchRow[] = []
  rows.push(...(await scanRows(dir, Math.min(size, 1 << 30), opts.runs, log)))
  for (const w of workloads) {
    for (const server of [Server.QEMU, Server.DIRTY, Server.AFTER_PUSH, Server.FIRST]) {
      const runs = times.get(`${w.key}|${server}`) ?? []
      const r = row(TRACKER_SECTION, `${w.key}: ${server}`, runs, w.bytes)
      r.note = `${Math.round(w.ops / r.seconds)} writes/s, ${((r.seconds / w.ops) * 1e6).toFixed(0)} us/write`
      rows.push(r)
    }
  }
  return rows
}

function find(rows: BenchRow[], key: string, server: string): BenchRow | undefined {
  return rows.find((r) => r.name === `${key}: ${server}` && Number.isFinite(r.seconds) && r.runs.length > 0)
}

/** The write workloads (rows named "<workload>: <server>"). */
function writeKeys(rows: BenchRow[]): string[] {
  return [...new Set(rows.filter((r) => !r.name.startsWith('scan ')).map((r) => r.name.split(': ')[0]))]
}

/**
 * Issue 23's targets, each a ratio of the same run: dirty writes at most 1.2x qemu-nbd's time
 * (QD1: its latency); sequential first writes at least 0.9x its throughput; scattered 4 KiB
 * first writes at QD1 at most 2x its latency (the default activity log). And --scan at 70% of
 * raw hashing.
 */
export function trackerChecks(rows: BenchRow[]): BenchCheck[] {
  const checks: BenchCheck[] = []
  const scan = rows.find((r) => r.name.endsWith(': vdrep track --scan'))
  const raw = rows.find((r) => r.name.includes(' of 64 KiB blocks in memory'))
  if (scan && raw) {
    const ratio = mbps(scan) / mbps(raw)
    checks.push({label: `${scan.name.split(':')[0]}: vdrep track --scan / raw hash throughput`, ratio, target: '>= 0.70x', pass: ratio >= 0.7})
  }
  const timeRatio = (k: string, server: string, max: number, what: string): BenchCheck => {
    const label = `${k}: ${server} / qemu-nbd ${what}`
    const v = find(rows, k, server)
    const q = find(rows, k, Server.QEMU)
    if (!v || !q) return {label, target: `<= ${max.toFixed(2)}x`, note: 'skipped: a case did not run'}
    const ratio = v.seconds / q.seconds
    return {label, ratio, target: `<= ${max.toFixed(2)}x`, pass: ratio <= max}
  }
  for (const k of writeKeys(rows)) {
    checks.push(timeRatio(k, Server.DIRTY, 1.2, k.endsWith('qd1') ? 'latency' : 'time'))
    for (const first of [Server.AFTER_PUSH, Server.FIRST]) {
      if (k.startsWith('seq ')) {
        const label = `${k}: ${first} / qemu-nbd throughput`
        const f = find(rows, k, first)
        const q = find(rows, k, Server.QEMU)
        const ratio = f && q ? mbps(f) / mbps(q) : undefined
        checks.push(
          ratio === undefined ? {label, target: '>= 0.90x', note: 'skipped: a case did not run'} : {label, ratio, target: '>= 0.90x', pass: ratio >= 0.9},
        )
      }
      if (k === 'stride 4k qd1') checks.push(timeRatio(k, first, 2, 'latency'))
    }
  }
  return checks
}

/** The first-write cost: a write into a cold extent waits for one activity log transaction. */
export function trackerContext(rows: BenchRow[]): string[] {
  return writeKeys(rows).map((k) => {
    const p = find(rows, k, Server.AFTER_PUSH)
    const f = find(rows, k, Server.FIRST)
    const d = find(rows, k, Server.DIRTY)
    const q = find(rows, k, Server.QEMU)
    if (!p || !f || !d || !q) return `${k}: incomplete`
    const us = (r: BenchRow) => `${((r.seconds / (r.bytes / Number(k.split(' ')[1].replace('k', '')) / 1024)) * 1e6).toFixed(0)} us`
    return (
      `${k}: qemu-nbd ${us(q)}/write; dirty ${(d.seconds / q.seconds).toFixed(2)}x its time, first write after a push ` +
      `${(p.seconds / q.seconds).toFixed(2)}x, cold start ${(f.seconds / q.seconds).toFixed(2)}x`
    )
  })
}

async function main(): Promise<void> {
  const {values} = parseArgs({options: {size: {type: 'string', default: '1G'}, runs: {type: 'string', default: '3'}, keep: {type: 'boolean', default: false}}})
  const m = /^(\d+)([MG])$/i.exec(values.size)
  if (!m) throw new Error('--size must look like 512M or 1G')
  const size = Number(m[1]) * (m[2].toUpperCase() === 'G' ? 1 << 30 : MiB)
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-tracker-bench-'))
  try {
    const rows = await runTrackerBench({size, runs: Number(values.runs), workDir, log: (l) => process.stderr.write(`bench: ${l}\n`)})
    const w = Math.max(...rows.map((r) => r.name.length))
    process.stdout.write(`${'case'.padEnd(w)}  median s      MB/s  runs (s)             note\n`)
    for (const r of rows) {
      const runs = r.runs.map((x) => x.toFixed(3)).join(' ')
      process.stdout.write(`${r.name.padEnd(w)}  ${r.seconds.toFixed(3).padStart(8)}  ${mbps(r).toFixed(0).padStart(8)}  ${runs.padEnd(19)}  ${r.note ?? ''}\n`)
    }
    for (const c of trackerChecks(rows)) process.stdout.write(`${c.pass ? 'PASS' : 'MISS'}  ${c.label}: ${c.ratio?.toFixed(2)}x (target ${c.target})\n`)
    for (const line of trackerContext(rows)) process.stdout.write(`  ${line}\n`)
  } finally {
    if (!values.keep) await fs.rm(workDir, {recursive: true, force: true})
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: Error) => {
    process.stderr.write(`bench: ${err.message}\n`)
    process.exit(1)
  })
}
