// The local section of `npm run bench`: vdrep full sync to a local-path replica beside the
// tools a user would otherwise reach for, side by side on ONE generated disk in the same run.
//
// Every case is timed `opts.runs` times; whatever it needs (a removed replica, a restored
// 1% seed) is prepared before each run, untimed. vdrep runs through the real binary
// (`bin/run.js fullsync DISK --json`, executed as a user's `vdrep` is, through its shebang), so its
// wall time includes node + oclif start-up;
// the engine's own `seconds` from the JSON is kept beside it. All runs are page-cache warm.
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {have, machineBusySeconds, row, settleBytesFor, settleMemory, sh, timeRuns, type BenchOptions, type BenchRow} from './bench-common.js'
import {makeMixedDisk, scribbleBlocks} from '../test/helpers/disks.js'
import {VDREP_BIN} from '../test/helpers/cli.js'

export const LOCAL_SECTION = 'local'
export const BENCH_BLOCK_SIZE = 64 * 1024
/** Share of the 64 KiB blocks that differ between the source and the seed. */
export const SEED_CHANGED = 0.01

/** Case names, shared by the rows and the checks below. */
export const LocalCase = {
  START: 'vdrep start-up (--version)',
  NODE: 'node -e 0 (any node process, this environment)',
  FRESH: 'vdrep fullsync, fresh target',
  SEED: 'vdrep fullsync, 1% seed',
  IDENTICAL: 'vdrep fullsync, identical seed',
  RSYNC: 'rsync --inplace --no-whole-file, 1% seed',
  CP: 'cp --sparse=always',
  QEMU: 'qemu-img convert -O raw',
  QEMU_DURABLE: 'qemu-img convert -O raw -t writeback (flushes at the end)',
  NBDCOPY: 'nbdcopy --flush (a new copy, flushed)',
  FLOOR: 'floor: dd O_DIRECT write + fdatasync, O_DIRECT read-back',
  B3SUM: 'b3sum (hash limit)',
  XXH: 'xxhsum -H128 (hash limit)',
  CAT1: 'cat disk > /dev/null',
  CAT2: 'cat disk seed > /dev/null',
} as const

/** A row of this section; vdrep rows also carry what the engine itself reported. */
export interface LocalBenchRow extends BenchRow {
  /** Median of the `seconds` vdrep reports in its JSON (no process start-up). */
  engineSeconds?: number
  /** Bytes vdrep sent in the last run. */
  bytesSent?: number
}

/** A ratio the issue sets a target for, judged on median wall time. */
export interface BenchCheck {
  label: string
  /** The measured ratio (undefined when a case was skipped). */
  ratio?: number
  target: string
  pass?: boolean
  note?: string
}

type Log = (line: string) => void

interface VdrepRun {
  wall: number
  engine: number
  bytesSent: number
  blocksDiffering: number
  blocksZeroed: number
  /** The machine's busy CPU-seconds over the run (machineBusySeconds), where measured. */
  cpu?: number
}

/** Run the vdrep binary; resolves with its stdout, rejects with its stderr on a non-zero exit. */
function runVdrep(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(VDREP_BIN, [...args], {stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`vdrep ${args.join(' ')} exited ${code}:\n${out}${err}`))))
  })
}

/** A case folder: a hard link to the one source disk (so its .psf is its own), a replica folder, `vdrep init`. */
async function vdrepCase(work: string, name: string, source: string): Promise<{disk: string; replica: string}> {
  const dir = path.join(work, name)
  await fs.mkdir(path.join(dir, 'replica'), {recursive: true})
  const disk = path.join(dir, 'disk.img')
  await fs.link(source, disk)
  const replica = path.join(dir, 'replica', 'disk.img')
  await runVdrep(['init', disk, '--to', replica, '--block-size', String(BENCH_BLOCK_SIZE), '--json'])
  return {disk, replica}
}

async function removeReplica(replica: string): Promise<void> {
  await fs.rm(replica, {force: true})
  await fs.rm(`${replica}.vdrep`, {force: true})
}

/** The seed as a user would have it: an older copy, no vdrep state, flushed to disk (so no run pays for another's writeback). */
async function restoreSeed(seedMaster: string, replica: string): Promise<void> {
  await removeReplica(replica)
  sh(`cp --sparse=always '${seedMaster}' '${replica}' && sync '${replica}'`)
}

