// sdNotify: one datagram to systemd's notification socket (see sd_notify.cc).
#pragma once

#include <node_api.h>

/** sdNotify(socketPath, message) -> void; throws an errno error when it cannot be sent. */
napi_value SdNotify(napi_env env, napi_callback_info info);
