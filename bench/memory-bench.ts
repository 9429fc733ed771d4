// `npm run bench` section "memory": the peak resident memory of every command on a 4 GiB disk
// and a 64 GiB one (issue 21: under 160 MiB on any disk size). The 4 GiB disk is the mixed
// disk (40% random, 20% holes, 40% text); the 64 GiB one is sparse, 256 MiB of data in four
// places. Per size: a fresh local full sync, a 1% push, verify; over SSH (a real sshd on
// loopback) the client's peak in a fresh full sync with --compress auto and none, a 1% seed
// full sync and a 1% push, and `vdrep serve`'s (one serve per size, its VmHWM after all of
// them); `vdrep track` serving the disk while 64 MiB are written through its export and a push
// asks it for its blocks (its VmHWM). With --repeat N every client row is the most of N runs
// (a fresh sync's replica removed before each).
//
//   node dist/bench/memory-bench.js [--dir DIR] [--sizes 4G,64G] [--repeat 3]
import {spawnSync, type ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'
import {have, row, sh, type BenchOptions, type BenchRow} from './bench-common.js'
import {startServe} from './ssh-bench.js'
import {VDREP_BIN} from '../test/helpers/cli.js'
import {makeMixedDisk, scribbleBlocks, seededBytes} from '../test/helpers/disks.js'
import {freePort, startSshd} from '../test/helpers/sshd.js'
import {startTracker} from '../test/core/tracker/tracker-helpers.js'
import {markChanged} from '../test/helpers/change-record.js'
import {parseSize} from '../src/core/util/units.js'

export const MEMORY_SECTION = 'memory'
const MiB = 1 << 20
const BS = 64 * 1024
/** The target (issue 21): every command's peak resident memory below this. */
export const RSS_LIMIT_MIB = 160

type Log = (line: string) => void

/** Run vdrep under /usr/bin/time: its exit status must be 0; returns the peak RSS in MiB. */
function peakOf(args: string[], env: NodeJS.ProcessEnv): number {
  const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS %M', VDREP_BIN, ...args], {env: {...process.env, ...env}, encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`vdrep ${args.join(' ')} exited ${r.status}: ${r.stdout}${r.stderr}`)
  const m = /MAXRSS (\d+)/.exec(r.stderr)
  if (!m) throw new Error(`no peak RSS from /usr/bin/time: ${r.stderr}`)
  return Number(m[1]) / 1024
}

/** A running process's peak resident memory (VmHWM) in MiB. */
async function hwmOf(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8')
  const m = /VmHWM:\s+(\d+) kB/.exec(status)
  if (!m) throw new Error(`no VmHWM for pid ${pid}`)
  return Number(m[1]) / 1024
}

/** The 64 GiB disk: sparse, 256 MiB of data in four places. */
async function makeSparseDisk(file: string, size: number): Promise<void> {
  const fh = await fs.open(file, 'w')
  try {
    await fh.truncate(size)
    const data = seededBytes('memory-sparse', 64 * MiB)
    for (const at of [0, 0.3, 0.6, 0.95]) await fh.write(data, 0, data.length, Math.floor((size * at) / BS) * BS)
  } finally {
    await fh.close()
  }
}

function memRow(name: string, mib: number, size: number): BenchRow {
  // `seconds` holds the MiB (the table's time column) so the row prints; the note says so.
  return {...row(MEMORY_SECTION, name, [mib], size), note: `peak RSS ${mib.toFixed(0)} MiB (limit ${RSS_LIMIT_MIB})`}
}

/** The most of `repeat` runs of `args`, `before` awaited ahead of each. */
async function worstOf(repeat: number, args: string[], env: NodeJS.ProcessEnv, before?: () => Promise<unknown>): Promise<number> {
  let worst = 0
  for (let i = 0; i < repeat; i++) {
    await before?.()
    worst = Math.max(worst, peakOf(args, env))
  }
  return worst
}

async function measureSize(work: string, size: number, log: Log, repeat = 1): Promise<BenchRow[]> {
  const label = `${Math.round(size / 2 ** 30)} GiB`
  const dir = path.join(work, label.replace(' ', ''))
  await fs.rm(dir, {recursive: true, force: true})
  await fs.mkdir(path.join(dir, 'replica'), {recursive: true})
  const env = {HOME: path.join(dir, 'home')}
  await fs.mkdir(env.HOME, {recursive: true})
  const disk = path.join(dir, 'disk.img')
  log(`memory: making the ${label} disk`)
  if (size <= 8 * 2 ** 30) await makeMixedDisk(disk, size, 'memory')
  else await makeSparseDisk(disk, size)
  const rows: BenchRow[] = []
  const add = (name: string, mib: number) => {
    log(`memory: ${label} ${name}: ${mib.toFixed(0)} MiB`)
    rows.push(memRow(`${name} (${label})`, mib, size))
  }
  // Local: fresh full sync, 1% push, verify.
  const replica = path.join(dir, 'replica', 'disk.img')
  peakOf(['init', disk, '--to', replica, '--block-size', String(BS)], env)
  add('fullsync, fresh, local', await worstOf(repeat, ['fullsync', disk, '--json'], env, () => fs.rm(replica, {force: true})))
  const blocks = Math.min(Math.ceil(size / BS / 100), 2048)
  await scribbleBlocks(disk, BS, blocks, 'memory-push')
  add('fullsync, 1% seed, local', peakOf(['fullsync', disk, '--json'], env))
  await markChanged(disk, await scribbleBlocks(disk, BS, blocks, 'memory-push2'))
  add('push, local, 1% marked', peakOf(['push', disk, '--json', '--no-fallback'], env))
  add('verify, local', peakOf(['verify', disk, '--json'], env))
  // The tracker: 64 MiB written through its export, then a push that asks it for its blocks.
  if (have('qemu-io')) {
    const sock = path.join(dir, 'nbd.sock')
    const t = await startTracker(disk, ['--nbd', `unix:${sock}`], env)
    try {
      sh(`qemu-io -f raw 'nbd+unix:///?socket=${sock}' -c 'write -P 7 ${Math.floor(size / 3 / BS) * BS} 64M' >/dev/null`)
      peakOf(['push', disk, '--json'], env)
      add('track (64 MiB written through it, a push)', await hwmOf(t.child.pid as number))
    } finally {
      await t.stop()
    }
  }
  // SSH: the client and serve.
  const sshd = await startSshd()
  const ports: [number, number] = [await freePort(), await freePort()]
  const root = path.join(dir, 'root')
  await fs.mkdir(root, {recursive: true})
  let serve: ChildProcess | undefined
  try {
    serve = await startServe(root, ports)
    const sshDisk = path.join(dir, 'ssh-disk.img')
    await fs.link(disk, sshDisk).catch(async () => fs.copyFile(disk, sshDisk))
    const target = `${sshd.user}@127.0.0.1:${sshd.port}:${path.join(root, 'disk.img')}`
    const common = [
      '--identity',
      sshd.clientKey.path,
      '--known-hosts',
      sshd.knownHostsFile,
      '--fullsync-port',
      String(ports[0]),
      '--delta-port',
      String(ports[1]),
    ]
    peakOf(['init', sshDisk, '--to', target, ...common, '--block-size', String(BS)], env)
    const remote = path.join(root, 'disk.img')
    const fresh = (compress: string) => worstOf(repeat, ['fullsync', sshDisk, '--json', '--compress', compress], env, () => fs.rm(remote, {force: true}))
    add('fullsync, fresh, over SSH, --compress none: the client', await fresh('none'))
    add('fullsync, fresh, over SSH: the client', await fresh('auto'))
    await scribbleBlocks(sshDisk, BS, blocks, 'memory-ssh-seed')
    add('fullsync, 1% seed, over SSH: the client', await worstOf(repeat, ['fullsync', sshDisk, '--json'], env))
    await markChanged(sshDisk, await scribbleBlocks(sshDisk, BS, blocks, 'memory-ssh-push'))
    add('push over SSH: the client', peakOf(['push', sshDisk, '--json', '--no-fallback'], env))
    add('serve (the fresh full sync and the push)', await hwmOf(serve.pid as number))
  } finally {
    serve?.kill('SIGTERM')
    await sshd.stop()
  }
  await fs.rm(dir, {recursive: true, force: true})
  return rows
}

export async function runMemoryBench(opts: BenchOptions & {sizes?: number[]; log?: Log; repeat?: number}): Promise<{rows: BenchRow[]; context: string[]}> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`))
  const sizes = opts.sizes ?? [4 * 2 ** 30, 64 * 2 ** 30]
  const rows: BenchRow[] = []
  for (const size of sizes) rows.push(...(await measureSize(opts.workDir, size, log, opts.repeat)))
  const worst = rows.reduce((a, r) => (r.seconds > a.seconds ? r : a), rows[0])
  return {
    rows,
    context: [
      `peak resident memory, MiB, in the time column; load ${os.loadavg()[0].toFixed(2)}`,
      `worst: ${worst?.name} ${worst?.seconds.toFixed(0)} MiB (limit ${RSS_LIMIT_MIB}): ${rows.every((r) => r.seconds < RSS_LIMIT_MIB) ? 'PASS' : 'MISS'}`,
    ],
  }
}

async function main(): Promise<void> {
  const {values} = parseArgs({options: {dir: {type: 'string'}, sizes: {type: 'string'}, repeat: {type: 'string'}}})
  const workDir = values.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-memory-bench-')))
  const sizes = values.sizes?.split(',').map((s) => parseSize(s, '--sizes'))
  const repeat = Math.max(1, Number(values.repeat ?? 1))
  const {rows, context} = await runMemoryBench({workDir, size: 0, runs: 1, sizes, repeat} as BenchOptions & {sizes?: number[]; repeat?: number})
  for (const r of rows) process.stdout.write(`${r.seconds.toFixed(0).padStart(5)} MiB  ${r.name}\n`)
  for (const c of context) process.stdout.write(`${c}\n`)
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) void main()
