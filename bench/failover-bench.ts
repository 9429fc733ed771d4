// `npm run bench -- --only failover`: failback by delta (issue 19). A disk of
// VDREP_FAILOVER_BENCH_SIZE (default 4G; e.g. 256M for a quick run) and its local replica,
// through the real CLI. Each round, same run: a 1% push from the current source (scattered
// blocks, marked as `track --scan` leaves them), then a final push, a planned failover of the
// replica, 1% written on each side, and the reprotect (the exchange and one delta of the
// union). The next round runs the other way. Target: reprotect ≤ 2× the 1% push.
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import {median, row, type BenchOptions, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'
import {markChanged} from '../test/helpers/change-record.js'
import {vdrep} from '../test/helpers/cli.js'
import {parseSize} from '../src/core/util/units.js'

const BS = 64 * 1024

async function must(args: string[]): Promise<number> {
  const t = performance.now()
  const r = await vdrep(args)
  if (r.code !== 0) throw new Error(`vdrep ${args.join(' ')}: exit ${r.code}: ${r.stderr}`)
  return (performance.now() - t) / 1000
}

/** Write 1% of the blocks (scattered, random data) and mark them in the disk's record. */
async function change1pct(disk: string, size: number): Promise<number> {
  const total = size / BS
  const picks = [...new Set(Array.from({length: Math.ceil(total / 100)}, () => crypto.randomInt(total)))]
  const fh = await fs.open(disk, 'r+')
  try {
    for (const b of picks) await fh.write(crypto.randomBytes(BS), 0, BS, b * BS)
  } finally {
    await fh.close()
  }
  await markChanged(disk, picks)
  return picks.length
}

/** A sparse disk with random data in one 64 MiB run per 512 MiB. */
async function makeDisk(file: string, size: number): Promise<void> {
  const fh = await fs.open(file, 'w')
  try {
    await fh.truncate(size)
    for (let off = 0; off < size; off += 512 << 20) {
      const len = Math.min(64 << 20, size - off)
      for (let o = 0; o < len; o += 8 << 20) await fh.write(crypto.randomBytes(Math.min(8 << 20, len - o)), 0, Math.min(8 << 20, len - o), off + o)
    }
  } finally {
    await fh.close()
  }
}

export async function runFailoverBench(opts: BenchOptions): Promise<BenchRow[]> {
  const size = parseSize(process.env.VDREP_FAILOVER_BENCH_SIZE ?? '4G', 'VDREP_FAILOVER_BENCH_SIZE')
  const a = path.join(opts.workDir, 'a', 'vm.img')
  const b = path.join(opts.workDir, 'b', 'vm.img')
  await fs.mkdir(path.dirname(a), {recursive: true})
  await fs.mkdir(path.dirname(b), {recursive: true})

  await makeDisk(a, size)
  await must(['init', a, '--to', b])
  await must(['fullsync', a])
  const t = {push: [] as number[], reprotect: [] as number[], failover: [] as number[]}
  let blocks = 0
  let src = a
  let dst = b
  for (let i = 0; i < Math.max(2, opts.runs); i++) {
    blocks = await change1pct(src, size)
    t.push.push(await must(['push', src]))
    await must(['push', src, '--final'])
    t.failover.push(await must(['failover', dst, '--planned', '--to', src]))
    await change1pct(dst, size) // the promoted side's writes
    await change1pct(src, size) // the old primary's, after the failover: kept there as a point
    t.reprotect.push(await must(['reprotect', dst]))
    ;[src, dst] = [dst, src]
  }
  const note = `${(size / 2 ** 30).toFixed(2)} GiB disk, ${blocks} blocks (1%) per side, local target, CLI`
  return [
    row('failover', 'push of 1% (delta)', t.push, size, note),
    row('failover', 'failover --planned (promoted record: index of every block)', t.failover, size, note),
    row('failover', 'reprotect after 1% on each side (exchange + one delta of the union)', t.reprotect, size, note),
  ]
}

export function failoverChecks(rows: BenchRow[]): BenchCheck[] {
  const push = rows.find((r) => r.name.startsWith('push of 1%'))
  const rp = rows.find((r) => r.name.startsWith('reprotect'))
  if (!push || !rp) return [{label: 'failback / 1% push', target: '≤ 2×', note: 'skipped'}]
  const ratio = rp.seconds / push.seconds
  return [
    {
      label: 'failback after 1% on each side / a 1% push',
      ratio,
      target: '≤ 2×',
      pass: ratio <= 2,
      note: `medians ${median(rp.runs).toFixed(3)} s / ${median(push.runs).toFixed(3)} s`,
    },
  ]
}
