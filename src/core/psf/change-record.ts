// The change record kept in the .psf: whether it can be trusted for a delta, and the moves
// a push makes on it when no tracker runs (the tracker makes the same moves through its
// control socket): active → in-flight at the point in time, then clear or merge back.
import type {BigIntStats} from 'node:fs'
import {Bitmap} from './bitmap.js'
import {HeaderFlag} from './header.js'
import {BITS_PER_PAGE, Region} from './layout.js'
import type {PsfFile} from './psf-file.js'

/** Why the change record cannot be trusted for a delta, or null. Short, for the summary line. */
export function changeRecordDoubt(psf: PsfFile, sourceSize: number, stat: BigIntStats, trackerRunning: boolean): string | null {
  const h = psf.header
  if (h.flags & HeaderFlag.NEEDS_FULL_SYNC) return h.generation === 0 ? 'no full sync has completed since init' : 'the change record was marked untrusted'
  if (sourceSize < h.diskSize) return `the source disk shrank (${sourceSize} < ${h.diskSize} bytes)`
  if (!trackerRunning && h.flags & HeaderFlag.CLEAN_SHUTDOWN) {
    if (stat.size !== BigInt(h.sourceSize) || stat.mtimeNs !== h.sourceMtimeNs || stat.ctimeNs !== h.sourceCtimeNs) {
      return 'the disk was written while no tracker ran (run `vdrep track --scan` first, or keep `vdrep track` running)'
    }
  }
  return null
}

function pagesOf(bitmap: Bitmap): number[] {
  const pages = new Set<number>()
  for (const b of bitmap.setBlocks()) pages.add(Math.floor(b / BITS_PER_PAGE))
  return [...pages]
}

/** A push that died left blocks in flight: they go back to the active record first. */
export async function mergeLeftoverInflight(psf: PsfFile): Promise<number> {
  const {bitmap: inflight} = await psf.readBitmap(Region.INFLIGHT)
  if (inflight.isEmpty()) return 0
  const {bitmap: active} = await psf.readBitmap(Region.ACTIVE)
  active.merge(inflight)
  const pages = pagesOf(inflight)
  await psf.writeBitmap(Region.ACTIVE, active, pages)
  await psf.writeBitmap(Region.INFLIGHT, new Bitmap(inflight.blockCount), pages)
  return inflight.count()
}

/**
 * The point in time without a tracker: in-flight |= active is made durable before active is
 * cleared, so a crash between the two writes loses nothing (the block is then in both).
 */
export async function freezeInPsf(psf: PsfFile): Promise<Bitmap> {
  const {bitmap: active} = await psf.readBitmap(Region.ACTIVE)
  const {bitmap: inflight} = await psf.readBitmap(Region.INFLIGHT)
  inflight.merge(active)
  const pages = [...new Set([...pagesOf(active), ...pagesOf(inflight)])]
  await psf.writeBitmap(Region.INFLIGHT, inflight, pages)
  await psf.writeBitmap(Region.ACTIVE, new Bitmap(active.blockCount), pagesOf(active))
  return inflight
}

/**
 * After a push: ok clears in-flight; a failure hands the blocks back to the active record
 * (synced before in-flight is cleared). `sync: false` leaves the cleared pages to the caller's
 * next sync (allowed only when ok: losing the clear is harmless, losing a merge is not).
 */
export async function completeInPsf(psf: PsfFile, inflight: Bitmap, ok: boolean, opts: {sync?: boolean} = {}): Promise<void> {
  const pages = pagesOf(inflight)
  if (!ok) {
    const {bitmap: active} = await psf.readBitmap(Region.ACTIVE)
    active.merge(inflight)
    await psf.writeBitmap(Region.ACTIVE, active, pages)
  }
  await psf.writeBitmap(Region.INFLIGHT, new Bitmap(inflight.blockCount), pages, {sync: !ok || opts.sync !== false})
}

/** Record the source's stat: with CLEAN_SHUTDOWN set, any later write without a tracker shows. */
export function statPatch(stat: BigIntStats): {sourceSize: number; sourceMtimeNs: bigint; sourceCtimeNs: bigint} {
  return {sourceSize: Number(stat.size), sourceMtimeNs: stat.mtimeNs, sourceCtimeNs: stat.ctimeNs}
}
