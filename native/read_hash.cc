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
//
// mapHashRuns(fd, runs, chunkLen, blockSize, filePos, seed, hashes, zero[, pastEndForTests])
//   the same checksums without the copy: the chunk is mapped read-only and hashed where it
//   lies in the page cache. For callers that need only the checksums (the receiver's scan and
//   proof, the client's compare of a chunk that is mostly equal): a buffered read of a cached
//   disk is mostly the kernel copying pages, and that copy was the largest single cost of a
//   full sync against a seed. A file that is shorter than the chunk rejects with "EOF" before
//   mapping; one that shrinks (or fails) under the mapping raises SIGBUS, which the guard
//   (sigbus_guard.cc) turns into a rejection with code "SIGBUS". Either way the caller reads
//   again with read(2), which names the problem. pastEndForTests skips the length check, so
//   a test can prove the guard.

#include "read_hash.h"

#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // strerrorname_np
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "napi_int.h"
#include "sigbus_guard.h"

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
  bool map = false;          // mapHashRuns: hash through a mapping, buf unused
  bool past_end_ok = false;  // tests: map past the end of the file
  int err = 0;      // errno of a failed read or mmap
  const char* err_syscall = "read";
  bool eof = false; // the file ended inside a run
  bool bus = false; // SIGBUS under the mapping
  int64_t err_pos = 0;
};

/** Reads are made in pieces of about this size and each piece hashed at once, while it is in L2. */
constexpr size_t kReadPiece = 256 * 1024;

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

/** Flag and checksum blocks [first, end) of the chunk, whose bytes start at `data` (block 0). */
void HashBlocks(Work* w, const uint8_t* data, size_t first, size_t end) {
  for (size_t b = first; b < end; b++) {
    const uint8_t* block = data + b * w->block_size;
    size_t at = b * w->block_size;
    size_t len = w->chunk_len - at < w->block_size ? w->chunk_len - at : w->block_size;
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

size_t RunEnd(const Work* w, size_t end) {
  return end * w->block_size < w->chunk_len ? end * w->block_size : w->chunk_len;
}

void ExecuteRead(Work* w) {
  // Through an O_DIRECT descriptor (the receiver's read-back of what it wrote) every read is a
  // round trip to the device and the bytes are not in any cache to keep them in: a whole run
  // in one read. 256 KiB reads at one at a time held the proof to ~380 MB/s (issue 21).
  const int fl = fcntl(w->fd, F_GETFL);
  const bool direct = fl != -1 && (fl & O_DIRECT) != 0;
  const size_t per_piece = direct ? SIZE_MAX : kReadPiece > w->block_size ? kReadPiece / w->block_size : 1;
  for (size_t r = 0; r < w->run_count; r++) {
    size_t first = (size_t)w->runs[2 * r];
    size_t end = (size_t)w->runs[2 * r + 1];
    for (size_t a = first, b; a < end; a = b) {
      b = end - a > per_piece ? a + per_piece : end;
      size_t off = a * w->block_size;
      if (!ReadFully(w, off, RunEnd(w, b) - off)) return;
      HashBlocks(w, w->buf, a, b);
    }
  }
}

struct Mapped {
  Work* w;
  const uint8_t* data;
};

void HashMappedRuns(void* arg) {
  Mapped* m = static_cast<Mapped*>(arg);
  for (size_t r = 0; r < m->w->run_count; r++) HashBlocks(m->w, m->data, (size_t)m->w->runs[2 * r], (size_t)m->w->runs[2 * r + 1]);
}

// The size of a regular file or a block device, or -1 with errno set.
int64_t FileSize(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -1;
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) return -1;
    return (int64_t)bytes;
  }
  return (int64_t)st.st_size;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif

// Fault the runs' pages in with one call per run (MADV_POPULATE_READ) instead of one page
// fault per 64 KiB of fault-around while hashing: on a cached disk the faults were as costly
// as the hashing itself. Only the runs, never the whole mapping: populating a hole would fill
// the page cache with zero pages. A hint: an old kernel (EINVAL) or a failure leaves the
// hashing to fault as before, and a file that shrank still ends in the SIGBUS guard.
void PopulateRuns(const Work* w, const uint8_t* lo, size_t delta) {
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  for (size_t r = 0; r < w->run_count; r++) {
    uintptr_t from = (uintptr_t)(lo + delta + (size_t)w->runs[2 * r] * w->block_size);
    uintptr_t to = (uintptr_t)(lo + delta + RunEnd(w, (size_t)w->runs[2 * r + 1]));
    from -= from % page;
    if (madvise((void*)from, to - from, MADV_POPULATE_READ) != 0 && errno == EINVAL) return;
  }
}

void ExecuteMapped(Work* w) {
  if (w->run_count == 0) return;
  // The bytes the runs cover must exist now; if the file shrinks later, the guard catches it.
  const size_t need_end = RunEnd(w, (size_t)w->runs[2 * w->run_count - 1]);
  if (!w->past_end_ok) {
    // fstat, or the device's size: never lseek, which would move the file offset that the
    // fd shares with whoever else uses it.
    int64_t size = FileSize(w->fd);
    if (size < 0) {
      w->err = errno;
      w->err_syscall = "fstat";
      w->err_pos = w->file_pos;
      return;
    }
    if (size < w->file_pos + (int64_t)need_end) {
      w->eof = true;
      w->err_pos = size;
      return;
    }
  }
  const int64_t page = sysconf(_SC_PAGESIZE);
  const int64_t map_pos = w->file_pos - w->file_pos % page;
  const size_t delta = (size_t)(w->file_pos - map_pos);
  const size_t map_len = delta + need_end;
  void* p = mmap(nullptr, map_len, PROT_READ, MAP_SHARED, w->fd, map_pos);
  if (p == MAP_FAILED) {
    w->err = errno;
    w->err_syscall = "mmap";
    w->err_pos = w->file_pos;
    return;
  }
  const uint8_t* lo = static_cast<const uint8_t*>(p);
  PopulateRuns(w, lo, delta);
  Mapped m{w, lo + delta};
  GuardResult g = RunGuarded(lo, lo + map_len, HashMappedRuns, &m);
  munmap(p, map_len);
  if (g == GuardResult::kFault) {
    w->bus = true;
    w->err_pos = w->file_pos;
  } else if (g == GuardResult::kUnavailable) {
    w->err = ENOTSUP;
    w->err_syscall = "mmap";
    w->err_pos = w->file_pos;
  }
}

void Execute(napi_env, void* data) {
  Work* w = static_cast<Work*>(data);
  if (w->map) {
    ExecuteMapped(w);
  } else {
    ExecuteRead(w);
  }
}

napi_value ErrnoError(napi_env env, const char* code_text, int neg_errno, const char* syscall_name, const char* message, int64_t pos) {
  napi_value code, msg, error, errno_value, syscall, position;
  napi_create_string_utf8(env, code_text, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, neg_errno, &errno_value);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &syscall);
  napi_create_double(env, (double)pos, &position);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall);
  napi_set_named_property(env, error, "position", position);
  return error;
}

