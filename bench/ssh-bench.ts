// The ssh section of `npm run bench`: vdrep full sync over SSH loopback (a real OpenSSH
// sshd from the test harness, `vdrep serve` on free ports) beside OpenSSH's own pipe
// (`ssh host 'cat > /dev/null' < disk`), a bare ssh2 channel pushing the same bytes (ssh2's
// own limit, into a discard server on the replica side) and rsync over SSH on the same seed.
//
//   node dist/bench/ssh-bench.js [--size 1G] [--runs 3] [--dir DIR]
//
// All runs are page-cache warm; vdrep's wall time includes node + oclif start-up, the SSH
// login and the fdatasync of the replica.
import {spawn, type ChildProcess} from 'node:child_process'
import {createReadStream} from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import ssh2 from 'ssh2'
import type {CipherAlgorithm} from 'ssh2'
import {have, machineBusySeconds, mbps, median, row, settleBytesFor, settleMemory, sh, timeRuns, type BenchOptions, type BenchRow} from './bench-common.js'
import {VDREP_BIN} from '../test/helpers/cli.js'
import {makeMixedDisk, scribbleBlocks, seededBytes} from '../test/helpers/disks.js'
import {freePort, startSshd, type Sshd} from '../test/helpers/sshd.js'
import {parseSize} from '../src/core/util/units.js'

export const SSH_SECTION = 'ssh'
const BLOCK = 64 * 1024
const AES = 'aes128-gcm@openssh.com'
const CHACHA = 'chacha20-poly1305@openssh.com'

export const SshCase = {
  FRESH: 'vdrep fullsync over ssh, fresh target (mixed disk)',
  SEED: 'vdrep fullsync over ssh, 1% seed (mixed disk)',
  FRESH_NONE: 'vdrep fullsync over ssh, fresh target (mixed disk), --compress none',
  SEED_NONE: 'vdrep fullsync over ssh, 1% seed (mixed disk), --compress none',
  RANDOM: 'vdrep fullsync over ssh, fresh target (random disk)',
  PIPE: 'ssh cat > /dev/null < mixed disk (OpenSSH default cipher)',
  PIPE_AES: 'ssh -c aes128-gcm cat > /dev/null < mixed disk',
  PIPE_RANDOM: 'ssh cat > /dev/null < random disk (OpenSSH default cipher)',
  SSH2: 'bare ssh2 channel, random disk (aes128-gcm)',
  SSH2_CHACHA: 'bare ssh2 channel, random disk (chacha20-poly1305)',
  SSH2_TWO: 'bare ssh2, 2 connections in parallel, random disk (aes128-gcm)',
  RSYNC: 'rsync --inplace --no-whole-file over ssh, 1% seed',
  DD: 'ssh dd of=replica conv=fdatasync < mixed disk (a new copy, flushed)',
} as const

export interface SshBenchRow extends BenchRow {
  /** Medians of each process's CPU-seconds per GB written (vdrep's client, `vdrep serve`, sshd's sessions). */
  cpuPerGB?: {client: number; serve: number; sshd: number}
  /** Median of the `seconds` vdrep reports itself (no process start-up). */
  engineSeconds?: number
  bytesSent?: number
}

export interface SshBenchCheck {
  label: string
  ratio?: number
  target: string
  pass?: boolean
  note?: string
}

type Log = (line: string) => void

/** Run the vdrep binary; resolves with stdout, rejects with both streams on a non-zero exit. */
export function runVdrep(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(VDREP_BIN, [...args], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, ...env}})
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`vdrep ${args.join(' ')} exited ${code}:\n${out}${err}`))))
  })
}

/** Run the vdrep binary under /usr/bin/time: stdout, and the CPU-seconds (user + system) it used. */
export function runVdrepTimed(args: string[], env: NodeJS.ProcessEnv): Promise<{out: string; cpu: number}> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', 'VDREP_CPU %U %S', VDREP_BIN, ...args], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, ...env}})
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      const m = /VDREP_CPU ([\d.]+) ([\d.]+)/.exec(err)
      if (code !== 0 || !m) return reject(new Error(`vdrep ${args.join(' ')} exited ${code}:\n${out}${err}`))
      resolve({out, cpu: Number(m[1]) + Number(m[2])})
    })
  })
}

