// The power-cut recorder (issue 22): an LD_PRELOAD shim that logs, with their data, the file
// operations a process makes under the directories named in VDREP_PC_ROOT (colon separated),
// into the log file VDREP_PC_LOG. The crash-state generator (src/core/powercut/) replays the
// log onto a snapshot of those directories taken before the run, dropping what a power cut
// may drop. Fidelity matters, speed does not: each operation and its log record happen under
// one process mutex and one flock on the log, so the log's order is the order the kernel saw
// the operations in, across threads (libuv's pool) and across processes sharing one log.
// Node must run with UV_USE_IO_URING=0 (io_uring submissions bypass glibc).
//
// Log format (little-endian), documented in doc/powercut.md:
//   file header, 16 bytes: magic "VDPCLOG1" | version u16 (1) | reserved u16 | reserved u32
//   record: 48-byte header, then path1, path2, data
//     length u32 (whole record) | crc32 u32 (of bytes 8..length) | op u8 | flags u8 |
//     reserved u16 | pid u32 | ino u64 | offset u64 | size u64 | arg u32 | path1 u16 | path2 u16
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/sendfile.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
  OP_CREATE = 1,     // open(O_CREAT) of a path that did not exist: a new inode and its name
  OP_WRITE = 2,      // offset, data
  OP_TRUNCATE = 3,   // size = new length (also O_TRUNC of an existing file)
  OP_FALLOCATE = 4,  // arg = mode, offset, size
  OP_FSYNC = 5,
  OP_FDATASYNC = 6,
  OP_SYNC_RANGE = 7,  // sync_file_range: start write-back, not a barrier
  OP_RENAME = 8,      // path1 -> path2
  OP_UNLINK = 9,
  OP_MKDIR = 10,
  OP_RMDIR = 11,
  OP_DIR_FSYNC = 12,  // fsync/fdatasync of a directory fd; path1 = the directory
  OP_MMAP_WRITE = 13, // a shared writable mapping of a recorded file (its writes are not seen)
  OP_MSYNC = 14,
  OP_UNSUPPORTED = 15 // an operation the generator cannot model (path2 names it)
};

#define HEADER_SIZE 48
#define MAX_FDS 65536
#define MAX_ROOTS 8

typedef struct {
  char* path;  // absolute path when opened (NULL: not recorded)
  uint64_t ino;
  uint64_t dev;
  int is_dir;
  int append;
} fd_info;

static fd_info fds[MAX_FDS];
static char* roots[MAX_ROOTS];
static size_t root_lens[MAX_ROOTS];
static int n_roots;
static int log_fd = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int inside;  // our own calls are never recorded
static uint32_t crc_table[256];

#define REAL(name) static __typeof__(name)* real_##name
REAL(open);
REAL(open64);
REAL(openat);
REAL(openat64);
REAL(creat);
REAL(close);
REAL(write);
REAL(pwrite);
REAL(pwrite64);
REAL(writev);
REAL(pwritev);
REAL(pwritev64);
REAL(pwritev2);
REAL(ftruncate);
REAL(ftruncate64);
REAL(truncate);
REAL(fallocate);
REAL(fallocate64);
REAL(fsync);
REAL(fdatasync);
REAL(sync_file_range);
REAL(rename);
REAL(renameat);
REAL(renameat2);
REAL(unlink);
REAL(unlinkat);
REAL(mkdir);
REAL(mkdirat);
REAL(rmdir);
REAL(mmap);
REAL(mmap64);
REAL(msync);
REAL(dup);
REAL(dup2);
REAL(dup3);
REAL(copy_file_range);
REAL(sendfile);
REAL(sendfile64);
REAL(link);
REAL(linkat);

#define LOAD(name) real_##name = (__typeof__(name)*)dlsym(RTLD_NEXT, #name)
// Lazily too: another library's constructor may write before ours ran.
#define R(name) (*({ if (!real_##name) LOAD(name); &real_##name; }))

