// A ByteSource over any Readable (the buffering is received-bytes.ts's): the client's end of
// every carrier, and the receiver's end of the in-process duplex pair and of the worker
// thread's port. The chunks are the stream's, never read into again by this source, so views
// of them stay valid without pinning anything (reusesMemory is false); lent bytes that span
// chunks are pooled copies (lent-buffers.ts). A stream error is passed on as it is (a
// TransportError from the SSH channel, a worker's failure); an end is EOF_CODE.
import type {Readable} from 'node:stream'
import {PeerGoneError, TransportError, VdrepError} from '../errors.js'
import {EOF_CODE} from './byte-source.js'
import {ReceivedBytes} from './received-bytes.js'

/** Buffered bytes above which the stream is paused until a read needs more. */
const HIGH_WATER = 8 << 20
/**
 * Below this the stream is resumed again. The gap keeps a stream that fills faster than it is
 * read (the duplex pair of a local full sync) from pausing and resuming at every frame.
 */
const LOW_WATER = HIGH_WATER / 2

export class StreamSource extends ReceivedBytes {
  readonly reusesMemory = false

  constructor(private readonly stream: Readable) {
    super(HIGH_WATER, LOW_WATER)
    // A stream that ended before it was handed over will not say so again.
    if (stream.readableEnded || stream.destroyed) this.fail(eof())
    // Handed over paused (a server socket accepted with pauseOnConnect): the first read resumes it.
    if (stream.isPaused()) this.startPaused()
    stream.on('data', (chunk: Buffer) => this.onData(chunk))
    stream.on('end', () => this.fail(eof()))
    stream.on('close', () => this.fail(eof()))
    // An error tells more than the end that may have come first.
    // Decided here, where it happened: a failing stream is the connection, not a local disk.
    stream.on('error', (err) => this.fail(streamFailure(err), (this.failed as {code?: string} | null)?.code === EOF_CODE))
  }

  /** Nothing to give back: the stream's chunks are never reused by this source. */
  protected freed(): void {}

  protected pauseInput(): void {
    this.stream.pause()
  }

  protected resumeInput(): void {
    this.stream.resume()
  }
}

function eof(): Error {
  return new PeerGoneError(EOF_CODE, 'the connection was closed')
}

function streamFailure(err: unknown): Error {
  if (err instanceof VdrepError) return err
  return new TransportError('STREAM_FAILED', `the connection failed: ${err instanceof Error ? err.message : String(err)}`, {cause: err})
}
