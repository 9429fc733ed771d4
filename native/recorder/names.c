// The power-cut recorder: renames, unlinks, folders, mappings, dup, and what it cannot model.
#include "recorder.h"

REAL(copy_file_range);
REAL(dup);
REAL(dup2);
REAL(dup3);
REAL(link);
REAL(linkat);
REAL(mkdir);
REAL(mkdirat);
REAL(mmap64);
REAL(msync);
REAL(rename);
REAL(renameat);
REAL(renameat2);
REAL(rmdir);
REAL(sendfile);
REAL(sendfile64);
REAL(unlink);
REAL(unlinkat);

static int do_rename(int od, const char* o, int nd, const char* n, unsigned int flags, int kind) {
  pc_enter();
  char* a = pc_resolve_at(od, o);
  char* b = pc_resolve_at(nd, n);
  struct stat st;
  uint64_t ino = a && lstat(a, &st) == 0 ? st.st_ino : 0;
  int r = kind == 0 ? R(rename)(o, n) : kind == 1 ? R(renameat)(od, o, nd, n) : R(renameat2)(od, o, nd, n, flags);
  int err = errno;
  if (r == 0 && ((a && pc_under_root(a)) || (b && pc_under_root(b)))) pc_emit(OP_RENAME, ino, 0, 0, flags, a, b, NULL, 0, 0);
  free(a);
  free(b);
  pc_leave();
  errno = err;
  return r;
}
int rename(const char* o, const char* n) {
  if (!pc_active()) return R(rename)(o, n);
  return do_rename(AT_FDCWD, o, AT_FDCWD, n, 0, 0);
}
int renameat(int od, const char* o, int nd, const char* n) {
  if (!pc_active()) return R(renameat)(od, o, nd, n);
  return do_rename(od, o, nd, n, 0, 1);
}
int renameat2(int od, const char* o, int nd, const char* n, unsigned int flags) {
  if (!pc_active()) return R(renameat2)(od, o, nd, n, flags);
  return do_rename(od, o, nd, n, flags, 2);
}

static int do_unlink(int d, const char* p, int flags, int kind) {
  pc_enter();
  char* a = pc_resolve_at(d, p);
  struct stat st;
  uint64_t ino = a && lstat(a, &st) == 0 ? st.st_ino : 0;
  int r = kind == 0 ? R(unlink)(p) : kind == 1 ? R(unlinkat)(d, p, flags) : R(rmdir)(p);
  int err = errno;
  int dir = kind == 2 || (kind == 1 && (flags & AT_REMOVEDIR));
  if (r == 0 && a && pc_under_root(a)) pc_emit(dir ? OP_RMDIR : OP_UNLINK, ino, 0, 0, 0, a, NULL, NULL, 0, 0);
  free(a);
  pc_leave();
  errno = err;
  return r;
}
int unlink(const char* p) {
  if (!pc_active()) return R(unlink)(p);
  return do_unlink(AT_FDCWD, p, 0, 0);
}
int unlinkat(int d, const char* p, int flags) {
  if (!pc_active()) return R(unlinkat)(d, p, flags);
  return do_unlink(d, p, flags, 1);
}
int rmdir(const char* p) {
  if (!pc_active()) return R(rmdir)(p);
  return do_unlink(AT_FDCWD, p, 0, 2);
}

static int do_mkdir(int d, const char* p, mode_t m, int at) {
  pc_enter();
  char* a = pc_resolve_at(d, p);
  int r = at ? R(mkdirat)(d, p, m) : R(mkdir)(p, m);
  int err = errno;
  if (r == 0 && a && pc_under_root(a)) {
    struct stat st;
    uint64_t ino = lstat(a, &st) == 0 ? st.st_ino : 0;
    pc_emit(OP_MKDIR, ino, 0, 0, m, a, NULL, NULL, 0, 0);
  }
  free(a);
  pc_leave();
  errno = err;
  return r;
}
int mkdir(const char* p, mode_t m) {
  if (!pc_active()) return R(mkdir)(p, m);
  return do_mkdir(AT_FDCWD, p, m, 0);
}
int mkdirat(int d, const char* p, mode_t m) {
  if (!pc_active()) return R(mkdirat)(d, p, m);
  return do_mkdir(d, p, m, 1);
}

