// vdrep_native: the Linux system calls Node has no binding for (fanotify: fanotify.cc). Each export is a thin,
// synchronous wrapper; policy (what "unsupported" means, fallbacks, typed errors) lives in
// src/core/disk/native.ts so it is tested in one place. Plain C N-API (node_api.h) so no
// package is needed and the binary does not depend on the Node version.
//
// Errors are thrown as Error objects shaped like Node's own fs errors (code "EBADF",
// negative errno, syscall), so the TS side can wrap them the same way it wraps fs errors.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // fallocate flags, SEEK_DATA/SEEK_HOLE, struct ucred
#endif

#include <node_api.h>

#include "aligned_buffer.h"
#include "fanotify.h"
#include "read_hash.h"
#include "sd_notify.h"
#include "sock_diag.h"
#include "writeback.h"

#include <errno.h>
#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace {

// Largest integer a JS number holds exactly; offsets beyond it would silently round.
constexpr int64_t kMaxSafe = 9007199254740991LL;

const char* ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
#endif
  switch (err) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
    case ENOTTY: return "ENOTTY";
    case ENXIO: return "ENXIO";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOTCONN: return "ENOTCONN";
    default: return "EUNKNOWN";
  }
}

// Throws an Error with code/errno/syscall like Node's fs errors. Returns nullptr so a
// callback can `return ThrowErrno(...)`.
napi_value ThrowErrno(napi_env env, int err, const char* syscall) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s, %s", ErrnoName(err), strerror(err), syscall);
  napi_value code, message, error, errno_value, syscall_value;
  napi_create_string_utf8(env, ErrnoName(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return nullptr;
}

// Reads exactly `n` arguments; throws a TypeError and returns false when fewer were given.
bool GetArgs(napi_env env, napi_callback_info info, size_t n, napi_value* argv) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return false;
  if (argc < n) {
    napi_throw_type_error(env, "EINVAL", "too few arguments");
    return false;
  }
  return true;
}

bool GetFd(napi_env env, napi_value v, int* fd) {
  int32_t value;
  if (napi_get_value_int32(env, v, &value) != napi_ok || value < 0) {
    napi_throw_type_error(env, "EINVAL", "fd must be a non-negative integer");
    return false;
  }
  *fd = value;
  return true;
}

bool GetOffset(napi_env env, napi_value v, const char* what, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > (double)kMaxSafe ||
      d != (double)(int64_t)d) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a non-negative safe integer", what);
    napi_throw_range_error(env, "EINVAL", msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool GetBool(napi_env env, napi_value v, bool* out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected a boolean");
    return false;
  }
  return true;
}

