// startWriteback: ask the kernel to begin writing a file range back to its device (see writeback.cc).
#pragma once

#include <node_api.h>

/** startWriteback(fd, offset, length) -> Promise<void>; rejects with an errno error. */
napi_value StartWriteback(napi_env env, napi_callback_info info);
