// The blocks a push ships, as of its point in time, from one of two places: the running
// tracker (which preserves the old contents of frozen blocks the VM overwrites), or, with no
// tracker, the .psf and the disk itself (then the guarantee is per block, like rsync).
import type {Bitmap} from '../psf/bitmap.js'
import type {SourceDisk} from '../disk/source-disk.js'
import type {FreezeResult, TrackerControlClient} from '../tracker/control-client.js'
import type {ChangeRecord} from '../change-record/change-record.js'

export interface FrozenSet {
  readonly bitmap: Bitmap
  readonly viaTracker: boolean
  /**
   * Bytes of blocks [first, first+count) as of the point in time; read into `into` when it is
   * given and the blocks come from the disk itself (a tracker's reply brings its own buffer).
   */
  read(first: number, count: number, into?: Buffer): Promise<Buffer>
  /**
   * ok: the replica has them, forget them; not ok: hand them back to the active record.
   * `syncLater`: the caller syncs the .psf next (its header update), so the cleared pages need
   * no sync of their own (without a tracker; a tracker syncs its own record).
   */
  complete(ok: boolean, opts?: {syncLater?: boolean}): Promise<void>
}

export async function freezeWithTracker(tracker: TrackerControlClient): Promise<FrozenSet> {
  return frozenByTracker(tracker, await tracker.freeze())
}

/** The set a tracker froze (a push's freeze, or a group's cut: group/cut.ts). */
export function frozenByTracker(tracker: TrackerControlClient, frozen: FreezeResult): FrozenSet {
  let done = false
  return {
    bitmap: frozen.bitmap,
    viaTracker: true,
    read: (first, count) => tracker.readBlocks(first, count),
    complete: async (ok) => {
      if (done) return
      done = true
      await tracker.complete(ok)
    },
  }
}

/** `record`: owned by this process (no tracker runs). */
export async function freezeWithoutTracker(record: ChangeRecord, source: SourceDisk, diskSize: number): Promise<FrozenSet> {
  const bitmap = await record.freeze()
  const bs = record.header.blockSize
  let done = false
  return {
    bitmap,
    viaTracker: false,
    read: (first, count, into) => {
      const len = Math.min(count * bs, diskSize - first * bs)
      return source.readAt(into && into.length >= len ? into : Buffer.allocUnsafe(len), len, first * bs)
    },
    complete: async (ok, opts) => {
      if (done) return
      done = true
      await record.complete(ok, {syncLater: ok && opts?.syncLater})
    },
  }
}
