// alignedBuffer: memory a direct-I/O write can use (see aligned_buffer.cc).
#pragma once

#include <node_api.h>

/** alignedBuffer(size, alignment) -> ArrayBuffer whose first byte sits at a multiple of alignment. */
napi_value AlignedBuffer(napi_env env, napi_callback_info info);

/** isAligned(typedArray, alignment) -> whether the view's first byte sits at a multiple of alignment (a direct write can take it as it is). */
napi_value IsAligned(napi_env env, napi_callback_info info);
