// The checks `vdrep check` runs on this host: the disk can be read, its .psf can be read and
// belongs to it (size), and, for a local-path target, the replica's directory exists, can be
// written, and has room for the disk.
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {ChangeRecord} from '../change-record/change-record.js'
import {SourceDisk} from '../disk/source-disk.js'
import {asVdrepError} from '../errors.js'
import type {PsfHeader} from '../psf/header.js'
import {psfPathFor} from '../psf/psf-file.js'
import {formatBytes} from '../util/units.js'
import type {Checklist} from './checklist.js'
import {roomVerdict} from './room-verdict.js'
import {RoomReplica} from '../protocol/room-messages.js'

/** Checks the disk and its .psf; returns the .psf's header when it could be read. */
export async function checkSource(disk: string, list: Checklist): Promise<PsfHeader | undefined> {
  let size: number | undefined
  try {
    const d = await SourceDisk.open(disk)
    size = d.size
    await d.close()
    list.ok('disk', `${disk} can be read (${formatBytes(size)}${d.isBlockDevice ? ', a block device' : ''})`)
  } catch (err) {
    const e = asVdrepError(err)
    list.fail('disk', e.message, e.hint ?? 'give the path of a readable disk image or block device (run as its owner, or root)')
  }
  const psf = psfPathFor(disk)
  let header: PsfHeader
  try {
    const record = await ChangeRecord.openReadOnly(psf)
    header = {...record.header}
    await record.close()
  } catch (err) {
    const e = asVdrepError(err)
    list.fail('psf', e.message, e.hint ?? `create it with: vdrep init ${disk} --to TARGET`)
    return undefined
  }
  if (size !== undefined && size !== header.diskSize)
    list.warn(
      'psf',
      `${psf} records a disk of ${formatBytes(header.diskSize)}, the disk is ${formatBytes(size)} now`,
      'the next push sees the resize and runs a full sync (a disk that shrank needs --truncate-replica)',
    )
  else list.ok('psf', `${psf} can be read: target ${header.settings.target}`)
  return header
}

/** A local-path target: the directory, write access, and room. */
export async function checkLocalTarget(replica: string, header: PsfHeader, list: Checklist): Promise<void> {
  const dir = path.dirname(replica)
  try {
    const st = await fs.stat(dir)
    if (!st.isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), {code: 'ENOTDIR'})
    await fs.access(dir, constants.W_OK)
    list.ok('replica-path', `${dir} exists and can be written`)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    list.fail(
      'replica-path',
      code === 'ENOENT' ? `the replica's directory ${dir} does not exist` : `cannot write in ${dir}: ${(err as Error).message}`,
      code === 'ENOENT' ? `create it (mkdir -p ${dir}), or mount the share there` : 'run as a user who may write there, or choose another replica path',
    )
    list.skip(['room'], 'the replica directory is not usable')
    return
  }
  const st = await fs.stat(replica).catch(() => undefined)
  const fsInfo = await fs.statfs(dir)
  roomVerdict(
    {
      replica: st ? RoomReplica.NO_STATE : RoomReplica.MISSING,
      flags: 0,
      replicaSize: st?.size ?? 0,
      replicaAllocated: st ? st.blocks * 512 : 0,
      freeBytes: fsInfo.bavail * fsInfo.bsize,
      totalBytes: fsInfo.blocks * fsInfo.bsize,
    },
    header.diskSize,
    replica,
    list,
  )
}
