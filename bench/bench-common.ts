// Shared pieces of `npm run bench`: timing commands and functions several times on the same
// data in the same run, reporting medians (this machine is noisy) and ratios against peers.
import {spawnSync} from 'node:child_process'

export interface BenchRow {
  section: string
  name: string
  /** Median wall-clock seconds over the runs. */
  seconds: number
  /** Bytes of disk the case covers (for MB/s: disk bytes per second). */
  bytes: number
  /** Every run's seconds, for the record. */
  runs: number[]
  note?: string
}

export interface BenchOptions {
  /** Disk size in bytes for the main disk. */
  size: number
  workDir: string
  runs: number
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Time `fn` `runs` times (after `prepare` each time, untimed). */
export async function timeRuns(runs: number, fn: () => Promise<void> | void, prepare?: () => Promise<void> | void): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < runs; i++) {
    if (prepare) await prepare()
    const t = performance.now()
    await fn()
    out.push((performance.now() - t) / 1000)
  }
  return out
}

/** Run a shell command; throws with its stderr when it fails. */
export function sh(cmd: string, opts: {cwd?: string} = {}): string {
  const r = spawnSync('bash', ['-c', cmd], {cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 << 20})
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${cmd}\n${r.stderr}`)
  return r.stdout
}

export function have(tool: string): boolean {
  return spawnSync('bash', ['-c', `command -v ${tool}`]).status === 0
}

export function row(section: string, name: string, runs: number[], bytes: number, note?: string): BenchRow {
  return {section, name, seconds: median(runs), bytes, runs, note}
}

export function mbps(r: BenchRow): number {
  return r.bytes / 1e6 / r.seconds
}
