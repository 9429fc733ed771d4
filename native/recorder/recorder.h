// Shared by the power-cut recorder's files (see log.c for what it records and the log format).
#ifndef VDREP_RECORDER_H
#define VDREP_RECORDER_H
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


#define REAL(name) static __typeof__(name)* real_##name
#define LOAD(name) real_##name = (__typeof__(name)*)dlsym(RTLD_NEXT, #name)
// Lazily too: another library's constructor may write before ours ran.
#define R(name) (*({ if (!real_##name) LOAD(name); &real_##name; }))

#pragma GCC visibility push(hidden)
extern fd_info pc_fds[MAX_FDS];
extern pthread_mutex_t pc_mu;
int pc_active(void);
int pc_under_root(const char* p);
char* pc_resolve_at(int dirfd, const char* p);
void pc_emit(uint8_t op, uint64_t ino, uint64_t off, uint64_t size, uint32_t arg, const char* p1, const char* p2,
             const struct iovec* iov, int iovcnt, size_t data_len);
void pc_enter(void);
void pc_leave(void);
fd_info* pc_tracked(int fd);
void pc_forget(int fd);
void pc_remember(int fd, int flags);
#pragma GCC visibility pop

#endif
