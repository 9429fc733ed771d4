// Writes to the tracked disk by any process other than the tracker (issue 18, case 5: a `dd`
// into the disk while the tracker runs), seen through fanotify (native/fanotify.ts).
//
// Integration (the tracker):
//   const started = OutsideWriteWatcher.start(diskPath, {fd: diskFd, onOutsideWrite, onLost})
//   - started.status === 'watching': keep started.watcher. onOutsideWrite({pids, at, ...}) runs
//     at most once per poll (200 ms) while others write: set VERIFY_NEEDED, run a verification.
//     onLost(reason) means watching stopped (the fanotify read failed): treat as unavailable.
//   - started.status === 'unavailable' (no addon, EPERM, ENOSYS, ...; started.code and
//     started.message say which): nothing watches; the clean stop must mark VERIFY_NEEDED.
//   - At the clean stop, before writing CLEAN_SHUTDOWN: `const last = watcher.close()`. close()
//     drains what is still queued and returns it (not passed to onOutsideWrite): non-null
//     means VERIFY_NEEDED. The kernel queues the event inside the writer's write call, so every
//     write that returned before close() is in that drain.
//   Pass the tracker's own fd on the disk as `fd`: the mark is then put on the inode the
//   tracker has open (via /proc/self/fd), never on whatever the path names by now.
//
// What counts: a FAN_MODIFY (write, pwrite, truncate, fallocate, copy_file_range, O_DIRECT and
// io_uring writes) or a FAN_CLOSE_WRITE (a file opened for writing was closed) whose pid is not
// process.pid. The pid is the writer's process (tgid): the tracker's own writes from libuv's
// thread pool carry process.pid and are dropped. Any other process counts, a second vdrep too.
// pid 0 is a writer the kernel does not name (unprivileged watcher, another pid namespace) or
// lost events (queue overflow): always outside.
//
// Limits:
// - Writes through a shared mmap raise no FAN_MODIFY. Such a writer holds the file open for
//   writing, so its FAN_CLOSE_WRITE comes when it unmaps and closes (late, but seen); a writer
//   still mapped when the tracker stops is not seen.
// - The mark is on one inode. A block device node: writes through this node (or a link to it)
//   by other processes are seen; writes through a mounted filesystem on the device, another
//   node of the same device (mknod), or another host (NFS, shared storage) are not: the kernel
//   writes those without going through this inode.
// - A loop device over the image file: writes through /dev/loopN raise no event on the image
//   (measured); only the detach shows, as a FAN_CLOSE_WRITE by `losetup -d`.
// - FAN_CLOSE_WRITE also reports a program that opened the disk for writing and wrote nothing
//   (touch, an editor): a verification that finds nothing, never a missed write.
// - Without opts.fd, the inode the path names at start is watched: a file moved over the path
//   later is not (with opts.fd, the tracker's own inode is watched whatever the path names).
// - Watching costs the writer a small per-write fsnotify hook while marked, the tracker's own
//   writes included (queued events of one writer are merged).

// Why a timer and not libuv: Node polls only fds it can type (net.Socket({fd}) refuses a
// fanotify fd: ERR_INVALID_FD_TYPE, "UNKNOWN"), and an fs stream would park a thread-pool
// thread on a blocking fd or spin on EAGAIN. Only the addon could hand the fd to libuv
// (uv_poll_t on napi_get_uv_event_loop), tying it to libuv's ABI and adding handle lifetimes
// to get right. Measured here: an empty drain costs ~1.7 us, 5 times a second; a write to the
// marked file costs ~0.8 us more (4 KiB pwrite in the page cache, 1.8 -> 2.6 us), and 1000
// writes by one process queue a single merged event.

import fs from 'node:fs'

import {FAN_CLOSE_WRITE, FAN_MODIFY, FAN_Q_OVERFLOW, type FanotifyMode, openFanotify, readFanotify} from '../native/fanotify.js'

export const DEFAULT_POLL_MS = 200

// Drains per poll: each is bounded in the addon, so a writer faster than the drain cannot keep
// the JS thread in one poll; what is left waits for the next tick.
const DRAINS_PER_POLL = 4
// At close, drain harder (the answer decides VERIFY_NEEDED) but still bounded: another process
// writing without pause could otherwise keep close() reading.
const FINAL_DRAINS = 64

/** A write by another process, as seen by one drain. */
export interface OutsideWrite {
  /** The writers' pids, ascending; 0 = a writer the kernel did not name, or lost events. */
  pids: number[]
  /** Date.now() when the drain saw it; the write itself happened at most one poll earlier. */
  at: number
  /** FAN_MODIFY: data written, truncated or allocated. */
  modified: boolean
  /** FAN_CLOSE_WRITE: a file opened for writing was closed (also how an mmap writer shows). */
  closedAfterWrite: boolean
  /** The kernel's queue overflowed: events were lost, so a writer may be missing from pids. */
  overflow: boolean
}

