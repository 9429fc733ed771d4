// Shared by the tracker tests: run `vdrep track` through the real binary, wait until it
// serves, stop it by signal; read the bitmaps back from the .psf; block arithmetic.
import assert from 'node:assert/strict'
import type {ChildProcess} from 'node:child_process'
import {Region} from '../../../src/core/psf/layout.js'
import {PsfFile, psfPathFor} from '../../../src/core/psf/psf-file.js'
import {TrackerControlClient} from '../../../src/core/tracker/control-client.js'
import {startVdrep, vdrep, type CliResult} from '../../helpers/cli.js'

export const MiB = 1 << 20

export interface RunningTracker {
  child: ChildProcess
  /** The "tracking ..." line. */
  line: string
  stdout(): string
  stderr(): string
  /** Signal and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>
  /** The exit (whatever ended it). */
  exited: Promise<CliResult>
}

/** Start `vdrep track <disk> ...args`; resolves once it prints its serving line, rejects if it exits first. */
export function startTracker(disk: string, args: string[], env?: NodeJS.ProcessEnv): Promise<RunningTracker> {
  const child = startVdrep(['track', disk, ...args], {env})
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({code, signal, stdout: out, stderr: err})))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the tracker did not start in 20 s\n${out}\n${err}`))
    }, 20_000)
    const onData = () => {
      const line = out.split('\n').find((l) => l.startsWith('tracking '))
      if (!line) return
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      resolve({
        child,
        line,
        stdout: () => out,
        stderr: () => err,
        exited,
        stop: (signal = 'SIGTERM') => {
          child.kill(signal)
          return exited
        },
      })
    }
    child.stdout?.on('data', onData)
    void exited.then((r) => {
      clearTimeout(timer)
      reject(new Error(`the tracker exited (${r.code ?? r.signal}) before serving:\n${r.stdout}\n${r.stderr}`))
    })
  })
}

/** A started tracker must fail: its result. */
export async function trackerRefuses(disk: string, args: string[]): Promise<CliResult> {
  const r = await vdrep(['track', disk, ...args])
  assert.notEqual(r.code, 0, `the tracker should have refused:\n${r.stdout}\n${r.stderr}`)
  return r
}

/**
 * Wait until the running tracker's check behind its export has ended (after an unclean stop it
 * marks what the activity log's hot extents hold): only then is the .psf's bitmap complete.
 */
export async function checkEnded(disk: string): Promise<void> {
  const c = await TrackerControlClient.connect(disk)
  try {
    for (let i = 0; i < 1500 && (await c.status()).verifying; i++) await new Promise((r) => setTimeout(r, 20))
    assert.equal((await c.status()).verifying, null, 'the check behind the export ended')
  } finally {
    await c.close().catch(() => {})
  }
}

export async function bitmapBlocks(disk: string, region: typeof Region.ACTIVE | typeof Region.INFLIGHT = Region.ACTIVE): Promise<number[]> {
  const psf = await PsfFile.open(psfPathFor(disk), false)
  try {
    return [...(await psf.readBitmap(region)).bitmap.setBlocks()]
  } finally {
    await psf.close()
  }
}

/** Blocks touched by [offset, offset+length). */
export function blocksOf(offset: number, length: number, bs: number): number[] {
  const out: number[] = []
  for (let b = Math.floor(offset / bs); b <= Math.floor((offset + length - 1) / bs); b++) out.push(b)
  return out
}

export function sorted(set: Iterable<number>): number[] {
  return [...new Set(set)].sort((a, b) => a - b)
}

/** Blocks whose bytes differ between two equal-length buffers. */
export function changedBlocks(a: Buffer, b: Buffer, bs: number): number[] {
  const out: number[] = []
  for (let off = 0; off < a.length; off += bs) {
    if (!a.subarray(off, off + bs).equals(b.subarray(off, off + bs))) out.push(off / bs)
  }
  return out
}

export async function initDisk(disk: string, replica: string, ...extra: string[]): Promise<void> {
  const r = await vdrep(['init', disk, '--to', replica, ...extra])
  assert.equal(r.code, 0, r.stderr)
}
