// startWriteback(fd, offset, length): sync_file_range(SYNC_FILE_RANGE_WRITE) in libuv's thread
// pool. It starts writeback of the dirty pages of a range and returns; it guarantees nothing
// (no metadata, no device cache flush), so it is never a substitute for fdatasync. Its use is
// time: a replica's written pages otherwise sit dirty in the page cache until the checkpoint's
// fdatasync (Linux starts background writeback only past dirty_background_ratio, 10% of RAM),
// which then waits for all of them; started as each run is written, the device writes while
// the transfer goes on, and the fdatasync waits only for the tail.
// sync_file_range is a GNU extension: declared only with _GNU_SOURCE, before any header.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "writeback.h"
#include "napi_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

namespace {

struct Work {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  int fd = -1;
  int64_t offset = 0;
  int64_t length = 0;
  int err = 0;
};

void Execute(napi_env, void* data) {
  Work* w = static_cast<Work*>(data);
  for (;;) {
    if (sync_file_range(w->fd, w->offset, w->length, SYNC_FILE_RANGE_WRITE) == 0) return;
    if (errno != EINTR) {
      w->err = errno;
      return;
    }
  }
}

void Complete(napi_env env, napi_status, void* data) {
  Work* w = static_cast<Work*>(data);
  if (w->err != 0) {
    napi_value code, msg, error;
    char text[120];
    snprintf(text, sizeof text, "sync_file_range: %s", strerror(w->err));
    napi_create_string_utf8(env, w->err == ESPIPE ? "ESPIPE" : w->err == EBADF ? "EBADF" : w->err == EINVAL ? "EINVAL" : "EIO", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &error);
    napi_reject_deferred(env, w->deferred, error);
  } else {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, w->deferred, undefined);
  }
  napi_delete_async_work(env, w->work);
  delete w;
}

}  // namespace

napi_value StartWriteback(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) {
    napi_throw_type_error(env, "EINVAL", "startWriteback needs 3 arguments");
    return nullptr;
  }
  int64_t fd, offset, length;
  if (!ArgInt(env, argv[0], "fd", 0, INT32_MAX, &fd) || !ArgInt(env, argv[1], "offset", 0, 9007199254740991LL, &offset) || !ArgInt(env, argv[2], "length", 0, 9007199254740991LL, &length)) return nullptr;
  Work* w = new Work();
  w->fd = (int)fd;
  w->offset = offset;
  w->length = length;
  napi_value promise, name;
  napi_create_promise(env, &w->deferred, &promise);
  napi_create_string_utf8(env, "vdrep.startWriteback", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, Execute, Complete, w, &w->work);
  napi_queue_async_work(env, w->work);
  return promise;
}
