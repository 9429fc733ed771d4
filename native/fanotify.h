// fanotifyOpen / fanotifyRead: a fanotify group watching one file or device node for writes
// (see fanotify.cc). Policy (which pids count, what "unavailable" means) lives in TS.
#pragma once

#include <node_api.h>

/** fanotifyOpen(path: string, mask: number, reportFid: boolean) -> fd; throws an errno error naming the syscall. */
napi_value FanotifyOpen(napi_env env, napi_callback_info info);

/** fanotifyRead(fd: number) -> {pids: Int32Array, masks: Uint32Array, more: boolean}; never blocks. */
napi_value FanotifyRead(napi_env env, napi_callback_info info);