export interface OutsideWriteOptions {
  /** Called from a timer when another process wrote; must not throw. */
  onOutsideWrite: (w: OutsideWrite) => void
  /** Called once if watching stops on its own (the read failed); no more events follow. */
  onLost?: (reason: string) => void
  /** The tracker's fd on the disk: the mark goes on the inode it has open. */
  fd?: number
  /** Poll interval, 200 ms by default. */
  pollMs?: number
  /** Tests: force one fanotify mode (default: file handles, else classic fds). */
  mode?: FanotifyMode
}

/** Why nothing watches. `code`: NO_ADDON, EPERM, ENOSYS, EACCES, ENOENT, ... (errno names). */
export interface OutsideWritesUnavailable {
  status: 'unavailable'
  code: string
  message: string
}

export type OutsideWriteStart = {status: 'watching'; watcher: OutsideWriteWatcher} | OutsideWritesUnavailable

const HINTS: Record<string, string> = {
  NO_ADDON: 'vdrep was installed without its native helpers (npm rebuild vdrep)',
  EPERM: 'fanotify needs CAP_SYS_ADMIN here (or Linux 5.13+ and a filesystem with file handles): run the tracker as root',
  ENOSYS: 'the kernel has no fanotify (CONFIG_FANOTIFY)',
  EMFILE: 'too many fanotify groups for this user (fs.fanotify.max_user_groups)',
}

export class OutsideWriteWatcher {
  private fd: number | undefined
  private readonly timer: NodeJS.Timeout
  private lostReason: string | undefined
  private closed = false

  private constructor(
    readonly path: string,
    fd: number,
    readonly mode: FanotifyMode,
    private readonly opts: OutsideWriteOptions,
  ) {
    this.fd = fd
    // unref: a watcher alone never keeps the process alive.
    this.timer = setInterval(() => this.poll(), opts.pollMs ?? DEFAULT_POLL_MS).unref()
  }

  /** Starts watching `path` (or the inode open on opts.fd); never throws for a refusal. */
  static start(path: string, opts: OutsideWriteOptions): OutsideWriteStart {
    const target = opts.fd === undefined ? path : `/proc/self/fd/${opts.fd}`
    const opened = openFanotify(target, FAN_MODIFY | FAN_CLOSE_WRITE, opts.mode)
    if (!opened.ok) {
      const {code, syscall, message} = opened.unavailable
      const hint = HINTS[code]
      return {
        status: 'unavailable',
        code,
        message: `cannot watch ${path} for writes by other programs: ${syscall === 'addon' ? message : `${code} from ${syscall}`}${hint ? ` (${hint})` : ''}`,
      }
    }
    return {status: 'watching', watcher: new OutsideWriteWatcher(path, opened.fd, opened.mode, opts)}
  }

  /** Why watching stopped on its own, or undefined while it runs (or after close()). */
  get lost(): string | undefined {
    return this.lostReason
  }

  /** The group's fd while open (tests count fds). */
  get fanotifyFd(): number | undefined {
    return this.fd
  }

  /** Drains now; calls onOutsideWrite and returns what it found, or null. */
  check(): OutsideWrite | null {
    const found = this.drain()
    if (found) this.opts.onOutsideWrite(found)
    return found
  }

  /**
   * Stops watching and frees the fd. Returns what was still queued (not passed to
   * onOutsideWrite), or null; after a loss, a conservative report with pid 0.
   */
  close(): OutsideWrite | null {
    clearInterval(this.timer)
    if (this.closed) return null
    this.closed = true
    let last = this.drain(FINAL_DRAINS)
    if (this.lostReason !== undefined) last = {pids: [0], at: Date.now(), modified: false, closedAfterWrite: false, overflow: true}
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
    return last
  }

  private poll(): void {
    if (!this.closed) this.check()
  }

  /** Reads until the queue is empty or `limit` drains ran; a read failure is a loss. */
  private drain(limit = DRAINS_PER_POLL): OutsideWrite | null {
    if (this.fd === undefined || this.lostReason !== undefined) return null
    const pids = new Set<number>()
    let mask = 0
    for (let i = 0; i < limit; i++) {
      let events
      try {
        events = readFanotify(this.fd)
      } catch (err) {
        // EBADF: the number is no longer ours (closed behind our back, maybe reused): never close it.
        if ((err as {cause?: NodeJS.ErrnoException}).cause?.code === 'EBADF') this.fd = undefined
        this.lose((err as Error).message)
        return null
      }
      for (const [pid, m] of events.writers) {
        if (pid === process.pid && !(m & FAN_Q_OVERFLOW)) continue
        pids.add(pid)
        mask |= m
      }
      if (!events.more) break
    }
    if (pids.size === 0) return null
    return {
      pids: [...pids].sort((a, b) => a - b),
      at: Date.now(),
      modified: (mask & FAN_MODIFY) !== 0,
      closedAfterWrite: (mask & FAN_CLOSE_WRITE) !== 0,
      overflow: (mask & FAN_Q_OVERFLOW) !== 0,
    }
  }

  private lose(reason: string): void {
    clearInterval(this.timer)
    this.lostReason = reason
    this.opts.onLost?.(reason)
  }
}