static uint32_t crc32_of(const unsigned char* p, size_t n, uint32_t c) {
  c = ~c;
  for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

static void write_all(const void* p, size_t n) {
  const char* b = p;
  while (n > 0) {
    ssize_t w = syscall(SYS_write, log_fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) abort();  // a recording with a hole in it is worthless: fail loudly
    b += w;
    n -= (size_t)w;
  }
}

__attribute__((constructor)) static void init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
  LOAD(open); LOAD(open64); LOAD(openat); LOAD(openat64); LOAD(creat); LOAD(close);
  LOAD(write); LOAD(pwrite); LOAD(pwrite64); LOAD(writev); LOAD(pwritev); LOAD(pwritev64); LOAD(pwritev2);
  LOAD(ftruncate); LOAD(ftruncate64); LOAD(truncate); LOAD(fallocate); LOAD(fallocate64);
  LOAD(fsync); LOAD(fdatasync); LOAD(sync_file_range); LOAD(rename); LOAD(renameat); LOAD(renameat2);
  LOAD(unlink); LOAD(unlinkat); LOAD(mkdir); LOAD(mkdirat); LOAD(rmdir); LOAD(mmap); LOAD(mmap64);
  LOAD(msync); LOAD(dup); LOAD(dup2); LOAD(dup3); LOAD(copy_file_range); LOAD(sendfile); LOAD(sendfile64);
  LOAD(link); LOAD(linkat);
  const char* log = getenv("VDREP_PC_LOG");
  const char* rootv = getenv("VDREP_PC_ROOT");
  if (!log || !rootv) return;
  char* copy = strdup(rootv);
  for (char* tok = strtok(copy, ":"); tok && n_roots < MAX_ROOTS; tok = strtok(NULL, ":")) {
    char* r = realpath(tok, NULL);
    if (!r) continue;
    roots[n_roots] = r;
    root_lens[n_roots++] = strlen(r);
  }
  free(copy);
  if (n_roots == 0) return;
  log_fd = (int)syscall(SYS_open, log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) abort();
  flock(log_fd, LOCK_EX);
  struct stat st;
  if (fstat(log_fd, &st) == 0 && st.st_size == 0) {
    unsigned char h[16] = {'V', 'D', 'P', 'C', 'L', 'O', 'G', '1', 1, 0, 0, 0, 0, 0, 0, 0};
    write_all(h, sizeof h);
  }
  flock(log_fd, LOCK_UN);
}

static int under_root(const char* p) {
  for (int i = 0; i < n_roots; i++) {
    size_t n = root_lens[i];
    if (strncmp(p, roots[i], n) == 0 && (p[n] == '/' || p[n] == 0)) return 1;
  }
  return 0;
}

static int active(void) { return log_fd >= 0 && !inside; }

// An absolute path with its directory resolved (the last component is kept as is: it may not
// exist yet, or be a symlink that rename/unlink act on). Returns a malloc'd string or NULL.
static char* resolve_at(int dirfd, const char* p) {
  if (!p) return NULL;
  char base[PATH_MAX * 2];
  if (p[0] == '/') {
    snprintf(base, sizeof base, "%s", p);
  } else {
    char dir[PATH_MAX];
    if (dirfd == AT_FDCWD) {
      if (!getcwd(dir, sizeof dir)) return NULL;
    } else {
      char link[64];
      snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
      ssize_t n = readlink(link, dir, sizeof dir - 1);
      if (n < 0) return NULL;
      dir[n] = 0;
    }
    snprintf(base, sizeof base, "%s/%s", dir, p);
  }
  char* slash = strrchr(base, '/');
  const char* name = slash + 1;
  char parent[PATH_MAX * 2];
  if (slash == base) snprintf(parent, sizeof parent, "/");
  else snprintf(parent, sizeof parent, "%.*s", (int)(slash - base), base);
  char* rp = realpath(parent, NULL);
  if (!rp) return NULL;
  char* out = malloc(strlen(rp) + strlen(name) + 2);
  sprintf(out, "%s/%s", strcmp(rp, "/") == 0 ? "" : rp, name);
  free(rp);
  return out;
}

