// The tracker bench's workloads and harness (bench/tracker-bench.ts): the NBD writers
// (nbdcopy, qemu-img bench), waiting for a server's socket, a record reset to "clean after a
// full sync" (cleared bitmaps, a cold activity log), a push's clearing of the bits, and the
// tracker's log counters after a run.
import {spawn, type ChildProcess} from 'node:child_process'
import {readFileSync} from 'node:fs'
import fs from 'node:fs/promises'
import net from 'node:net'
import {Bitmap} from '../src/core/psf/bitmap.js'
import {HeaderFlag} from '../src/core/psf/header.js'
import {Region} from '../src/core/psf/layout.js'
import {PsfFile, psfPathFor} from '../src/core/psf/psf-file.js'
import {TrackerControlClient} from '../src/core/tracker/control-client.js'
import {emptyActivityLog} from '../src/core/psf/activity-log.js'
import {STAMP_SETTLE_MS} from '../src/core/psf/disk-stamp.js'

const KiB = 1024
export const DEPTH = 16

export interface Workload {
  key: string
  /** Bytes written by one execution. */
  bytes: number
  ops: number
  /** Run against an NBD URI; resolves with the seconds it took. */
  run(uri: string): Promise<number>
  /** The same requests elsewhere on the disk (its other half), or undefined for a workload that spans the disk. */
  elsewhere?: (uri: string) => Promise<number>
}

/** What a push does to the tracker's record, without shipping anything: every bit cleared. */
export async function clearBitsLikeAPush(disk: string): Promise<void> {
  const c = await TrackerControlClient.connect(disk)
  try {
    await c.freeze({preserve: false})
    await c.complete(true)
  } finally {
    await c.close()
  }
}

export function exec(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, {stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    let err = ''
    c.stdout.on('data', (d: Buffer) => (out += d.toString()))
    c.stderr.on('data', (d: Buffer) => (err += d.toString()))
    c.on('error', reject)
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`))))
  })
}

/** One qemu-img bench run of writes (`step` = size: sequential); resolves with the seconds it printed. */
async function qemuImgBench(uri: string, size: number, depth: number, count: number, step: number, offset = 0): Promise<number> {
  const args = ['bench', '-w', '-s', String(size), '-d', String(depth), '-c', String(count), '-S', String(step), '-o', String(offset), '-f', 'raw', uri]
  const out = await exec('qemu-img', args)
  const m = /Run completed in ([\d.]+) seconds/.exec(out)
  if (!m) throw new Error(`qemu-img bench printed no time: ${out}`)
  return Number(m[1])
}

/** nbdcopy of `src` onto the start of the disk; elsewhere: as many requests of that size at `otherHalf`. */
export function nbdcopy(src: string, bytes: number, requestSize: number, otherHalf: number): Workload {
  const ops = bytes / requestSize
  return {
    key: `seq ${requestSize / KiB}k qd${DEPTH}`,
    bytes,
    ops,
    async run(uri) {
      const t = performance.now()
      await exec('nbdcopy', [`--request-size=${requestSize}`, `--requests=${DEPTH}`, '--connections=1', src, uri])
      return (performance.now() - t) / 1000
    },
    elsewhere: (uri) => qemuImgBench(uri, requestSize, DEPTH, ops, requestSize, otherHalf),
  }
}

/** qemu-img bench: `step` = size is sequential (and has an elsewhere); a large prime multiple scatters the writes. */
export function strided(size: number, count: number, step: number, depth: number, otherHalf: number): Workload {
  const kind = step === size ? 'seq' : 'stride'
  return {
    key: `${kind} ${size / KiB}k qd${depth}`,
    bytes: size * count,
    ops: count,
    run: (uri) => qemuImgBench(uri, size, depth, count, step),
    elsewhere: kind === 'seq' ? (uri) => qemuImgBench(uri, size, depth, count, step, otherHalf) : undefined,
  }
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

/** Wait for a unix socket to accept connections. */
export async function waitForSocket(sock: string, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before serving`)
    if (await accepts(sock)) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`${what} did not serve on ${sock}`)
}

export async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((r) => child.once('close', r))
  child.kill(signal)
  await gone
}

/**
 * Clear the change record so the next tracker sees clean blocks and a cold activity log: as
 * after a proved full sync (an index the log could be checked against, so writes go through
 * it) and a clean stop (the disk's stamp now, so the start checks nothing).
 */
export async function resetRecord(disk: string): Promise<void> {
  const psf = await PsfFile.open(psfPathFor(disk))
  try {
    const empty = new Bitmap(psf.layout.blockCount)
    await psf.writeBitmap(Region.ACTIVE, empty)
    await psf.writeBitmap(Region.INFLIGHT, empty)
    await psf.writeActivityLog(
      emptyActivityLog(psf.header.alExtents),
      Array.from({length: psf.layout.alPages}, (_, p) => p),
    )
    await new Promise((r) => setTimeout(r, STAMP_SETTLE_MS))
    const st = await fs.stat(disk, {bigint: true})
    const clean = HeaderFlag.CLEAN_SHUTDOWN | HeaderFlag.INDEX_VALID
    await psf.updateHeader((h) => ({
      flags: (h.flags | clean) & ~(HeaderFlag.NEEDS_FULL_SYNC | HeaderFlag.VERIFY_NEEDED),
      generation: Math.max(1, h.generation),
      sourceSize: Number(st.size),
      sourceMtimeNs: st.mtimeNs,
      sourceCtimeNs: st.ctimeNs,
    }))
  } finally {
    await psf.close()
  }
}

/** A process's CPU time so far (user + sys, s; Linux's /proc, 100 ticks a second), or NaN. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(f[11]) + Number(f[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** The tracker's activity log counters (transactions, writes that waited and for how long in all). */
export async function logCounters(disk: string): Promise<{txns: number; waits: number; waitMs: number}> {
  const c = await TrackerControlClient.connect(disk)
  try {
    const st = await c.status()
    return {txns: st.alTransactions ?? 0, waits: st.alWaits ?? 0, waitMs: st.alWaitMs ?? 0}
  } finally {
    await c.close()
  }
}
