// A fanotify group that watches one inode (a disk image or a block device node) for writes,
// so the tracker learns that a process other than itself wrote the disk (issue 18, case 5).
//
// fanotifyOpen(path, mask, reportFid) -> fd. FAN_CLASS_NOTIF (notification only: a writer is
// never held up), FAN_NONBLOCK (a read returns EAGAIN instead of parking the JS thread),
// FAN_CLOEXEC. An inode mark (not a mount or filesystem mark): only this file's events.
//  - reportFid: FAN_REPORT_FID. Events carry a file handle instead of an open fd, so reading
//    opens nothing: no fd to leak, no fd table pressure, and no close() of an fd on the disk
//    (closing any fd of a file drops the process's POSIX record locks on it). Since Linux 5.13
//    it also works without CAP_SYS_ADMIN; the kernel then reports pid 0 for every writer but
//    the reader's own process, which is all the tracker needs. It needs a filesystem that
//    gives file handles and an fsid (the TS side retries without it when the mark says no).
//  - otherwise every event carries an fd opened O_RDONLY|O_LARGEFILE on the file; the read
//    closes each one at once. Needs CAP_SYS_ADMIN (EPERM without).
//
// fanotifyRead(fd) -> {pids, masks, more}: drains what is queued without blocking and returns
// each distinct (pid, mask) pair. Bounded: at most kMaxReads reads per call (a busy writer
// could otherwise keep the loop going); `more` says the queue was not empty when it stopped.
// A pid is the writer's process (tgid, not FAN_REPORT_TID), so the writes of the tracker's
// own thread pool all carry its own pid.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "fanotify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <vector>

#ifndef FAN_REPORT_FID
#define FAN_REPORT_FID 0x00000200
#endif

namespace {

constexpr int kMaxReads = 64;
// Distinct (pid, mask) pairs kept per call; past this the rest is summarised as an overflow.
constexpr size_t kMaxPairs = 256;
constexpr size_t kMaxPath = 4096;

const char* CodeOf(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
#endif
  switch (err) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENODEV: return "ENODEV";
    case EXDEV: return "EXDEV";
    case EMFILE: return "EMFILE";
    default: return "EUNKNOWN";
  }
}

napi_value Throw(napi_env env, int err, const char* syscall) {
  char msg[200];
  snprintf(msg, sizeof msg, "%s: %s, %s", CodeOf(err), strerror(err), syscall);
  napi_value code, message, error, errno_value, syscall_value;
  napi_create_string_utf8(env, CodeOf(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return nullptr;
}

bool ArgCount(napi_env env, napi_callback_info info, size_t n, napi_value* argv) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return false;
  if (argc < n) {
    napi_throw_type_error(env, "EINVAL", "too few arguments");
    return false;
  }
  return true;
}

}  // namespace

napi_value FanotifyOpen(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!ArgCount(env, info, 3, argv)) return nullptr;
  char path[kMaxPath];
  size_t path_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len) != napi_ok || path_len == 0 ||
      path_len >= sizeof path - 1) {
    napi_throw_type_error(env, "EINVAL", "path must be a non-empty string shorter than 4095 bytes");
    return nullptr;
  }
  if (strlen(path) != path_len) {
    napi_throw_type_error(env, "EINVAL", "path must not contain a NUL byte");
    return nullptr;
  }
  uint32_t mask;
  bool report_fid;
  if (napi_get_value_uint32(env, argv[1], &mask) != napi_ok || mask == 0 || napi_get_value_bool(env, argv[2], &report_fid) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "fanotifyOpen(path, mask, reportFid) needs a string, a non-zero mask and a boolean");
    return nullptr;
  }
  unsigned flags = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | (report_fid ? FAN_REPORT_FID : 0);
  int fd = fanotify_init(flags, O_RDONLY | O_LARGEFILE);
  if (fd < 0) return Throw(env, errno, report_fid ? "fanotify_init(FAN_REPORT_FID)" : "fanotify_init");
  int rc;
  do {
    rc = fanotify_mark(fd, FAN_MARK_ADD, mask, AT_FDCWD, path);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    close(fd);
    return Throw(env, err, "fanotify_mark");
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

napi_value FanotifyRead(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!ArgCount(env, info, 1, argv)) return nullptr;
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "fd must be a non-negative integer");
    return nullptr;
  }
  // Large enough for many events at once; aligned as the kernel's metadata structs need. On
  // the stack, not static: worker threads may each load the addon.
  alignas(struct fanotify_event_metadata) char buf[16384];
  std::vector<std::pair<int32_t, uint32_t>> pairs;
  bool more = true, overflowed = false;
  for (int i = 0; i < kMaxReads; i++) {
    ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == EAGAIN) {
      more = false;
      break;
    }
    if (got < 0) return Throw(env, errno, "read(fanotify)");
    if (got == 0) {
      more = false;
      break;
    }
    auto* m = reinterpret_cast<struct fanotify_event_metadata*>(buf);
    ssize_t len = got;
    for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
      // Another layout cannot be read (not even its fd): refuse rather than guess.
      if (m->vers != FANOTIFY_METADATA_VERSION) return Throw(env, EPROTO, "read(fanotify): metadata version");
      // Close first: an fd-mode event holds an fd on the disk.
      if (m->fd >= 0) close(m->fd);
      std::pair<int32_t, uint32_t> pair(m->pid, (uint32_t)m->mask);
      bool seen = false;
      for (auto& p : pairs) seen = seen || p == pair;
      if (seen) continue;
      // Past the cap the rest is one overflow entry (pid 0: unknown), never an unbounded list.
      if (pairs.size() < kMaxPairs) pairs.push_back(pair);
      else overflowed = true;
    }
    // The kernel returns whole events only: bytes left over mean this fd is not a fanotify group.
    if (len != 0) return Throw(env, EPROTO, "read(fanotify): not fanotify events");
  }
  if (overflowed) pairs.emplace_back(0, (uint32_t)FAN_Q_OVERFLOW);
  napi_value pids_ab, masks_ab, pids, masks, more_value, result;
  void* pids_data;
  void* masks_data;
  napi_create_arraybuffer(env, pairs.size() * 4, &pids_data, &pids_ab);
  napi_create_arraybuffer(env, pairs.size() * 4, &masks_data, &masks_ab);
  for (size_t i = 0; i < pairs.size(); i++) {
    static_cast<int32_t*>(pids_data)[i] = pairs[i].first;
    static_cast<uint32_t*>(masks_data)[i] = pairs[i].second;
  }
  napi_create_typedarray(env, napi_int32_array, pairs.size(), pids_ab, 0, &pids);
  napi_create_typedarray(env, napi_uint32_array, pairs.size(), masks_ab, 0, &masks);
  napi_get_boolean(env, more, &more_value);
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "pids", pids);
  napi_set_named_property(env, result, "masks", masks);
  napi_set_named_property(env, result, "more", more_value);
  return result;
}
