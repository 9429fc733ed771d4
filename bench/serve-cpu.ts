// Issue 21's serve row on its own, A/B: a new replica of the mixed disk (the ssh bench's disk:
// 40% random, 20% holes, 40% text) over a real sshd on loopback, `vdrep serve`'s CPU-seconds per
// GB written (the bench's figure: serve's user + system over the bytes the client reports sent),
// runs of each build interleaved so both see the same load.
//
//   node dist/bench/serve-cpu.js [--size 1G] [--runs 5] [--compress auto] [--old /path/to/other/worktree]
//
// --old: a second build (its bin/run.js, client and serve both) runs beside this one, first in every other round.
// --perf FILE: this build's serve runs with --perf-basic-prof and `perf record -g` samples it
// from its second run on (the first warms it up), into FILE.
// --node-flags '...': node options for this build's serve (e.g. --trace-opt --trace-deopt);
// --serve-out FILE: its stdout, where V8's traces go. --old-flags '...': node options for the
// old build's serve (with --old naming this worktree: one build, two settings, A/B).
// --new-env 'K=V ...': environment for this build's serve only.
// --case seed: the ssh bench's 1% seed sync instead (the replica restored from a seed, a copy
// of the disk with 1% of its blocks changed, before each run); the figure to watch is its time.
import {spawn, type ChildProcess} from 'node:child_process'
import {openSync, readdirSync, readFileSync} from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'
import {median, settleBytesFor, settleMemory, sh} from './bench-common.js'
import {PROJECT_ROOT} from '../test/helpers/cli.js'
import {makeMixedDisk, scribbleBlocks} from '../test/helpers/disks.js'
import {freePort, startSshd} from '../test/helpers/sshd.js'
import {parseSize} from '../src/core/util/units.js'

const BLOCK = 64 * 1024
const {values} = parseArgs({
  options: {
    size: {type: 'string', default: '1G'},
    runs: {type: 'string', default: '5'},
    compress: {type: 'string', default: 'auto'},
    old: {type: 'string'},
    dir: {type: 'string'},
    perf: {type: 'string'},
    'node-flags': {type: 'string', default: ''},
    'old-flags': {type: 'string', default: ''},
    'new-env': {type: 'string', default: ''},
    case: {type: 'string', default: 'fresh'},
    'serve-out': {type: 'string'},
  },
})

const words = (s: string): string[] => s.split(' ').filter((x) => x !== '')

/** CPU-seconds (user + system) of a live process. */
function procSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'latin1')
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
  return (Number(rest[11]) + Number(rest[12])) / 100
}

/**
 * CPU-seconds of a process's threads in three groups, by creation order: the main thread, the
 * next five (node's V8 platform workers: TurboFan, concurrent marking; and its signal thread),
 * the rest (libuv's pool, the addon's threads). Diagnostic only: node names them all "node".
 */
function threadSeconds(pid: number): [number, number, number] {
  const out: [number, number, number] = [0, 0, 0]
  const tids = readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b)
  tids.forEach((tid, i) => {
    try {
      const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1')
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
      out[i === 0 ? 0 : i <= 5 ? 1 : 2] += (Number(rest[11]) + Number(rest[12])) / 100
    } catch {
      // the thread ended meanwhile
    }
  })
  return out
}

