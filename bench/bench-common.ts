// Shared pieces of `npm run bench`: timing commands and functions several times on the same
// data in the same run, reporting medians (this machine is noisy) and ratios against peers.
import {spawnSync} from 'node:child_process'
import {existsSync, readdirSync, readFileSync} from 'node:fs'

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
  /**
   * Median CPU-seconds the whole machine was busy per run (every process and the kernel:
   * on a loopback bench both ends of a transfer share these CPUs), where measured.
   */
  cpuSeconds?: number
  /**
   * Where each run was paired with a peer's run just before it (the tracker section): the median
   * of the runs' throughput ratios, this ÷ the peer's. Steadier than a ratio of two medians taken
   * in different phases of a run, when the machine's load drifts between them.
   */
  paired?: number
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

/**
 * Whether this machine is a VM guest whose balloon device takes freed memory back (free page
 * reporting): Linux reports free 8 MiB blocks to the host a second or two after they are
 * freed, the host discards them, and the guest's next touch of each page is a fault on the
 * host, invisible in the guest except as slow memory. Here (Firecracker) a 512 MiB buffered
 * write into a new file costs 0.19 s with warm free memory and 1.6 s with reclaimed memory,
 * and which one a run gets depends on what ran seconds before it: that, not the tools, made
 * the fresh-sync times bimodal (0.6 s or 1.7 s) in earlier benches.
 */
export const HOST_RECLAIMS_FREE_MEMORY = ((): boolean => {
  try {
    if (!existsSync('/sys/module/page_reporting')) return false
    return readdirSync('/sys/bus/virtio/drivers/virtio_balloon').some((f) => f.startsWith('virtio'))
  } catch {
    return false
  }
})()

/**
 * On such a guest (HOST_RECLAIMS_FREE_MEMORY), touch `bytes` of memory in a short-lived
 * process just before a timed run: its pages are faulted back in on the host and freed at
 * the head of the guest's free lists, so the run that follows gets warm memory, like on any
 * machine that is not a balloon guest. Every case of a section gets the same treatment;
 * untimed. Elsewhere a no-op.
 */
export function settleMemory(bytes: number): void {
  if (!HOST_RECLAIMS_FREE_MEMORY || process.env.VDREP_BENCH_SETTLE === '0') return
  let avail = Infinity
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'latin1'))
    if (m) avail = Number(m[1]) * 1024
  } catch {
    // no /proc/meminfo: touch what was asked
  }
  const n = Math.floor(Math.min(bytes, avail / 2) / 4096) * 4096
  if (n <= 0) return
  spawnSync(process.execPath, ['-e', `Buffer.allocUnsafe(${n}).fill(1)`], {stdio: 'ignore'})
}

/** How much memory settleMemory touches before a run over a disk of `diskBytes`: the page cache of a whole new replica, with room for the processes' own heaps. */
export function settleBytesFor(diskBytes: number): number {
  return Math.round(diskBytes * 1.25) + 512 * 2 ** 20
}

/**
 * Time `fn` `runs` times (after `prepare` each time, untimed). With `cpu`, each run's
 * machine-wide busy CPU-seconds (machineBusySeconds) are pushed to it as well; with `settle`,
 * settleMemory(settle) runs after `prepare`, just before the clock starts.
 */
export async function timeRuns(
  runs: number,
  fn: () => Promise<void> | void,
  prepare?: () => Promise<void> | void,
  cpu?: number[],
  settle = 0,
): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < runs; i++) {
    if (prepare) await prepare()
    settleMemory(settle)
    const c = machineBusySeconds()
    const t = performance.now()
    await fn()
    out.push((performance.now() - t) / 1000)
    const c2 = machineBusySeconds()
    if (cpu && c !== undefined && c2 !== undefined) cpu.push(c2 - c)
  }
  return out
}

let clockTicks: number | undefined

/** The aggregate "cpu" line of /proc/stat in seconds (user nice system idle iowait irq softirq steal ...), or undefined. */
function procStatCpuSeconds(): number[] | undefined {
  let line: string
  try {
    line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]
  } catch {
    return undefined
  }
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return undefined
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], {encoding: 'utf8'}).stdout) || 100
  return f.map((x) => x / (clockTicks as number))
}

/**
 * CPU-seconds the whole machine has spent busy since boot: user, nice, system, irq and
 * softirq time of every CPU (not idle, iowait or steal); undefined where /proc/stat cannot
 * be read. The difference over a run is the CPU time that run cost everything on the
 * machine (here: client, sshd, receiver and the kernel's writeback).
 */
export function machineBusySeconds(): number | undefined {
  const f = procStatCpuSeconds()
  return f && f[0] + f[1] + f[2] + f[5] + f[6]
}

/**
 * CPU-seconds the hypervisor has taken from this machine's CPUs since boot (steal), or
 * undefined. On a shared host this is the noise: a run that waited on stolen CPUs looks
 * slower, and its busy CPU-seconds larger, than the same run on a quiet host.
 */
export function machineStealSeconds(): number | undefined {
  return procStatCpuSeconds()?.[7]
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

export function row(section: string, name: string, runs: number[], bytes: number, note?: string, cpu?: number[]): BenchRow {
  const r: BenchRow = {section, name, seconds: median(runs), bytes, runs, note}
  if (cpu && cpu.length > 0) r.cpuSeconds = median(cpu)
  return r
}

export function mbps(r: BenchRow): number {
  return r.bytes / 1e6 / r.seconds
}
