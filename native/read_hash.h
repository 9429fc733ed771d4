// The thread-pool read-and-checksum export of vdrep_native (see read_hash.cc).
#pragma once

#include <node_api.h>

/** True when the addon was built with xxHash (binding.gyp found xxhash-addon's sources). */
bool ReadHashAvailable();

/** readHashRuns(fd, buf, runs, chunkLen, blockSize, filePos, seed, hashes, zero) -> Promise. */
napi_value ReadHashRuns(napi_env env, napi_callback_info info);

/** mapHashRuns(fd, runs, chunkLen, blockSize, filePos, seed, hashes, zero[, pastEndForTests]) -> Promise. */
napi_value MapHashRuns(napi_env env, napi_callback_info info);

/** xxh3Into(data, seed8, out, offset): XXH3-128 of data with the seed, canonical, into out[offset..offset+16). */
napi_value Xxh3Into(napi_env env, napi_callback_info info);
