// What the receiver reports when a session fails. The receiver runs on the replica host and
// writes only there, so a full filesystem seen by it is the replica's: REPLICA_FULL naming the
// replica. The client, which cannot tell (an errno says nothing about the host), never makes
// that call itself; it reads the code off the ERROR frame.
import {asVdrepError, isNoSpace, ReplicaFullError, type VdrepError} from '../errors.js'

export function receiverErrorOf(err: unknown, replicaPath?: string): VdrepError {
  if (isNoSpace(err) && !(err instanceof ReplicaFullError)) {
    const detail = err instanceof Error ? err.message : String(err)
    return new ReplicaFullError(`no space left on the replica host${replicaPath ? ` for ${replicaPath}` : ''}: ${detail}`, {
      cause: err,
      hint: 'free space on the replica host (or give the replica a bigger filesystem) and run the command again',
    })
  }
  return asVdrepError(err)
}

/** The ERROR frame's fields for `e`; the exit code rides along for older clients only. */
export function errorFrameFields(e: VdrepError): {exitCode: number; code: string; message: string; hint: string} {
  return {exitCode: e.exitCode, code: e.code, message: e.message, hint: e.hint ?? ''}
}