static void emit(uint8_t op, uint64_t ino, uint64_t off, uint64_t size, uint32_t arg, const char* p1, const char* p2,
                 const struct iovec* iov, int iovcnt, size_t data_len) {
  size_t l1 = p1 ? strlen(p1) : 0, l2 = p2 ? strlen(p2) : 0;
  size_t total = HEADER_SIZE + l1 + l2 + data_len;
  unsigned char* rec = malloc(total);
  if (!rec) abort();
  memset(rec, 0, HEADER_SIZE);
  uint32_t t32 = (uint32_t)total, pid = (uint32_t)getpid();
  uint16_t s1 = (uint16_t)l1, s2 = (uint16_t)l2;
  memcpy(rec + 0, &t32, 4);
  rec[8] = op;
  memcpy(rec + 12, &pid, 4);
  memcpy(rec + 16, &ino, 8);
  memcpy(rec + 24, &off, 8);
  memcpy(rec + 32, &size, 8);
  memcpy(rec + 40, &arg, 4);
  memcpy(rec + 44, &s1, 2);
  memcpy(rec + 46, &s2, 2);
  size_t at = HEADER_SIZE;
  if (l1) memcpy(rec + at, p1, l1), at += l1;
  if (l2) memcpy(rec + at, p2, l2), at += l2;
  size_t left = data_len;
  for (int i = 0; i < iovcnt && left > 0; i++) {
    size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
    memcpy(rec + at, iov[i].iov_base, n);
    at += n;
    left -= n;
  }
  uint32_t crc = crc32_of(rec + 8, total - 8, 0);
  memcpy(rec + 4, &crc, 4);
  write_all(rec, total);
  free(rec);
}

// Every recorded operation runs between these two: one at a time in this process, and one at a
// time among the processes sharing the log.
static void enter(void) {
  pthread_mutex_lock(&mu);
  inside = 1;
  flock(log_fd, LOCK_EX);
}
static void leave(void) {
  flock(log_fd, LOCK_UN);
  inside = 0;
  pthread_mutex_unlock(&mu);
}

static void forget(int fd);

// The record of a recorded file's fd, checked against the fd's inode: an fd number closed behind
// our back (close_range, a raw syscall) and reused for a socket must never be taken for the file.
static fd_info* tracked(int fd) {
  if (fd < 0 || fd >= MAX_FDS || !fds[fd].path) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != fds[fd].ino || (uint64_t)st.st_dev != fds[fd].dev) {
    forget(fd);
    return NULL;
  }
  return &fds[fd];
}

static void forget(int fd) {
  if (fd >= 0 && fd < MAX_FDS && fds[fd].path) {
    free(fds[fd].path);
    fds[fd].path = NULL;
  }
}