napi_value Bool(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

napi_value Number(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

// punchHole(fd, offset, length) -> true, or false when the filesystem cannot punch holes
// (the caller then writes zeros). KEEP_SIZE so punching never changes the file size.
napi_value PunchHole(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int64_t offset, length;
  if (!GetArgs(env, info, 3, argv) || !GetFd(env, argv[0], &fd) ||
      !GetOffset(env, argv[1], "offset", &offset) || !GetOffset(env, argv[2], "length", &length)) {
    return nullptr;
  }
  if (length == 0) return Bool(env, true);  // fallocate rejects len 0 with EINVAL
  int rc;
  do {
    rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return Bool(env, true);
  if (errno == EOPNOTSUPP || errno == ENOSYS) return Bool(env, false);
  return ThrowErrno(env, errno, "fallocate");
}

// Shared body of seekData/seekHole: ENXIO (offset at or past the end, or no data after
// it) is an answer, not an error, so it becomes -1.
napi_value Seek(napi_env env, napi_callback_info info, int whence, const char* syscall) {
  napi_value argv[2];
  int fd;
  int64_t offset;
  if (!GetArgs(env, info, 2, argv) || !GetFd(env, argv[0], &fd) ||
      !GetOffset(env, argv[1], "offset", &offset)) {
    return nullptr;
  }
  off_t pos = lseek(fd, offset, whence);
  if (pos >= 0) return Number(env, pos);
  if (errno == ENXIO) return Number(env, -1);
  return ThrowErrno(env, errno, syscall);
}

napi_value SeekData(napi_env env, napi_callback_info info) {
  return Seek(env, info, SEEK_DATA, "lseek(SEEK_DATA)");
}

napi_value SeekHole(napi_env env, napi_callback_info info) {
  return Seek(env, info, SEEK_HOLE, "lseek(SEEK_HOLE)");
}

// flock(fd, exclusive, nonBlocking) -> true when taken, false when another open file
// description holds it (non-blocking only). Blocking mode blocks the JS thread.
napi_value Flock(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  bool exclusive, non_blocking;
  if (!GetArgs(env, info, 3, argv) || !GetFd(env, argv[0], &fd) ||
      !GetBool(env, argv[1], &exclusive) || !GetBool(env, argv[2], &non_blocking)) {
    return nullptr;
  }
  int op = (exclusive ? LOCK_EX : LOCK_SH) | (non_blocking ? LOCK_NB : 0);
  int rc;
  do {
    rc = flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return Bool(env, true);
  if (errno == EWOULDBLOCK) return Bool(env, false);
  return ThrowErrno(env, errno, "flock");
}

napi_value Funlock(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!GetArgs(env, info, 1, argv) || !GetFd(env, argv[0], &fd)) return nullptr;
  int rc;
  do {
    rc = flock(fd, LOCK_UN);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return ThrowErrno(env, errno, "flock(LOCK_UN)");
  return nullptr;
}

// An open-file-description record lock (F_OFD_SETLK, never waiting) of type F_RDLCK,
// F_WRLCK or F_UNLCK on [start, start+length); 0 or -1 with errno, as fcntl.
int OfdSetLock(int fd, short type, int64_t start, int64_t length) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = (off_t)start;
  fl.l_len = (off_t)length;
  int rc;
  do {
    rc = fcntl(fd, F_OFD_SETLK, &fl);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

// rangeLock(fd, start, length, exclusive) -> true when taken, false when another open file
// description holds a conflicting lock. An open-file-description record lock (F_OFD_SETLK):
// it belongs to the fd's description like flock, but it is a separate lock from flock, so it
// can guard a byte range of a file that a process also holds an flock on (the .psf: the
// tracker's flock for its lifetime, this for one header update at a time). Non-blocking.
napi_value RangeLock(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  int64_t start, length;
  bool exclusive;
  if (!GetArgs(env, info, 4, argv) || !GetFd(env, argv[0], &fd) || !GetOffset(env, argv[1], "start", &start) ||
      !GetOffset(env, argv[2], "length", &length) || !GetBool(env, argv[3], &exclusive)) {
    return nullptr;
  }
  if (OfdSetLock(fd, exclusive ? F_WRLCK : F_RDLCK, start, length) == 0) return Bool(env, true);
  if (errno == EAGAIN || errno == EACCES) return Bool(env, false);
  return ThrowErrno(env, errno, "fcntl(F_OFD_SETLK)");
}

// rangeUnlock(fd, start, length): release a rangeLock.
napi_value RangeUnlock(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int64_t start, length;
  if (!GetArgs(env, info, 3, argv) || !GetFd(env, argv[0], &fd) || !GetOffset(env, argv[1], "start", &start) || !GetOffset(env, argv[2], "length", &length)) return nullptr;
  if (OfdSetLock(fd, F_UNLCK, start, length) != 0) return ThrowErrno(env, errno, "fcntl(F_OFD_SETLK, F_UNLCK)");
  return nullptr;
}

// blockDeviceSize(fd) -> size in bytes of the block device open on fd.
napi_value BlockDeviceSize(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!GetArgs(env, info, 1, argv) || !GetFd(env, argv[0], &fd)) return nullptr;
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) return ThrowErrno(env, errno, "ioctl(BLKGETSIZE64)");
  if (size > (uint64_t)kMaxSafe) return ThrowErrno(env, EOVERFLOW, "ioctl(BLKGETSIZE64)");
  return Number(env, (int64_t)size);
}

// peerCred(fd) -> {pid, uid, gid} of the process that connected the other end of a unix
// socket (as recorded by the kernel at connect time).
napi_value PeerCred(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!GetArgs(env, info, 1, argv) || !GetFd(env, argv[0], &fd)) return nullptr;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ThrowErrno(env, errno, "getsockopt(SO_PEERCRED)");
  }
  napi_value result;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "pid", Number(env, cred.pid));
  napi_set_named_property(env, result, "uid", Number(env, cred.uid));
  napi_set_named_property(env, result, "gid", Number(env, cred.gid));
  return result;
}

