// The tracker's answer to writes that bypass its export (issue 18 case 5: a `dd` into the disk
// while the tracker runs): the kernel reports them (outside-writes.ts, fanotify), and the check
// against the block hash index runs again (verifier.ts), VERIFY_NEEDED durable first. Where
// nothing can watch (no addon, a file system without file handles and no CAP_SYS_ADMIN), the
// tracker says so, and its clean stop leaves VERIFY_NEEDED for the next start or push.
import {OutsideWriteWatcher} from './outside-writes.js'
import type {Verifier} from './verifier.js'

type Say = (level: 'warn' | 'info' | 'debug', line: string) => void

/** Watch the inode behind `fd`; null when nothing can (the caller's clean stop then asks for a check). */
export function watchOutsideWrites(disk: string, fd: number, verifier: Verifier, say: Say): OutsideWriteWatcher | null {
  const watch = OutsideWriteWatcher.start(disk, {
    fd,
    onOutsideWrite: (w) => {
      const who = w.pids.map((p) => (p === 0 ? 'a process the kernel does not name' : `pid ${p}`)).join(', ')
      say('warn', `another program wrote ${disk} behind the export (${who}): its writes are not in the bitmap; checking the disk again`)
      verifier
        .request(`another program wrote the disk behind the export (${who})`)
        .catch((err: Error) => say('warn', `recording that a check is needed failed: ${err.message}`))
    },
    onLost: (why) => say('warn', `stopped watching ${disk} for writes by other programs (${why}): the next start or push checks the disk`),
  })
  if (watch.status === 'watching') return watch.watcher
  say('warn', `${watch.message}: after this tracker stops, the next start or push checks the disk against the block hash index`)
  return null
}
