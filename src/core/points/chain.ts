// The chain of undo records that links the replica's current point back to its oldest kept
// point: walked from the state's last sequence down, each record checked (header, index, the
// replica id and chain id of the state) before it counts. A damaged record ends the walk there:
// the points behind it cannot be read, and are reported, never guessed at.
import path from 'node:path'
import {StateError} from '../errors.js'
import type {ReplicaState} from '../receiver/replica-state.js'
import {listUndoNames, pointsDirFor, type UndoName} from './store.js'
import {UndoFile} from './undo-file.js'

export interface Chain {
  /** Oldest first; the last one's `to` is the state's last sequence. */
  files: UndoFile[]
  /** The record of a commit under way (state's last sequence → the next): complete before the apply starts. */
  pending?: UndoFile
  /** Why the walk stopped before the oldest record on disk, if it did. */
  problem?: string
  /** Records not in the chain (another chain's, beyond the state, or behind a damaged one). */
  strays: string[]
}

/** Does this record belong to the replica as its state describes it? A reason when not. */
function mismatch(f: UndoFile, state: ReplicaState): string | null {
  const h = f.header
  if (h.replicaId.toString('hex') !== state.replicaId) return 'another replica id'
  if (!state.pointsChain || h.chainId.toString('hex') !== state.pointsChain) return 'another chain (from before a full sync)'
  if (h.blockSize !== state.blockSize) return `block size ${h.blockSize}`
  return null
}

async function openChecked(replica: string, u: UndoName, state: ReplicaState): Promise<UndoFile | string> {
  let f: UndoFile
  try {
    f = await UndoFile.open(path.join(pointsDirFor(replica), u.name), u)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err // merged or dropped meanwhile: the caller lists again
    if (err instanceof StateError) return err.message
    throw err
  }
  const why = mismatch(f, state)
  if (why) {
    await f.close()
    return `${u.name} belongs to ${why}`
  }
  return f
}

async function walk(replica: string, state: ReplicaState): Promise<Chain> {
  const names = await listUndoNames(replica)
  const chain: Chain = {files: [], strays: []}
  const used = new Set<string>()
  try {
    const pend = names.find((u) => u.from === state.lastSeq && u.to === state.lastSeq + 1)
    if (pend) {
      const f = await openChecked(replica, pend, state)
      if (typeof f !== 'string') {
        chain.pending = f
        used.add(pend.name)
      }
    }
    let cur = state.lastSeq
    let diskSize = state.diskSize
    for (;;) {
      // The shortest hop first: with a merge cut short by a crash, both the merged record and
      // its pieces exist, and the pieces keep the point between them.
      const candidates = names.filter((u) => u.to === cur).sort((a, b) => b.from - a.from)
      if (candidates.length === 0) break
      let next: UndoFile | undefined
      const why: string[] = []
      for (const c of candidates) {
        const f = await openChecked(replica, c, state)
        if (typeof f === 'string') why.push(f)
        else if (f.header.toDiskSize !== diskSize) {
          why.push(`${c.name} ends at a disk of ${f.header.toDiskSize} bytes, the point after it has ${diskSize}`)
          await f.close()
        } else {
          next = f
          used.add(c.name)
          break
        }
      }
      if (!next) {
        // Only a record of this chain that fails its checks is a problem; another chain's are strays.
        const own = why.filter((w) => !/belongs to another/.test(w))
        if (own.length > 0) chain.problem = own.join('; ')
        break
      }
      chain.files.unshift(next)
      cur = next.header.fromSeq
      diskSize = next.header.fromDiskSize
    }
  } catch (err) {
    await closeChain(chain)
    throw err
  }
  chain.strays = names.filter((u) => !used.has(u.name)).map((u) => u.name)
  return chain
}

/** The chain as it is on disk now; a record that disappears while it is read (retention) makes it list again. */
export async function loadChain(replica: string, state: ReplicaState): Promise<Chain> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await walk(replica, state)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw err
    }
  }
}

export async function closeChain(c: Chain): Promise<void> {
  for (const f of c.files) await f.close()
  await c.pending?.close()
}
