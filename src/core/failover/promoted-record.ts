// The change record a failover gives the promoted disk (`<replica>.psf`), so `vdrep track` can
// serve it at once and its first push back is a delta: a new replica id, the commit chain
// continued from the replica's last commit (lastCommit, lastSeq, generation), the block hash
// index of every block (computed now, keyed with the new id), a clean stop at the disk's stamp
// now, and the blocks a rollback undid marked. Written under a temp name, index and all, synced,
// then renamed: a crash leaves either no record or a whole one.
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {blockHasher, HASH_LENGTH} from '../hash/block-hash.js'
import {Bitmap} from '../psf/bitmap.js'
import {identityOf} from '../psf/disk-identity.js'
import {HeaderFlag, type PsfHeader} from '../psf/header.js'
import {newHeader, PsfFile, psfPathFor} from '../psf/psf-file.js'
import {ChangeRecord} from '../change-record/change-record.js'
import {DEFAULT_DELTA_PORT, DEFAULT_FULLSYNC_PORT, type ReplicationSettings} from '../psf/settings.js'
import type {ReplicaState} from '../receiver/replica-state.js'
import {fsyncDir} from '../util/fs-atomic.js'
import {formatTarget, parseTarget} from '../target/target.js'

/** The target of a promoted record until `vdrep reprotect --to` names one: refused by every push (it holds `..`). */
export const NO_TARGET = 'reprotect-sets-the-target:/..'
const READ_CHUNK = 8 << 20

export interface PromotedRecordInit {
  replica: string
  state: ReplicaState
  newReplicaId: Buffer
  undone: Bitmap
  target?: string
  settings?: Partial<ReplicationSettings>
}

/** Hashes of every block of the disk, in block order (HASH_LENGTH each). */
async function hashAll(fh: fs.FileHandle, diskSize: number, blockSize: number, algo: number, key: Buffer): Promise<Buffer> {
  const hasher = blockHasher(algo, key)
  const blocks = Math.ceil(diskSize / blockSize)
  const out = Buffer.alloc(blocks * HASH_LENGTH)
  const per = Math.max(1, Math.floor(READ_CHUNK / blockSize))
  const buf = Buffer.allocUnsafe(per * blockSize)
  for (let b = 0; b < blocks; b += per) {
    const want = Math.min(per * blockSize, diskSize - b * blockSize)
    let got = 0
    while (got < want) {
      const {bytesRead} = await fh.read(buf, got, want - got, b * blockSize + got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    buf.fill(0, got, want)
    for (let i = 0; i * blockSize < want; i++) {
      const len = Math.min(blockSize, want - i * blockSize)
      hasher.hashInto(buf.subarray(i * blockSize, i * blockSize + len), out, (b + i) * HASH_LENGTH)
    }
  }
  return out
}

export async function createPromotedRecord(p: PromotedRecordInit): Promise<string> {
  const {state} = p
  const psfPath = psfPathFor(p.replica)
  const tmp = path.join(path.dirname(psfPath), `.${path.basename(psfPath)}.promoting-${process.pid}`)
  const settings: ReplicationSettings = {
    rpoSeconds: 900,
    fullsyncPort: DEFAULT_FULLSYNC_PORT,
    deltaPort: DEFAULT_DELTA_PORT,
    ...p.settings,
    target: p.target ? formatTarget(parseTarget(p.target)) : NO_TARGET,
  }
  const fh = await fs.open(p.replica, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    const st = await fh.stat({bigint: true})
    const header: PsfHeader = {
      ...newHeader({
        diskSize: state.diskSize,
        blockSize: state.blockSize,
        hashAlgo: state.hashAlgo,
        settings,
        replicaId: p.newReplicaId,
        identity: await identityOf(p.replica),
      }),
      flags: HeaderFlag.INDEX_VALID | HeaderFlag.CLEAN_SHUTDOWN,
      lastCommit: Buffer.from(state.commit ?? '00'.repeat(16), 'hex'),
      lastSeq: state.lastSeq,
      generation: state.generation,
      lastSyncMs: state.commitMs ?? state.updatedMs,
      sourceSize: Number(st.size),
      sourceMtimeNs: st.mtimeNs,
      sourceCtimeNs: st.ctimeNs,
    }
    const index = await hashAll(fh, state.diskSize, state.blockSize, state.hashAlgo, p.newReplicaId)
    await ChangeRecord.createPromoted(tmp, header, p.undone, index)
    // The disk must not have moved while it was hashed (the caller holds the replica's lock).
    const after = await fh.stat({bigint: true})
    if (after.mtimeNs !== st.mtimeNs || after.size !== st.size) throw new Error(`${p.replica} changed while its record was made`)
  } catch (err) {
    await fs.rm(tmp, {force: true})
    throw err
  } finally {
    await fh.close()
  }
  await fs.rename(tmp, psfPath)
  await fsyncDir(path.dirname(psfPath))
  return psfPath
}

/** The promoted record, if it is in place and is the one this promotion made. */
export async function promotedRecordIn(replica: string, newReplicaId: string): Promise<boolean> {
  try {
    const psf = await PsfFile.open(psfPathFor(replica), false)
    try {
      return psf.header.replicaId.toString('hex') === newReplicaId
    } finally {
      await psf.close()
    }
  } catch {
    return false
  }
}

export {Bitmap}
