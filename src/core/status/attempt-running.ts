// The attempt in progress: `<state>.vdrep-running`, written once a push or full sync holds the
// disk and really starts (after --if-due), removed when its outcome is recorded. Without it a
// push killed by kill -9, the OOM killer, systemd's stop timeout or a power cut left the side
// file of the attempt before it as the last word, and `status` said OK until the RPO ran out.
// A marker whose process is gone is such an attempt: `status` and the next attempt count it as
// a failure (ATTEMPT_INTERRUPTED). The process is named by its pid and its start (boot id and
// start time from /proc), so a pid reused by another process does not keep a dead attempt alive.
import fs from 'node:fs/promises'
import {existsSync} from 'node:fs'
import {psfPathFor, statePathFor} from '../psf/state-location.js'
import {writeFileAtomic} from '../util/fs-atomic.js'
import {encodeSideFile, isPositiveInt, parseSideFile} from '../util/json-side-file.js'
import type {AttemptKind} from './last-attempt.js'

export const RUNNING_SUFFIX = '.vdrep-running'
const MAGIC = 'vdrep-running'
const VERSION = 1

export interface RunningAttempt {
  kind: AttemptKind
  sinceMs: number
  pid: number
  /** `<boot id>:<start time in clock ticks>` of the process; null where /proc cannot say. */
  procStart: string | null
}

export function runningPathFor(disk: string): string {
  return statePathFor(disk, RUNNING_SUFFIX)
}

/** A marker as written by markRunning; null for anything else. */
export function decodeRunning(text: string): RunningAttempt | null {
  const o = parseSideFile(text, MAGIC, VERSION)
  if (o === null) return null
  if (o.kind !== 'push' && o.kind !== 'fullsync') return null
  if (!isPositiveInt(o.sinceMs) || !isPositiveInt(o.pid)) return null
  if (o.procStart !== null && (typeof o.procStart !== 'string' || o.procStart.length > 100)) return null
  return {kind: o.kind, sinceMs: o.sinceMs, pid: o.pid, procStart: o.procStart as string | null}
}

export function encodeRunning(r: RunningAttempt): Buffer {
  return encodeSideFile(MAGIC, VERSION, r)
}

/** The start of process `pid` on this boot; null when it does not exist (or /proc cannot say). */
export async function processStartOf(pid: number): Promise<string | null> {
  const [boot, stat] = await Promise.all([
    fs.readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => null),
    fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null),
  ])
  if (boot === null || stat === null) return null
  // Fields after the command name (which may hold spaces and parentheses): state is field 3, starttime field 22.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const start = fields[22 - 3]
  return start && /^\d+$/.test(start) ? `${boot.trim()}:${start}` : null
}

async function readRunning(disk: string): Promise<RunningAttempt | null> {
  const text = await fs.readFile(runningPathFor(disk), 'utf8').catch(() => null)
  return text === null ? null : decodeRunning(text)
}

/** Records that this process's attempt has started. Never throws (the sync is what matters); a failure goes to `warn`. */
export async function markRunning(disk: string, kind: AttemptKind, opts: {now?: number; warn?: (line: string) => void} = {}): Promise<void> {
  if (!existsSync(psfPathFor(disk))) return
  const mark: RunningAttempt = {kind, sinceMs: opts.now ?? Date.now(), pid: process.pid, procStart: await processStartOf(process.pid)}
  try {
    await writeFileAtomic(runningPathFor(disk), encodeRunning(mark), 0o600)
  } catch (err) {
    opts.warn?.(`cannot record the running ${kind} in ${runningPathFor(disk)}: ${(err as Error).message}`)
  }
}

/** Removes this process's marker (a marker another process wrote since stays). */
export async function clearRunning(disk: string): Promise<void> {
  const r = await readRunning(disk)
  if (r === null || r.pid !== process.pid) return
  await fs.unlink(runningPathFor(disk)).catch(() => {})
}

/**
 * The attempt that started and never recorded its outcome: its marker is there and its process
 * is gone (or the pid now names another process). null while it runs, when there is none, or
 * when /proc cannot tell (a living attempt is never reported as killed).
 */
export async function interruptedAttempt(disk: string): Promise<RunningAttempt | null> {
  const r = await readRunning(disk)
  if (r === null) return null
  const now = await processStartOf(r.pid)
  if (now !== null) return r.procStart !== null && now !== r.procStart ? r : null
  // No such process. Say so only if /proc answers for a process we know exists (our own).
  return (await processStartOf(process.pid)) !== null ? r : null
}