void Complete(napi_env env, napi_status, void* data) {
  Work* w = static_cast<Work*>(data);
  if (w->err != 0 || w->eof || w->bus) {
    char message[160];
    const char* code = w->eof ? "EOF" : w->bus ? "SIGBUS" : ErrnoCode(w->err);
    const char* what = w->eof ? "end of file inside a read" : w->bus ? "the file shrank or failed under a mapping" : strerror(w->err);
    snprintf(message, sizeof message, "%s: %s at offset %lld", code, what, (long long)w->err_pos);
    napi_reject_deferred(env, w->deferred, ErrnoError(env, code, w->eof || w->bus ? 0 : -w->err, w->err_syscall, message, w->err_pos));
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

}  // namespace

bool ReadHashAvailable() {
#ifdef VDREP_HAVE_XXHASH
  return true;
#else
  return false;
#endif
}

napi_value Xxh3Into(napi_env env, napi_callback_info info) {
  // Synchronous and allocation-free: every N-API status is checked, so a call made while its
  // worker is being terminated fails cleanly instead of writing through a pointer it never got
  // (xxhash-addon ignores them, and crashed the process that way).
  size_t argc = 4;
  napi_value args[4];
  if (napi_get_cb_info(env, info, &argc, args, nullptr, nullptr) != napi_ok || argc < 4) {
    napi_throw_type_error(env, "EINVAL", "xxh3Into needs 4 arguments");
    return nullptr;
  }
  uint8_t *data, *seed, *out;
  size_t data_len, seed_len, out_len;
  if (!Bytes(env, args[0], "data", &data, &data_len) || !Bytes(env, args[1], "seed", &seed, &seed_len) || !Bytes(env, args[2], "out", &out, &out_len)) return nullptr;
  int64_t offset;
  if (!ArgInt(env, args[3], "offset", 0, (int64_t)out_len, &offset)) return nullptr;
  if (seed_len < 8 || out_len - (size_t)offset < 16) {
    napi_throw_range_error(env, "EINVAL", "seed must be at least 8 bytes and out must hold 16 bytes at offset");
    return nullptr;
  }
#ifdef VDREP_HAVE_XXHASH
  uint64_t s = 0;
  for (int i = 0; i < 8; i++) s = (s << 8) | seed[i];  // big-endian, as xxhash-addon reads a seed buffer
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_withSeed(data, data_len, s));
  memcpy(out + offset, c.digest, 16);
#else
  (void)data;
  (void)data_len;
#endif
  return nullptr;
}

