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
// diskrsync is not in the table: it needs Go and modules this machine cannot fetch (say so).
import {spawn} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {machineBusySeconds, row, settleBytesFor, settleMemory, sh, have, type BenchOptions, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'
import {runVdrep} from './ssh-bench.js'
import {makeRealMixedDisk, seededBytes, seededText} from '../test/helpers/disks.js'
import {markChanged} from '../test/helpers/change-record.js'
import {createWan, netnsUnavailable, startServeIn, type Wan, type WanOptions} from '../test/helpers/netns.js'
import {freePort, startSshd} from '../test/helpers/sshd.js'
import {parseSize} from '../src/core/util/units.js'
import type {FullsyncResult} from '../src/core/fullsync/client.js'
import type {PushResult} from '../src/core/delta/push.js'

export const WAN_SECTION = 'wan'
const BLOCK = 64 * 1024

export interface WanBenchRow extends BenchRow {
  rate: string
  kind: 'fresh' | 'seed' | 'push'
  tool: string
  /** Bytes on the wire as the tool counts them (vdrep: DATA/DATA_Z payloads), where known. */
  wireBytes?: number
}

type Log = (line: string) => void

/** Pick 1% of the blocks that hold data (a push changes written blocks, not holes). */
function onePercent(size: number, seed: string): number[] {
  const blocks = Math.floor(size / BLOCK)
  const want = Math.max(1, Math.round(blocks * 0.01))
  const r = seededBytes(seed, want * 8 + 64)
  const picks = new Set<number>()
  for (let i = 0; picks.size < want; i++) {
    const b = r.readUInt32LE((i * 4) % (r.length - 4)) % blocks
    // makeRealMixedDisk: 1 MiB regions random, random, hole, text, text
    if (Math.floor((b * BLOCK) / (1 << 20)) % 5 !== 2) picks.add(b)
  }
  return [...picks].sort((a, b) => a - b)
}

/** Overwrite `blocks`: even ones with fresh text, odd ones with random bytes. */
async function change(file: string, blocks: number[], seed: string): Promise<void> {
  const fh = await fs.open(file, 'r+')
  try {
    for (const [i, b] of blocks.entries()) {
      const data = i % 2 ? seededBytes(`${seed}:${b}`, BLOCK) : seededText(`${seed}:${b}`, BLOCK)
      await fh.write(data, 0, BLOCK, b * BLOCK)
    }
    await fh.datasync()
  } finally {
    await fh.close()
  }
}

function runShell(cmd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', cmd], {stdio: ['ignore', 'ignore', 'pipe']})
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err}`))))
  })
}

export async function runWanBench(
  opts: BenchOptions & {log?: Log; relay?: WanOptions['relay']},
): Promise<{rows: WanBenchRow[]; checks: BenchCheck[]; context: string[]}> {
  const log: Log = opts.log ?? (() => {})
  const why = netnsUnavailable()
  if (why) return {rows: [], checks: [], context: [`skipped: no network namespace can be made here: ${why}`]}
  const rates = (process.env.VDREP_WAN_RATES ?? '1gbit,100mbit').split(',').filter(Boolean)
  const small = parseSize(process.env.VDREP_WAN_SMALL ?? String(Math.max(64 << 20, Math.floor(opts.size / 4 / (1 << 20)) << 20)), 'VDREP_WAN_SMALL')
  const rows: WanBenchRow[] = []
  const context: string[] = [`load before: ${sh('cat /proc/loadavg').trim()}`, 'diskrsync: not measured (needs Go modules this machine cannot fetch)']
  for (const rate of rates) {
    const size = rate === rates[0] ? opts.size : small
    rows.push(...(await benchRate(rate, size, opts, log, opts.relay)))
  }
  context.push(`load after: ${sh('cat /proc/loadavg').trim()}`)
  return {rows, checks: wanChecks(rows), context}
}

async function benchRate(rate: string, size: number, opts: BenchOptions, log: Log, relay?: WanOptions['relay']): Promise<WanBenchRow[]> {
  const work = path.join(opts.workDir, rate)
  const root = path.join(work, 'root')
  const home = path.join(work, 'home')
  await fs.mkdir(root, {recursive: true})
  await fs.mkdir(home, {recursive: true})
  const disk = path.join(work, 'mixed.img')
  const seed = path.join(work, 'seed.img')
  const pushed = path.join(work, 'pushed.img')
  const prepush = path.join(work, 'prepush.img')
  log(`wan ${rate}: generating a ${(size / 2 ** 20).toFixed(0)} MiB mixed disk (40% random, 20% holes, 40% text) and a 1% seed`)
  await makeRealMixedDisk(disk, size, 'wan-bench')
  sh(`cp --sparse=always '${disk}' '${seed}'`)
  await change(seed, onePercent(size, 'wan-seed'), 'wan-seed')
  sh(`sync && cat '${disk}' '${seed}' > /dev/null`)

  const wan: Wan = await createWan({rate, relay})
  const sshd = await startSshd({netns: wan.ns, listenAddress: wan.replicaIp})
  const ports: [number, number] = [await freePort(), await freePort()]
  const serve = await startServeIn(wan, root, ports)
  const env = {HOME: home, SSH_AUTH_SOCK: ''}
  const sshPort = (await wan.reach(sshd.port)).port
  const sshHost = (await wan.reach(sshd.port)).host
  const sshCmd = `ssh -p ${sshPort} -i '${sshd.clientKey.path}' -o UserKnownHostsFile='${sshd.knownHostsFile}' -o BatchMode=yes -o StrictHostKeyChecking=yes`
  const rows: WanBenchRow[] = []
  const out = (kind: WanBenchRow['kind'], tool: string, runs: number[], cpu: number[], wire?: number, note?: string) => {
    const r = row(WAN_SECTION, `${rate} ${kind}: ${tool}`, runs, size, note, cpu) as WanBenchRow
    Object.assign(r, {rate, kind, tool, wireBytes: wire})
    rows.push(r)
    log(`  ${r.name}: median ${r.seconds.toFixed(2)} s${wire === undefined ? '' : `, ${(wire / 1e6).toFixed(1)} MB on the wire`}`)
  }
  const timed = async (fn: () => Promise<void>, prepare: () => Promise<void>, cpu: number[]): Promise<number> => {
    await prepare()
    settleMemory(settleBytesFor(size))
    const c = machineBusySeconds()
    const t = performance.now()
    await fn()
    const s = (performance.now() - t) / 1000
    const c2 = machineBusySeconds()
    if (c !== undefined && c2 !== undefined) cpu.push(c2 - c)
    return s
  }
  try {
    // vdrep: one disk folder per setting, each with its own .psf.
    const vdrepDisk = async (name: string, compress: string): Promise<{src: string; replica: string}> => {
      const dir = path.join(work, name)
      await fs.mkdir(dir, {recursive: true})
      const src = path.join(dir, 'disk.img')
      sh(`cp --sparse=always '${disk}' '${src}'`)
      const replica = path.join(root, `${name}.img`)
      const args = [
        '--known-hosts',
        sshd.knownHostsFile,
        '--identity',
        sshd.clientKey.path,
        '--fullsync-port',
        String(ports[0]),
        '--delta-port',
        String(ports[1]),
      ]
      await runVdrep(
        [
          'init',
          src,
          '--to',
          `${sshd.user}@${sshHost}:${sshPort}:${replica}`,
          ...args,
          '--block-size',
          String(BLOCK),
          '--compress',
          compress,
          '--serve-command',
          'false',
        ],
        env,
      )
      return {src, replica}
    }
    for (const compress of ['auto', '1', 'none']) {
      const {src, replica} = await vdrepDisk(`vdrep-${compress}`, compress)
      const tool = `vdrep --compress ${compress}`
      for (const kind of ['fresh', 'seed'] as const) {
        const runs: number[] = []
        const cpu: number[] = []
        let last: FullsyncResult | undefined
        for (let i = 0; i < opts.runs; i++) {
          const prepare = async () => {
            await fs.rm(replica, {force: true})
            await fs.rm(`${replica}.vdrep`, {force: true})
            if (kind === 'seed') sh(`cp --sparse=always '${seed}' '${replica}'`)
          }
          runs.push(await timed(async () => void (last = JSON.parse(await runVdrep(['fullsync', src, '--json'], env)) as FullsyncResult), prepare, cpu))
        }
        sh(`cmp '${src}' '${replica}'`)
        const z = last?.compression.stats
        out(kind, tool, runs, cpu, last?.wireBytes, z ? `levels ${z.levels.join(',')} (last ${z.finalLevel}), ${z.runs} runs` : last?.compression.why)
      }
      // Push: 1% of the written blocks changed (half text, half random), marked as a tracker would.
      const runs: number[] = []
      const cpu: number[] = []
      let last: PushResult | undefined
      for (let i = 0; i < opts.runs; i++) {
        const blocks = onePercent(size, `wan-push:${i}`)
        const prepare = async () => {
          if (compress === 'auto' && i === opts.runs - 1) sh(`cp --sparse=always '${src}' '${prepush}'`)
          await change(src, blocks, `wan-push:${i}`)
          await markChanged(src, blocks)
        }
        runs.push(await timed(async () => void (last = JSON.parse(await runVdrep(['push', src, '--json'], env)) as PushResult), prepare, cpu))
        if (last?.mode !== 'delta') throw new Error(`push did not send a delta: ${JSON.stringify(last)}`)
      }
      sh(`cmp '${src}' '${replica}'`)
      if (compress === 'auto') sh(`cp --sparse=always '${src}' '${pushed}'`) // the rsync push case starts from this
      out('push', tool, runs, cpu, last?.wireBytes, last?.compression?.stats ? `levels ${last.compression.stats.levels.join(',')}` : last?.compression?.why)
    }
    if (have('rsync')) {
      const dest = path.join(root, 'rsync.img')
      for (const z of ['', ' -z']) {
        const tool = `rsync${z}`
        const rs = (src: string) => `rsync --inplace --no-whole-file${z} -e "${sshCmd.replace(/"/g, '\\"')}" '${src}' ${sshd.user}@${sshHost}:'${dest}'`
        for (const kind of ['fresh', 'seed', 'push'] as const) {
          const runs: number[] = []
          const cpu: number[] = []
          // push: the replica holds the disk as it was before vdrep's last push (1% changed since).
          const from = kind === 'push' ? pushed : disk
          for (let i = 0; i < opts.runs; i++) {
            const prepare = async () => {
              await fs.rm(dest, {force: true})
              if (kind === 'seed') sh(`cp --sparse=always '${seed}' '${dest}'`)
              if (kind === 'push') sh(`cp --sparse=always '${prepush}' '${dest}'`)
            }
            runs.push(await timed(() => runShell(rs(from)), prepare, cpu))
          }
          sh(`cmp '${from}' '${dest}'`)
          out(kind, tool, runs, cpu)
        }
      }
    }
  } finally {
    serve.kill('SIGTERM')
    await sshd.stop()
    await wan.close()
  }
  return rows
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