static void remember(int fd, int flags) {
  if (fd < 0 || fd >= MAX_FDS) return;
  forget(fd);
  char link[64], target[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return;
  target[n] = 0;
  if (!under_root(target)) return;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  fds[fd].path = strdup(target);
  fds[fd].ino = st.st_ino;
  fds[fd].dev = st.st_dev;
  fds[fd].is_dir = S_ISDIR(st.st_mode);
  fds[fd].append = (flags & O_APPEND) != 0;
}

static int do_open(int dirfd, const char* path, int flags, mode_t mode, int use_at) {
  char* abs = active() ? resolve_at(dirfd, path) : NULL;
  if (!abs || !under_root(abs)) {
    free(abs);
    int fd = use_at ? R(openat)(dirfd, path, flags, mode) : R(open)(path, flags, mode);
    int err = errno;
    if (fd >= 0 && fd < MAX_FDS && fds[fd].path) {
      pthread_mutex_lock(&mu);
      forget(fd);  // a stale record of this number
      pthread_mutex_unlock(&mu);
    }
    errno = err;
    return fd;
  }
  enter();
  struct stat before;
  int existed = abs && lstat(abs, &before) == 0;
  int fd = use_at ? R(openat)(dirfd, path, flags, mode) : R(open)(path, flags, mode);
  int err = errno;
  if (fd >= 0) {
    remember(fd, flags);
    fd_info* f = tracked(fd);
    if (f && !f->is_dir) {
      if ((flags & O_CREAT) && !existed) emit(OP_CREATE, f->ino, 0, 0, (uint32_t)flags, f->path, NULL, NULL, 0, 0);
      else if (existed && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && before.st_size > 0)
        emit(OP_TRUNCATE, f->ino, 0, 0, 0, f->path, NULL, NULL, 0, 0);
    }
  }
  free(abs);
  leave();
  errno = err;
  return fd;
}

static mode_t mode_arg(int flags, va_list ap) { return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0; }

int open(const char* p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return do_open(AT_FDCWD, p, flags, m, 0);
}
int open64(const char* p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return do_open(AT_FDCWD, p, flags, m, 0);
}
int openat(int d, const char* p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return do_open(d, p, flags, m, 1);
}
int openat64(int d, const char* p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  return do_open(d, p, flags, m, 1);
}
int creat(const char* p, mode_t m) { return do_open(AT_FDCWD, p, O_CREAT | O_WRONLY | O_TRUNC, m, 0); }

int close(int fd) {
  if (!active()) return R(close)(fd);
  enter();
  forget(fd);
  int r = R(close)(fd);
  int err = errno;
  leave();
  errno = err;
  return r;
}

// A write of iov at `off` (-1: the file position, or the end for O_APPEND), recorded with the
// bytes the kernel took.
static ssize_t do_write(int fd, const struct iovec* iov, int iovcnt, off_t off, ssize_t (*call)(void)) {
  enter();
  fd_info* f = tracked(fd);
  off_t at = off;
  if (f && off < 0) {
    if (f->append) {
      struct stat st;
      at = fstat(fd, &st) == 0 ? st.st_size : 0;
    } else {
      at = lseek(fd, 0, SEEK_CUR);
    }
  }
  ssize_t r = call();
  int err = errno;
  if (f && r > 0) emit(OP_WRITE, f->ino, (uint64_t)at, (uint64_t)r, 0, f->path, NULL, iov, iovcnt, (size_t)r);
  leave();
  errno = err;
  return r;
}

static __thread int c_fd, c_cnt, c_flags;
static __thread const void* c_buf;
static __thread const struct iovec* c_iov;
static __thread size_t c_len;
static __thread off_t c_off;
static ssize_t call_write(void) { return R(write)(c_fd, c_buf, c_len); }
static ssize_t call_pwrite(void) { return R(pwrite64)(c_fd, c_buf, c_len, c_off); }
static ssize_t call_writev(void) { return R(writev)(c_fd, c_iov, c_cnt); }
static ssize_t call_pwritev(void) { return R(pwritev64)(c_fd, c_iov, c_cnt, c_off); }
static ssize_t call_pwritev2(void) { return R(pwritev2)(c_fd, c_iov, c_cnt, c_off, c_flags); }

ssize_t write(int fd, const void* b, size_t n) {
  if (!active() || !tracked(fd)) return R(write)(fd, b, n);
  struct iovec v = {(void*)b, n};
  c_fd = fd, c_buf = b, c_len = n;
  return do_write(fd, &v, 1, -1, call_write);
}
static ssize_t pw(int fd, const void* b, size_t n, off_t o) {
  if (!active() || !tracked(fd)) return R(pwrite64)(fd, b, n, o);
  struct iovec v = {(void*)b, n};
  c_fd = fd, c_buf = b, c_len = n, c_off = o;
  return do_write(fd, &v, 1, o, call_pwrite);
}
ssize_t pwrite(int fd, const void* b, size_t n, off_t o) { return pw(fd, b, n, o); }
ssize_t pwrite64(int fd, const void* b, size_t n, off_t o) { return pw(fd, b, n, o); }
ssize_t writev(int fd, const struct iovec* v, int c) {
  if (!active() || !tracked(fd)) return R(writev)(fd, v, c);
  c_fd = fd, c_iov = v, c_cnt = c;
  return do_write(fd, v, c, -1, call_writev);
}
static ssize_t pwv(int fd, const struct iovec* v, int c, off_t o) {
  if (!active() || !tracked(fd)) return R(pwritev64)(fd, v, c, o);
  c_fd = fd, c_iov = v, c_cnt = c, c_off = o;
  return do_write(fd, v, c, o, call_pwritev);
}
ssize_t pwritev(int fd, const struct iovec* v, int c, off_t o) { return pwv(fd, v, c, o); }
ssize_t pwritev64(int fd, const struct iovec* v, int c, off_t o) { return pwv(fd, v, c, o); }
ssize_t pwritev2(int fd, const struct iovec* v, int c, off_t o, int flags) {
  if (!active() || !tracked(fd)) return R(pwritev2)(fd, v, c, o, flags);
  c_fd = fd, c_iov = v, c_cnt = c, c_off = o, c_flags = flags;
  return do_write(fd, v, c, o, call_pwritev2);
}
ssize_t pwritev64v2(int fd, const struct iovec* v, int c, off_t o, int flags) { return pwritev2(fd, v, c, o, flags); }

static int ftr(int fd, off_t len) {
  if (!active() || !tracked(fd)) return R(ftruncate64)(fd, len);
  enter();
  fd_info* f = tracked(fd);
  int r = R(ftruncate64)(fd, len);
  int err = errno;
  if (r == 0) emit(OP_TRUNCATE, f->ino, 0, (uint64_t)len, 0, f->path, NULL, NULL, 0, 0);
  leave();
  errno = err;
  return r;
}
int ftruncate(int fd, off_t len) { return ftr(fd, len); }
int ftruncate64(int fd, off_t len) { return ftr(fd, len); }

int truncate(const char* p, off_t len) {
  if (!active()) return R(truncate)(p, len);
  // Recorded through an fd of its own, so the inode is known.
  int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = ftr(fd, len);
  int err = errno;
  close(fd);
  errno = err;
  return r;
}

static int fal(int fd, int mode, off_t off, off_t len) {
  if (!active() || !tracked(fd)) return R(fallocate64)(fd, mode, off, len);
  enter();
  fd_info* f = tracked(fd);
  int r = R(fallocate64)(fd, mode, off, len);
  int err = errno;
  if (r == 0) emit(OP_FALLOCATE, f->ino, (uint64_t)off, (uint64_t)len, (uint32_t)mode, f->path, NULL, NULL, 0, 0);
  leave();
  errno = err;
  return r;
}
int fallocate(int fd, int mode, off_t off, off_t len) { return fal(fd, mode, off, len); }
int fallocate64(int fd, int mode, off_t off, off_t len) { return fal(fd, mode, off, len); }

static int do_sync(int fd, int data_only) {
  int (*call)(int) = data_only ? R(fdatasync) : R(fsync);
  if (!active() || !tracked(fd)) return call(fd);
  enter();
  fd_info* f = tracked(fd);
  int r = call(fd);
  int err = errno;
  // A barrier counts only once it returned 0: a failed fsync promises nothing.
  if (r == 0) emit(f->is_dir ? OP_DIR_FSYNC : data_only ? OP_FDATASYNC : OP_FSYNC, f->ino, 0, 0, 0, f->path, NULL, NULL, 0, 0);
  leave();
  errno = err;
  return r;
}
int fsync(int fd) { return do_sync(fd, 0); }
int fdatasync(int fd) { return do_sync(fd, 1); }

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags) {
  if (!active() || !tracked(fd)) return R(sync_file_range)(fd, off, n, flags);
  enter();
  fd_info* f = tracked(fd);
  int r = R(sync_file_range)(fd, off, n, flags);
  int err = errno;
  if (r == 0) emit(OP_SYNC_RANGE, f->ino, (uint64_t)off, (uint64_t)n, flags, f->path, NULL, NULL, 0, 0);
  leave();
  errno = err;
  return r;
}

