// The tracker section's verdicts (issue 23's targets as ratios of the same run) and its context
// lines, from the rows tracker-bench.ts measured.
import {mbps, type BenchRow} from './bench-common.js'
import type {BenchCheck} from './local-bench.js'

export const Server = {
  QEMU: 'qemu-nbd',
  /** A tracker started anew on a cleared record and a cold log (its JIT cold too). */
  FIRST: 'vdrep track (first write, cold start)',
  /** A tracker past its JIT warm-up (the same requests elsewhere on the disk) writing into cold extents of a cleared record. */
  COLD_LOG: 'vdrep track (first write, cold log)',
  /** A warm tracker whose bits a push just cleared (freeze, complete): the log stays hot. */
  AFTER_PUSH: 'vdrep track (first write after a push)',
  DIRTY: 'vdrep track (dirty)',
} as const

function find(rows: BenchRow[], key: string, server: string): BenchRow | undefined {
  return rows.find((r) => r.name === `${key}: ${server}` && Number.isFinite(r.seconds) && r.runs.length > 0)
}

/** The write workloads (rows named "<workload>: <server>"). */
function writeKeys(rows: BenchRow[]): string[] {
  return [...new Set(rows.filter((r) => !r.name.startsWith('scan ')).map((r) => r.name.split(': ')[0]))]
}

/** Beside a paired verdict: the ratio of the two rows' medians (their runs from different phases). */
function unpaired(v: BenchRow, q: BenchRow, what: 'time' | 'throughput'): string | undefined {
  const ratio = what === 'time' ? v.seconds / q.seconds : q.seconds / v.seconds
  return v.paired ? `medians of all runs: ${what} vdrep ÷ qemu-nbd ${ratio.toFixed(2)}x` : undefined
}

/**
 * Issue 23's targets, each a ratio of the same run (of runs paired with a qemu-nbd run just
 * before each, where they were: the load of a shared host drifts between a run's phases, and
 * the qemu-nbd row holds runs of every phase): dirty writes at most 1.2x qemu-nbd's time
 * (QD1: its latency); sequential first writes at least 0.9x its throughput; scattered 4 KiB
 * first writes at QD1 at most 2x its latency (the default activity log). And --scan at 70% of
 * raw hashing.
 */
export function trackerChecks(rows: BenchRow[]): BenchCheck[] {
  const checks: BenchCheck[] = []
  const scan = rows.find((r) => r.name.endsWith(': vdrep track --scan'))
  const raw = rows.find((r) => r.name.includes(' of 64 KiB blocks in memory'))
  if (scan && raw) {
    const ratio = mbps(scan) / mbps(raw)
    checks.push({label: `${scan.name.split(':')[0]}: vdrep track --scan / raw hash throughput`, ratio, target: '>= 0.70x', pass: ratio >= 0.7})
  }
  const timeRatio = (k: string, server: string, max: number, what: string): BenchCheck => {
    const label = `${k}: ${server}: ${what} vdrep ÷ qemu-nbd`
    const v = find(rows, k, server)
    const q = find(rows, k, Server.QEMU)
    if (!v || !q) return {label, target: `<= ${max.toFixed(2)}x`, note: 'skipped: a case did not run'}
    const ratio = v.paired ? 1 / v.paired : v.seconds / q.seconds
    return {label: v.paired ? `${label} (paired runs)` : label, ratio, target: `<= ${max.toFixed(2)}x`, pass: ratio <= max, note: unpaired(v, q, 'time')}
  }
  for (const k of writeKeys(rows)) {
    checks.push(timeRatio(k, Server.DIRTY, 1.2, k.endsWith('qd1') ? 'latency' : 'time'))
    for (const first of [Server.AFTER_PUSH, Server.COLD_LOG, Server.FIRST]) {
      if (!find(rows, k, first)) continue
      if (k.startsWith('seq ')) {
        const f = find(rows, k, first)
        const q = find(rows, k, Server.QEMU)
        const label = `${k}: ${first}: throughput vdrep ÷ qemu-nbd${f?.paired ? ' (paired runs)' : ''}`
        const ratio = f && q ? (f.paired ?? mbps(f) / mbps(q)) : undefined
        checks.push(
          ratio === undefined || !f || !q
            ? {label, target: '>= 0.90x', note: 'skipped: a case did not run'}
            : {label, ratio, target: '>= 0.90x', pass: ratio >= 0.9, note: unpaired(f, q, 'throughput')},
        )
      }
      if (k === 'stride 4k qd1') checks.push(timeRatio(k, first, 2, 'latency'))
    }
  }
  return checks
}

/** The first-write cost: a write into a cold extent waits for one log transaction; a new tracker also warms up. */
export function trackerContext(rows: BenchRow[]): string[] {
  return writeKeys(rows).map((k) => {
    const p = find(rows, k, Server.AFTER_PUSH)
    const c = find(rows, k, Server.COLD_LOG)
    const f = find(rows, k, Server.FIRST)
    const d = find(rows, k, Server.DIRTY)
    const q = find(rows, k, Server.QEMU)
    if (!p || !f || !d || !q) return `${k}: incomplete`
    const us = (r: BenchRow) => `${((r.seconds / (r.bytes / Number(k.split(' ')[1].replace('k', '')) / 1024)) * 1e6).toFixed(0)} us`
    const x = (r: BenchRow) => `${(r.seconds / q.seconds).toFixed(2)}x`
    // At QD1 one write is in flight at a time: the time ratio is the ratio of per-write latencies.
    const what = k.endsWith(' qd1') ? 'latency' : 'time'
    // CPU-s of the serving process: what a row costs the host, steadier than wall time on a shared one.
    const cx = (r: BenchRow) => (r.cpuSeconds !== undefined && q.cpuSeconds ? `${(r.cpuSeconds / q.cpuSeconds).toFixed(2)}x` : '?')
    return (
      `${k}: qemu-nbd ${us(q)}/write; ${what} vdrep ÷ qemu-nbd: dirty ${x(d)}, first write after a push ${x(p)}` +
      `${c ? `, into a cold log ${x(c)}` : ''}, cold start ${x(f)}; server CPU-s vdrep ÷ qemu-nbd: dirty ${cx(d)}, ` +
      `after a push ${cx(p)}${c ? `, cold log ${cx(c)}` : ''}, cold start ${cx(f)}`
    )
  })
}
