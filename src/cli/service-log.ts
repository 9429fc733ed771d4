// The log of a long-running command (`vdrep serve`, `vdrep track`): a file that SIGHUP reopens
// (logrotate renames it, then signals; the lines before the signal finish in the renamed
// file, the ones after go to a new file of the old name), or stderr. Under systemd, whose
// journal is stderr ($JOURNAL_STREAM names it), a line carries no timestamp of its own (the
// journal stamps it) and starts with its fields, `disk=... uid=... session=... seq=...`, so
// `journalctl -u vdrep-serve | grep disk=/srv/r/web.img` finds a disk's sessions.
import fs from 'node:fs'
import path from 'node:path'
import {UsageError} from '../core/errors.js'
import type {LogFields} from '../core/receiver/session-log.js'

/** True when stderr is the journal's stream (systemd sets JOURNAL_STREAM=<dev>:<inode> of it). */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env.JOURNAL_STREAM
  if (!js) return false
  try {
    const st = fs.fstatSync(2)
    return js === `${st.dev}:${st.ino}`
  } catch {
    return false
  }
}

/** `disk=/r/a.img uid=1000 session=4 seq=17 `: values with spaces or quotes are JSON-quoted. */
export function fieldPrefix(fields: LogFields | undefined): string {
  if (!fields) return ''
  const parts: string[] = []
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue
    const text = String(v)
    parts.push(`${k}=${/[\s"\\=]/.test(text) || text === '' ? JSON.stringify(text) : text}`)
  }
  return parts.length > 0 ? `${parts.join(' ')} ` : ''
}

export class ServiceLog {
  private stream: fs.WriteStream | undefined
  private readonly journal: boolean

  /** `tag` starts a stderr line outside the journal (`vdrep serve: ...`). */
  constructor(
    private readonly file: string | undefined,
    private readonly tag: string,
  ) {
    this.journal = file === undefined && stderrIsJournal()
    if (file !== undefined) this.stream = openLog(file)
  }

  get toFile(): boolean {
    return this.file !== undefined
  }

  line(text: string, fields?: LogFields): void {
    const body = `${fieldPrefix(fields)}${text}`
    if (this.stream) this.stream.write(`${new Date().toISOString()} ${body}\n`)
    else if (this.journal) process.stderr.write(`${body}\n`)
    else process.stderr.write(`${this.tag}: ${body}\n`)
  }

  /**
   * SIGHUP: open the file by its name again. The old stream flushes what it holds into the
   * file it had open (renamed by logrotate), so no line is lost or split between the two.
   * Throws (and keeps the old stream) when the new file cannot be opened.
   */
  reopen(): void {
    if (this.file === undefined || !this.stream) return
    const next = openLog(this.file)
    const old = this.stream
    this.stream = next
    old.end()
  }

  close(): Promise<void> {
    const s = this.stream
    this.stream = undefined
    return s ? new Promise<void>((r) => s.end(r)) : Promise.resolve()
  }
}

function openLog(file: string): fs.WriteStream {
  let fd: number
  try {
    fs.mkdirSync(path.dirname(file), {recursive: true, mode: 0o700})
    // Opened now, not when the stream gets to it: a rename right after (logrotate) must not
    // send this stream's lines to the next file of that name.
    fd = fs.openSync(file, 'a', 0o600)
  } catch (err) {
    throw new UsageError('LOG_FILE', `cannot write the log file ${file}: ${(err as Error).message}`)
  }
  return fs.createWriteStream(file, {fd, flags: 'a'})
}