/** A process's CPU-seconds (user + system) from /proc, its own or its reaped children's (sshd's sessions). */
export async function procCpu(pid: number, children = false): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const tick = 100 // USER_HZ on Linux
  return children ? (Number(f[13]) + Number(f[14])) / tick : (Number(f[11]) + Number(f[12])) / tick
}

/** Start `vdrep serve` and wait for its readiness line (killed if it does not come). */
export async function startServe(root: string, ports: [number, number]): Promise<ChildProcess> {
  const child = spawn(VDREP_BIN, ['serve', '--root', root, '--fullsync-port', String(ports[0]), '--delta-port', String(ports[1])], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const end = Date.now() + 15_000
  while (!/listening on/.test(err)) {
    if (child.exitCode !== null || Date.now() > end) {
      child.kill('SIGKILL')
      throw new Error(`vdrep serve did not start: ${err}`)
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  return child
}

/** A discard server in its own process (the replica side): counts bytes, answers the count at EOF. */
async function startDiscard(port: number): Promise<ChildProcess> {
  const code = `require('net').createServer((s) => { let n = 0; s.on('data', (d) => { n += d.length }); s.on('end', () => s.end(String(n))) }).listen(${port}, '127.0.0.1', () => process.stdout.write('ready\\n'))`
  const child = spawn(process.execPath, ['-e', code], {stdio: ['ignore', 'pipe', 'inherit']})
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve())
    child.once('exit', (c) => reject(new Error(`discard server exited ${c}`)))
  })
  return child
}

/** Push [start, end) of a file through one direct-tcpip channel of a fresh ssh2 connection. */
async function ssh2Push(sshd: Sshd, key: Buffer, cipher: string, discardPort: number, file: string, start: number, end: number): Promise<void> {
  const client = new ssh2.Client()
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve).once('error', reject)
    client.connect({
      host: sshd.host,
      port: sshd.port,
      username: sshd.user,
      privateKey: key,
      hostVerifier: () => true,
      algorithms: {cipher: [cipher as CipherAlgorithm]},
    })
  })
  try {
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      client.forwardOut('127.0.0.1', 0, '127.0.0.1', discardPort, (err, c) => (err ? reject(err) : resolve(c))),
    )
    const answer = new Promise<string>((resolve, reject) => {
      let text = ''
      ch.on('data', (d: Buffer) => (text += d.toString()))
      ch.once('close', () => resolve(text))
      ch.once('error', reject)
    })
    createReadStream(file, {start, end: end - 1, highWaterMark: 4 << 20}).pipe(ch)
    const got = Number(await answer)
    if (got !== end - start) throw new Error(`the discard server got ${got} of ${end - start} bytes`)
  } finally {
    client.end()
  }
}

type VdrepRun = {wall: number; engine: number; bytesSent: number; cpu?: number; procs?: {client: number; serve: number; sshd: number}}

function vdrepRow(name: string, runs: VdrepRun[], bytes: number): SshBenchRow {
  const cpu = runs.flatMap((x) => (x.cpu === undefined ? [] : [x.cpu]))
  const r: SshBenchRow = row(
    SSH_SECTION,
    name,
    runs.map((x) => x.wall),
    bytes,
    undefined,
    cpu,
  )
  r.engineSeconds = median(runs.map((x) => x.engine))
  r.bytesSent = runs[runs.length - 1].bytesSent
  r.note = `sent ${(r.bytesSent / 1e6).toFixed(1)} MB; engine ${r.engineSeconds.toFixed(2)} s (${(bytes / 1e6 / r.engineSeconds).toFixed(0)} MB/s)`
  const procs = runs.flatMap((x) => (x.procs && x.bytesSent > 0 ? [{...x.procs, gb: x.bytesSent / 1e9}] : []))
  if (procs.length > 0) {
    r.cpuPerGB = {
      client: median(procs.map((x) => x.client / x.gb)),
      serve: median(procs.map((x) => x.serve / x.gb)),
      sshd: median(procs.map((x) => x.sshd / x.gb)),
    }
    r.note += `; CPU-s per GB written: client ${r.cpuPerGB.client.toFixed(2)}, serve ${r.cpuPerGB.serve.toFixed(2)}, sshd ${r.cpuPerGB.sshd.toFixed(2)}`
  }
  return r
}

