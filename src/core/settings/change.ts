// `vdrep config` and `push --all`'s config file: the settings of a disk read, or changed in
// place in its .psf without touching the change record (bitmaps, index, commit chain), so the
// next push is still a delta. Only the record's writer writes: under the disk lock (no push or
// full sync runs meanwhile), the running tracker through its control socket, else this process.
// A target that names another replica (host or path) resets the replica binding: a new replica
// id and TARGET_CHANGED, so the next sync is a full sync that says why (never a delta to
// another replica). A login or SSH port change reaches the same replica: the binding stays.
import crypto from 'node:crypto'
import path from 'node:path'
import {claimRecord} from '../change-record/claim.js'
import {ChangeRecord} from '../change-record/change-record.js'
import {hashAlgoName} from '../hash/block-hash.js'
import {acquireDiskLock} from '../locks/index.js'
import {HeaderFlag} from '../psf/header.js'
import {psfPathFor} from '../psf/psf-file.js'
import {decodeSettings, encodeSettings, type ReplicationSettings} from '../psf/settings.js'
import {checkSettings, replicaOf, settingsDiff} from './keys.js'

export interface SettingChangeLine {
  key: string
  from: string | null
  to: string | null
}

export interface SettingsChange {
  disk: string
  psf: string
  /** Key by key what changed (empty: the settings were already so; nothing was written). */
  changed: SettingChangeLine[]
  /** The target names another replica: the next sync is a full sync (TARGET_CHANGED). */
  rebound: boolean
  /** Who wrote the .psf: the running tracker, or this process under the disk lock. */
  via: 'tracker' | 'record' | 'none'
  settings: ReplicationSettings
}

export interface DiskSettings {
  disk: string
  psf: string
  settings: ReplicationSettings
  /** What only a new init changes, shown beside the settings. */
  fixed: {blockSize: number; hash: string; activityLogExtents: number; activityLogExtentBytes: number}
  /** The next sync is a full sync because the target changed (until one is proved). */
  targetChanged: boolean
}

/** The settings as the .psf holds them now (read-only: changes nothing, takes no lock). */
export async function readDiskSettings(diskArg: string): Promise<DiskSettings> {
  const disk = path.resolve(diskArg)
  const psf = psfPathFor(disk)
  const record = await ChangeRecord.openReadOnly(psf)
  try {
    const h = record.header
    return {
      disk,
      psf,
      settings: h.settings,
      fixed: {blockSize: h.blockSize, hash: hashAlgoName(h.hashAlgo), activityLogExtents: h.alExtents, activityLogExtentBytes: 2 ** h.alExtentShift},
      targetChanged: (h.flags & HeaderFlag.TARGET_CHANGED) !== 0,
    }
  } finally {
    await record.close()
  }
}

/**
 * Apply `edit` to the disk's settings in place. The edited settings are checked with the .psf's
 * own decoder before anything is written; a failure (bad value, lock held, foreign record)
 * changes nothing.
 */
export async function changeDiskSettings(diskArg: string, edit: (s: ReplicationSettings) => ReplicationSettings): Promise<SettingsChange> {
  const disk = path.resolve(diskArg)
  const lock = await acquireDiskLock(disk, 'config')
  try {
    const claim = await claimRecord(disk, 'config', {lockHeld: true})
    try {
      const current = claim.record.header.settings
      const next = decodeSettings(encodeSettings(edit(current)))
      checkSettings(next)
      const changed = settingsDiff(current, next)
      const base = {disk, psf: claim.record.path, changed, settings: next}
      if (changed.length === 0) return {...base, rebound: false, via: 'none'}
      const rebound = replicaOf(current.target) !== replicaOf(next.target)
      const rebind = rebound ? {replicaId: crypto.randomBytes(16)} : undefined
      if (claim.tracker) await claim.tracker.changeSettings(next, rebind)
      else await claim.record.changeSettings(next, rebind)
      return {...base, rebound, via: claim.tracker ? 'tracker' : 'record'}
    } finally {
      await claim.release()
    }
  } finally {
    await lock.release()
  }
}
