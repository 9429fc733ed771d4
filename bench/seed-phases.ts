// Where a 1%-seed full sync's time goes, phase by phase (issue 21): the seed sync of the wan
// bench (wan-setup.ts: the mixed disk, 1% of its written blocks changed in the seed), run with
// VDREP_TRACE=1 on both sides (the client and `vdrep serve`), each mark put on one clock (ms
// since the client was spawned) and the median of each mark over the runs printed.
//
//   node dist/bench/seed-phases.js [--size 1G] [--runs 5] [--rate 1gbit|loopback] [--compress auto] [--ab] [--rt] [--rsync] [--old PATH] [--fresh]
//
// --fresh: the replica is removed before each run instead of seeded (a new replica's full sync).
//
// --old PATH: another build's bin/run.js (e.g. the branch point's worktree): every round runs
// it (its own client and its own `vdrep serve`, on its own ports, root and replica) and then
// this build, over the same link and sshd, and prints each one's marks and the ratio.
//
// --rsync: each round also runs `rsync --inplace --no-whole-file -z` onto the same seed over the
// same sshd (the wan bench's command), and the ratios rsync -z / vdrep are printed.
//
// --rt: the timed processes (the client, serve, sshd and its sessions) run under SCHED_FIFO
// (chrt -f 1), to see the phases as on a quiet machine while others load this one (root; the
// kernel's RT throttling still leaves the rest 5% of each second).
//
// --ab: every round runs the sync twice, with VDREP_HEAD_START=0 (A) and without (B: the head
// start on, disk/head-start.ts), and prints each one's marks and the ratio of the medians.
//
// --rate loopback: sshd and serve on this host's loopback (the ssh bench's setting); else a
// shaped link (test/helpers/netns.ts) with both inside the replica namespace.
import {spawn, type ChildProcess} from 'node:child_process'
import {readFileSync} from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'
import {median, settleBytesFor, settleMemory, sh} from './bench-common.js'
import {change, onePercent, vdrepDisk} from './wan-setup.js'
import {VDREP_BIN} from '../test/helpers/cli.js'
import {makeRealMixedDisk} from '../test/helpers/disks.js'
import {createWan, type Wan} from '../test/helpers/netns.js'
import {freePort, startSshd} from '../test/helpers/sshd.js'
import {parseSize} from '../src/core/util/units.js'

const {values} = parseArgs({
  options: {
    size: {type: 'string', default: '1G'},
    runs: {type: 'string', default: '5'},
    rate: {type: 'string', default: '1gbit'},
    compress: {type: 'string', default: 'auto'},
    dir: {type: 'string'},
    ab: {type: 'boolean', default: false},
    prof: {type: 'string'},
    rt: {type: 'boolean', default: false},
    rsync: {type: 'boolean', default: false},
    old: {type: 'string'},
    fresh: {type: 'boolean', default: false},
  },
})
const size = parseSize(values.size!, '--size')
const runs = Number(values.runs)
const loopback = values.rate === 'loopback'

/** CPU-seconds (user + system) of a live process. */
function procSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'latin1')
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
  return (Number(rest[11]) + Number(rest[12])) / 100
}

/** Spawn a process with VDREP_TRACE=1; collects its trace marks as [epoch ms, name]. */
function traced(argv: string[], marks: Array<[number, string]>, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, ...env, VDREP_TRACE: '1'}})
  let rest = ''
  child.stderr!.on('data', (d: Buffer) => {
    rest += d.toString()
    const lines = rest.split('\n')
    rest = lines.pop()!
    for (const l of lines) {
      const m = /^vdrep-trace \d+ (\d+\.\d) \d+\.\d (.*)$/.exec(l)
      const cpu = /^CPU-s (\S+) (\S+)$/.exec(l)
      if (m) marks.push([Number(m[1]), m[2]])
      else if (cpu) marks.push([Date.now(), `CPU-s ${(Number(cpu[1]) + Number(cpu[2])).toFixed(2)}`])
      else if (l.includes('listening on')) marks.push([Date.now(), 'listening'])
    }
  })
  child.stdout!.resume()
  return child
}

/**
 * The run's spans, each from one mark to the next of the same run (a median of marks taken over
 * runs mixes runs; a span's median does not): spawn to the command's start, to the login, the
 * HELLO, the stream, the receiver's verdict, and from the verdict to the exit.
 */
