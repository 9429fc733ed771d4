// Buffer ownership on the carrier: the one rule.
//
//   A buffer handed across the carrier is lent. It belongs to the side it was handed to until
//   that side releases it, and its lender never writes it before then. Whoever keeps a lent
//   buffer past its release copies it first.
//
// Every hand-over names its release, and nothing else decides when memory is reused:
// - Bytes a ByteSource lends (transport/byte-source.ts lend(): a DATA frame's body through
//   Frame.body, an NBD write's payload): released by release() (Frame.release()). Until then
//   the source neither reads into them again (a SocketReader slab stays pinned) nor hands them
//   out again (a pooled copy of bytes that spanned two reads stays out of the pool).
// - FrameWriter.sendLent()'s body, lent by a sender to the carrier: released by the carrier's
//   write callback, after which the sender reuses it (a BufferPool buffer of a push's reads).
//   So a carrier that keeps a reference past its write callback copies what it is lent: the
//   duplex pair, which hands the very buffer to its peer, copies the buffers marked here;
//   the worker's port copies every write but shared memory into its staging buffer, and the
//   SSH tunnel's writes are copied into encrypted packets before their callback.
// - FrameWriter.send()'s parts: their release is the receiver's acknowledgement in the
//   protocol (a full sync's chunk views are reused only once a CHECKPOINT_ACK covers their
//   blocks), or never (a fresh buffer). A carrier may keep them as they are; that is what
//   makes the local carriers copy-free (a copy per block was ~120 ms of a 1 GiB local sync).
//   The worker's port posts such chunks in shared memory as views, under the same release.
//
// markLent() is how a carrier tells the second case from the third.
const lent = new WeakSet<Uint8Array>()

/** `buf` is lent until the write that carries it calls back (FrameWriter.sendLent). */
export function markLent(buf: Uint8Array): void {
  lent.add(buf)
}

/** True for a buffer that a carrier keeping references must copy (see the rule above). */
export function isLent(buf: Uint8Array): boolean {
  return lent.has(buf)
}
