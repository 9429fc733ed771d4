// `failover --at SEQ`: the replica is put back to a kept restore point in place. The blocks
// that changed after SEQ are exactly those the undo records from SEQ up hold (doc/points-format.md);
// each is written with its contents at SEQ, read from the records, which this never changes.
// So a rollback cut short (kill -9) is resumed by doing it again: the same records give the
// same bytes, and the set of undone blocks is derived again from them, never remembered
// half-way. The caller has recorded the promotion (fenced) before the first write.
import type fs from 'node:fs/promises'
import {StateError, UsageError} from '../errors.js'
import {zeroRange} from '../native/holes.js'
import {Bitmap} from '../psf/bitmap.js'
import type {ReplicaState} from '../receiver/replica-state.js'
import {closeChain, loadChain} from '../points/chain.js'
import {buildIndex} from '../points/overlay.js'
import {pointGone} from '../points/point-reader.js'
import type {UndoFile} from '../points/undo-file.js'

export interface RollbackPlan {
  toSeq: number
  /** The blocks that differ between the replica now and point `toSeq`. */
  undone: Bitmap
  /** The point's commit time. */
  pointMs: number
  run(replica: fs.FileHandle): Promise<void>
  close(): Promise<void>
}

/** Check that point `toSeq` is kept and of the replica's size; the plan holds its records open. */
export async function planRollback(replica: string, state: ReplicaState, toSeq: number): Promise<RollbackPlan> {
  if (!Number.isSafeInteger(toSeq) || toSeq < 0 || toSeq >= state.lastSeq)
    throw new UsageError('USAGE', `--at ${toSeq}: the replica's newest point is ${state.lastSeq}; name an older kept one`, {
      hint: 'list the kept points with `vdrep points <replica>`',
    })
  const chain = await loadChain(replica, state)
  await chain.pending?.close()
  const files: UndoFile[] = []
  for (const f of chain.files) {
    if (f.header.fromSeq >= toSeq) files.push(f)
    else await f.close()
  }
  if (files[0]?.header.fromSeq !== toSeq) {
    for (const f of files) await f.close()
    throw pointGone(`${replica}: point ${toSeq} is not kept${chain.problem ? ` (${chain.problem})` : ''}`)
  }
  if (files[0].header.fromDiskSize !== state.diskSize) {
    await closeChain({files, strays: []})
    throw new UsageError('FAILOVER_AT_RESIZED', `point ${toSeq} is a disk of ${files[0].header.fromDiskSize} bytes, the replica now ${state.diskSize}`, {
      hint: 'fail over to a point of the same size, or without --at',
    })
  }
  const index = buildIndex(files)
  const bs = state.blockSize
  const blockCount = Math.ceil(state.diskSize / bs)
  const undone = new Bitmap(blockCount)
  for (const seg of index) undone.setRange(seg.block, Math.min(seg.count, blockCount - seg.block))
  return {
    toSeq,
    undone,
    pointMs: files[0].header.fromMs,
    async run(fh: fs.FileHandle): Promise<void> {
      for (const seg of index) {
        const pos = seg.block * bs
        const len = Math.min(seg.count * bs, state.diskSize - pos)
        if (len <= 0) continue
        if (seg.zero) {
          await zeroRange(fh.fd, pos, len)
          continue
        }
        const buf = Buffer.allocUnsafe(seg.count * bs)
        await files[seg.file].readInto(seg.extent, seg.skip * bs, seg.count * bs, buf, 0)
        await writeFully(fh, buf.subarray(0, len), pos)
      }
      await fh.datasync()
    },
    close: () => closeChain({files, strays: []}),
  }
}

async function writeFully(fh: fs.FileHandle, buf: Buffer, pos: number): Promise<void> {
  for (let done = 0; done < buf.length;) {
    const {bytesWritten} = await fh.write(buf, done, buf.length - done, pos + done)
    if (bytesWritten <= 0) throw new StateError('DISK_IO', `rollback: a write at offset ${pos + done} wrote nothing`)
    done += bytesWritten
  }
}
