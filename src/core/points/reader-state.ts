// The replica's state as a point reader uses it: read through a handle the reader keeps open
// while it uses that state, so the inode stays allocated and a check "does the state path
// still name this inode" tells whether the state was replaced since (point-reader.ts).
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import {StateError} from '../errors.js'
import {decodeReplicaState, statePathFor, type ReplicaState} from '../receiver/replica-state.js'

export interface OpenState {
  state: ReplicaState
  /** The state file as read, held open while a view uses it (see above). */
  fh: fs.FileHandle
  ino: number
  dev: number
}

/** The replica's state, read through a handle kept open, and trusted for reading points. */
export async function openTrustedState(replica: string): Promise<OpenState> {
  let fh: fs.FileHandle
  try {
    fh = await fs.open(statePathFor(replica), constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new StateError('POINT_UNTRUSTED', `${replica} has no vdrep state: it is not a replica, or was never synced`)
    throw err
  }
  try {
    const state = decodeReplicaState(await fh.readFile())
    const why = state.promoted
      ? 'it was promoted by a failover: it is a source now, written by its VM, and the undo records no longer lay over it'
      : !state.complete
        ? 'it is incomplete (a full sync is running or did not finish)'
        : state.diverged || state.doubt
          ? 'it is diverged or in doubt'
          : null
    if (why)
      throw new StateError('POINT_UNTRUSTED', `the restore points of ${replica} cannot be read: ${why}`, {
        hint: 'a full sync that completes starts a new chain',
      })
    const st = await fh.stat()
    return {state, fh, ino: st.ino, dev: st.dev}
  } catch (err) {
    await fh.close()
    throw err
  }
}