static int do_rename(int od, const char* o, int nd, const char* n, unsigned int flags, int kind) {
  enter();
  char* a = resolve_at(od, o);
  char* b = resolve_at(nd, n);
  struct stat st;
  uint64_t ino = a && lstat(a, &st) == 0 ? st.st_ino : 0;
  int r = kind == 0 ? R(rename)(o, n) : kind == 1 ? R(renameat)(od, o, nd, n) : R(renameat2)(od, o, nd, n, flags);
  int err = errno;
  if (r == 0 && ((a && under_root(a)) || (b && under_root(b)))) emit(OP_RENAME, ino, 0, 0, flags, a, b, NULL, 0, 0);
  free(a);
  free(b);
  leave();
  errno = err;
  return r;
}
int rename(const char* o, const char* n) {
  if (!active()) return R(rename)(o, n);
  return do_rename(AT_FDCWD, o, AT_FDCWD, n, 0, 0);
}
int renameat(int od, const char* o, int nd, const char* n) {
  if (!active()) return R(renameat)(od, o, nd, n);
  return do_rename(od, o, nd, n, 0, 1);
}
int renameat2(int od, const char* o, int nd, const char* n, unsigned int flags) {
  if (!active()) return R(renameat2)(od, o, nd, n, flags);
  return do_rename(od, o, nd, n, flags, 2);
}

