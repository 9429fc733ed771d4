// Every lock vdrep takes across processes, named for what it guards. Each is exclusive and
// non-blocking (only the header lock waits, briefly), goes away with its holder however it
// ends, and is taken through exclusive-lock.ts: the kernel's flock/OFD locks with the addon,
// else a portable lock that excludes just as well (portable-lock.ts). No fallback pretends a
// lock was taken: where neither exists, LOCK_UNAVAILABLE.
//
//   lock                what it guards                          file                  held by
//   1. disk lock        one push / full sync / init of a disk   <disk>.vdrep.lock     push, fullsync, init, verify, config; tracker while it starts; scan
//   2. tracker owner    the .psf has one owning process         <disk>.psf (flock)    tracker, scan, init; push and fullsync only probe it
//   2b. test lock       one test boot per replica               <replica>.vdrep-test/lock  vdrep test start, while its test runs
//   3. replica lock     one writer per replica                  <replica>.vdrep.lock  the receiver (serve, or in-process for a local target)
//   4. header lock      one .psf header update at a time        <disk>.psf bytes 0..2 slots (OFD)  whoever updates the header, for one write
//
// Acquisition order: disk lock -> tracker ownership (or its probe) -> test lock -> replica lock
// -> header lock. A process holding one of them takes only locks further down the list, never one above,
// and the header lock is a leaf: nothing is taken while it is held. Because every lock is
// non-blocking, a wrong order could not deadlock, but it could make two starters both fail
// (each holding the lock the other wants next); in this order one of them always wins. Callers:
// - push, fullsync (delta/push.ts, fullsync/client.ts through change-record/claim.ts): disk lock,
//   then the ownership probe (no tracker answering), then the replica lock through the
//   receiver's HELLO; header updates (by the change record's owner) throughout.
// - tracker, scan (tracker/record.ts openRecord): disk lock, then ownership; the tracker drops
//   the disk lock once its control socket answers.
// - init: disk lock, then ownership of the old .psf while the new one replaces it.
// - config (settings/change.ts): disk lock, then the ownership probe like a push; the running
//   tracker writes the settings when one answers.
// - serve, local targets (receiver/): the replica lock only.
// - test start (test-view/): the test lock (2b, above the replica lock in this order) for the
//   whole test; the replica lock briefly at the end, to record the test in the replica's state.
export {acquireDiskLock, diskLockPathFor, type HeldLock} from './disk-lock.js'
export {checkNoUnreachableTracker, describeRunningTracker, TrackerLock} from './tracker-ownership.js'
export {acquireReplica, claimReplica, lockReplicaFile, replicaLockPath, type ReplicaLockOptions} from './replica-lock.js'
export {HEADER_LOCK_WAIT_MS, lockHeaderSlots} from './header-lock.js'
export {kernelLocksInUse} from './exclusive-lock.js'
export {LOCK_UNAVAILABLE} from './lock-unavailable.js'
export {tryLockTest, type HeldTestLock} from './test-lock.js'
export {kernelRangeLocksAvailable, rangeLock, rangeUnlock} from './kernel-locks.js'
