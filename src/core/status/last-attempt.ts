// The last push or full sync of a disk, whatever its outcome: `<state>.vdrep-last`, a small
// side file next to the .psf (state-location.ts decides where; block devices included). The
// .psf records only successes (lastSyncMs), so without this a push failing every minute looked
// OK until the RPO ran out. Kept out of the .psf on purpose: it is rewritten on every attempt
// (also the failed ones, when the .psf may be the very thing that is broken) and its loss costs
// nothing but the last error's text. Written atomically (temp + rename); the decoder rejects
// anything that is not exactly this format, and a rejected file reads as "no attempt known".
import fs from 'node:fs/promises'
import {existsSync} from 'node:fs'
import {asVdrepError, type ErrorCode} from '../errors.js'
import {psfPathFor, statePathFor} from '../psf/state-location.js'
import {writeFileAtomic} from '../util/fs-atomic.js'
import {encodeSideFile, isPositiveInt, parseSideFile} from '../util/json-side-file.js'
import {clearRunning, interruptedAttempt, markRunning} from './attempt-running.js'

export const LAST_ATTEMPT_SUFFIX = '.vdrep-last'
const MAGIC = 'vdrep-last'
const VERSION = 1
/** An error message is kept for a person to read, not as a log: bounded. */
const MAX_MESSAGE = 2000

export type AttemptKind = 'push' | 'fullsync'

export interface LastAttempt {
  kind: AttemptKind
  /** When the attempt ended, ms since the epoch. */
  atMs: number
  ok: boolean
  /** The error code (registry) of a failed attempt; null when ok. */
  errorCode: string | null
  errorMessage: string | null
  /** The last attempt that succeeded (ms), as this file saw it; null when none since it exists. */
  lastOkMs: number | null
  /** Failed attempts in a row, 0 after a success. */
  failuresInRow: number
}

/** Outcomes that are not an attempt of this disk's sync: another process runs it, or it never started. */
const NOT_AN_ATTEMPT: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['LOCKED', 'PSF_MISSING'])

export function lastAttemptPathFor(disk: string): string {
  return statePathFor(disk, LAST_ATTEMPT_SUFFIX)
}

/** Decodes a side file; null for anything that is not a version-1 record with sane fields. */
export function decodeLastAttempt(text: string): LastAttempt | null {
  const o = parseSideFile(text, MAGIC, VERSION)
  if (o === null) return null
  const isTime = isPositiveInt
  const isText = (x: unknown) => x === null || (typeof x === 'string' && x.length <= MAX_MESSAGE)
  if (o.kind !== 'push' && o.kind !== 'fullsync') return null
  if (!isTime(o.atMs) || typeof o.ok !== 'boolean') return null
  if (!isText(o.errorCode) || !isText(o.errorMessage)) return null
  if (o.ok !== (o.errorCode === null)) return null
  if (o.lastOkMs !== null && !isTime(o.lastOkMs)) return null
  if (typeof o.failuresInRow !== 'number' || !Number.isSafeInteger(o.failuresInRow) || o.failuresInRow < 0) return null
  if (o.ok && o.failuresInRow !== 0) return null
  return {
    kind: o.kind,
    atMs: o.atMs as number,
    ok: o.ok,
    errorCode: o.errorCode as string | null,
    errorMessage: o.errorMessage as string | null,
    lastOkMs: o.lastOkMs as number | null,
    failuresInRow: o.failuresInRow,
  }
}

export function encodeLastAttempt(a: LastAttempt): Buffer {
  return encodeSideFile(MAGIC, VERSION, a)
}

/** The disk's last recorded outcome; null when none is recorded (or the file is not one vdrep wrote). */
export async function readRecordedAttempt(disk: string): Promise<LastAttempt | null> {
  const text = await fs.readFile(lastAttemptPathFor(disk), 'utf8').catch(() => null)
  return text === null ? null : decodeLastAttempt(text)
}

/**
 * The disk's last attempt: the recorded outcome, or, when an attempt started after it and its
 * process died without recording one (attempt-running.ts), that attempt as a failure.
 */
