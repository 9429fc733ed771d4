// A Duplex over one `ssh -W` process: what is written goes to its stdin, what it prints on
// stdout is read. Backpressure both ways (a full pipe pauses the writer; a reader that does
// not read pauses ssh's stdout). The process ending with a failure fails the stream with the
// typed error its stderr explains; destroying the stream ends the process, so a sync that
// aborts cuts the tunnel at once, as the ssh2 carrier's abort does.

import type {ChildProcessByStdio} from 'node:child_process'
import {Duplex, type Readable, type Writable} from 'node:stream'

export type SshChild = ChildProcessByStdio<Writable, Readable, Readable>

/** How long a broken pipe waits for ssh's exit to say why, before it fails the stream itself. */
const EXPLAIN_WAIT_MS = 2_000

export class ChildStream extends Duplex {
  /** A write that failed (EPIPE: ssh is gone), held until the typed error is known. */
  private held: ((err?: Error | null) => void) | undefined
  private fallback: NodeJS.Timeout | undefined

  constructor(private readonly child: SshChild) {
    super({allowHalfOpen: true, readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20})
    child.stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) child.stdout.pause()
    })
    child.stdout.on('end', () => this.push(null))
    // EPIPE once ssh is gone: its exit (the transport's handler) says why, as a typed error
    // (a cut connection, a refused login); a bare EPIPE only if that does not come.
    child.stdin.on('error', (err) => this.failSoon(err))
    child.stdout.on('error', (err) => this.failSoon(err))
  }

  /** Fails the stream with this error (ssh ended with a failure), a held write first. */
  fail(err: Error): void {
    clearTimeout(this.fallback)
    const cb = this.held
    this.held = undefined
    cb?.(err)
    if (!this.destroyed) this.destroy(err)
  }

  private failSoon(err: Error): void {
    if (this.fallback === undefined) this.fallback = setTimeout(() => this.fail(err), EXPLAIN_WAIT_MS)
  }

  private written(cb: (err?: Error | null) => void): (err?: Error | null) => void {
    return (err) => {
      if (!err) return cb()
      this.held = cb
      this.failSoon(err)
    }
  }

  override _read(): void {
    this.child.stdout.resume()
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.child.stdin.write(chunk, encoding, this.written(cb))
  }

  /** Many buffered chunks go to the pipe as one writev (a frame is header, fields and block). */
  override _writev(chunks: Array<{chunk: Buffer; encoding: BufferEncoding}>, cb: (err?: Error | null) => void): void {
    const stdin = this.child.stdin
    stdin.cork()
    for (let i = 0; i < chunks.length - 1; i++) stdin.write(chunks[i].chunk)
    stdin.write(chunks[chunks.length - 1].chunk, this.written(cb))
    stdin.uncork()
  }

  override _final(cb: (err?: Error | null) => void): void {
    // EOF on stdin: ssh sends EOF on the channel, the receiver finishes and closes it.
    this.child.stdin.end()
    cb()
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    clearTimeout(this.fallback)
    this.child.stdin.destroy()
    this.child.stdout.destroy()
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM')
    cb(err)
  }
}