static void* do_mmap(void* a, size_t n, int prot, int flags, int fd, off_t o) {
  void* r = R(mmap64)(a, n, prot, flags, fd, o);
  if (pc_active() && r != MAP_FAILED && (prot & PROT_WRITE) && (flags & MAP_SHARED) && pc_tracked(fd)) {
    pc_enter();
    fd_info* f = pc_tracked(fd);
    pc_emit(OP_MMAP_WRITE, f->ino, (uint64_t)o, n, (uint32_t)prot, f->path, NULL, NULL, 0, 0);
    pc_leave();
  }
  return r;
}
void* mmap(void* a, size_t n, int prot, int flags, int fd, off_t o) { return do_mmap(a, n, prot, flags, fd, o); }
void* mmap64(void* a, size_t n, int prot, int flags, int fd, off_t o) { return do_mmap(a, n, prot, flags, fd, o); }

int msync(void* a, size_t n, int flags) {
  int r = R(msync)(a, n, flags);
  if (pc_active() && r == 0) {
    pc_enter();
    pc_emit(OP_MSYNC, 0, (uint64_t)(uintptr_t)a, n, (uint32_t)flags, NULL, NULL, NULL, 0, 0);
    pc_leave();
  }
  return r;
}

static int recorded(int fd) { return fd >= 0 && fd < MAX_FDS && pc_fds[fd].path != NULL; }

// Duplicated fds keep their file's record (fds of no recorded file are dup'ed without the lock,
// as in close()).
static int dup_record(int from, int to) {
  if (to >= 0 && to < MAX_FDS && from >= 0 && from < MAX_FDS && to != from) {
    pc_forget(to);
    if (pc_fds[from].path) {
      pc_fds[to] = pc_fds[from];
      pc_fds[to].path = strdup(pc_fds[from].path);
    }
  }
  return to;
}
int dup(int fd) {
  if (!pc_active() || !recorded(fd)) return R(dup)(fd);
  pc_enter();
  int r = dup_record(fd, R(dup)(fd));
  int err = errno;
  pc_leave();
  errno = err;
  return r;
}
int dup2(int fd, int to) {
  if (!pc_active() || !(recorded(fd) || recorded(to))) return R(dup2)(fd, to);
  pc_enter();
  int r = dup_record(fd, R(dup2)(fd, to));
  int err = errno;
  pc_leave();
  errno = err;
  return r;
}
int dup3(int fd, int to, int flags) {
  if (!pc_active() || !(recorded(fd) || recorded(to))) return R(dup3)(fd, to, flags);
  pc_enter();
  int r = dup_record(fd, R(dup3)(fd, to, flags));
  int err = errno;
  pc_leave();
  errno = err;
  return r;
}

// Writes the generator does not model: recorded, so a replay refuses the log instead of
// checking states that lack them.
static void unsupported(int fd, const char* what) {
  if (!pc_active() || !pc_tracked(fd)) return;
  pc_enter();
  pc_emit(OP_UNSUPPORTED, pc_fds[fd].ino, 0, 0, 0, pc_fds[fd].path, what, NULL, 0, 0);
  pc_leave();
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
  if (pc_active()) {
    char* p = pc_resolve_at(AT_FDCWD, b);
    if (p && pc_under_root(p)) {
      pc_enter();
      pc_emit(OP_UNSUPPORTED, 0, 0, 0, 0, p, "link", NULL, 0, 0);
      pc_leave();
    }
    free(p);
  }
  return R(link)(a, b);
}
int linkat(int ad, const char* a, int bd, const char* b, int flags) {
  if (pc_active()) {
    char* p = pc_resolve_at(bd, b);
    if (p && pc_under_root(p)) {
      pc_enter();
      pc_emit(OP_UNSUPPORTED, 0, 0, 0, 0, p, "link", NULL, 0, 0);
      pc_leave();
    }
    free(p);
  }
  return R(linkat)(ad, a, bd, b, flags);
}