export async function readLastAttempt(disk: string): Promise<LastAttempt | null> {
  const [recorded, killed] = await Promise.all([readRecordedAttempt(disk), interruptedAttempt(disk)])
  if (killed === null || (recorded !== null && recorded.atMs > killed.sinceMs)) return recorded
  return {
    kind: killed.kind,
    atMs: killed.sinceMs,
    ok: false,
    errorCode: 'ATTEMPT_INTERRUPTED' satisfies ErrorCode,
    errorMessage: `the ${killed.kind} that process ${killed.pid} started then ended without recording an outcome (killed, or the host went down)`,
    lastOkMs: recorded?.lastOkMs ?? null,
    failuresInRow: (recorded && !recorded.ok ? recorded.failuresInRow : 0) + 1,
  }
}

/**
 * Records one attempt's outcome. Never throws: a sync's own result (or error) is what the
 * caller reports; a side file that cannot be written is reported through `warn`.
 */
export async function recordAttempt(
  disk: string,
  kind: AttemptKind,
  outcome: {ok: true} | {ok: false; error: unknown},
  opts: {now?: number; warn?: (line: string) => void} = {},
): Promise<void> {
  try {
    await recordOutcome(disk, kind, outcome, opts)
  } finally {
    // This process's marker goes whatever was recorded (nothing, for an outcome that is no attempt).
    await clearRunning(disk)
  }
}

async function recordOutcome(
  disk: string,
  kind: AttemptKind,
  outcome: {ok: true} | {ok: false; error: unknown},
  opts: {now?: number; warn?: (line: string) => void},
): Promise<void> {
  let code: string | null = null
  let message: string | null = null
  if (!outcome.ok) {
    const e = asVdrepError(outcome.error)
    if (NOT_AN_ATTEMPT.has(e.code)) return
    code = e.code
    message = e.message.slice(0, MAX_MESSAGE)
  }
  // No record, no state to keep beside it (an uninitialised disk gets no stray file).
  if (!existsSync(psfPathFor(disk))) return
  const now = opts.now ?? Date.now()
  const prev = await readLastAttempt(disk)
  const next: LastAttempt = {
    kind,
    atMs: now,
    ok: outcome.ok,
    errorCode: code,
    errorMessage: message,
    lastOkMs: outcome.ok ? now : (prev?.lastOkMs ?? null),
    failuresInRow: outcome.ok ? 0 : (prev?.failuresInRow ?? 0) + 1,
  }
  await writeAttempt(disk, next, opts.warn)
}

async function writeAttempt(disk: string, a: LastAttempt, warn?: (line: string) => void): Promise<void> {
  try {
    await writeFileAtomic(lastAttemptPathFor(disk), encodeLastAttempt(a), 0o600)
  } catch (err) {
    warn?.(`cannot record the attempt in ${lastAttemptPathFor(disk)}: ${(err as Error).message}`)
  }
}

/** An attempt starts: a killed one before it is recorded as the failure it was (its marker is about to be replaced), then this one's marker. */
export async function beginAttempt(disk: string, kind: AttemptKind, warn?: (line: string) => void): Promise<void> {
  if ((await interruptedAttempt(disk)) !== null) {
    const killed = await readLastAttempt(disk)
    if (killed) await writeAttempt(disk, killed, warn)
  }
  await markRunning(disk, kind, {warn})
}

/**
 * Runs one sync and records its outcome (a skipped, not-due push is no attempt). The sync calls
 * `begun` once it holds the disk and starts: from then on an outcome that is never recorded (the
 * process killed) reads as an interrupted attempt.
 */
export async function withAttemptRecord<T>(
  disk: string,
  kind: AttemptKind,
  run: (begun: () => Promise<void>) => Promise<T>,
  opts: {skipped?: (r: T) => boolean; warn?: (line: string) => void} = {},
): Promise<T> {
  let result: T
  try {
    result = await run(() => beginAttempt(disk, kind, opts.warn))
  } catch (err) {
    await recordAttempt(disk, kind, {ok: false, error: err}, {warn: opts.warn})
    throw err
  }
  if (!opts.skipped?.(result)) await recordAttempt(disk, kind, {ok: true}, {warn: opts.warn})
  return result
}
