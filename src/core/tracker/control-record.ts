// The record transitions a push or a full sync asks of the running tracker (control socket
// ops beginCommit .. provedSync), run on the tracker's own ChangeRecord: while a tracker runs,
// it is the only process that writes the .psf. Requests are checked against the disk first.
import {UsageError} from '../errors.js'
import type {ChangeRecord} from '../change-record/change-record.js'
import {HASHES_PER_PAGE} from '../psf/layout.js'
import {decodeBlockHashes} from './control-protocol.js'
import type {RecordRequest} from './control-server.js'

const HASH_BYTES = 32

/** How the tracker marks blocks dirty (its dirty log: durable when the promise resolves). */
export type MarkBlocks = (first: number, last: number) => Promise<void> | undefined

export function recordTransitions(record: ChangeRecord, mark?: MarkBlocks): (req: RecordRequest, data: Buffer) => Promise<object> {
  const sameSize = (op: string, diskSize: number) => {
    if (diskSize !== record.header.diskSize) {
      throw new UsageError('CONTROL_BAD_SIZE', `${op}: a disk of ${diskSize} bytes, but this tracker records one of ${record.header.diskSize}`, {
        hint: 'restart `vdrep track` after a disk is resized',
      })
    }
  }
  return async (req, data) => {
    switch (req.op) {
      case 'beginCommit':
        await record.beginCommit(req.seq)
        break
      case 'adoptCommitted':
        await record.adoptCommitted(req.seq)
        break
      case 'blockHashes':
        await record.storeBlockHashes(decodeBlockHashes(data, record.blockCount))
        break
      case 'commit':
        sameSize('commit', req.diskSize)
        await record.commit({seq: req.seq, pointInTimeMs: req.pointInTimeMs, diskSize: req.diskSize, commitId: Buffer.from(req.commitId, 'hex')})
        break
      case 'beginFullSync':
        await record.beginFullSync()
        break
      case 'indexRun': {
        const n = data.length / HASH_BYTES
        if (req.first % HASHES_PER_PAGE !== 0 || req.first + n > record.blockCount) {
          throw new UsageError(
            'CONTROL_BAD_RANGE',
            `indexRun: ${n} hashes at block ${req.first} do not start an index page inside the disk's ${record.blockCount} blocks`,
          )
        }
        await record.writeIndexRun(req.first, data)
        break
      }
      case 'replicaRefused':
        await record.replicaRefused(req.code)
        break
      case 'markBlocks': {
        if (!mark) throw new UsageError('CONTROL_BAD_REQUEST', 'markBlocks: this tracker cannot mark blocks')
        if (req.first + data.length * 8 > Math.ceil(record.blockCount / 8) * 8)
          throw new UsageError('CONTROL_BAD_RANGE', `markBlocks: ${data.length * 8} blocks at ${req.first} pass the disk's ${record.blockCount}`)
        const waits: Promise<void>[] = []
        let marked = 0
        for (let i = 0; i < data.length; i++) {
          for (let j = 0; j < 8 && data[i] !== 0; j++) {
            const b = req.first + i * 8 + j
            if (!(data[i] & (1 << j))) continue
            if (b >= record.blockCount) throw new UsageError('CONTROL_BAD_RANGE', `markBlocks: block ${b} is outside the disk's ${record.blockCount} blocks`)
            const w = mark(b, b)
            if (w) waits.push(w)
            marked++
          }
        }
        await Promise.all(waits)
        return {marked}
      }
      case 'settings':
        await record.changeSettings(req.settings, req.replicaId === undefined ? undefined : {replicaId: Buffer.from(req.replicaId, 'hex')})
        break
      case 'provedSync':
        sameSize('provedSync', req.diskSize)
        await record.provedSync({diskSize: req.diskSize, replicaSeq: req.replicaSeq, syncedMs: req.syncedMs, commitId: Buffer.from(req.commitId, 'hex')})
        break
    }
    return {}
  }
}
