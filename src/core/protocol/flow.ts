// The flow-control rules of the full-sync conversation (port 31031): the numbers one end of
// the conversation relies on the other honouring. Both ends import them from here, and
// doc/protocol.md ("Flow control") names each one with its value (test/core/protocol/flow.test.ts
// keeps the two equal). Sizes private to one end (its write queue, its read buffers) stay in
// that end's module: a peer cannot see them and does not depend on them.
//
// The full sync is two streams running at once: the receiver streams statuses while the client
// streams blocks, and neither waits for a reply frame by frame. Each rule below names the wait it
// bounds and the deadlock a peer that ignores it would cause.

/**
 * Receiver rule, relied on by the client. With C the `upto` of the last CHECKPOINT received
 * (0 before the first), the receiver sends the statuses of every block below
 * min(blockCount, C + STATUS_LEAD_BLOCKS) without waiting for any frame from the client, and
 * none at or beyond C + STATUS_LEAD_BLOCKS until a later CHECKPOINT moves C.
 * A receiver that waited for a checkpoint sooner would deadlock with a client that needs those
 * statuses before it can send that checkpoint; one that ran further ahead could fill a client's
 * status queue (STATUS_QUEUE_BLOCKS), and the CHECKPOINT_ACKs behind it would never be read.
 */
export const STATUS_LEAD_BLOCKS = 1 << 17

/**
 * Client rule, relied on by the receiver: the client never waits for the status of a block at
 * or beyond C + STATUS_LEAD_BLOCKS (C its last CHECKPOINT) before it sends a later CHECKPOINT.
 * This client meets it by checkpointing at least every MAX_CHECKPOINT_BLOCKS blocks: it reads
 * at most one chunk (at most 1024 blocks) past a checkpoint before the next, well inside the
 * lead. A client that waited for such a status would wait for ever: the receiver holds it back
 * until that checkpoint.
 */
export const MAX_CHECKPOINT_BLOCKS = 1 << 16

/**
 * Client rule, relied on by the receiver: the client keeps reading the receiver's frames while
 * fewer than this many blocks of statuses wait in its queue. It must be at least
 * STATUS_LEAD_BLOCKS (the receiver never has more statuses out than that), so the client never
 * stops reading while a CHECKPOINT_ACK it waits for sits behind statuses it has not consumed.
 */
export const STATUS_QUEUE_BLOCKS = 1 << 18

/**
 * Client default, not a MUST: a checkpoint every this many bytes of disk (`--checkpoint-bytes`),
 * capped by MAX_CHECKPOINT_BLOCKS. Checkpoints bound what a resumed sync repeats and how long
 * the client's lent buffers stay out (the client reuses them on the CHECKPOINT_ACK).
 */
export const DEFAULT_CHECKPOINT_BYTES = 16 << 20

/**
 * Client rule, relied on by the receiver's idle timeout: while it reads the source, the client
 * sends a CHECKPOINT at least this often (at its next chunk boundary), so a long run of blocks
 * that need no DATA (a seed that matches) still shows the receiver a live client.
 */
export const CHECKPOINT_INTERVAL_MS = 10_000

/**
 * Client behaviour (SHOULD): after a send fails because the receiver closed, the client waits
 * this long for the ERROR frame the receiver sends before it closes, which says why, before it
 * reports the broken connection instead.
 */
export const ERROR_WAIT_MS = 2_000