function run(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, ...env}})
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}: ${err}`))))
  })
}

async function startServe(bin: string, root: string, ports: number[], nodeFlags: string[], out?: string, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...nodeFlags, bin, 'serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])], {
    stdio: ['ignore', out === undefined ? 'ignore' : openSync(out, 'w'), 'pipe'],
    env: {...process.env, ...env},
  })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  while (!/listening on/.test(err)) {
    if (child.exitCode !== null) throw new Error(`serve did not start: ${err}`)
    await new Promise((r) => setTimeout(r, 25))
  }
  return child
}

async function main(): Promise<void> {
  const size = parseSize(values.size!, '--size')
  const runs = Number(values.runs)
  const work = values.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-servecpu-')))
  const builds = [
    ...(values.old ? [{name: 'old', bin: path.join(values.old, 'bin', 'run.js')}] : []),
    {name: 'new', bin: path.join(PROJECT_ROOT, 'bin', 'run.js')},
  ]
  const mixed = path.join(work, 'mixed.img')
  const newFlags = [...(values.perf ? ['--perf-basic-prof'] : []), ...words(values['node-flags']!)]
  await makeMixedDisk(mixed, size, 'bench')
  const seed = path.join(work, 'seed.img')
  if (values.case === 'seed') {
    sh(`cp --sparse=always '${mixed}' '${seed}'`)
    await scribbleBlocks(seed, BLOCK, Math.max(1, Math.round(Math.ceil(size / BLOCK) * 0.01)), 'bench-seed')
  }
  sh(`sync && cat '${mixed}' > /dev/null`)
  const sshd = await startSshd()
  const home = path.join(work, 'home')
  await fs.mkdir(home, {recursive: true})
  const env = {HOME: home, SSH_AUTH_SOCK: ''}
  const sides: Array<{name: string; bin: string; serve: ChildProcess; disk: string; replica: string; perGB: number[]; wall: number[]; engine: number[]}> = []
  try {
    for (const b of builds) {
      const root = path.join(work, `root-${b.name}`)
      const dir = path.join(work, `src-${b.name}`)
      await fs.mkdir(root, {recursive: true})
      await fs.mkdir(dir, {recursive: true})
      const disk = path.join(dir, 'disk.img')
      await fs.link(mixed, disk)
      const ports = [await freePort(), await freePort()]
      const replica = path.join(root, 'fresh.img')
      await run(
        b.bin,
        [
          'init',
          disk,
          '--to',
          `${sshd.user}@127.0.0.1:${sshd.port}:${replica}`,
          '--identity',
          sshd.clientKey.path,
          '--known-hosts',
          sshd.knownHostsFile,
        ].concat(['--fullsync-port', String(ports[0]), '--delta-port', String(ports[1]), '--block-size', String(BLOCK)]),
        env,
      )
      sides.push({
        ...b,
        serve: await startServe(
          b.bin,
          root,
          ports,
          b.name === 'new' ? newFlags : words(values['old-flags']!),
          b.name === 'new' ? values['serve-out'] : undefined,
          b.name === 'new' ? Object.fromEntries(words(values['new-env']!).map((kv) => kv.split('='))) : {},
        ),
        disk,
        replica,
        perGB: [],
        wall: [],
        engine: [],
      })
    }
    let perf: ChildProcess | undefined
    for (let i = 0; i < runs; i++) {
      if (i === 1 && values.perf) {
        perf = spawn('perf', ['record', '-g', '-o', values.perf, '-p', String(sides[sides.length - 1].serve.pid)], {stdio: 'ignore'})
        await new Promise((r) => setTimeout(r, 500))
      }
      // Every other round the other build goes first: the second of a pair ran slower (the first one's writeback and idle work overlap it).
      for (const s of i % 2 === 0 ? sides : [...sides].reverse()) {
        for (const f of [s.replica, `${s.replica}.vdrep`, `${s.replica}.vdrep.lock`]) await fs.rm(f, {force: true})
        if (values.case === 'seed') sh(`cp --sparse=always '${seed}' '${s.replica}' && sync '${s.replica}'`)
        settleMemory(settleBytesFor(size))
        const before = procSeconds(s.serve.pid!)
        const threadsBefore = threadSeconds(s.serve.pid!)
        const t = performance.now()
        const out = JSON.parse(await run(s.bin, ['fullsync', s.disk, '--json', '--compress', values.compress!], env)) as {bytesSent: number; seconds: number}
        const wall = (performance.now() - t) / 1000
        // As the ssh bench: serve's CPU 200 ms after the client is done (sshd reaps its session), before serve's idle trim (250 ms)
        await new Promise((r) => setTimeout(r, 200))
        const cpu = procSeconds(s.serve.pid!) - before
        const threads = threadSeconds(s.serve.pid!).map((x, k) => (x - threadsBefore[k]).toFixed(2))
        s.perGB.push(cpu / (out.bytesSent / 1e9))
        s.wall.push(wall)
        s.engine.push(out.seconds)
        if (values['serve-out'] && s.name === 'new') console.log(`serve-out: ${readFileSync(values['serve-out'], 'latin1').split('\n').length} lines`)
        console.log(
          `${s.name} run ${i + 1}: serve ${cpu.toFixed(2)} CPU-s, ${(cpu / (out.bytesSent / 1e9)).toFixed(3)} per GB (main ${threads[0]}, V8 ${threads[1]}, pool ${threads[2]}); wall ${wall.toFixed(2)} s; load ${os.loadavg()[0].toFixed(2)}`,
        )
      }
      if (i === 0) for (const s of sides) sh(`cmp '${s.disk}' '${s.replica}'`)
    }
    if (perf) {
      perf.kill('SIGINT')
      await new Promise((r) => perf!.once('exit', r))
    }
    for (const s of sides)
      console.log(
        `${s.name}: serve CPU-s per GB median ${median(s.perGB).toFixed(3)} [${s.perGB.map((x) => x.toFixed(2)).join(' ')}], wall median ${median(s.wall).toFixed(2)} s, engine median ${median(s.engine).toFixed(3)} s`,
      )
    if (sides.length === 2) {
      const ratio = (xs: number[], ys: number[]) => (median(ys) / median(xs)).toFixed(3)
      console.log(
        `new / old: CPU per GB ${ratio(sides[0].perGB, sides[1].perGB)}, wall ${ratio(sides[0].wall, sides[1].wall)}, engine ${ratio(sides[0].engine, sides[1].engine)}`,
      )
    }
  } finally {
    for (const s of sides) s.serve.kill('SIGTERM')
    await sshd.stop()
    if (!values.dir) await fs.rm(work, {recursive: true, force: true})
  }
}

await main()
