// sockDiagQuery: one request/reply exchange on a NETLINK_SOCK_DIAG socket (see sock_diag.cc).
#pragma once

#include <node_api.h>

/** sockDiagQuery(request: Uint8Array, reply: Uint8Array) -> number of reply bytes; throws an errno error. */
napi_value SockDiagQuery(napi_env env, napi_callback_info info);
