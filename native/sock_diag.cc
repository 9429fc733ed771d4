// sockDiagQuery(request, reply): sends one netlink message (built and checked on the TS side,
// src/core/native/inet-diag.ts) on a fresh NETLINK_SOCK_DIAG socket and copies the one reply
// datagram into `reply`. The kernel answers an exact-socket query (no NLM_F_DUMP) inside the
// send, so the receive never waits (MSG_DONTWAIT: if it would, that is an error, not a
// stall). O(1): a hash lookup by 4-tuple in the kernel, no /proc table walk.
//
// Returns the reply's full length (MSG_TRUNC): larger than `reply` means it was cut, and the
// TS side refuses it. Policy (what the reply means) lives in TS, where it is unit-tested.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "sock_diag.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

// A request is a netlink header and an inet_diag_req_v2 (72 bytes); anything far larger is a bug.
constexpr size_t kMaxRequest = 1024;

napi_value ThrowSockDiag(napi_env env, int err, const char* syscall) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s, %s", err == EAGAIN ? "EAGAIN" : "ESOCKDIAG", strerror(err), syscall);
  napi_value code, message, error, errno_value, syscall_value;
  napi_create_string_utf8(env, err == EAGAIN ? "EAGAIN" : "ESOCKDIAG", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return nullptr;
}

bool GetBytes(napi_env env, napi_value v, const char* what, void** data, size_t* length) {
  bool is_typed = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, length, data, &ab, &offset) != napi_ok || type != napi_uint8_array) {
    char msg[80];
    snprintf(msg, sizeof msg, "%s must be a Uint8Array", what);
    napi_throw_type_error(env, "EINVAL", msg);
    return false;
  }
  return true;
}

}  // namespace

napi_value SockDiagQuery(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  if (argc < 2) {
    napi_throw_type_error(env, "EINVAL", "sockDiagQuery(request, reply) needs 2 arguments");
    return nullptr;
  }
  void* request;
  void* reply;
  size_t request_len, reply_len;
  if (!GetBytes(env, argv[0], "request", &request, &request_len)) return nullptr;
  if (!GetBytes(env, argv[1], "reply", &reply, &reply_len)) return nullptr;
  if (request_len < sizeof(struct nlmsghdr) || request_len > kMaxRequest) {
    napi_throw_range_error(env, "EINVAL", "request length is out of range");
    return nullptr;
  }
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return ThrowSockDiag(env, errno, "socket(NETLINK_SOCK_DIAG)");
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(fd, request, request_len, 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0 || (size_t)sent != request_len) {
    int err = sent < 0 ? errno : EMSGSIZE;
    close(fd);
    return ThrowSockDiag(env, err, "sendto(NETLINK_SOCK_DIAG)");
  }
  ssize_t got;
  do {
    got = recv(fd, reply, reply_len, MSG_DONTWAIT | MSG_TRUNC);
  } while (got < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (got < 0) return ThrowSockDiag(env, err, "recv(NETLINK_SOCK_DIAG)");
  napi_value result;
  napi_create_int64(env, (int64_t)got, &result);
  return result;
}
