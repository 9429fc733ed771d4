// Cold starts of `vdrep track` only, two builds interleaved (issue 23): the tracker bench's
// "first write, cold start" rows come after four other phases of each workload and give three
// pairs a run; this gives many, for an A/B of the warm-up or the request path on a loaded host.
// Each round, for each build in turn (the order flips every round): qemu-nbd restarted and one
// run, then the tracker restarted on a cleared record and a cold log, and the same run. Per
// build: the median of vdrep's throughput ÷ that of the qemu-nbd run just before it, the
// tracker's CPU-s in the run (the steadier figure on a shared host), and its start (spawn to
// control socket). --trace DIR runs the tracker under node --trace-opt --trace-deopt (stdout
// unbuffered, to DIR/<build>-<workload>-<round>.log) and notes where the VM's pass starts and
// ends in it (.mark: two byte offsets).
//
//   node dist/bench/tracker-cold-ab.js --a /old/bin/run.js --b bin/run.js [--rounds 8] [--only qd16|qd1] [--trace DIR]
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import {parseArgs} from 'node:util'
import {median} from './bench-common.js'
import {cpuSeconds, logCounters, nbdcopy, resetRecord, stop, strided, waitForSocket, type Workload} from './tracker-bench-setup.js'

const MiB = 1 << 20

interface Run {
  build: string
  workload: string
  ratio: number
  cpu: number
  qemuCpu: number
  startMs: number
}

async function main(): Promise<void> {
  const {values} = parseArgs({
    options: {
      a: {type: 'string'},
      b: {type: 'string'},
      rounds: {type: 'string', default: '8'},
      only: {type: 'string'},
      trace: {type: 'string'},
    },
  })
  if (!values.a || !values.b) throw new Error('--a and --b name the two builds (their bin/run.js)')
  const builds: Array<[string, string]> = [
    ['A', path.resolve(values.a)],
    ['B', path.resolve(values.b)],
  ]
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vdrep-cold-ab-'))
  const disk = path.join(dir, 'tracked.img')
  const qDisk = path.join(dir, 'qemu.img')
  const src = path.join(dir, 'src64.img')
  for (const d of [disk, qDisk]) spawnSync('dd', ['if=/dev/zero', `of=${d}`, 'bs=1M', 'count=1024', 'status=none'])
  spawnSync('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', 'count=192', 'status=none'])
  await fs.mkdir(path.join(dir, 'replica'))
  const init = spawnSync(builds[0][1], ['init', disk, '--to', path.join(dir, 'replica', 'tracked.img'), '-q'], {encoding: 'utf8'})
  if (init.status !== 0) throw new Error(`vdrep init failed: ${init.stderr}`)
  // The tracker bench's seq 64k workloads: nbdcopy at QD16, qemu-img bench at QD1, 192 MiB each.
  const all: Record<string, Workload> = {qd16: nbdcopy(src, 192 * MiB, 64 * 1024, 512 * MiB), qd1: strided(64 * 1024, 3000, 64 * 1024, 1, 512 * MiB)}
  const workloads = Object.entries(all).filter(([k]) => values.only === undefined || values.only === k)
  const qSock = path.join(dir, 'q.sock')
  const vSock = path.join(dir, 'v.sock')
  let qemu: ChildProcess | undefined
  let tracker: ChildProcess | undefined
  const runs: Run[] = []
  const timed = async (w: Workload, sock: string, pid: number | undefined) => {
    spawnSync('sync')
    const before = cpuSeconds(pid)
    const s = await w.run(`nbd+unix:///?socket=${sock}`)
    return {s, cpu: cpuSeconds(pid) - before}
  }
  try {
    for (let r = 0; r < Number(values.rounds); r++) {
      for (const [key, w] of workloads) {
        for (const [build, bin] of r % 2 === 0 ? builds : [...builds].reverse()) {
          await stop(qemu, 'SIGTERM')
          await fs.rm(qSock, {force: true})
          qemu = spawn('qemu-nbd', ['-f', 'raw', '-t', '-k', qSock, qDisk], {stdio: 'ignore'})
          await waitForSocket(qSock, qemu, 'qemu-nbd')
          const q = await timed(w, qSock, qemu.pid)
          await stop(tracker, 'SIGKILL')
          await resetRecord(disk)
          await fs.rm(vSock, {force: true})
          const args = ['track', disk, '--nbd', `unix:${vSock}`, '-q']
          const log = values.trace ? path.join(values.trace, `${build}-${key}-${r}.log`) : undefined
          const fh = log ? await fs.open(log, 'w') : undefined
          const out = fh ? fh.fd : 'ignore'
          const started = performance.now()
          tracker = log
            ? spawn('stdbuf', ['-o0', process.execPath, '--trace-opt', '--trace-deopt', bin, ...args], {stdio: ['ignore', out, out]})
            : spawn(bin, args, {stdio: 'ignore'})
          await fh?.close() // the tracker writes through its own copy
          await waitForSocket(vSock, tracker, 'vdrep track')
          for (
            let i = 0;
            !(await logCounters(disk).then(
              () => true,
              () => false,
            ));
            i++
          ) {
            if (i >= 200) throw new Error('the tracker did not answer on its control socket')
            await new Promise((resolve) => setTimeout(resolve, 25))
          }
          const startMs = performance.now() - started
          const from = log ? (await fs.stat(log)).size : 0
          const v = await timed(w, vSock, tracker.pid)
          if (log) await fs.writeFile(log.replace(/\.log$/, '.mark'), `${from} ${(await fs.stat(log)).size}\n`)
          runs.push({build, workload: key, ratio: q.s / v.s, cpu: v.cpu, qemuCpu: q.cpu, startMs})
        }
      }
    }
  } finally {
    await stop(tracker, 'SIGKILL')
    await stop(qemu, 'SIGTERM')
    await fs.rm(dir, {recursive: true, force: true})
  }
  for (const [key] of workloads) {
    for (const [build, bin] of builds) {
      const rs = runs.filter((x) => x.workload === key && x.build === build)
      const m = (f: (x: Run) => number) => median(rs.map(f))
      process.stdout.write(
        `seq 64k ${key} cold start, ${build} (${bin}): throughput ÷ qemu-nbd median ${m((x) => x.ratio).toFixed(2)}x (${rs.map((x) => x.ratio.toFixed(2)).join(' ')}); ` +
          `tracker ${m((x) => x.cpu).toFixed(2)} CPU-s, qemu-nbd ${m((x) => x.qemuCpu).toFixed(2)}; start ${m((x) => x.startMs).toFixed(0)} ms\n`,
      )
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: Error) => {
    process.stderr.write(`bench: ${err.message}\n`)
    process.exit(1)
  })
}
