// Static programs for a guest that checks a recovered disk from the inside (guest.ts builds
// them into its initramfs): `reader DEV LABEL` scans the whole disk with O_DIRECT for the
// records of guest.ts' writer (record n at n * 4096) and prints one line,
//   VDREP-READ LABEL highest=H count=C prefix=yes|no missing=M
// (prefix: the records are exactly {0..H}; M is the first missing one below H, or -1);
// `append DEV FROM TO` writes records FROM..TO-1 the way the writer does (O_DIRECT | O_SYNC,
// each after the previous one completed), so a guest can go on writing where a point ended.

export const READER_C = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdint.h>
int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: reader DEV LABEL\n"); return 2; }
  int fd = open(argv[1], O_RDONLY | O_DIRECT);
  if (fd < 0) { perror(argv[1]); return 1; }
  off_t size = lseek(fd, 0, SEEK_END);
  const size_t chunk = 1 << 20;
  char *buf;
  if (posix_memalign((void **)&buf, 4096, chunk)) return 1;
  long highest = -1, count = 0, firstMissing = -1, n = 0;
  for (off_t at = 0; at + 4096 <= size; at += chunk) {
    size_t want = (size_t)(size - at) < chunk ? (size_t)(size - at) : chunk;
    if (pread(fd, buf, want, at) != (ssize_t)want) { perror("pread"); return 1; }
    for (size_t o = 0; o + 4096 <= want; o += 4096, n++) {
      uint64_t v, inv;
      memcpy(&v, buf + o + 8, 8);
      memcpy(&inv, buf + o + 4088, 8);
      if (memcmp(buf + o, "VDREPREC", 8) == 0 && v == (uint64_t)n && inv == ~v) { count++; highest = n; }
      else if (firstMissing < 0) firstMissing = n;
    }
  }
  int prefix = count == highest + 1;
  printf("VDREP-READ %s highest=%ld count=%ld prefix=%s missing=%ld\n", argv[2], highest, count,
         prefix ? "yes" : "no", prefix ? -1L : firstMissing);
  fflush(stdout);
  return 0;
}
`

export const APPEND_C = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdint.h>
int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: append DEV FROM TO\n"); return 2; }
  long from = atol(argv[2]), to = atol(argv[3]);
  int fd = open(argv[1], O_WRONLY | O_DIRECT | O_SYNC);
  if (fd < 0) { perror(argv[1]); return 1; }
  void *buf;
  if (posix_memalign(&buf, 4096, 4096)) return 1;
  for (long n = from; n < to; n++) {
    uint64_t v = (uint64_t)n, inv = ~v;
    memset(buf, 0, 4096);
    memcpy(buf, "VDREPREC", 8);
    memcpy((char *)buf + 8, &v, 8);
    memcpy((char *)buf + 4088, &inv, 8);
    if (pwrite(fd, buf, 4096, (off_t)n * 4096) != 4096) { perror("pwrite"); return 1; }
  }
  printf("VDREP-APPEND done %ld..%ld\n", from, to - 1);
  fflush(stdout);
  return 0;
}
`

export interface ReadLine {
  highest: number
  count: number
  prefix: boolean
  missing: number
}

/** The reader's line for `label` on a guest console, or undefined. */
export function readLine(consoleText: string, label: string): ReadLine | undefined {
  const m = new RegExp(`VDREP-READ ${label} highest=(-?\\d+) count=(\\d+) prefix=(yes|no) missing=(-?\\d+)`).exec(consoleText)
  if (!m) return undefined
  return {highest: Number(m[1]), count: Number(m[2]), prefix: m[3] === 'yes', missing: Number(m[4])}
}