// keepFreedMemory(mmapThreshold, trimThreshold) -> bool. glibc serves large allocations
// (Node's buffers of 128 KiB and up, by default) with mmap and returns them with munmap, so
// every fresh buffer is fresh pages: one page fault per 4 KiB touched, which on a VM costs
// more than the copy itself. Raising both thresholds keeps freed buffers in the heap for the
// next allocation. False where the C library has no such knobs (not glibc).
napi_value KeepFreedMemory(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!GetArgs(env, info, 2, argv)) return nullptr;
  int64_t mmap_threshold, trim_threshold;
  if (!GetOffset(env, argv[0], "mmapThreshold", &mmap_threshold)) return nullptr;
  if (!GetOffset(env, argv[1], "trimThreshold", &trim_threshold)) return nullptr;
#if defined(__GLIBC__)
  if (mmap_threshold > INT32_MAX || trim_threshold > INT32_MAX) {
    napi_throw_range_error(env, "EINVAL", "thresholds must fit in an int");
    return nullptr;
  }
  bool ok = mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) == 1;
  return Bool(env, ok);
#else
  return Bool(env, false);
#endif
}

// trimFreedMemory() -> bool. Hands the pages of freed heap memory back to the kernel, in every
// malloc arena (glibc malloc_trim(0), which also releases free pages inside the heap, not just
// at its top). keepFreedMemory keeps up to its trim threshold of freed memory mapped for reuse
// by the next buffer; a long-lived `vdrep serve` calls this once its sessions are over, so its
// resident memory falls back to its working set between them. True when memory was released;
// false where the C library has no such call (not glibc).
napi_value TrimFreedMemory(napi_env env, napi_callback_info info) {
#if defined(__GLIBC__)
  return Bool(env, malloc_trim(0) == 1);
#else
  return Bool(env, false);
#endif
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"punchHole", nullptr, PunchHole, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"seekData", nullptr, SeekData, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"seekHole", nullptr, SeekHole, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"flock", nullptr, Flock, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"funlock", nullptr, Funlock, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"blockDeviceSize", nullptr, BlockDeviceSize, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"peerCred", nullptr, PeerCred, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rangeLock", nullptr, RangeLock, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rangeUnlock", nullptr, RangeUnlock, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"keepFreedMemory", nullptr, KeepFreedMemory, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"trimFreedMemory", nullptr, TrimFreedMemory, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"startWriteback", nullptr, StartWriteback, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sockDiagQuery", nullptr, SockDiagQuery, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"fanotifyOpen", nullptr, FanotifyOpen, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"fanotifyRead", nullptr, FanotifyRead, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sdNotify", nullptr, SdNotify, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"alignedBuffer", nullptr, AlignedBuffer, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"isAligned", nullptr, IsAligned, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"readHashRuns", nullptr, ReadHashRuns, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"mapHashRuns", nullptr, MapHashRuns, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"xxh3Into", nullptr, Xxh3Into, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  // readHashRuns, mapHashRuns and xxh3Into are last: a build without xxHash's sources leaves
  // them out (the TS side then reads and hashes on the JS thread, with xxhash-addon).
  size_t count = sizeof props / sizeof props[0];
  if (!ReadHashAvailable()) count -= 3;
  napi_define_properties(env, exports, count, props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