namespace {

// The two exports share their checks and their task; `map` says which arguments there are:
//   read: fd, buf, runs, chunkLen, blockSize, filePos, seed, hashes, zero
//   map:  fd,      runs, chunkLen, blockSize, filePos, seed, hashes, zero[, pastEndForTests]
napi_value Queue(napi_env env, napi_callback_info info, bool map) {
  const char* fn = map ? "mapHashRuns" : "readHashRuns";
  const size_t needed = map ? 8 : 9;
  size_t argc = 9;
  napi_value args[9];
  if (napi_get_cb_info(env, info, &argc, args, nullptr, nullptr) != napi_ok || argc < needed) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s needs %zu arguments", fn, needed);
    napi_throw_type_error(env, "EINVAL", msg);
    return nullptr;
  }
  if (!ReadHashAvailable()) {
    napi_throw_error(env, "ENOSYS", "this build of the addon has no xxHash");
    return nullptr;
  }
  if (map && !SigbusGuardInstall()) {
    napi_throw_error(env, "ENOSYS", "cannot install the SIGBUS handler that mapped reads need");
    return nullptr;
  }
  // argv[k] as in readHashRuns' order; mapHashRuns has no buf (index 1), so shift by one.
  napi_value argv[10];
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  for (size_t i = 0; i < 10; i++) {
    size_t from = map ? (i == 0 ? 0 : i == 1 ? SIZE_MAX : i - 1) : i;
    argv[i] = from < argc ? args[from] : undefined;
  }
  bool past_end_ok = false;
  if (map && argc > 8) napi_get_value_bool(env, args[8], &past_end_ok);
  int64_t fd, chunk_len, block_size, file_pos;
  uint8_t *buf = nullptr, *seed, *hashes, *zero, *runs_bytes;
  size_t buf_len = SIZE_MAX, seed_len, hashes_len, zero_len, runs_len;
  if (!ArgInt(env, argv[0], "fd", 0, INT32_MAX, &fd)) return nullptr;
  if (!map && !Bytes(env, argv[1], "buf", &buf, &buf_len)) return nullptr;
  napi_typedarray_type runs_type;
  void* runs_p = nullptr;
  bool is_typed = false;
  napi_is_typedarray(env, argv[2], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[2], &runs_type, &runs_len, &runs_p, nullptr, nullptr) != napi_ok || runs_type != napi_int32_array || runs_len % 2 != 0) {
    napi_throw_type_error(env, "EINVAL", "runs must be an Int32Array of pairs");
    return nullptr;
  }
  runs_bytes = static_cast<uint8_t*>(runs_p);
  if (!ArgInt(env, argv[3], "chunkLen", 0, map ? (int64_t)1 << 30 : (int64_t)buf_len, &chunk_len)) return nullptr;
  if (!ArgInt(env, argv[4], "blockSize", 1, 1 << 30, &block_size)) return nullptr;
  if (!ArgInt(env, argv[5], "filePos", 0, 9007199254740991LL, &file_pos)) return nullptr;
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
  w->map = map;
  w->past_end_ok = past_end_ok;
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
  for (int i = 0; i < 4; i++) {
    if (i == 0 && map) continue;  // no buf
    napi_create_reference(env, argv[ref_args[i]], 1, &w->refs[i]);
  }

  napi_value promise, name;
  napi_create_promise(env, &w->deferred, &promise);
  napi_create_string_utf8(env, map ? "vdrep.mapHashRuns" : "vdrep.readHashRuns", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, Execute, Complete, w, &w->work);
  napi_queue_async_work(env, w->work);
  return promise;
}

}  // namespace

napi_value ReadHashRuns(napi_env env, napi_callback_info info) {
  return Queue(env, info, false);
}

napi_value MapHashRuns(napi_env env, napi_callback_info info) {
  return Queue(env, info, true);
}
