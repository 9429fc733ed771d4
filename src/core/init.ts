// `vdrep init`: check the disk and the target, then write `<disk>.psf` with the settings.
import fs from 'node:fs/promises'
import path from 'node:path'
import {identityFromStat, sameDisk, type DiskIdentity} from './psf/disk-identity.js'
import {UsageError} from './errors.js'
import {SourceDisk} from './disk/source-disk.js'
import {defaultHashAlgo, hashAlgoName, type HashAlgoId} from './hash/block-hash.js'
import {DEFAULT_AL_EXTENTS, HeaderFlag, MAX_AL_EXTENTS, validActivityLog, validBlockSize, type PsfHeader} from './psf/header.js'
import {defaultAlExtentShift} from './psf/file-image.js'
import {newHeader, psfPathFor} from './psf/psf-file.js'
import {ChangeRecord} from './change-record/change-record.js'
import {checkTargetNotSource} from './fullsync/plan.js'
import {DEFAULT_DELTA_PORT, DEFAULT_FULLSYNC_PORT, type ReplicationSettings, type SshSettings} from './psf/settings.js'
import {formatTarget, parseTarget} from './target/target.js'
import {acquireDiskLock, TrackerLock} from './locks/index.js'
import {cronCommand, shellQuote} from './util/shell-quote.js'
import {parseRetention} from './points/retention.js'
import {checkGroupName} from './group/name.js'
import type {CompressSetting} from './compress/policy.js'
import {systemdEscapePath} from './util/systemd-escape.js'
// The limits `vdrep config` and the config file check too: one place (settings/keys.ts).
import {MAX_RPO_SECONDS, MIN_RPO_SECONDS} from './settings/keys.js'

export {MIN_RPO_SECONDS, MAX_RPO_SECONDS}

export interface InitOptions {
  target: string
  blockSize: number
  rpoSeconds: number
  hashAlgo?: HashAlgoId
  force?: boolean
  fullsyncPort?: number
  deltaPort?: number
  ssh?: SshSettings
  /** Restore-point retention for the replica, handed to the receiver after the first proved full sync. */
  retention?: string
  /** --timeout, recorded for every later command (seconds). */
  timeoutSeconds?: number
  /** The consistency group (doc/group-commit.md). */
  group?: string
  /** Compression on the wire (compress/policy.ts); stored only when not auto. */
  compress?: CompressSetting
  /** Hot extents the activity log keeps (default 2026), and their size in bytes (default 4 MiB). */
  alExtents?: number
  alExtentBytes?: number
}

export interface InitResult {
  disk: string
  psf: string
  target: string
  blockSize: number
  rpoSeconds: number
  hashAlgo: string
  replicaId: string
  diskSize: number
  /** The activity log: hot extents kept and their size in bytes. */
  activityLog: {extents: number; extentBytes: number}
}

export async function initDisk(diskArg: string, opts: InitOptions): Promise<InitResult> {
  const disk = path.resolve(diskArg)
  // The crontab line init prints could not name it: cron reads one command per line.
  if (/[\r\n]/.test(disk))
    throw new UsageError('DISK_PATH_LINE_BREAK', `the disk path ${JSON.stringify(disk)} holds a line break, which no crontab line can name`, {
      hint: 'rename the disk',
    })
  if (!validBlockSize(opts.blockSize)) {
    throw new UsageError('BAD_BLOCK_SIZE', `block size ${opts.blockSize} is not a power of two between 4 KiB and 4 MiB`, {hint: 'for example --block-size 64k'})
  }
  const alExtents = opts.alExtents ?? DEFAULT_AL_EXTENTS
  const alExtentBytes = opts.alExtentBytes ?? 2 ** defaultAlExtentShift(opts.blockSize)
  if (!validActivityLog(alExtents, Math.log2(alExtentBytes), opts.blockSize)) {
    throw new UsageError(
      'BAD_ACTIVITY_LOG',
      `an activity log of ${alExtents} extents of ${alExtentBytes} bytes is out of range: 1..${MAX_AL_EXTENTS} extents of a power of two from the block size (${opts.blockSize}) to 1 GiB`,
      {hint: 'for example --al-extents 2026 --al-extent-size 4M'},
    )
  }
  if (opts.rpoSeconds < MIN_RPO_SECONDS || opts.rpoSeconds > MAX_RPO_SECONDS) {
    throw new UsageError('BAD_RPO', `an RPO of ${opts.rpoSeconds} s is outside 5m..24h`)
  }
  const fullsyncPort = opts.fullsyncPort ?? DEFAULT_FULLSYNC_PORT
  const deltaPort = opts.deltaPort ?? DEFAULT_DELTA_PORT
  // One receiver port speaks one protocol: with both on one port, every push or every full
  // sync would reach the wrong session and fail at its HELLO.
  if (fullsyncPort === deltaPort) {
    throw new UsageError('SAME_PORT', `the full-sync port and the delta port are both ${fullsyncPort}`, {
      hint: `give --fullsync-port and --delta-port different ports (defaults ${DEFAULT_FULLSYNC_PORT} and ${DEFAULT_DELTA_PORT})`,
    })
  }
  const target = parseTarget(opts.target)
  const source = await SourceDisk.open(disk)
  const diskSize = source.size
  // The record names this disk (the file's inode, the device's number and size): a copy of the
  // disk and its .psf, or this .psf beside another disk, is then refused (change-record/identity.ts).
  const identity = identityFromStat(await source.stat(), await fs.realpath(disk), diskSize)
  await source.close()
  if (target.kind === 'local') {
    const r = target.path
    checkTargetNotSource(disk, r)
    const dir = await fs.stat(path.dirname(r)).catch(() => undefined)
    if (!dir?.isDirectory()) throw new UsageError('TARGET_DIR_MISSING', `the target's directory ${path.dirname(r)} does not exist`)
  }
  const psfPath = psfPathFor(disk)
  if (!opts.force && (await fs.lstat(psfPath).catch(() => undefined))) {
    throw new UsageError('PSF_EXISTS', `${psfPath} already exists`, {hint: 'pass --force to replace it (the next sync will be a full sync)'})
  }
  const settings: ReplicationSettings = {
    target: formatTarget(target),
    rpoSeconds: opts.rpoSeconds,
    fullsyncPort,
    deltaPort,
    ...(opts.ssh && Object.keys(opts.ssh).length > 0 ? {ssh: opts.ssh} : {}),
    ...(opts.retention !== undefined ? {retention: checkedRetention(opts.retention)} : {}),
    ...(opts.timeoutSeconds !== undefined ? {timeoutSeconds: opts.timeoutSeconds} : {}),
    ...(opts.group !== undefined ? {group: checkGroupName(opts.group)} : {}),
    ...(opts.compress !== undefined && opts.compress !== 'auto' ? {compress: opts.compress} : {}),
  }
  const hashAlgo = opts.hashAlgo ?? defaultHashAlgo()
  const replicaId = opts.force ? await replicaIdToKeep(psfPath, identity, settings.target) : undefined
  const header: PsfHeader = {
    ...newHeader({diskSize, blockSize: opts.blockSize, hashAlgo, settings, identity, replicaId, alExtents, alExtentBytes}),
    flags: HeaderFlag.NEEDS_FULL_SYNC,
  }
  // Replacing a .psf that a tracker (or a push) is using would leave it writing bits and its
  // clean stop into the old, unlinked file: changes the new record never hears of. So the
  // disk lock and the tracker's lock on the old file are taken first, and a holder refuses.
  const diskLock = await acquireDiskLock(disk, 'init')
  try {
    const old = (await fs.lstat(psfPath).catch(() => undefined)) ? await TrackerLock.acquire(disk, psfPath, 'init') : undefined
    try {
      await ChangeRecord.init(psfPath, header)
    } finally {
      old?.release()
    }
  } finally {
    await diskLock.release()
  }
  return {
    disk,
    psf: psfPath,
    target: settings.target,
    blockSize: opts.blockSize,
    rpoSeconds: opts.rpoSeconds,
    hashAlgo: hashAlgoName(hashAlgo),
    activityLog: {extents: alExtents, extentBytes: alExtentBytes},
    replicaId: header.replicaId.toString('hex'),
    diskSize,
  }
}

