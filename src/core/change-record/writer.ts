// What a push and a full sync ask of the record's owner, as one interface with two
// implementations: the ChangeRecord itself (no tracker runs; this process holds the disk lock)
// and the running tracker's control socket (tracker/control-client.ts), which executes the same
// ChangeRecord transitions in the tracker. So the caller's code is the same either way.
import type {DiskStamp} from '../psf/disk-stamp.js'
import type {ReplicaRefusal} from '../psf/header.js'

export interface CommitRecord {
  seq: number
  /** When the push froze its blocks: the replica is the disk as of then. */
  pointInTimeMs: number
  diskSize: number
  /** The commit id the replica recorded with this push (16 bytes): the record's last commit from now. */
  commitId: Buffer
  /** Without a tracker: the disk's stamp the record was checked against (the clean point). */
  stamp?: DiskStamp
  /** A final push (`push --final`): the record says the disk handed over. */
  final?: boolean
}

export interface ProvedSync {
  diskSize: number
  /** The replica's sequence from its HELLO_OK: the point both sides agree on from now. */
  replicaSeq: number
  syncedMs: number
  /** The commit id the replica recorded with this proof (16 bytes). */
  commitId: Buffer
  /** Without a tracker: the disk's stamp when the sync began; the bitmaps are cleared. */
  stamp?: DiskStamp
}

export interface RecordWriter {
  /** A push is about to send sequence `seq` (a client that dies after the commit is recognised). */
  beginCommit(seq: number): Promise<void>
  /** The replica had already committed the pending sequence `seq`: record it. */
  adoptCommitted(seq: number): Promise<void>
  /** The hashes of the blocks a push shipped, into their index pages. */
  storeBlockHashes(hashes: Map<number, Buffer>): Promise<void>
  commit(c: CommitRecord): Promise<void>
  beginFullSync(): Promise<void>
  /** Index hashes of blocks [firstBlock, ...); firstBlock starts an index page. */
  writeIndexRun(firstBlock: number, hashes: Buffer): Promise<void>
  provedSync(p: ProvedSync): Promise<void>
  /** The replica host refused the sync: the replica moved on, or is another source's (shown by `status`). */
  replicaRefused(code: ReplicaRefusal): Promise<void>
}