async function timeVdrep(runs: number, disk: string, settle: number, prepare?: () => Promise<void>): Promise<VdrepRun[]> {
  const out: VdrepRun[] = []
  for (let i = 0; i < runs; i++) {
    if (prepare) await prepare()
    settleMemory(settle)
    const c = machineBusySeconds()
    const t = performance.now()
    const stdout = await runVdrep(['fullsync', disk, '--json'])
    const wall = (performance.now() - t) / 1000
    const c2 = machineBusySeconds()
    const r = JSON.parse(stdout) as {seconds: number; bytesSent: number; blocksDiffering: number; blocksZeroed: number}
    const cpu = c === undefined || c2 === undefined ? undefined : c2 - c
    out.push({wall, engine: r.seconds, bytesSent: r.bytesSent, blocksDiffering: r.blocksDiffering, blocksZeroed: r.blocksZeroed, cpu})
  }
  return out
}

function vdrepRow(name: string, runs: VdrepRun[], bytes: number): LocalBenchRow {
  const cpu = runs.flatMap((x) => (x.cpu === undefined ? [] : [x.cpu]))
  const r: LocalBenchRow = row(
    LOCAL_SECTION,
    name,
    runs.map((x) => x.wall),
    bytes,
    undefined,
    cpu,
  )
  const engines = [...runs.map((x) => x.engine)].sort((a, b) => a - b)
  const m = Math.floor(engines.length / 2)
  r.engineSeconds = engines.length % 2 ? engines[m] : (engines[m - 1] + engines[m]) / 2
  const last = runs[runs.length - 1]
  r.bytesSent = last.bytesSent
  r.note = `sent ${(r.bytesSent / 1e6).toFixed(1)} MB (${((r.bytesSent / bytes) * 100).toFixed(2)}%): ${last.blocksDiffering} blocks as data, ${last.blocksZeroed} as zero runs`
  return r
}

function skipped(name: string, why: string): BenchRow {
  return {section: LOCAL_SECTION, name, seconds: NaN, bytes: 0, runs: [], note: `skipped: ${why}`}
}

/** Time a shell command (after `prepare`, untimed), or skip it with a note when its tool is missing. */
async function shellCase(
  rows: BenchRow[],
  log: Log,
  runs: number,
  name: string,
  tool: string,
  cmd: string,
  bytes: number,
  prepare?: () => Promise<void> | void,
): Promise<void> {
  // Its memory settled (bench-common settleMemory) before every run, as vdrep's runs are.
  if (!have(tool)) {
    log(`skipping ${name}: ${tool} is not installed`)
    rows.push(skipped(name, `${tool} is not installed`))
    return
  }
  log(`timing ${name}`)
  const cpu: number[] = []
  rows.push(row(LOCAL_SECTION, name, await timeRuns(runs, () => void sh(cmd), prepare, cpu, settleBytesFor(bytes)), bytes, undefined, cpu))
}

function cmpOrThrow(a: string, b: string, what: string): void {
  try {
    sh(`cmp '${a}' '${b}'`)
  } catch {
    throw new Error(`${what}: the replica ${b} differs from the source ${a} after the runs`)
  }
}

