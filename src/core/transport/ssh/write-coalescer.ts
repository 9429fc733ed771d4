// Gathers the SSH packets written in one tick into one socket write (cork until the next
// tick). ssh2 writes every packet (32 KiB at most: the server's channel packet size) to the
// socket on its own, and a write to a loopback or LAN socket is a system call that also wakes
// the peer: a 64 KiB frame was three of them. Corked for the tick, a burst of frames is one.
// The socket comes from ssh2's internals (ssh2-internals.ts); without them nothing is gathered.

import type {Socket} from 'node:net'

/** Corked socket writes go out once this much is waiting. */
export const COALESCE_BYTES = 128 << 10

export class WriteCoalescer {
  private corked = false

  constructor(private readonly socket: Socket) {}

  /** Call before each write into ssh2: holds the socket's writes back to the end of this tick. */
  readonly beforeWrite = (): void => {
    const sock = this.socket
    if (sock.destroyed) return
    if (this.corked) {
      // A sender that never yields would hold a whole SSH window (2 MiB) back until the end
      // of its tick, and the far side would get it in stop-and-go bursts: let it go in
      // pieces of COALESCE_BYTES.
      if (sock.writableLength >= COALESCE_BYTES) {
        sock.uncork()
        sock.cork()
      }
      return
    }
    this.corked = true
    sock.cork()
    process.nextTick(() => {
      this.corked = false
      sock.uncork()
    })
  }
}
