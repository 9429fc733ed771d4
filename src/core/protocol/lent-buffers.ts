// Buffers a writer lends to a stream and reuses once the stream's write callback has run
// (FrameWriter.sendLent). A carrier that keeps a reference to what it is given (the in-memory
// duplex pair hands the very buffer to its peer) must copy these, and only these: every other
// frame part is either fresh or, like a full sync's chunk views, left alone by its writer
// until the receiver acknowledges it at the protocol level, so copying it would only cost a
// zero-filled allocation and a memcpy per block (~120 ms of a 1 GiB local sync).
const lent = new WeakSet<Uint8Array>()

export function markLent(buf: Uint8Array): void {
  lent.add(buf)
}

export function isLent(buf: Uint8Array): boolean {
  return lent.has(buf)
}