static int do_unlink(int d, const char* p, int flags, int kind) {
  enter();
  char* a = resolve_at(d, p);
  struct stat st;
  uint64_t ino = a && lstat(a, &st) == 0 ? st.st_ino : 0;
  int r = kind == 0 ? R(unlink)(p) : kind == 1 ? R(unlinkat)(d, p, flags) : R(rmdir)(p);
  int err = errno;
  int dir = kind == 2 || (kind == 1 && (flags & AT_REMOVEDIR));
  if (r == 0 && a && under_root(a)) emit(dir ? OP_RMDIR : OP_UNLINK, ino, 0, 0, 0, a, NULL, NULL, 0, 0);
  free(a);
  leave();
  errno = err;
  return r;
}
int unlink(const char* p) {
  if (!active()) return R(unlink)(p);
  return do_unlink(AT_FDCWD, p, 0, 0);
}
int unlinkat(int d, const char* p, int flags) {
  if (!active()) return R(unlinkat)(d, p, flags);
  return do_unlink(d, p, flags, 1);
}
int rmdir(const char* p) {
  if (!active()) return R(rmdir)(p);
  return do_unlink(AT_FDCWD, p, 0, 2);
}

static int do_mkdir(int d, const char* p, mode_t m, int at) {
  enter();
  char* a = resolve_at(d, p);
  int r = at ? R(mkdirat)(d, p, m) : R(mkdir)(p, m);
  int err = errno;
  if (r == 0 && a && under_root(a)) {
    struct stat st;
    uint64_t ino = lstat(a, &st) == 0 ? st.st_ino : 0;
    emit(OP_MKDIR, ino, 0, 0, m, a, NULL, NULL, 0, 0);
  }
  free(a);
  leave();
  errno = err;
  return r;
}
int mkdir(const char* p, mode_t m) {
  if (!active()) return R(mkdir)(p, m);
  return do_mkdir(AT_FDCWD, p, m, 0);
}
int mkdirat(int d, const char* p, mode_t m) {
  if (!active()) return R(mkdirat)(d, p, m);
  return do_mkdir(d, p, m, 1);
}

