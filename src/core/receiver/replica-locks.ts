// One writer per replica inside one receiver process. (Across processes the replica's
// state file lock does the same job; see replica-file.ts.)
import {LockError} from '../errors.js'

const held = new Set<string>()

export function claimReplica(replica: string): () => void {
  if (held.has(replica)) throw new LockError(`another client is writing ${replica} through this receiver`, {hint: 'wait for it to finish'})
  held.add(replica)
  return () => held.delete(replica)
}