/**
 * The crontab line: every minute, `push --if-due` decides whether a push is due. Every path is
 * shell-quoted and every `%` escaped for cron, so a disk named `q$(touch X).img` or `my vm.img`
 * is passed to vdrep as one argument and nothing in its name runs. A state folder named at init
 * (`--state-dir`, VDREP_STATE_DIR, which cron's environment lacks) is named in the line, or the
 * push would look for the record beside the disk and find none.
 */
export function cronLine(disk: string, nodePath: string, entry: string, stateDir?: string): string {
  const command = [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ...[nodePath, entry].map(shellQuote),
    'push',
    '--if-due',
    ...(stateDir === undefined ? [] : ['--state-dir', shellQuote(stateDir)]),
    shellQuote(disk),
  ].join(' ')
  return `* * * * * ${cronCommand(command)}`
}

/**
 * The systemctl lines that run the same push from systemd (systemd/vdrep-push@.timer) instead of
 * cron: the instance is the disk's path as `systemd-escape --path` gives it, shell-quoted (its
 * `\x20` escapes hold backslashes). A state folder named at init goes into the push unit's
 * environment file, as it goes into the cron line.
 */
export function systemdLines(disk: string, stateDir?: string): string[] {
  if (/[\r\n]/.test(disk)) throw new Error('a unit instance cannot name a path with a line break')
  const instance = systemdEscapePath(disk)
  const lines: string[] = []
  if (stateDir !== undefined) {
    // EnvironmentFile= reads a single-quoted value literally; a `'` in the folder cannot be written so.
    if (stateDir.includes("'")) throw new Error("a state folder named with a ' cannot go into an environment file")
    lines.push(`mkdir -p /etc/vdrep && echo ${shellQuote(`VDREP_STATE_DIR='${stateDir}'`)} > ${shellQuote(`/etc/vdrep/push-${instance}.env`)}`)
  }
  lines.push(`systemctl enable --now ${shellQuote(`vdrep-push@${instance}.timer`)}`)
  return lines
}

/**
 * `init --force` of a disk over its own record, to the same target: the replica is still this
 * disk's, so the new record keeps its replica id and the full sync that follows is a repair,
 * not a take-over (the receiver refuses another source's replica). A record of another disk (a
 * clone's copy), another target, or one that cannot be read gets a new id.
 */
async function replicaIdToKeep(psfPath: string, identity: DiskIdentity, target: string): Promise<Buffer | undefined> {
  const old = await ChangeRecord.openReadOnly(psfPath).catch(() => undefined)
  if (!old) return undefined
  try {
    const h = old.header
    return sameDisk(h.identity, identity) && h.settings.target === target ? Buffer.from(h.replicaId) : undefined
  } finally {
    await old.close().catch(() => {})
  }
}

/** A policy for init: parsed now (RETENTION_BAD before anything is written), kept as given. */
function checkedRetention(spec: string): string {
  parseRetention(spec)
  return spec.trim()
}
