// readHashRuns: read a chunk of a disk and checksum its blocks (XXH3-128, keyed) in libuv's
// thread pool, so the JS thread only compares and frames. A full sync reads and hashes both
// disks; on one JS thread the client's and the receiver's reads and hashes ran one after the
// other, and on two cores that thread was the limit of a 1%-seed sync. Here each chunk is one
// task of the pool: the two disks are read and hashed in parallel, and the JS thread is free.
//
// The checksums are byte-for-byte the ones src/core/hash/block-hash.ts computes through
// xxhash-addon (same xxHash sources, seed from the key's first 8 bytes read big-endian,
// canonical big-endian output in the first 16 bytes of a 32-byte slot), and a unit test holds
// the two to it. Policy (when to use this, what an error means) lives in the TS caller.
//
// readHashRuns(fd, buf, runs, chunkLen, blockSize, filePos, seed, hashes, zero) -> Promise
//   runs: Int32Array of [firstBlock, endBlock) pairs, block indexes within the chunk, the
//         blocks to read (the caller leaves holes out: reading a hole fills the page cache
//         with zero pages). Other blocks are neither read nor touched in `hashes`/`zero`.
//   buf:  receives the chunk's bytes at their offset in the chunk.
//   hashes: 32 bytes per block of the chunk; zero: 1 byte per block (1 = all zero, no hash).
// It rejects with a Node-style errno error ("EIO", syscall "read") or code "EOF" when the
// file ends before a run does.

#include "read_hash.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // strerrorname_np
#endif

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef VDREP_HAVE_XXHASH
// Header-only, with xxHash's own x86 dispatcher (AVX2 where the CPU has it, as xxhash-addon).
#include "xxhash.h"
#include "xxh_x86dispatch.h"
#endif

namespace {

constexpr size_t kHashSlot = 32;

struct Work {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref refs[4] = {nullptr, nullptr, nullptr, nullptr};
  int fd = -1;
  uint8_t* buf = nullptr;
  size_t buf_len = 0;
  const int32_t* runs = nullptr;
  size_t run_count = 0;
  size_t chunk_len = 0;
  size_t block_size = 0;
  int64_t file_pos = 0;
  uint64_t seed = 0;
  uint8_t* hashes = nullptr;
  uint8_t* zero = nullptr;
  size_t block_count = 0;
  int err = 0;      // errno of a failed read
  bool eof = false; // the file ended inside a run
  int64_t err_pos = 0;
};

const char* ErrnoCode(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
#endif
  return err == EIO ? "EIO" : "EUNKNOWN";
}

bool AllZero(const uint8_t* p, size_t n) {
  // Word-wise OR: the compiler vectorises it; an early exit every 4 KiB keeps data blocks cheap.
  size_t i = 0;
  for (; i + 4096 <= n; i += 4096) {
    uint64_t acc = 0;
    for (size_t k = 0; k < 4096; k += 8) {
      uint64_t w;
      memcpy(&w, p + i + k, 8);
      acc |= w;
    }
    if (acc != 0) return false;
  }
  for (; i < n; i++) {
    if (p[i] != 0) return false;
  }
  return true;
}

bool ReadFully(Work* w, size_t off, size_t len) {
  while (len > 0) {
    ssize_t n = pread(w->fd, w->buf + off, len, w->file_pos + (int64_t)off);
    if (n < 0) {
      if (errno == EINTR) continue;
      w->err = errno;
      w->err_pos = w->file_pos + (int64_t)off;
      return false;
    }
    if (n == 0) {
      w->eof = true;
      w->err_pos = w->file_pos + (int64_t)off;
      return false;
    }
    off += (size_t)n;
    len -= (size_t)n;
  }
  return true;
}

void Execute(napi_env, void* data) {
  Work* w = static_cast<Work*>(data);
  for (size_t r = 0; r < w->run_count; r++) {
    size_t first = (size_t)w->runs[2 * r];
    size_t end = (size_t)w->runs[2 * r + 1];
    size_t off = first * w->block_size;
    size_t stop = end * w->block_size < w->chunk_len ? end * w->block_size : w->chunk_len;
    if (!ReadFully(w, off, stop - off)) return;
    for (size_t b = first; b < end; b++) {
      const uint8_t* block = w->buf + b * w->block_size;
      size_t len = stop - b * w->block_size < w->block_size ? stop - b * w->block_size : w->block_size;
      uint8_t* slot = w->hashes + b * kHashSlot;
      if (AllZero(block, len)) {
        w->zero[b] = 1;
        memset(slot, 0, kHashSlot);
        continue;
      }
      w->zero[b] = 0;
#ifdef VDREP_HAVE_XXHASH
      XXH128_hash_t h = XXH3_128bits_withSeed(block, len, w->seed);
      XXH128_canonical_t c;
      XXH128_canonicalFromHash(&c, h);
      memcpy(slot, c.digest, 16);
      memset(slot + 16, 0, kHashSlot - 16);
#endif
    }
  }
}

napi_value ErrnoError(napi_env env, const char* code_text, int neg_errno, const char* message, int64_t pos) {
  napi_value code, msg, error, errno_value, syscall, position;
  napi_create_string_utf8(env, code_text, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, neg_errno, &errno_value);
  napi_create_string_utf8(env, "read", NAPI_AUTO_LENGTH, &syscall);
  napi_create_double(env, (double)pos, &position);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall);
  napi_set_named_property(env, error, "position", position);
  return error;
}

