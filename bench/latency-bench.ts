// The latency section of `npm run bench`: round trips per operation at a 20 ms RTT, for both
// SSH carriers (ssh2, OpenSSH) and rsync beside them. The replica host's sshd sits behind the
// delay relay (test/helpers/delay-relay.ts, 10 ms each way; netem is not available here);
// each case runs at 0 ms and at 20 ms, interleaved, and round trips = (median at 20 ms -
// median at 0 ms) / 20 ms. What each operation costs in round trips, and why, is in
// doc/protocol.md ("Round trips").
//
//   node dist/bench/bench.js --only latency [--size 1G] [--runs 3]
//
// One disk and one replica serve every case: the target is an ssh_config Host alias
// (`lat`, HostKeyAlias lat) whose Port is rewritten between the direct sshd and the relay,
// so neither the known_hosts entry nor the replica changes between the two delays.
import {execFile} from 'node:child_process'
import fs from 'node:fs/promises'
import {promisify} from 'node:util'
import path from 'node:path'
import {have, median, sh, type BenchOptions, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'
import {runVdrep, startServe} from './ssh-bench.js'
import {startDelayRelay} from '../test/helpers/delay-relay.js'
import {makeMixedDisk, scribbleBlocks} from '../test/helpers/disks.js'
import {freePort, startSshd} from '../test/helpers/sshd.js'

export const LATENCY_SECTION = 'latency'
const ONE_WAY_MS = 10
const RTT_S = (2 * ONE_WAY_MS) / 1000
const BLOCK = 64 * 1024
const run = promisify(execFile)
/** A shell command, asynchronously: the delay relay runs in this process and must keep running. */
const shAsync = async (cmd: string) => void (await run('bash', ['-c', cmd], {maxBuffer: 16 << 20}))
/** Round trips a push may cost at most: login, tunnel, hello, bundle and commit, and slack. */
const PUSH_RT_TARGET = 12

type Log = (line: string) => void

interface Case {
  name: string
  /** Run before each timed run (untimed): what the operation will find to do. */
  prepare?: (run: number) => Promise<void>
  run: (carrier: string) => Promise<void>
}

export async function runLatencyBench(opts: BenchOptions & {log?: Log}): Promise<{rows: BenchRow[]; checks: BenchCheck[]; context: string[]}> {
  const log: Log = opts.log ?? (() => {})
  const work = opts.workDir
  const size = opts.size
  const root = path.join(work, 'lat-root')
  const home = path.join(work, 'lat-home')
  await fs.mkdir(root, {recursive: true})
  await fs.mkdir(home, {recursive: true})
  const disk = path.join(work, 'lat.img')
  const replica = path.join(root, 'lat.img')
  const rsyncCopy = path.join(work, 'lat-rsync.img')
  await makeMixedDisk(disk, size, 'latency')
  const changed = Math.max(1, Math.round((size / BLOCK) * 0.01))

  const sshd = await startSshd()
  const relay = await startDelayRelay({targetPort: sshd.port, delayMs: ONE_WAY_MS})
  const ports: [number, number] = [await freePort(), await freePort()]
  const serve = await startServe(root, ports)
  const config = path.join(work, 'lat-ssh-config')
  const knownHosts = path.join(work, 'lat-known-hosts')
  await fs.writeFile(knownHosts, `lat ${sshd.hostKeys.ed25519.type} ${sshd.hostKeys.ed25519.blob.toString('base64')}\n`)
  const viaRelay = async (on: boolean) =>
    fs.writeFile(
      config,
      [
        'Host lat',
        '  HostName 127.0.0.1',
        `  Port ${on ? relay.port : sshd.port}`,
        `  User ${sshd.user}`,
        '  HostKeyAlias lat',
        `  UserKnownHostsFile ${knownHosts}`,
        `  IdentityFile ${sshd.clientKey.path}`,
        '  IdentitiesOnly yes',
        '  BatchMode yes',
        '',
      ].join('\n'),
    )
  const env = {HOME: home, SSH_AUTH_SOCK: '', VDREP_SSH_CONFIG: config}
  const vd = (args: string[]) => runVdrep(args, env).then(() => undefined)
  const rows: BenchRow[] = []
  const rt: Record<string, number> = {}
  const turnsOf: Record<string, number> = {}
  // At least 5 runs: the round trips come from the fastest run at each delay.
  const runs = Math.max(5, opts.runs)
  try {
    await viaRelay(false)
    await vd([
      'init',
      disk,
      '--to',
      `lat:${replica}`,
      '--known-hosts',
      knownHosts,
      '--fullsync-port',
      String(ports[0]),
      '--delta-port',
      String(ports[1]),
      '--serve-command',
      'false',
    ])
    await vd(['fullsync', disk])
    sh(`cp --sparse=always '${disk}' '${rsyncCopy}'`)
    const scribble = (count: number, tag: string) => async (run: number) => void (await scribbleBlocks(disk, BLOCK, count, `${tag}-${run}-${Math.random()}`))
    const cases: Case[] = [
      {name: 'push, 1 block', prepare: scribble(1, 'one'), run: (c) => vd(['push', disk, '--ssh', c])},
      {name: 'push, 1%', prepare: scribble(changed, 'pct'), run: (c) => vd(['push', disk, '--ssh', c])},
      {name: 'fullsync, nothing to send', run: (c) => vd(['fullsync', disk, '--ssh', c])},
      {name: 'fullsync, 1% differs', prepare: scribble(changed, 'fs'), run: (c) => vd(['fullsync', disk, '--ssh', c])},
    ]
    const sshOpts = `-F '${config}'`
    const timed = async (name: string, carrier: string, fn: () => Promise<void>, prepare?: (run: number) => Promise<void>) => {
      const at: Record<'0' | '20', number[]> = {'0': [], '20': []}
      const turns: number[] = []
      for (let i = 0; i < runs; i++) {
        for (const on of [false, true]) {
          await viaRelay(on)
          if (prepare) await prepare(i * 2 + Number(on))
          await shAsync('sync')
          const before = relay.turns
          const t = performance.now()
          await fn()
          at[on ? '20' : '0'].push((performance.now() - t) / 1000)
          if (on) turns.push(relay.turns - before)
        }
      }
      // The fastest run at each delay: load on a shared machine only ever adds time.
      const trips = (Math.min(...at['20']) - Math.min(...at['0'])) / RTT_S
      const counted = median(turns)
      rt[`${name} (${carrier})`] = trips
      turnsOf[`${name} (${carrier})`] = counted
      log(
        `latency: ${name} (${carrier}): best ${Math.min(...at['0']).toFixed(3)} s at 0 ms, ${Math.min(...at['20']).toFixed(3)} s at 20 ms RTT: ${trips.toFixed(1)} round trips by time, ${counted} turns`,
      )
      for (const k of ['0', '20'] as const) {
        rows.push({
          section: LATENCY_SECTION,
          name: `${name}, ${carrier}, ${k} ms RTT`,
          seconds: median(at[k]),
          bytes: size,
          runs: at[k],
          note: k === '20' ? `${trips.toFixed(1)} RT by time (best runs), ${counted} turns` : undefined,
        })
      }
    }
    await timed('ssh login + `true`', 'openssh', () => shAsync(`ssh ${sshOpts} lat true`))
    for (const c of cases) for (const carrier of ['ssh2', 'openssh']) await timed(c.name, carrier, () => c.run(carrier), c.prepare)
    if (have('rsync')) {
      const rsync = (count: number, tag: string) => async (run: number) => {
        await scribbleBlocks(disk, BLOCK, count, `${tag}-${run}-${Math.random()}`)
      }
      const rsyncRun = () => shAsync(`rsync --inplace --no-whole-file -e "ssh ${sshOpts}" '${disk}' 'lat:${rsyncCopy}'`)
      await timed('rsync --inplace, 1 block', 'openssh', rsyncRun, rsync(1, 'rs1'))
      await timed('rsync --inplace, 1%', 'openssh', rsyncRun, rsync(changed, 'rs'))
    }
  } finally {
    serve.kill('SIGTERM')
    await relay.close()
    await sshd.stop()
    await fs.rm(rsyncCopy, {force: true})
  }
  const checks: BenchCheck[] = ['ssh2', 'openssh'].map((c) => {
    const ratio = rt[`push, 1 block (${c})`] / PUSH_RT_TARGET
    return {
      label: `push, 1 block (${c}): round trips at 20 ms RTT / ${PUSH_RT_TARGET}`,
      ratio,
      target: '<= 1.00: a push is a small fixed number of round trips',
      pass: ratio <= 1,
    }
  })
  const context = Object.entries(rt).map(([k, v]) => `${k}: ${v.toFixed(1)} round trips at ${2 * ONE_WAY_MS} ms RTT`)
  return {rows, checks, context}
}
