// The power-cut recorder (issue 22): an LD_PRELOAD shim that logs, with their data, the file
// operations a process makes under the directories named in VDREP_PC_ROOT (colon separated),
// into the log file VDREP_PC_LOG. The crash-state generator (test/helpers/powercut/) replays the
// log onto a snapshot of those directories taken before the run, dropping what a power cut
// may drop. Fidelity matters, speed does not: each operation and its log record happen under
// one process mutex and one flock on the log, so the log's order is the order the kernel saw
// the operations in, across threads (libuv's pool) and across processes sharing one log.
// Node must run with UV_USE_IO_URING=0 (io_uring submissions bypass glibc).
//
// This file: the log, the fd table and path resolution; files.c and names.c wrap the calls.
//
// Log format (little-endian), documented in doc/powercut.md:
//   file header, 16 bytes: magic "VDPCLOG1" | version u16 (1) | reserved u16 | reserved u32
//   record: 48-byte header, then path1, path2, data
//     length u32 (whole record) | crc32 u32 (of bytes 8..length) | op u8 | flags u8 |
//     reserved u16 | pid u32 | ino u64 | offset u64 | size u64 | arg u32 | path1 u16 | path2 u16
#include "recorder.h"

fd_info pc_fds[MAX_FDS];
static char* roots[MAX_ROOTS];
static size_t root_lens[MAX_ROOTS];
static int n_roots;
static int log_fd = -1;
pthread_mutex_t pc_mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int inside;  // our own calls are never recorded
static uint32_t crc_table[256];

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

static void fork_prepare(void) { pthread_mutex_lock(&pc_mu); }
static void fork_parent(void) { pthread_mutex_unlock(&pc_mu); }
static void fork_child(void) { pthread_mutex_unlock(&pc_mu); }

__attribute__((constructor)) static void init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
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
  // A fork waits for the recorded operation under way (if any), so the child's copy of the
  // mutex is free.
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

int pc_under_root(const char* p) {
  for (int i = 0; i < n_roots; i++) {
    size_t n = root_lens[i];
    if (strncmp(p, roots[i], n) == 0 && (p[n] == '/' || p[n] == 0)) return 1;
  }
  return 0;
}

int pc_active(void) { return log_fd >= 0 && !inside; }

// An absolute path with its directory resolved (the last component is kept as is: it may not
// exist yet, or be a symlink that rename/unlink act on). Returns a malloc'd string or NULL.
char* pc_resolve_at(int dirfd, const char* p) {
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

void pc_emit(uint8_t op, uint64_t ino, uint64_t off, uint64_t size, uint32_t arg, const char* p1, const char* p2,
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
void pc_enter(void) {
  pthread_mutex_lock(&pc_mu);
  inside = 1;
  flock(log_fd, LOCK_EX);
}
void pc_leave(void) {
  flock(log_fd, LOCK_UN);
  inside = 0;
  pthread_mutex_unlock(&pc_mu);
}

// The record of a recorded file's fd, checked against the fd's inode: an fd number closed behind
// our back (close_range, a raw syscall) and reused for a socket must never be taken for the file.
fd_info* pc_tracked(int fd) {
  if (fd < 0 || fd >= MAX_FDS || !pc_fds[fd].path) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != pc_fds[fd].ino || (uint64_t)st.st_dev != pc_fds[fd].dev) {
    pc_forget(fd);
    return NULL;
  }
  return &pc_fds[fd];
}

void pc_forget(int fd) {
  if (fd >= 0 && fd < MAX_FDS && pc_fds[fd].path) {
    free(pc_fds[fd].path);
    pc_fds[fd].path = NULL;
  }
}

void pc_remember(int fd, int flags) {
  if (fd < 0 || fd >= MAX_FDS) return;
  pc_forget(fd);
  char link[64], target[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return;
  target[n] = 0;
  if (!pc_under_root(target)) return;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  pc_fds[fd].path = strdup(target);
  pc_fds[fd].ino = st.st_ino;
  pc_fds[fd].dev = st.st_dev;
  pc_fds[fd].is_dir = S_ISDIR(st.st_mode);
  pc_fds[fd].append = (flags & O_APPEND) != 0;
}
