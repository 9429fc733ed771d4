// The power-cut recorder: opens, writes, truncates, fallocate and syncs of recorded files.
#include "recorder.h"

REAL(close);
REAL(fallocate64);
REAL(fdatasync);
REAL(fsync);
REAL(ftruncate64);
REAL(open);
REAL(openat);
REAL(pwrite64);
REAL(pwritev2);
REAL(pwritev64);
REAL(sync_file_range);
REAL(truncate);
REAL(write);
REAL(writev);

static int do_open(int dirfd, const char* path, int flags, mode_t mode, int use_at) {
  // A descriptor opened again through /proc/self/fd (the replica's O_DIRECT writer): the same
  // file, recorded as the descriptor it reopens is.
  if (pc_active() && path && strncmp(path, "/proc/self/fd/", 14) == 0) {
    pc_enter();
    int fd = use_at ? R(openat)(dirfd, path, flags, mode) : R(open)(path, flags, mode);
    int err = errno;
    if (fd >= 0) pc_remember(fd, flags);
    pc_leave();
    errno = err;
    return fd;
  }
  char* abs = pc_active() ? pc_resolve_at(dirfd, path) : NULL;
  if (!abs || !pc_under_root(abs)) {
    free(abs);
    int fd = use_at ? R(openat)(dirfd, path, flags, mode) : R(open)(path, flags, mode);
    int err = errno;
    if (fd >= 0 && fd < MAX_FDS && pc_fds[fd].path) {
      pthread_mutex_lock(&pc_mu);
      pc_forget(fd);  // a stale record of this number
      pthread_mutex_unlock(&pc_mu);
    }
    errno = err;
    return fd;
  }
  pc_enter();
  struct stat before;
  int existed = abs && lstat(abs, &before) == 0;
  int fd = use_at ? R(openat)(dirfd, path, flags, mode) : R(open)(path, flags, mode);
  int err = errno;
  if (fd >= 0) {
    pc_remember(fd, flags);
    fd_info* f = pc_tracked(fd);
    if (f && !f->is_dir) {
      if ((flags & O_CREAT) && !existed) pc_emit(OP_CREATE, f->ino, 0, 0, (uint32_t)flags, f->path, NULL, NULL, 0, 0);
      else if (existed && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && before.st_size > 0)
        pc_emit(OP_TRUNCATE, f->ino, 0, 0, 0, f->path, NULL, NULL, 0, 0);
    }
  }
  free(abs);
  pc_leave();
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

// An fd that is not a recorded file's is closed without the lock: a child between fork and exec
// (libuv's spawn) closes and dups its fds, and must never wait for a lock another thread of its
// parent held at the fork.
static int recorded(int fd) { return fd >= 0 && fd < MAX_FDS && pc_fds[fd].path != NULL; }

int close(int fd) {
  if (!pc_active() || !recorded(fd)) return R(close)(fd);
  pc_enter();
  pc_forget(fd);
  int r = R(close)(fd);
  int err = errno;
  pc_leave();
  errno = err;
  return r;
}

// A write of iov at `off` (-1: the file position, or the end for O_APPEND), recorded with the
// bytes the kernel took.
static ssize_t do_write(int fd, const struct iovec* iov, int iovcnt, off_t off, ssize_t (*call)(void)) {
  pc_enter();
  fd_info* f = pc_tracked(fd);
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
  if (f && r > 0) pc_emit(OP_WRITE, f->ino, (uint64_t)at, (uint64_t)r, 0, f->path, NULL, iov, iovcnt, (size_t)r);
  pc_leave();
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
  if (!pc_active() || !pc_tracked(fd)) return R(write)(fd, b, n);
  struct iovec v = {(void*)b, n};
  c_fd = fd, c_buf = b, c_len = n;
  return do_write(fd, &v, 1, -1, call_write);
}
static ssize_t pw(int fd, const void* b, size_t n, off_t o) {
  if (!pc_active() || !pc_tracked(fd)) return R(pwrite64)(fd, b, n, o);
  struct iovec v = {(void*)b, n};
  c_fd = fd, c_buf = b, c_len = n, c_off = o;
  return do_write(fd, &v, 1, o, call_pwrite);
}
ssize_t pwrite(int fd, const void* b, size_t n, off_t o) { return pw(fd, b, n, o); }
ssize_t pwrite64(int fd, const void* b, size_t n, off_t o) { return pw(fd, b, n, o); }
ssize_t writev(int fd, const struct iovec* v, int c) {
  if (!pc_active() || !pc_tracked(fd)) return R(writev)(fd, v, c);
  c_fd = fd, c_iov = v, c_cnt = c;
  return do_write(fd, v, c, -1, call_writev);
}
static ssize_t pwv(int fd, const struct iovec* v, int c, off_t o) {
  if (!pc_active() || !pc_tracked(fd)) return R(pwritev64)(fd, v, c, o);
  c_fd = fd, c_iov = v, c_cnt = c, c_off = o;
  return do_write(fd, v, c, o, call_pwritev);
}
ssize_t pwritev(int fd, const struct iovec* v, int c, off_t o) { return pwv(fd, v, c, o); }
ssize_t pwritev64(int fd, const struct iovec* v, int c, off_t o) { return pwv(fd, v, c, o); }
ssize_t pwritev2(int fd, const struct iovec* v, int c, off_t o, int flags) {
  if (!pc_active() || !pc_tracked(fd)) return R(pwritev2)(fd, v, c, o, flags);
  c_fd = fd, c_iov = v, c_cnt = c, c_off = o, c_flags = flags;
  return do_write(fd, v, c, o, call_pwritev2);
}
ssize_t pwritev64v2(int fd, const struct iovec* v, int c, off_t o, int flags) { return pwritev2(fd, v, c, o, flags); }

static int ftr(int fd, off_t len) {
  if (!pc_active() || !pc_tracked(fd)) return R(ftruncate64)(fd, len);
  pc_enter();
  fd_info* f = pc_tracked(fd);
  int r = R(ftruncate64)(fd, len);
  int err = errno;
  if (r == 0) pc_emit(OP_TRUNCATE, f->ino, 0, (uint64_t)len, 0, f->path, NULL, NULL, 0, 0);
  pc_leave();
  errno = err;
  return r;
}
int ftruncate(int fd, off_t len) { return ftr(fd, len); }
int ftruncate64(int fd, off_t len) { return ftr(fd, len); }

int truncate(const char* p, off_t len) {
  if (!pc_active()) return R(truncate)(p, len);
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
  if (!pc_active() || !pc_tracked(fd)) return R(fallocate64)(fd, mode, off, len);
  pc_enter();
  fd_info* f = pc_tracked(fd);
  int r = R(fallocate64)(fd, mode, off, len);
  int err = errno;
  if (r == 0) pc_emit(OP_FALLOCATE, f->ino, (uint64_t)off, (uint64_t)len, (uint32_t)mode, f->path, NULL, NULL, 0, 0);
  pc_leave();
  errno = err;
  return r;
}
int fallocate(int fd, int mode, off_t off, off_t len) { return fal(fd, mode, off, len); }
int fallocate64(int fd, int mode, off_t off, off_t len) { return fal(fd, mode, off, len); }

static int do_sync(int fd, int data_only) {
  int (*call)(int) = data_only ? R(fdatasync) : R(fsync);
  if (!pc_active() || !pc_tracked(fd)) return call(fd);
  pc_enter();
  fd_info* f = pc_tracked(fd);
  int r = call(fd);
  int err = errno;
  // A barrier counts only once it returned 0: a failed fsync promises nothing.
  if (r == 0) pc_emit(f->is_dir ? OP_DIR_FSYNC : data_only ? OP_FDATASYNC : OP_FSYNC, f->ino, 0, 0, 0, f->path, NULL, NULL, 0, 0);
  pc_leave();
  errno = err;
  return r;
}
int fsync(int fd) { return do_sync(fd, 0); }
int fdatasync(int fd) { return do_sync(fd, 1); }

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags) {
  if (!pc_active() || !pc_tracked(fd)) return R(sync_file_range)(fd, off, n, flags);
  pc_enter();
  fd_info* f = pc_tracked(fd);
  int r = R(sync_file_range)(fd, off, n, flags);
  int err = errno;
  if (r == 0) pc_emit(OP_SYNC_RANGE, f->ino, (uint64_t)off, (uint64_t)n, flags, f->path, NULL, NULL, 0, 0);
  pc_leave();
  errno = err;
  return r;
}
