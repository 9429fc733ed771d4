// `npm run bench -- --only export`: NBD sequential read of a restore point exported by
// `vdrep export` against the same disk read through `vdrep track`'s NBD export, same run, runs
// alternating, same client (nbdcopy to null:, 4 connections, its default request size and
// queue). The disk is random data (nothing to skip on either side); the replica's points: the
// current one (all from the replica) and the one before a 1% push (that 1% from its undo
// record). Target (issue 19): the export reads at ≥ 80% of the tracker's speed.
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {have, median, row, type BenchOptions, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'

const MiB = 1 << 20
const VDREP_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/run.js')
export const Source = {TRACK: 'vdrep track', CURRENT: 'vdrep export (current point)', OLDER: 'vdrep export (point before a 1% push)'} as const

function vdrepSync(args: string[]): string {
  const r = spawnSync(process.execPath, [VDREP_BIN, ...args], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`vdrep ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
  return r.stdout
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

async function serve(args: string[], sock: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [VDREP_BIN, ...args, '--nbd', `unix:${sock}`], {stdio: ['ignore', 'ignore', 'pipe']})
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`vdrep ${args[0]} exited ${child.exitCode}: ${err}`)
    if (await accepts(sock)) return child
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`vdrep ${args[0]} did not serve on ${sock}`)
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((r) => child.once('close', r))
  child.kill('SIGTERM')
  await gone
}

function readAll(uri: string): number {
  const t = performance.now()
  const r = spawnSync('nbdcopy', ['--connections=4', uri, 'null:'], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`nbdcopy ${uri} failed: ${r.stderr}`)
  return (performance.now() - t) / 1000
}

export async function runExportBench(opts: BenchOptions): Promise<BenchRow[]> {
  const missing = ['nbdcopy'].filter((t) => !have(t))
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')} (Debian: libnbd-bin)`)
  const size = Math.min(opts.size, 1 << 30)
  const dir = opts.workDir
  const disk = path.join(dir, 'src.img')
  const replica = path.join(dir, 'replica', 'src.img')
  await fs.mkdir(path.dirname(replica), {recursive: true})
  spawnSync('dd', ['if=/dev/urandom', `of=${disk}`, 'bs=1M', `count=${size / MiB}`, 'status=none'])
  vdrepSync(['init', disk, '--to', replica, '-q'])
  vdrepSync(['fullsync', disk, '-q'])
  vdrepSync(['points', replica, '--retention', 'count:10', '-q'])
  const older = Number(JSON.parse(vdrepSync(['points', replica, '--json'])).points[0].seq)
  // 1% of the disk, scattered 64 KiB blocks, then a push: point `older` now reads that 1% from its record.
  const fh = await fs.open(disk, 'r+')
  const blocks = size / (64 * 1024)
  for (let i = 0; i < blocks / 100; i++) {
    const b = Math.floor(Math.random() * blocks)
    await fh.write(Buffer.alloc(64 * 1024, i & 0xff), 0, 64 * 1024, b * 64 * 1024)
  }
  await fh.close()
  vdrepSync(['track', disk, '--scan', '-q'])
  vdrepSync(['push', disk, '-q'])

  const socks = {track: path.join(dir, 'track.nbd'), current: path.join(dir, 'current.nbd'), older: path.join(dir, 'older.nbd')}
  const name = path.basename(disk)
  const uri = (sock: string) => `nbd+unix:///${name}?socket=${sock}`
  const children = [
    await serve(['track', disk], socks.track),
    await serve(['export', replica], socks.current),
    await serve(['export', replica, '--at', String(older)], socks.older),
  ]
  const t = {track: [] as number[], current: [] as number[], older: [] as number[]}
  try {
    for (const s of Object.values(socks)) readAll(uri(s)) // warm: page cache, code paths
    for (let i = 0; i < Math.max(3, opts.runs); i++) {
      t.track.push(readAll(uri(socks.track)))
      t.current.push(readAll(uri(socks.current)))
      t.older.push(readAll(uri(socks.older)))
    }
  } finally {
    for (const c of children) await stop(c)
  }
  const note = 'nbdcopy --connections=4 to null:'
  return [
    row('export', Source.TRACK, t.track, size, note),
    row('export', Source.CURRENT, t.current, size, note),
    row('export', Source.OLDER, t.older, size, note),
  ]
}

export function exportChecks(rows: BenchRow[]): BenchCheck[] {
  const track = rows.find((r) => r.name === Source.TRACK)
  return [Source.CURRENT, Source.OLDER].map((name) => {
    const exp = rows.find((r) => r.name === name)
    const label = `${name} / vdrep track read speed`
    if (!track || !exp) return {label, target: '≥ 0.8', note: 'skipped'}
    const ratio = track.seconds / exp.seconds
    return {label, ratio, target: '≥ 0.8', pass: ratio >= 0.8, note: `medians ${median(exp.runs).toFixed(3)} s / ${median(track.runs).toFixed(3)} s`}
  })
}