static void* do_mmap(void* a, size_t n, int prot, int flags, int fd, off_t o) {
  void* r = R(mmap64)(a, n, prot, flags, fd, o);
  if (active() && r != MAP_FAILED && (prot & PROT_WRITE) && (flags & MAP_SHARED) && tracked(fd)) {
    enter();
    fd_info* f = tracked(fd);
    emit(OP_MMAP_WRITE, f->ino, (uint64_t)o, n, (uint32_t)prot, f->path, NULL, NULL, 0, 0);
    leave();
  }
  return r;
}
void* mmap(void* a, size_t n, int prot, int flags, int fd, off_t o) { return do_mmap(a, n, prot, flags, fd, o); }
void* mmap64(void* a, size_t n, int prot, int flags, int fd, off_t o) { return do_mmap(a, n, prot, flags, fd, o); }

int msync(void* a, size_t n, int flags) {
  int r = R(msync)(a, n, flags);
  if (active() && r == 0) {
    enter();
    emit(OP_MSYNC, 0, (uint64_t)(uintptr_t)a, n, (uint32_t)flags, NULL, NULL, NULL, 0, 0);
    leave();
  }
  return r;
}

// Duplicated fds keep their file's record.
static int dup_record(int from, int to) {
  if (to >= 0 && to < MAX_FDS && from >= 0 && from < MAX_FDS && to != from) {
    forget(to);
    if (fds[from].path) {
      fds[to] = fds[from];
      fds[to].path = strdup(fds[from].path);
    }
  }
  return to;
}
int dup(int fd) {
  if (!active()) return R(dup)(fd);
  enter();
  int r = dup_record(fd, R(dup)(fd));
  leave();
  return r;
}
int dup2(int fd, int to) {
  if (!active()) return R(dup2)(fd, to);
  enter();
  int r = dup_record(fd, R(dup2)(fd, to));
  leave();
  return r;
}
int dup3(int fd, int to, int flags) {
  if (!active()) return R(dup3)(fd, to, flags);
  enter();
  int r = dup_record(fd, R(dup3)(fd, to, flags));
  leave();
  return r;
}

// Writes the generator does not model: recorded, so a replay refuses the log instead of
// checking states that lack them.
static void unsupported(int fd, const char* what) {
  if (!active() || !tracked(fd)) return;
  enter();
  emit(OP_UNSUPPORTED, fds[fd].ino, 0, 0, 0, fds[fd].path, what, NULL, 0, 0);
  leave();
}
ssize_t copy_file_range(int i, off64_t* io, int o, off64_t* oo, size_t n, unsigned int f) {
  unsupported(o, "copy_file_range");
  return R(copy_file_range)(i, io, o, oo, n, f);
}
ssize_t sendfile(int o, int i, off_t* off, size_t n) {
  unsupported(o, "sendfile");
  return R(sendfile)(o, i, off, n);
}
ssize_t sendfile64(int o, int i, off64_t* off, size_t n) {
  unsupported(o, "sendfile");
  return R(sendfile64)(o, i, off, n);
}
int link(const char* a, const char* b) {
  if (active()) {
    char* p = resolve_at(AT_FDCWD, b);
    if (p && under_root(p)) {
      enter();
      emit(OP_UNSUPPORTED, 0, 0, 0, 0, p, "link", NULL, 0, 0);
      leave();
    }
    free(p);
  }
  return R(link)(a, b);
}
int linkat(int ad, const char* a, int bd, const char* b, int flags) {
  if (active()) {
    char* p = resolve_at(bd, b);
    if (p && under_root(p)) {
      enter();
      emit(OP_UNSUPPORTED, 0, 0, 0, 0, p, "link", NULL, 0, 0);
      leave();
    }
    free(p);
  }
  return R(linkat)(ad, a, bd, b, flags);
}
