// `npm run bench` section "wan" (issue 21): vdrep against rsync and rsync -z over a shaped
// link. A replica namespace joined by a veth pair with tbf on both ends (test/helpers/netns.ts),
// sshd and `vdrep serve` inside it, every client outside, all over the same ssh. On the issue's
// mixed disk (40% random, 20% holes, 40% text: makeRealMixedDisk): a fresh full sync, a full
// sync onto a 1% seed, and a push of 1% of the blocks (half text, half random), at 1 Gbit/s on
// --size and at 100 Mbit/s on a quarter of it. Every result is cmp-checked.
//
//   node dist/bench/bench.js --only wan [--size 1G] [--runs 3]
//   VDREP_WAN_RATES=1gbit,100mbit (default), VDREP_WAN_SMALL=256M (the 100 Mbit/s disk)
//
// Runs are interleaved (every tool once per round) with the page cache flushed before each, so
// a busy machine or a writeback of the setup's copies weighs on every tool alike. Rows for the
// link's floor (wan-floor.ts) sit beside the tools. diskrsync is not in the table: it needs Go
// and modules this machine cannot fetch (said in the context).
import fs from 'node:fs/promises'
import path from 'node:path'
import {machineBusySeconds, median, row, settleBytesFor, settleMemory, sh, have, type BenchOptions, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'
import {procCpu, runVdrep} from './ssh-bench.js'
import {linkFloor} from './wan-floor.js'
import {makeRealMixedDisk} from '../test/helpers/disks.js'
import {change, onePercent, runShell, vdrepDisk} from './wan-setup.js'
import {markChanged} from '../test/helpers/change-record.js'
import {createWan, netnsUnavailable, startServeIn, type Wan, type WanOptions} from '../test/helpers/netns.js'
import {freePort, startSshd} from '../test/helpers/sshd.js'
import {parseSize} from '../src/core/util/units.js'
import type {FullsyncResult} from '../src/core/fullsync/client.js'
import type {PushResult} from '../src/core/delta/push.js'

export const WAN_SECTION = 'wan'

export interface WanBenchRow extends BenchRow {
  rate: string
  kind: 'fresh' | 'seed' | 'push'
  tool: string
  /** Bytes on the wire as the tool counts them (vdrep: DATA/DATA_Z payloads), where known. */
  wireBytes?: number
  /** Median CPU-seconds of the client side (the command and its children) and of the server side (vdrep serve or rsync, and sshd). */
  clientCpu?: number
  serverCpu?: number
}

type Log = (line: string) => void

export async function runWanBench(
  opts: BenchOptions & {log?: Log; relay?: WanOptions['relay']},
): Promise<{rows: WanBenchRow[]; checks: BenchCheck[]; context: string[]}> {
  const log: Log = opts.log ?? (() => {})
  const why = netnsUnavailable()
  if (why) return {rows: [], checks: [], context: [`skipped: no network namespace can be made here: ${why}`]}
  const rates = (process.env.VDREP_WAN_RATES ?? '1gbit,100mbit').split(',').filter(Boolean)
  const small = parseSize(process.env.VDREP_WAN_SMALL ?? String(Math.max(64 << 20, Math.floor(opts.size / 4 / (1 << 20)) << 20)), 'VDREP_WAN_SMALL')
  const rows: WanBenchRow[] = []
  const context: string[] = [
    `load before: ${sh('cat /proc/loadavg').trim()}`,
    `diskrsync: not measured (${have('diskrsync') ? 'installed, but not wired in yet' : 'not installed; it needs Go and modules this machine cannot fetch'})`,
    'runs interleaved (each round runs every tool once), page cache flushed (sync) before each; CPU-s: client = the command and its children on this side, server = vdrep serve or rsync plus sshd',
  ]
  for (const rate of rates) {
    const size = rate === rates[0] ? opts.size : small
    const r = await benchRate(rate, size, opts, log, opts.relay)
    rows.push(...r.rows)
    context.push(...r.context)
  }
  context.push(`load after: ${sh('cat /proc/loadavg').trim()}`)
  return {rows, checks: wanChecks(rows), context}
}

/** CPU-seconds of this process's reaped children (the commands the bench ran). */
async function childrenCpu(): Promise<number> {
  return procCpu(process.pid, true)
}

interface Series {
  runs: number[]
  cpu: number[]
  client: number[]
  server: number[]
  wire?: number
  note?: string
}

async function benchRate(
  rate: string,
  size: number,
  opts: BenchOptions,
  log: Log,
  relay?: WanOptions['relay'],
): Promise<{rows: WanBenchRow[]; context: string[]}> {
  const work = path.join(opts.workDir, rate)
  const root = path.join(work, 'root')
  const home = path.join(work, 'home')
  await fs.mkdir(root, {recursive: true})
  await fs.mkdir(home, {recursive: true})
  const disk = path.join(work, 'mixed.img')
  const seed = path.join(work, 'seed.img')
  // rsync's push: from `pushed` (the disk with 1% changed) onto a copy of the disk.
  const pushed = path.join(work, 'pushed.img')
  log(`wan ${rate}: generating a ${(size / 2 ** 20).toFixed(0)} MiB mixed disk (40% random, 20% holes, 40% text) and a 1% seed`)
  await makeRealMixedDisk(disk, size, 'wan-bench')
  sh(`cp --sparse=always '${disk}' '${seed}'`)
  await change(seed, onePercent(size, 'wan-seed'), 'wan-seed')
  sh(`cp --sparse=always '${disk}' '${pushed}'`)
  await change(pushed, onePercent(size, 'wan-push-rsync'), 'wan-push-rsync')
  const floor = await linkFloor(disk, rate)
  sh(`sync && cat '${disk}' '${seed}' '${pushed}' > /dev/null`)

  const wan: Wan = await createWan({rate, relay})
  const sshd = await startSshd({netns: wan.ns, listenAddress: wan.replicaIp})
  const ports: [number, number] = [await freePort(), await freePort()]
  const serve = await startServeIn(wan, root, ports)
  const env = {HOME: home, SSH_AUTH_SOCK: ''}
  const {host: sshHost, port: sshPort} = await wan.reach(sshd.port)
  const sshCmd = `ssh -p ${sshPort} -i '${sshd.clientKey.path}' -o UserKnownHostsFile='${sshd.knownHostsFile}' -o BatchMode=yes -o StrictHostKeyChecking=yes`
  const series = new Map<string, Series>()
  const get = (kind: string, tool: string) => {
    const key = `${kind}\t${tool}`
    let v = series.get(key)
    if (!v) series.set(key, (v = {runs: [], cpu: [], client: [], server: []}))
    return v
  }
  const timed = async (kind: string, tool: string, prepare: () => Promise<void>, fn: () => Promise<void>): Promise<void> => {
    await prepare()
    sh('sync') // what prepare wrote is not written back during the timed run
    settleMemory(settleBytesFor(size))
    const [c, k, sv, sd] = [machineBusySeconds(), await childrenCpu(), await procCpu(serve.pid as number), await procCpu(sshd.pid, true)]
    const t = performance.now()
    await fn()
    const s = (performance.now() - t) / 1000
    const c2 = machineBusySeconds()
    await new Promise((res) => setTimeout(res, 200)) // sshd reaps the session: its CPU lands in cutime
    const v = get(kind, tool)
    v.runs.push(s)
    if (c !== undefined && c2 !== undefined) v.cpu.push(c2 - c)
    v.client.push((await childrenCpu()) - k)
    v.server.push((await procCpu(serve.pid as number)) - sv + ((await procCpu(sshd.pid, true)) - sd))
  }
  const settings = ['auto', '1', 'none'] as const
  const rsyncs = have('rsync') ? (['', ' -z'] as const) : []
  const vdisks: Record<string, {src: string; replica: string}> = {}
  try {
    for (const compress of settings) vdisks[compress] = await vdrepDisk(work, root, disk, compress, env, sshd, `${sshd.user}@${sshHost}:${sshPort}`, ports)
    const rsyncDest = (z: string) => path.join(root, z ? 'rsync-z.img' : 'rsync.img')
    const rsyncRun = (z: string, from: string) =>
      runShell(`rsync --inplace --no-whole-file${z} -e "${sshCmd.replace(/"/g, '\\"')}" '${from}' ${sshd.user}@${sshHost}:'${rsyncDest(z)}'`)
    for (const kind of ['fresh', 'seed'] as const) {
      for (let i = 0; i < opts.runs; i++) {
        for (const compress of settings) {
          const {src, replica} = vdisks[compress]
          const prepare = async () => {
            await fs.rm(replica, {force: true})
            await fs.rm(`${replica}.vdrep`, {force: true})
            if (kind === 'seed') sh(`cp --sparse=always '${seed}' '${replica}'`)
          }
          await timed(kind, `vdrep --compress ${compress}`, prepare, async () => {
            const r = JSON.parse(await runVdrep(['fullsync', src, '--json'], env)) as FullsyncResult
            const v = get(kind, `vdrep --compress ${compress}`)
            v.wire = r.wireBytes
            const z = r.compression.stats
            v.note = z ? `levels ${z.levels.join(',')} (last ${z.finalLevel}), ${z.runs} runs, worker ${(z.compressMs / 1000).toFixed(2)} s` : r.compression.why
          })
        }
        for (const z of rsyncs) {
          const prepare = async () => {
            await fs.rm(rsyncDest(z), {force: true})
            if (kind === 'seed') sh(`cp --sparse=always '${seed}' '${rsyncDest(z)}'`)
          }
          await timed(kind, `rsync${z}`, prepare, () => rsyncRun(z, disk))
        }
      }
      for (const compress of settings) sh(`cmp '${vdisks[compress].src}' '${vdisks[compress].replica}'`)
      for (const z of rsyncs) sh(`cmp '${disk}' '${rsyncDest(z)}'`)
    }
    // Push: 1% of the written blocks changed (half text, half random), marked as a tracker would.
    for (let i = 0; i < opts.runs; i++) {
      const blocks = onePercent(size, `wan-push:${i}`)
      for (const compress of settings) {
        const {src} = vdisks[compress]
        const prepare = async () => {
          await change(src, blocks, `wan-push:${i}`)
          await markChanged(src, blocks)
        }
        await timed('push', `vdrep --compress ${compress}`, prepare, async () => {
          const r = JSON.parse(await runVdrep(['push', src, '--json'], env)) as PushResult
          if (r.mode !== 'delta') throw new Error(`push did not send a delta: ${JSON.stringify(r)}`)
          const v = get('push', `vdrep --compress ${compress}`)
          v.wire = r.wireBytes
          v.note = r.compression?.stats ? `levels ${r.compression.stats.levels.join(',')}` : r.compression?.why
        })
      }
      for (const z of rsyncs)
        await timed(
          'push',
          `rsync${z}`,
          async () => void sh(`cp --sparse=always '${disk}' '${rsyncDest(z)}'`),
          () => rsyncRun(z, pushed),
        )
    }
    for (const compress of settings) sh(`cmp '${vdisks[compress].src}' '${vdisks[compress].replica}'`)
    for (const z of rsyncs) sh(`cmp '${pushed}' '${rsyncDest(z)}'`)
  } finally {
    serve.kill('SIGTERM')
    await sshd.stop()
    await wan.close()
  }
  const rows: WanBenchRow[] = []
  for (const [key, v] of series) {
    const [kind, tool] = key.split('\t') as [WanBenchRow['kind'], string]
    const cpu = `CPU-s client ${median(v.client).toFixed(2)}, server ${median(v.server).toFixed(2)}`
    const r = row(WAN_SECTION, `${rate} ${kind}: ${tool}`, v.runs, size, v.note ? `${cpu}; ${v.note}` : cpu, v.cpu) as WanBenchRow
    Object.assign(r, {rate, kind, tool, wireBytes: v.wire, clientCpu: median(v.client), serverCpu: median(v.server)})
    rows.push(r)
    log(`  ${r.name}: median ${r.seconds.toFixed(2)} s (${cpu})${v.wire === undefined ? '' : `, ${(v.wire / 1e6).toFixed(1)} MB on the wire`}`)
  }
  for (const [kind, seconds, what] of [
    ['fresh', floor.zstdSeconds, `floor (link, zstd -1)`],
    ['fresh', floor.rawSeconds, `floor (link, raw)`],
  ] as const) {
    const r = row(WAN_SECTION, `${rate} ${kind}: ${what}`, [seconds], size, 'bytes that must cross the link ÷ its rate; no framing, no CPU') as WanBenchRow
    Object.assign(r, {rate, kind, tool: what})
    rows.push(r)
  }
  const at = (kind: string, tool: string) => rows.find((r) => r.kind === kind && r.tool === tool)?.seconds
  const vs = (tool: string) => {
    const t = at('fresh', tool)
    return t === undefined ? '' : `, ${tool} ${(t / floor.zstdSeconds).toFixed(2)}x`
  }
  const context = [
    `${rate} link floor, new replica: ${(floor.dataBytes / 1e6).toFixed(0)} MB non-zero, ${(floor.zstdBytes / 1e6).toFixed(0)} MB after zstd -1: ` +
      `${floor.zstdSeconds.toFixed(2)} s compressed, ${floor.rawSeconds.toFixed(2)} s raw; time over the compressed floor${vs('vdrep --compress auto')}${vs('vdrep --compress 1')}${vs('vdrep --compress none')}${vs('rsync -z')}${vs('rsync')}`,
  ]
  log(`  ${context[0]}`)
  return {rows, context}
}

/** The issue's targets, from this run's medians. */
export function wanChecks(rows: WanBenchRow[]): BenchCheck[] {
  const checks: BenchCheck[] = []
  const at = (rate: string, kind: string, tool: string) => rows.find((r) => r.rate === rate && r.kind === kind && r.tool === tool)
  for (const rate of [...new Set(rows.map((r) => r.rate))]) {
    for (const [kind, want] of [
      ['fresh', 1.2],
      ['seed', 2],
      ['push', 2],
    ] as const) {
      const v = at(rate, kind, 'vdrep --compress auto')
      const z = at(rate, kind, 'rsync -z')
      const ratio = v && z ? z.seconds / v.seconds : undefined
      checks.push({
        label: `${rate} ${kind}: rsync -z / vdrep (auto)`,
        ratio,
        target: `>= ${want}x${rate === '1gbit' ? '' : ' (the issue sets it at 1 Gbit/s)'}`,
        pass: ratio === undefined ? undefined : ratio >= want,
      })
    }
    const a = at(rate, 'fresh', 'vdrep --compress auto')
    const n = at(rate, 'fresh', 'vdrep --compress none')
    if (a && n)
      checks.push({
        label: `${rate} fresh: vdrep none / auto (what compression buys)`,
        ratio: n.seconds / a.seconds,
        target: '> 1',
        pass: n.seconds / a.seconds > 1,
      })
  }
  return checks
}