export async function runLocalBench(opts: BenchOptions & {log?: Log}): Promise<BenchRow[]> {
  const log: Log = opts.log ?? (() => {})
  const {size, runs} = opts
  const work = opts.workDir
  await fs.mkdir(work, {recursive: true})
  const source = path.join(work, 'disk.img')
  const seedMaster = path.join(work, 'seed.img')
  const scratch = path.join(work, 'scratch.img')
  const blocks = Math.ceil(size / BENCH_BLOCK_SIZE)
  const changed = Math.max(1, Math.round(blocks * SEED_CHANGED))

  log(`generating a ${(size / 2 ** 20).toFixed(0)} MiB mixed disk and a seed with ${changed} of ${blocks} blocks changed`)
  await makeMixedDisk(source, size, 'bench')
  sh(`cp --sparse=always '${source}' '${seedMaster}'`)
  await scribbleBlocks(seedMaster, BENCH_BLOCK_SIZE, changed, 'bench-seed')
  sh(`sync '${source}' '${seedMaster}' && cat '${source}' '${seedMaster}' > /dev/null`) // flushed, then warm

  const rows: BenchRow[] = []

  log(`timing ${LocalCase.START}`)
  rows.push(row(LOCAL_SECTION, LocalCase.START, await timeRuns(runs, () => runVdrep(['--version']).then(() => {})), 0, 'node + oclif, no work'))
  await shellCase(rows, log, runs, LocalCase.NODE, 'node', `'${process.execPath}' -e 0`, 0)

  const fresh = await vdrepCase(work, 'fresh', source)
  log(`timing ${LocalCase.FRESH}`)
  rows.push(vdrepRow(LocalCase.FRESH, await timeVdrep(runs, fresh.disk, settleBytesFor(size), () => removeReplica(fresh.replica)), size))
  cmpOrThrow(source, fresh.replica, LocalCase.FRESH)

  const seed = await vdrepCase(work, 'seed', source)
  log(`timing ${LocalCase.SEED}`)
  rows.push(vdrepRow(LocalCase.SEED, await timeVdrep(runs, seed.disk, settleBytesFor(size), () => restoreSeed(seedMaster, seed.replica)), size))
  cmpOrThrow(source, seed.replica, LocalCase.SEED)

  const same = await vdrepCase(work, 'identical', source)
  sh(`cp --sparse=always '${source}' '${same.replica}' && sync '${same.replica}'`)
  log(`timing ${LocalCase.IDENTICAL}`)
  rows.push(vdrepRow(LocalCase.IDENTICAL, await timeVdrep(runs, same.disk, settleBytesFor(size)), size))
  cmpOrThrow(source, same.replica, LocalCase.IDENTICAL)

  await shellCase(rows, log, runs, LocalCase.RSYNC, 'rsync', `rsync --inplace --no-whole-file '${source}' '${scratch}'`, size, () =>
    restoreSeed(seedMaster, scratch),
  )
  await shellCase(rows, log, runs, LocalCase.CP, 'cp', `cp --sparse=always '${source}' '${scratch}'`, size, () => removeReplica(scratch))
  await shellCase(rows, log, runs, LocalCase.QEMU, 'qemu-img', `qemu-img convert -f raw -O raw '${source}' '${scratch}'`, size, () => removeReplica(scratch))
  // The same copy made durable (qemu-img's default cache mode for convert is "unsafe": it
  // never flushes). vdrep's replica is fdatasynced before its proof, so this is the like-for-like peer.
  await shellCase(rows, log, runs, LocalCase.QEMU_DURABLE, 'qemu-img', `qemu-img convert -t writeback -f raw -O raw '${source}' '${scratch}'`, size, () =>
    removeReplica(scratch),
  )
  // Issue 21's peer for a new replica: libnbd's copier, flushed at the end as vdrep's replica is.
  await shellCase(rows, log, runs, LocalCase.NBDCOPY, 'nbdcopy', `nbdcopy --flush '${source}' '${scratch}'`, size, () => removeReplica(scratch))
  // The device work a proved new replica cannot avoid: its data written past the page cache and
  // read back from the device (1 MiB at a time; vdrep keeps 3 writes and 4 reads in flight).
  // nbdcopy writes into the page cache and flushes; it reads nothing back.
  await shellCase(
    rows,
    log,
    runs,
    LocalCase.FLOOR,
    'dd',
    `dd if='${source}' of='${scratch}' bs=1M oflag=direct conv=sparse,fdatasync status=none && dd if='${scratch}' of=/dev/null bs=1M iflag=direct status=none`,
    size,
    () => removeReplica(scratch),
  )
  await removeReplica(scratch)
  await shellCase(rows, log, runs, LocalCase.B3SUM, 'b3sum', `b3sum '${source}' > /dev/null`, size)
  await shellCase(rows, log, runs, LocalCase.XXH, 'xxhsum', `xxhsum -H128 '${source}' > /dev/null`, size)
  await shellCase(rows, log, runs, LocalCase.CAT1, 'cat', `cat '${source}' > /dev/null`, size)
  await shellCase(rows, log, runs, LocalCase.CAT2, 'cat', `cat '${source}' '${seedMaster}' > /dev/null`, size)
  return rows
}

/** The targets of issue 2, judged on median wall time (vdrep's start-up included). */
export function localChecks(rows: BenchRow[]): BenchCheck[] {
  const t = (name: string) => {
    const r = rows.find((x) => x.name === name)
    return r && Number.isFinite(r.seconds) ? r.seconds : undefined
  }
  const check = (label: string, target: string, num: string, den: string, ok: (ratio: number) => boolean): BenchCheck => {
    const a = t(num)
    const b = t(den)
    if (a === undefined || b === undefined) return {label, target, note: `skipped: ${a === undefined ? num : den} did not run`}
    const ratio = a / b
    return {label, ratio, target, pass: ok(ratio)}
  }
  return [
    check('rsync 1% seed / vdrep 1% seed', '>= 3x', LocalCase.RSYNC, LocalCase.SEED, (r) => r >= 3),
    check('vdrep 1% seed / cat disk seed', '<= 2x', LocalCase.SEED, LocalCase.CAT2, (r) => r <= 2),
    check('vdrep fresh / qemu-img convert', '<= 1.5x', LocalCase.FRESH, LocalCase.QEMU, (r) => r <= 1.5),
    check('vdrep fresh / nbdcopy --flush', '<= 1.3x', LocalCase.FRESH, LocalCase.NBDCOPY, (r) => r <= 1.3),
  ]
}

