// The one interface the sync engine uses to reach a receiver: frames both ways, the replica's
// path as the receiver is asked for it, and a close. connect.ts picks the carrier for a
// target: the in-memory duplex pair (duplex-pair.ts, the receiver on this thread), a worker
// thread's MessagePort (port-stream.ts, receiver/local-worker.ts), or an SSH tunnel to
// `vdrep serve` (ssh-connect.ts). All three carry the same bytes, read by the one frame
// reader, under the one buffer ownership rule (protocol/lent-buffers.ts).
import type {Duplex} from 'node:stream'
import {FrameReader} from '../protocol/frame-reader.js'
import {FrameWriter} from '../protocol/frame-writer.js'

export interface Carrier {
  /** Frames from the receiver. */
  readonly frames: FrameReader
  /** Frames to the receiver. */
  readonly writer: FrameWriter
  /** Where the replica lives, as the receiver is asked for it (HELLO). */
  readonly replicaPath: string
  /** Cut the connection now (a sync that failed): the receiver sees it close, mid-frame or not. */
  abort(): void
  /** End the conversation and wait until the other side let go (a local receiver finished, the SSH connection closed). */
  close(): Promise<void>
  /**
   * SSH carriers: a second conversation with the receiver on `port` over the same login (a
   * new channel: one round trip, not a login). Close it before this carrier.
   */
  sibling?(port: number): Promise<Carrier>
  /** A sibling is a second login (the OpenSSH carrier: one more ssh process), not one channel. */
  readonly siblingLogsIn?: boolean
}

/** A carrier over `stream`; `release` frees what holds the stream (the local receiver, the SSH connection) once it ended. */
export function streamCarrier(stream: Duplex, replicaPath: string, release: () => Promise<void>, sibling?: (port: number) => Promise<Carrier>): Carrier {
  const writer = new FrameWriter(stream)
  return {
    ...(sibling ? {sibling} : {}),
    frames: new FrameReader(stream),
    writer,
    replicaPath,
    abort: () => void stream.destroy(),
    close: async () => {
      writer.end()
      await release()
    },
  }
}
