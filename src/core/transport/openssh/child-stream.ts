// A Duplex over one `ssh -W` process: what is written goes to its stdin, what it prints on
// stdout is read. Backpressure both ways (a full pipe pauses the writer; a reader that does
// not read pauses ssh's stdout). The process ending with a failure fails the stream with the
// typed error its stderr explains; destroying the stream ends the process, so a sync that
// aborts cuts the tunnel at once, as the ssh2 carrier's abort does.

import type {ChildProcessByStdio} from 'node:child_process'
import {Duplex, type Readable, type Writable} from 'node:stream'

export type SshChild = ChildProcessByStdio<Writable, Readable, Readable>

export class ChildStream extends Duplex {
  constructor(private readonly child: SshChild) {
    super({allowHalfOpen: true, readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20})
    child.stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) child.stdout.pause()
    })
    child.stdout.on('end', () => this.push(null))
    // EPIPE once ssh is gone: the exit handler (the transport) says why; until then, fail plainly.
    child.stdin.on('error', (err) => this.fail(err))
    child.stdout.on('error', (err) => this.fail(err))
  }

  /** Fails the stream with this error (ssh ended with a failure). */
  fail(err: Error): void {
    if (!this.destroyed) this.destroy(err)
  }

  override _read(): void {
    this.child.stdout.resume()
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.child.stdin.write(chunk, encoding, cb)
  }

  /** Many buffered chunks go to the pipe as one writev (a frame is header, fields and block). */
  override _writev(chunks: Array<{chunk: Buffer; encoding: BufferEncoding}>, cb: (err?: Error | null) => void): void {
    const stdin = this.child.stdin
    stdin.cork()
    for (let i = 0; i < chunks.length - 1; i++) stdin.write(chunks[i].chunk)
    stdin.write(chunks[chunks.length - 1].chunk, cb)
    stdin.uncork()
  }

  override _final(cb: (err?: Error | null) => void): void {
    // EOF on stdin: ssh sends EOF on the channel, the receiver finishes and closes it.
    this.child.stdin.end()
    cb()
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.child.stdin.destroy()
    this.child.stdout.destroy()
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM')
    cb(err)
  }
}
