// sdNotify(socketPath, message): sends `message` ("READY=1", "STATUS=...") as one datagram to
// the AF_UNIX socket systemd names in $NOTIFY_SOCKET, as sd_notify(3) does, without linking
// libsystemd. Node has no unix datagram sockets, hence this call. A path starting with '@' is
// in the abstract namespace (its first byte becomes NUL). Everything else (when to notify,
// what a failure means) is decided in src/core/native/sd-notify.ts.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

// systemd caps a notification message well below this; a longer one is a bug on our side.
constexpr size_t kMaxMessage = 4096;

napi_value ThrowNotify(napi_env env, int err, const char* syscall) {
  char msg[160];
  const char* name = err == ENOENT ? "ENOENT" : err == ECONNREFUSED ? "ECONNREFUSED" : err == EACCES ? "EACCES" : err == EINVAL ? "EINVAL" : "ENOTIFY";
  snprintf(msg, sizeof msg, "%s: %s, %s", name, strerror(err), syscall);
  napi_value code, message, error, errno_value, syscall_value;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return nullptr;
}

bool GetString(napi_env env, napi_value v, char* buf, size_t cap, size_t* len) {
  if (napi_get_value_string_utf8(env, v, nullptr, 0, len) != napi_ok || *len >= cap) return false;
  return napi_get_value_string_utf8(env, v, buf, cap, len) == napi_ok;
}

}  // namespace

napi_value SdNotify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    napi_throw_type_error(env, "EINVAL", "sdNotify(socketPath, message)");
    return nullptr;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  char path[sizeof addr.sun_path + 1];
  size_t path_len = 0;
  if (!GetString(env, argv[0], path, sizeof path, &path_len) || path_len < 2 || path_len > sizeof addr.sun_path ||
      (path[0] != '/' && path[0] != '@')) {
    return ThrowNotify(env, EINVAL, "sdNotify socket path");
  }
  static char message[kMaxMessage];
  size_t message_len = 0;
  if (!GetString(env, argv[1], message, sizeof message, &message_len) || message_len == 0) {
    return ThrowNotify(env, EINVAL, "sdNotify message");
  }
  memcpy(addr.sun_path, path, path_len);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  // An abstract name's length is exact (no terminating NUL); a path's includes its NUL.
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len + (path[0] == '@' ? 0 : 1));
  if (addr_len > sizeof addr) addr_len = sizeof addr;

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowNotify(env, errno, "socket");
  ssize_t n;
  do {
    n = sendto(fd, message, message_len, MSG_NOSIGNAL, (struct sockaddr*)&addr, addr_len);
  } while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) return ThrowNotify(env, err, "sendto");
  if ((size_t)n != message_len) return ThrowNotify(env, EMSGSIZE, "sendto");
  return nullptr;
}