/** Ratios printed for context, without a target. */
export function localContext(rows: BenchRow[]): string[] {
  const get = (name: string) => rows.find((x) => x.name === name) as LocalBenchRow | undefined
  const out: string[] = []
  const start = get(LocalCase.START)
  for (const name of [LocalCase.FRESH, LocalCase.SEED, LocalCase.IDENTICAL]) {
    const r = get(name)
    if (r?.engineSeconds !== undefined) out.push(`${name}: engine ${r.engineSeconds.toFixed(2)} s of ${r.seconds.toFixed(2)} s wall`)
  }
  const seed = get(LocalCase.SEED)
  const cat2 = get(LocalCase.CAT2)
  if (seed?.engineSeconds !== undefined && cat2 && Number.isFinite(cat2.seconds)) {
    out.push(`engine-only 1% seed / cat disk seed: ${(seed.engineSeconds / cat2.seconds).toFixed(2)}x`)
  }
  const fresh = get(LocalCase.FRESH)
  const qemu = get(LocalCase.QEMU)
  if (fresh?.engineSeconds !== undefined && qemu && Number.isFinite(qemu.seconds)) {
    out.push(`engine-only fresh / qemu-img convert: ${(fresh.engineSeconds / qemu.seconds).toFixed(2)}x`)
  }
  const durable = get(LocalCase.QEMU_DURABLE)
  if (fresh && durable && Number.isFinite(durable.seconds)) {
    out.push(`fresh / qemu-img convert -t writeback (both durable): ${(fresh.seconds / durable.seconds).toFixed(2)}x`)
  }
  if (qemu && durable && Number.isFinite(qemu.seconds) && Number.isFinite(durable.seconds)) {
    // The fresh target compares a replica that is flushed before exit (the resume point and
    // the proof depend on it) with a copy that is not: where qemu-img's own flushed copy takes
    // more than 1.5x its unflushed one, no copy that flushes can meet the target.
    out.push(`qemu-img convert -t writeback / qemu-img convert (the cost of flushing alone): ${(durable.seconds / qemu.seconds).toFixed(2)}x`)
  }
  const floor = get(LocalCase.FLOOR)
  const nbdcopy = get(LocalCase.NBDCOPY)
  if (fresh && floor && nbdcopy && Number.isFinite(floor.seconds) && Number.isFinite(nbdcopy.seconds)) {
    // Above 1.3x here, the fresh target is below what any replica proved from its disk can reach.
    out.push(`fresh / floor: ${(fresh.seconds / floor.seconds).toFixed(2)}x; floor / nbdcopy --flush: ${(floor.seconds / nbdcopy.seconds).toFixed(2)}x`)
  }
  const cpuOf = (name: string) => {
    const r = get(name)
    return r?.cpuSeconds === undefined || !Number.isFinite(r.seconds)
      ? undefined
      : `${name} ${r.cpuSeconds.toFixed(2)} (${(r.cpuSeconds / r.seconds).toFixed(2)} busy)`
  }
  const cpus = [LocalCase.FRESH, LocalCase.QEMU, LocalCase.QEMU_DURABLE, LocalCase.NBDCOPY, LocalCase.SEED, LocalCase.RSYNC]
    .map(cpuOf)
    .filter((x) => x !== undefined)
  if (cpus.length) out.push(`machine CPU-s per run, and CPUs busy on average: ${cpus.join('; ')}`)
  if (start) out.push(`start-up (node + oclif, vdrep --version): ${start.seconds.toFixed(2)} s`)
  // Node 20 parses NODE_EXTRA_CA_CERTS at every start (~0.1 s here for Debian's bundle);
  // vdrep's shebang drops it (it makes no TLS connections), a plain `node` process pays it.
  if (process.env.NODE_EXTRA_CA_CERTS) out.push(`NODE_EXTRA_CA_CERTS is set: "${LocalCase.NODE}" pays for loading it, vdrep (bin/run.js's shebang) does not`)
  return out
}