function spans(all: Array<[number, string]>, spawnAt: number, exitAt: number): Array<[string, number]> {
  const at = (name: string) => all.find(([, n]) => n === name)?.[0]
  const points: Array<[string, number | undefined]> = [
    ['command starts', at('client command fullsync starts')],
    ['logged in', at('client ssh: logged in')],
    ['HELLO answered', at('client fullsync: HELLO answered')],
    ['every chunk decided', at('client stream: every chunk decided')],
    ['VERIFY_RESULT sent', at('serve  receiver: VERIFY_RESULT')],
    ['exit', exitAt],
  ]
  const out: Array<[string, number]> = []
  let prev: [string, number] = ['spawn', spawnAt]
  for (const [name, t] of points) {
    if (t === undefined) continue
    out.push([`${prev[0]} -> ${name}`, t - prev[1]])
    prev = [name, t]
  }
  return out
}

async function main(): Promise<void> {
  const work = values.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-phases-')))
  const root = path.join(work, 'root')
  const home = path.join(work, 'home')
  await fs.mkdir(root, {recursive: true})
  await fs.mkdir(home, {recursive: true})
  const disk = path.join(work, 'mixed.img')
  const seed = path.join(work, 'seed.img')
  await makeRealMixedDisk(disk, size, 'wan-bench')
  sh(`cp --sparse=always '${disk}' '${seed}'`)
  await change(seed, onePercent(size, 'wan-seed'), 'wan-seed')
  const wan: Wan | undefined = loopback ? undefined : await createWan({rate: values.rate!})
  const sshd = await startSshd(wan ? {netns: wan.ns, listenAddress: wan.replicaIp} : {})
  const env = {HOME: home, SSH_AUTH_SOCK: ''}
  const host = wan ? wan.replicaIp : '127.0.0.1'
  /** One build under test: its bin, its serve (own ports and root) and its source and replica. */
  interface Build {
    bin: string
    serve: ChildProcess
    serveMarks: Array<[number, string]>
    src: string
    replica: string
  }
  const builds: Build[] = []
  const startBuild = async (bin: string, name: string): Promise<Build> => {
    const buildRoot = path.join(root, name)
    const buildWork = path.join(work, name)
    await fs.mkdir(buildRoot, {recursive: true})
    await fs.mkdir(buildWork, {recursive: true})
    const ports: [number, number] = [await freePort(), await freePort()]
    const serveMarks: Array<[number, string]> = []
    const serveArgv = [process.execPath, bin, 'serve', '--root', buildRoot, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])]
    const serve = traced(wan ? wan.inNs(serveArgv) : serveArgv, serveMarks, {})
    builds.push({bin, serve, serveMarks, src: '', replica: ''})
    while (!serveMarks.some(([, n]) => n === 'listening')) await new Promise((r) => setTimeout(r, 25))
    const {src, replica} = await vdrepDisk(buildWork, buildRoot, disk, values.compress!, env, sshd, `${sshd.user}@${host}:${sshd.port}`, ports)
    return Object.assign(builds[builds.length - 1], {src, replica})
  }
  const oldBuild = values.old ? await startBuild(path.resolve(values.old), 'old') : undefined
  const newBuild = await startBuild(VDREP_BIN, 'new')
  // Only the timed processes (sshd's sessions inherit from it): not the setup above.
  if (values.rt) for (const pid of [...builds.map((b) => b.serve.pid!), sshd.pid]) sh(`chrt -f -a -p 1 ${pid}`)
  const variants: Array<[string, NodeJS.ProcessEnv, Build]> = values.ab
    ? [
        ['A (head start off)', {VDREP_HEAD_START: '0'}, newBuild],
        ['B (head start on)', {}, newBuild],
      ]
    : oldBuild
      ? [
          ['A (old)', {}, oldBuild],
          ['B (new)', {}, newBuild],
        ]
      : [['', {}, newBuild]]
  const tables = variants.map(() => new Map<string, number[]>())
  const walls: number[][] = variants.map(() => [])
  const spanRuns: Array<Map<string, number[]>> = variants.map(() => new Map())
  const cpus: number[][] = variants.map(() => [])
  const serveCpus: number[][] = variants.map(() => [])
  const rsyncWalls: number[] = []
  try {
    for (let i = 0; i < runs; i++) {
      for (const [k, [, extra, {bin: vdrepBin, serve, serveMarks, src, replica}]] of variants.entries()) {
        await fs.rm(`${replica}.vdrep`, {force: true})
        if (values.fresh) await fs.rm(replica, {force: true})
        else sh(`cp --sparse=always '${seed}' '${replica}'`)
        sh('sync')
        settleMemory(settleBytesFor(size))
        serveMarks.length = 0
        const marks: Array<[number, string]> = []
        const serveCpu0 = procSeconds(serve.pid!)
        const t0 = performance.timeOrigin + performance.now()
        const rt = values.rt ? ['chrt', '-f', '1'] : []
        const bin = values.prof ? [process.execPath, '--cpu-prof', `--cpu-prof-dir=${values.prof}`, vdrepBin] : [vdrepBin]
        const child = traced([...rt, '/usr/bin/time', '-f', 'CPU-s %U %S', ...bin, 'fullsync', src, '--json'], marks, {...env, ...extra})
        const cpuMark = () => marks.find(([, n]) => n.startsWith('CPU-s'))
        const code = await new Promise<number | null>((r) => child.on('close', r))
        const wall = performance.timeOrigin + performance.now() - t0
        if (code !== 0) throw new Error(`fullsync exited ${code}`)
        walls[k].push(wall)
        cpus[k].push(Number(cpuMark()?.[1].slice(6) ?? NaN))
        serveCpus[k].push(procSeconds(serve.pid!) - serveCpu0)
        marks.splice(
          marks.findIndex(([, n]) => n.startsWith('CPU-s')),
          1,
        )
        const all = [...marks.map(([t, n]): [number, string] => [t, `client ${n}`]), ...serveMarks.map(([t, n]): [number, string] => [t, `serve  ${n}`])]
        for (const [name, d] of spans(all, t0, t0 + wall)) spanRuns[k].set(name, [...(spanRuns[k].get(name) ?? []), d])
        for (const [t, n] of all) {
          const v = tables[k].get(n) ?? []
          v.push(t - t0)
          tables[k].set(n, v)
        }
      }
      if (values.rsync) {
        const dest = path.join(root, 'rsync-z.img')
        sh(`cp --sparse=always '${seed}' '${dest}'`)
        sh('sync')
        settleMemory(settleBytesFor(size))
        const ssh = `ssh -p ${sshd.port} -i '${sshd.clientKey.path}' -o UserKnownHostsFile='${sshd.knownHostsFile}' -o BatchMode=yes -o StrictHostKeyChecking=yes`
        const t0 = performance.now()
        sh(`${values.rt ? 'chrt -f 1 ' : ''}rsync --inplace --no-whole-file -z -e "${ssh.replace(/"/g, '\\"')}" '${disk}' ${sshd.user}@${host}:'${dest}'`)
        rsyncWalls.push(performance.now() - t0)
        sh(`cmp '${disk}' '${dest}'`)
      }
    }
    for (const {src, replica} of builds) sh(`cmp '${src}' '${replica}'`)
  } finally {
    for (const {serve} of builds) serve.kill('SIGTERM')
    await sshd.stop()
    await wan?.close()
  }
  console.log(`seed phases, ${values.rate}, ${values.size}, compress ${values.compress}, ${runs} runs; load ${sh('cat /proc/loadavg').trim()}`)
  for (const [k, [name]] of variants.entries()) {
    console.log(`${name ? `${name}: ` : ''}wall (spawn to exit): median ${median(walls[k]).toFixed(0)} ms; runs ${walls[k].map((w) => w.toFixed(0)).join(' ')}`)
    console.log(`  client CPU-s: median ${median(cpus[k]).toFixed(2)}; runs ${cpus[k].map((c) => c.toFixed(2)).join(' ')}`)
    console.log(`  serve CPU-s: median ${median(serveCpus[k]).toFixed(2)}; runs ${serveCpus[k].map((c) => c.toFixed(2)).join(' ')}`)
    for (const [n, v] of spanRuns[k])
      console.log(`  span ${n.padEnd(34)} median ${median(v).toFixed(0).padStart(4)} ms (${v.map((x) => x.toFixed(0)).join(' ')})`)
    const rows = [...tables[k]].map(([n, v]) => [median(v), n, v] as const).sort((a, b) => a[0] - b[0])
    for (const [m, n, v] of rows) console.log(`${m.toFixed(0).padStart(6)} ms  ${n.padEnd(40)} (${v.map((x) => x.toFixed(0)).join(' ')})`)
  }
  if (values.rsync) {
    console.log(`rsync -z: median ${median(rsyncWalls).toFixed(0)} ms; runs ${rsyncWalls.map((w) => w.toFixed(0)).join(' ')}`)
    for (const [k, [name]] of variants.entries())
      console.log(`rsync -z / vdrep${name ? ` ${name}` : ''}: ${(median(rsyncWalls) / median(walls[k])).toFixed(2)}`)
  }
  if (variants.length === 2) console.log(`B / A medians: ${(median(walls[1]) / median(walls[0])).toFixed(3)}`)
  if (!values.dir) await fs.rm(work, {recursive: true, force: true})
}

await main()