export async function runSshBench(opts: BenchOptions & {log?: Log}): Promise<BenchRow[]> {
  const log: Log = opts.log ?? (() => {})
  const {size, runs} = opts
  const work = opts.workDir
  const root = path.join(work, 'root')
  const home = path.join(work, 'home')
  await fs.mkdir(root, {recursive: true})
  await fs.mkdir(home, {recursive: true})
  const mixed = path.join(work, 'mixed.img')
  const seed = path.join(work, 'seed.img')
  const random = path.join(work, 'random.img')
  const changed = Math.max(1, Math.round(Math.ceil(size / BLOCK) * 0.01))
  log(`ssh: generating a ${(size / 2 ** 20).toFixed(0)} MiB mixed disk, a 1% seed of it and a random disk`)
  await makeMixedDisk(mixed, size, 'bench')
  sh(`cp --sparse=always '${mixed}' '${seed}'`)
  await scribbleBlocks(seed, BLOCK, changed, 'bench-seed')
  const fh = await fs.open(random, 'w')
  for (let off = 0; off < size; off += 64 << 20) {
    const n = Math.min(64 << 20, size - off)
    await fh.write(seededBytes(`random:${off}`, n), 0, n, off)
  }
  await fh.close()
  sh(`sync && cat '${mixed}' '${seed}' '${random}' > /dev/null`)

  const sshd = await startSshd()
  const key = await fs.readFile(sshd.clientKey.path)
  const ports: [number, number] = [await freePort(), await freePort()]
  const discardPort = await freePort()
  const serve = await startServe(root, ports)
  const discard = await startDiscard(discardPort)
  const env = {HOME: home, SSH_AUTH_SOCK: ''}
  const sshCmd = `ssh -p ${sshd.port} -i '${sshd.clientKey.path}' -o UserKnownHostsFile='${sshd.knownHostsFile}' -o BatchMode=yes -o StrictHostKeyChecking=yes`
  const rows: BenchRow[] = []
  try {
    const vdrepCase = async (name: string, source: string, replicaName: string, prepare: (replica: string) => Promise<void>, extra: string[] = []) => {
      const dir = path.join(work, replicaName)
      await fs.mkdir(dir, {recursive: true})
      const disk = path.join(dir, 'disk.img')
      await fs.link(source, disk)
      const replica = path.join(root, `${replicaName}.img`)
      await runVdrep(
        [
          'init',
          disk,
          '--to',
          `${sshd.user}@127.0.0.1:${sshd.port}:${replica}`,
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
      log(`timing ${name}`)
      const out: VdrepRun[] = []
      for (let i = 0; i < runs; i++) {
        await prepare(replica)
        settleMemory(settleBytesFor(size))
        const [s, d] = [await procCpu(serve.pid as number), await procCpu(sshd.pid, true)]
        const c = machineBusySeconds()
        const t = performance.now()
        const {out: json, cpu: client} = await runVdrepTimed(['fullsync', disk, '--json', ...extra], env)
        const wall = (performance.now() - t) / 1000
        const c2 = machineBusySeconds()
        await new Promise((res) => setTimeout(res, 200)) // sshd reaps the session: its CPU lands in cutime
        const procs = {client, serve: (await procCpu(serve.pid as number)) - s, sshd: (await procCpu(sshd.pid, true)) - d}
        const r = JSON.parse(json) as {seconds: number; bytesSent: number}
        out.push({wall, engine: r.seconds, bytesSent: r.bytesSent, cpu: c === undefined || c2 === undefined ? undefined : c2 - c, procs})
      }
      sh(`cmp '${source}' '${replica}'`)
      rows.push(vdrepRow(name, out, size))
      await removeReplica(replica)
    }
    await vdrepCase(SshCase.FRESH, mixed, 'fresh', removeReplica)
    await vdrepCase(SshCase.SEED, mixed, 'seed', (r) => restoreSeed(seed, r))
    // The same cases without compression: auto (the default) must never be slower on loopback.
    await vdrepCase(SshCase.FRESH_NONE, mixed, 'fresh-none', removeReplica, ['--compress', 'none'])
    await vdrepCase(SshCase.SEED_NONE, mixed, 'seed-none', (r) => restoreSeed(seed, r), ['--compress', 'none'])
    await vdrepCase(SshCase.RANDOM, random, 'random', removeReplica)

    const shell = async (name: string, cmd: string, prepare?: () => Promise<void>) => {
      log(`timing ${name}`)
      const cpu: number[] = []
      rows.push(row(SSH_SECTION, name, await timeRuns(runs, () => void sh(cmd), prepare, cpu, settleBytesFor(size)), size, undefined, cpu))
    }
    await shell(SshCase.PIPE, `${sshCmd} ${sshd.user}@127.0.0.1 'cat > /dev/null' < '${mixed}'`)
    await shell(SshCase.PIPE_AES, `${sshCmd} -c ${AES} ${sshd.user}@127.0.0.1 'cat > /dev/null' < '${mixed}'`)
    const ddDest = path.join(root, 'dd.img')
    await shell(SshCase.DD, `${sshCmd} ${sshd.user}@127.0.0.1 'dd of=${ddDest} bs=1M conv=fdatasync status=none' < '${mixed}'`, () => removeReplica(ddDest))
    await removeReplica(ddDest)
    await shell(SshCase.PIPE_RANDOM, `${sshCmd} ${sshd.user}@127.0.0.1 'cat > /dev/null' < '${random}'`)

    for (const [name, cipher] of [
      [SshCase.SSH2, AES],
      [SshCase.SSH2_CHACHA, CHACHA],
    ] as const) {
      log(`timing ${name}`)
      const cpu: number[] = []
      rows.push(
        row(
          SSH_SECTION,
          name,
          await timeRuns(runs, () => ssh2Push(sshd, key, cipher, discardPort, random, 0, size), undefined, cpu, settleBytesFor(size)),
          size,
          undefined,
          cpu,
        ),
      )
    }
    log(`timing ${SshCase.SSH2_TWO}`)
    const half = Math.floor(size / 2 / BLOCK) * BLOCK
    const cpuTwo: number[] = []
    rows.push(
      row(
        SSH_SECTION,
        SshCase.SSH2_TWO,
        await timeRuns(
          runs,
          async () => {
            await Promise.all([ssh2Push(sshd, key, AES, discardPort, random, 0, half), ssh2Push(sshd, key, AES, discardPort, random, half, size)])
          },
          undefined,
          cpuTwo,
          settleBytesFor(size),
        ),
        size,
        'one process, two connections (two sshd processes)',
        cpuTwo,
      ),
    )

    if (have('rsync')) {
      const dest = path.join(root, 'rsync.img')
      await shell(SshCase.RSYNC, `rsync --inplace --no-whole-file -e "${sshCmd.replace(/"/g, '\\"')}" '${mixed}' ${sshd.user}@127.0.0.1:'${dest}'`, () =>
        restoreSeed(seed, dest),
      )
      sh(`cmp '${mixed}' '${dest}'`)
      await removeReplica(dest)
    } else {
      rows.push({section: SSH_SECTION, name: SshCase.RSYNC, seconds: NaN, bytes: 0, runs: [], note: 'skipped: rsync is not installed'})
    }
  } finally {
    serve.kill('SIGTERM')
    discard.kill('SIGTERM')
    await sshd.stop()
  }
  return rows
}

async function removeReplica(replica: string): Promise<void> {
  for (const f of [replica, `${replica}.vdrep`, `${replica}.vdrep.lock`]) await fs.rm(f, {force: true})
}

async function restoreSeed(seed: string, replica: string): Promise<void> {
  await removeReplica(replica)
  sh(`cp --sparse=always '${seed}' '${replica}' && sync '${replica}'`)
}

/** The targets of issue 3, on median wall times (vdrep's start-up and login included). */
export function sshChecks(rows: BenchRow[]): SshBenchCheck[] {
  const t = (name: string) => {
    const r = rows.find((x) => x.name === name)
    return r && Number.isFinite(r.seconds) ? r.seconds : undefined
  }
  const check = (label: string, target: string, num: string, den: string, ok: (ratio: number) => boolean): SshBenchCheck => {
    const a = t(num)
    const b = t(den)
    if (a === undefined || b === undefined) return {label, target, note: `skipped: ${a === undefined ? num : den} did not run`}
    const ratio = a / b
    return {label, ratio, target, pass: ok(ratio)}
  }
  return [
    check('mixed disk: vdrep fresh rate / OpenSSH pipe rate', '>= 1x', SshCase.PIPE, SshCase.FRESH, (r) => r >= 1),
    check('random disk: vdrep fresh rate / bare ssh2 channel rate', '>= 0.9x', SshCase.SSH2, SshCase.RANDOM, (r) => r >= 0.9),
    check('rsync over ssh 1% seed / vdrep 1% seed (time)', '>= 2x', SshCase.RSYNC, SshCase.SEED, (r) => r >= 2),
    check('vdrep fresh / ssh | dd conv=fdatasync (time)', '<= 1.1x', SshCase.FRESH, SshCase.DD, (r) => r <= 1.1),
    check('vdrep fresh, auto / none (time; compression never slows loopback)', '<= 1.05x', SshCase.FRESH, SshCase.FRESH_NONE, (r) => r <= 1.05),
    check('vdrep 1% seed, auto / none (time)', '<= 1.05x', SshCase.SEED, SshCase.SEED_NONE, (r) => r <= 1.05),
    serveCpuCheck(rows),
  ]
}

/** Issue 21: `vdrep serve` spends at most 1 CPU-second per GB it writes (a new replica of the mixed disk). */
function serveCpuCheck(rows: BenchRow[]): SshBenchCheck {
  const label = 'vdrep serve CPU-s per GB written, fresh mixed disk'
  const r = rows.find((x) => x.name === SshCase.FRESH) as SshBenchRow | undefined
  if (!r?.cpuPerGB) return {label, target: '<= 1', note: 'skipped: not measured'}
  return {label, ratio: r.cpuPerGB.serve, target: '<= 1', pass: r.cpuPerGB.serve <= 1}
}

/** Ratios for context: engine-only rates, ciphers, more than one connection. */
export function sshContext(rows: BenchRow[]): string[] {
  const get = (name: string) => rows.find((x) => x.name === name) as SshBenchRow | undefined
  const rate = (name: string) => {
    const r = get(name)
    return r && Number.isFinite(r.seconds) ? mbps(r) : undefined
  }
  const out: string[] = []
  const line = (label: string, a?: number, b?: number) => {
    if (a !== undefined && b !== undefined) out.push(`${label}: ${(a / b).toFixed(2)}x`)
  }
  line('OpenSSH pipe: aes128-gcm / default (chacha20) rate', rate(SshCase.PIPE_AES), rate(SshCase.PIPE))
  line('bare ssh2: aes128-gcm / chacha20 rate', rate(SshCase.SSH2), rate(SshCase.SSH2_CHACHA))
  line('bare ssh2: 2 connections / 1 connection rate', rate(SshCase.SSH2_TWO), rate(SshCase.SSH2))
  line('bare ssh2 / OpenSSH pipe rate (random disk)', rate(SshCase.SSH2), rate(SshCase.PIPE_RANDOM))
  for (const name of [SshCase.FRESH, SshCase.RANDOM]) {
    const r = get(name)
    if (r?.engineSeconds !== undefined) out.push(`${name}: engine-only ${(r.bytes / 1e6 / r.engineSeconds).toFixed(0)} MB/s (wall ${mbps(r).toFixed(0)} MB/s)`)
  }
  const rnd = get(SshCase.RANDOM)
  const s2 = get(SshCase.SSH2)
  if (rnd?.engineSeconds !== undefined && s2 && Number.isFinite(s2.seconds))
    out.push(`engine-only random / bare ssh2: ${(s2.seconds / rnd.engineSeconds).toFixed(2)}x`)
  out.push(...cpuContext(rows, os.cpus().length))
  return out
}

/**
 * Where the CPUs go. Every process of a loopback run shares this machine's CPUs: vdrep's
 * client, sshd and `vdrep serve` (which writes, checksums and syncs the replica), against
 * the bare channel's client, sshd and a discard server. A run that needs C CPU-seconds
 * cannot finish on N CPUs in under C/N seconds, however well it overlaps; that bounds the
 * rate any change to vdrep could reach on this machine.
 */
export function cpuContext(rows: BenchRow[], cpus: number): string[] {
  const out: string[] = []
  const get = (name: string) => rows.find((x) => x.name === name)
  for (const name of [SshCase.RANDOM, SshCase.SSH2, SshCase.SSH2_TWO, SshCase.FRESH, SshCase.PIPE]) {
    const r = get(name)
    if (r?.cpuSeconds !== undefined && Number.isFinite(r.seconds)) {
      out.push(`${name}: ${r.cpuSeconds.toFixed(2)} CPU-s of the machine per run (${(r.cpuSeconds / r.seconds).toFixed(2)} of ${cpus} CPUs busy on average)`)
    }
  }
  const rnd = get(SshCase.RANDOM)
  const s2 = get(SshCase.SSH2)
  if (rnd?.cpuSeconds !== undefined && s2 && Number.isFinite(s2.seconds)) {
    const floor = rnd.cpuSeconds / cpus
    out.push(
      `random disk: vdrep's ${rnd.cpuSeconds.toFixed(2)} CPU-s cannot run in under ${floor.toFixed(2)} s on ${cpus} CPUs, ` +
        `so on this machine its rate is bounded by ${(s2.seconds / floor).toFixed(2)}x the bare ssh2 channel's (target 0.9x)`,
    )
  }
  return out
}

async function main(): Promise<number> {
  const {values} = parseArgs({options: {size: {type: 'string', default: '1G'}, runs: {type: 'string', default: '3'}, dir: {type: 'string'}}, strict: true})
  const size = parseSize(values.size, '--size')
  const runs = Number(values.runs)
  const workDir = await fs.mkdtemp(path.join(values.dir ?? '/var/tmp', 'vdrep-ssh-bench-'))
  const log = (l: string) => process.stderr.write(`bench: ${l}\n`)
  log(`${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}, work folder ${workDir}`)
  try {
    const rows = await runSshBench({size, runs, workDir, log})
    const w = (s = '') => process.stdout.write(`${s}\n`)
    w(`== ssh: ${(size / 2 ** 20).toFixed(0)} MiB disks, median of ${runs} run(s), page cache warm`)
    for (const r of rows)
      w(
        `${r.name.padEnd(68)} ${Number.isFinite(r.seconds) ? r.seconds.toFixed(2).padStart(7) : '      -'} s ${r.bytes > 0 && Number.isFinite(r.seconds) ? mbps(r).toFixed(0).padStart(5) : '    -'} MB/s  [${r.runs.map((x) => x.toFixed(2)).join(' ')}]${r.note ? `  ${r.note}` : ''}`,
      )
    w('context:')
    for (const c of sshContext(rows)) w(`  ${c}`)
    w('targets:')
    for (const c of sshChecks(rows))
      w(
        `  ${c.pass === undefined ? 'SKIP' : c.pass ? 'PASS' : 'MISS'}  ${c.label}: ${c.ratio === undefined ? '-' : `${c.ratio.toFixed(2)}x`} (target ${c.target})${c.note ? ` — ${c.note}` : ''}`,
      )
    w(
      JSON.stringify({
        bench: 'vdrep-ssh',
        size,
        runs,
        cpus: os.cpus().length,
        loadavg: Number(os.loadavg()[0].toFixed(2)),
        rows: rows.map((r) => ({...r, mbps: r.bytes > 0 && Number.isFinite(r.seconds) ? Number(mbps(r).toFixed(1)) : null})),
      }),
    )
    return 0
  } finally {
    await fs.rm(workDir, {recursive: true, force: true})
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = await main()
