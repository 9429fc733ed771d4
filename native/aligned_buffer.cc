// alignedBuffer(size, alignment): an ArrayBuffer over posix_memalign'd memory, freed when the
// ArrayBuffer is collected. O_DIRECT writes need the user buffer's address aligned to the
// device's logical block size, and JS has no way to place or even learn a buffer's address
// (Buffer.allocUnsafe's memory comes from malloc at any 16-byte boundary).
#include "aligned_buffer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

namespace {

void FreeAligned(napi_env, void* data, void*) { free(data); }

}  // namespace

napi_value AlignedBuffer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    napi_throw_type_error(env, "EINVAL", "alignedBuffer(size, alignment)");
    return nullptr;
  }
  int64_t size = 0, alignment = 0;
  if (napi_get_value_int64(env, argv[0], &size) != napi_ok || napi_get_value_int64(env, argv[1], &alignment) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "alignedBuffer: size and alignment must be numbers");
    return nullptr;
  }
  // A power of two, at least a pointer's size (posix_memalign's rule); sizes up to 1 GiB.
  if (size <= 0 || size > (int64_t(1) << 30) || alignment < int64_t(sizeof(void*)) || alignment > (1 << 20) || (alignment & (alignment - 1)) != 0) {
    napi_throw_range_error(env, "EINVAL", "alignedBuffer: size 1..1 GiB, alignment a power of two up to 1 MiB");
    return nullptr;
  }
  void* mem = nullptr;
  if (posix_memalign(&mem, size_t(alignment), size_t(size)) != 0 || mem == nullptr) {
    napi_throw_error(env, "ENOMEM", "alignedBuffer: out of memory");
    return nullptr;
  }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, mem, size_t(size), FreeAligned, nullptr, &ab) != napi_ok) {
    free(mem);
    napi_throw_error(env, "EINVAL", "alignedBuffer: cannot wrap the memory");
    return nullptr;
  }
  return ab;
}

napi_value IsAligned(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t alignment = 0;
  bool typed = false;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2 || napi_is_typedarray(env, argv[0], &typed) != napi_ok || !typed ||
      napi_get_value_int64(env, argv[1], &alignment) != napi_ok || alignment <= 0) {
    napi_throw_type_error(env, "EINVAL", "isAligned(typedArray, alignment)");
    return nullptr;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "isAligned: not a typed array");
    return nullptr;
  }
  // `data` already includes the view's byte offset: where its first byte sits in memory.
  napi_value result;
  napi_get_boolean(env, data != nullptr && (uintptr_t)data % (uint64_t)alignment == 0, &result);
  return result;
}
