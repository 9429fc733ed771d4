// fanotify through the addon (native/fanotify.cc): a group with one inode mark on a disk image
// or block device node, and a non-blocking drain of its events. This file only opens, reads
// and classifies; which writer counts as "outside" is tracker/outside-writes.ts's policy.
//
// There is no fallback that watches: Node has no fanotify, and inotify's IN_MODIFY carries no
// pid, so it cannot tell the tracker's own writes from another program's. Without the addon
// (or the right), openFanotify says why, as a typed value, and nothing pretends to watch.

import {addon, type Binding} from './binding.js'
import {checkFd, ioError} from './syscall-args.js'

/** Why watching is unavailable when no addon is loaded: a reason beside the errnos, not an error code of the registry. */
const NO_ADDON = 'NO_ADDON'

/** Event bits (linux/fanotify.h). */
export const FAN_MODIFY = 0x2
export const FAN_CLOSE_WRITE = 0x8
export const FAN_Q_OVERFLOW = 0x4000

/**
 * 'fid': FAN_REPORT_FID, events carry a file handle and no fd (nothing to close, works without
 * CAP_SYS_ADMIN since Linux 5.13, other processes' pids then read 0). 'fd': classic events,
 * each with an fd on the file that the drain closes; needs CAP_SYS_ADMIN.
 */
export type FanotifyMode = 'fid' | 'fd'

/** Why no fanotify group could watch the path. `code` is the errno name, or NO_ADDON. */
export interface FanotifyUnavailable {
  /** EPERM (no CAP_SYS_ADMIN, or a kernel without unprivileged fanotify), ENOSYS (no fanotify in the kernel), EACCES, ENOENT, EOPNOTSUPP, ..., or NO_ADDON. */
  code: string
  /** The call that failed: fanotify_init, fanotify_mark, or 'addon'. */
  syscall: string
  message: string
}

export type FanotifyOpenResult = {ok: true; fd: number; mode: FanotifyMode} | {ok: false; unavailable: FanotifyUnavailable}

/** What one drain found: each distinct writer with the union of its event bits. */
export interface FanotifyEvents {
  /** pid -> mask. pid 0: a writer whose pid the kernel hides (another user's process for an unprivileged reader, another pid namespace) or an overflow. */
  writers: Map<number, number>
  /** The kernel's queue overflowed (events were lost) or the drain folded too many writers into one entry. */
  overflow: boolean
  /** The drain stopped at its bound with events still queued: drain again. */
  more: boolean
}

type FanotifyBinding = Required<Pick<Binding, 'fanotifyOpen' | 'fanotifyRead'>>

function fanotifyBinding(): FanotifyBinding | undefined {
  const b = addon()
  if (b?.fanotifyOpen === undefined || b.fanotifyRead === undefined) return undefined
  return b as FanotifyBinding
}

/** Whether the addon in use has the fanotify calls (an older build lacks them). */
export function fanotifyBuilt(): boolean {
  return fanotifyBinding() !== undefined
}

// Mark errors after which the classic mode may still work: the filesystem gives no file handle
// or no fsid (FUSE, some overlayfs and older tmpfs/devtmpfs), or a kernel older than 5.1.
const FID_REFUSED = new Set(['EOPNOTSUPP', 'ENODEV', 'EXDEV', 'EINVAL'])

/**
 * Opens a fanotify group watching `path` (its inode, resolved now: a file renamed over the
 * path later is not watched) for `mask`. `mode` undefined tries 'fid' and, where the kernel or
 * filesystem refuses file handles, 'fd'. Never throws for a refusal: returns why.
 */
export function openFanotify(path: string, mask: number, mode?: FanotifyMode): FanotifyOpenResult {
  const b = fanotifyBinding()
  if (b === undefined) {
    return {ok: false, unavailable: {code: NO_ADDON, syscall: 'addon', message: 'the native addon with fanotify is not in use'}}
  }
  const modes: FanotifyMode[] = mode === undefined ? ['fid', 'fd'] : [mode]
  let last: FanotifyUnavailable | undefined
  for (const m of modes) {
    try {
      return {ok: true, fd: b.fanotifyOpen(path, mask, m === 'fid'), mode: m}
    } catch (err) {
      last = unavailableOf(err)
      if (m === 'fid' && mode === undefined && FID_REFUSED.has(last.code)) continue
      break
    }
  }
  return {ok: false, unavailable: last!}
}

function unavailableOf(err: unknown): FanotifyUnavailable {
  const e = err as NodeJS.ErrnoException
  if (typeof e?.code === 'string' && typeof e.syscall === 'string') return {code: e.code, syscall: e.syscall, message: e.message}
  throw err // a bad argument (TypeError from the addon): a bug, not a refusal
}

/** Drains the group's queue without blocking. Throws DiskIoError if the read fails (EBADF: closed). */
export function readFanotify(fd: number): FanotifyEvents {
  checkFd(fd)
  const b = fanotifyBinding()
  if (b === undefined) throw ioError(`cannot read fanotify fd ${fd}`, new Error('the addon is not in use'))
  let raw: ReturnType<FanotifyBinding['fanotifyRead']>
  try {
    raw = b.fanotifyRead(fd)
  } catch (err) {
    throw ioError(`cannot read fanotify fd ${fd}`, err)
  }
  const writers = new Map<number, number>()
  let overflow = false
  for (let i = 0; i < raw.pids.length; i++) {
    const mask = raw.masks[i]
    if (mask & FAN_Q_OVERFLOW) overflow = true
    writers.set(raw.pids[i], (writers.get(raw.pids[i]) ?? 0) | mask)
  }
  return {writers, overflow, more: raw.more}
}