void Complete(napi_env env, napi_status, void* data) {
  Work* w = static_cast<Work*>(data);
  if (w->err != 0 || w->eof) {
    char message[160];
    const char* code = w->eof ? "EOF" : ErrnoCode(w->err);
    snprintf(message, sizeof message, "%s: %s at offset %lld", code, w->eof ? "end of file inside a read" : strerror(w->err), (long long)w->err_pos);
    napi_reject_deferred(env, w->deferred, ErrnoError(env, code, w->eof ? 0 : -w->err, message, w->err_pos));
  } else {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, w->deferred, undefined);
  }
  for (napi_ref ref : w->refs) {
    if (ref != nullptr) napi_delete_reference(env, ref);
  }
  napi_delete_async_work(env, w->work);
  delete w;
}

bool Bytes(napi_env env, napi_value v, const char* what, uint8_t** data, size_t* len) {
  bool is_typed = false;
  napi_is_typedarray(env, v, &is_typed);
  if (is_typed) {
    napi_typedarray_type type;
    void* p = nullptr;
    if (napi_get_typedarray_info(env, v, &type, len, &p, nullptr, nullptr) == napi_ok && type == napi_uint8_array) {
      *data = static_cast<uint8_t*>(p);
      return true;
    }
  }
  char msg[80];
  snprintf(msg, sizeof msg, "%s must be a Uint8Array or Buffer", what);
  napi_throw_type_error(env, "EINVAL", msg);
  return false;
}

bool Int(napi_env env, napi_value v, const char* what, int64_t min, int64_t max, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= (double)min) || d > (double)max || d != (double)(int64_t)d) {
    char msg[80];
    snprintf(msg, sizeof msg, "%s is out of range", what);
    napi_throw_range_error(env, "EINVAL", msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

}  // namespace

bool ReadHashAvailable() {
#ifdef VDREP_HAVE_XXHASH
  return true;
#else
  return false;
#endif
}

napi_value ReadHashRuns(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 9) {
    napi_throw_type_error(env, "EINVAL", "readHashRuns needs 9 arguments");
    return nullptr;
  }
  if (!ReadHashAvailable()) {
    napi_throw_error(env, "ENOSYS", "this build of the addon has no xxHash");
    return nullptr;
  }
  int64_t fd, chunk_len, block_size, file_pos;
  uint8_t *buf, *seed, *hashes, *zero, *runs_bytes;
  size_t buf_len, seed_len, hashes_len, zero_len, runs_len;
  if (!Int(env, argv[0], "fd", 0, INT32_MAX, &fd)) return nullptr;
  if (!Bytes(env, argv[1], "buf", &buf, &buf_len)) return nullptr;
  napi_typedarray_type runs_type;
  void* runs_p = nullptr;
  bool is_typed = false;
  napi_is_typedarray(env, argv[2], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[2], &runs_type, &runs_len, &runs_p, nullptr, nullptr) != napi_ok || runs_type != napi_int32_array || runs_len % 2 != 0) {
    napi_throw_type_error(env, "EINVAL", "runs must be an Int32Array of pairs");
    return nullptr;
  }
  runs_bytes = static_cast<uint8_t*>(runs_p);
  if (!Int(env, argv[3], "chunkLen", 0, (int64_t)buf_len, &chunk_len)) return nullptr;
  if (!Int(env, argv[4], "blockSize", 1, 1 << 30, &block_size)) return nullptr;
  if (!Int(env, argv[5], "filePos", 0, 9007199254740991LL, &file_pos)) return nullptr;
  if (!Bytes(env, argv[6], "seed", &seed, &seed_len)) return nullptr;
  if (!Bytes(env, argv[7], "hashes", &hashes, &hashes_len)) return nullptr;
  if (!Bytes(env, argv[8], "zero", &zero, &zero_len)) return nullptr;
  if (seed_len < 8) {
    napi_throw_range_error(env, "EINVAL", "seed must be at least 8 bytes");
    return nullptr;
  }
  size_t block_count = ((size_t)chunk_len + (size_t)block_size - 1) / (size_t)block_size;
  if (hashes_len < block_count * kHashSlot || zero_len < block_count) {
    napi_throw_range_error(env, "EINVAL", "hashes or zero is too small for the chunk");
    return nullptr;
  }
  // Every run must lie inside the chunk, in order, so the pool thread never writes out of bounds.
  const int32_t* runs = reinterpret_cast<const int32_t*>(runs_bytes);
  int64_t prev_end = 0;
  for (size_t r = 0; r < runs_len / 2; r++) {
    int64_t first = runs[2 * r], end = runs[2 * r + 1];
    if (first < prev_end || end <= first || (size_t)end > block_count) {
      napi_throw_range_error(env, "EINVAL", "runs must be ordered, non-empty and inside the chunk");
      return nullptr;
    }
    prev_end = end;
  }

  Work* w = new Work();
  w->fd = (int)fd;
  w->buf = buf;
  w->buf_len = buf_len;
  w->runs = runs;
  w->run_count = runs_len / 2;
  w->chunk_len = (size_t)chunk_len;
  w->block_size = (size_t)block_size;
  w->file_pos = file_pos;
  uint64_t s = 0;
  for (int i = 0; i < 8; i++) s = (s << 8) | seed[i];  // big-endian, as XXH64_hashFromCanonical
  w->seed = s;
  w->hashes = hashes;
  w->zero = zero;
  w->block_count = block_count;
  // The typed arrays must outlive the task: their memory is written by the pool thread.
  const int ref_args[4] = {1, 2, 7, 8};
  for (int i = 0; i < 4; i++) napi_create_reference(env, argv[ref_args[i]], 1, &w->refs[i]);

  napi_value promise, name;
  napi_create_promise(env, &w->deferred, &promise);
  napi_create_string_utf8(env, "vdrep.readHashRuns", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, Execute, Complete, w, &w->work);
  napi_queue_async_work(env, w->work);
  return promise;
}
