# The small N-API addon for the Linux system calls Node lacks (fallocate punch hole,
# SEEK_DATA/SEEK_HOLE, flock, BLKGETSIZE64, SO_PEERCRED, NETLINK_SOCK_DIAG, fanotify, sd_notify, aligned memory for O_DIRECT) and for reading and checksumming a
# disk chunk in libuv's thread pool (native/read_hash.cc, native/sigbus_guard.cc). Plain node_api.h, so it needs
# no package and one build serves every Node version with N-API 8. Built at install by
# scripts/build-native.cjs (Linux only); src/core/disk/native.ts falls back to pure JS
# when the addon is absent.
#
# The checksum is XXH3-128 from the xxHash sources that ship inside the xxhash-addon
# dependency (pinned, and installed before this package's install script runs), so both
# modules hash with the same code. Without them the addon builds without readHashRuns.
# XXH_NAMESPACE keeps our copy's symbols apart from xxhash-addon's.
{
  "variables": {
    "xxhash_dir": "<!(node -p \"try { const p = require('path'); p.relative('.', p.join(p.dirname(require.resolve('xxhash-addon/package.json')), 'xxHash')) } catch (e) { '' }\")"
  },
  "targets": [
    {
      "target_name": "vdrep_native",
      "sources": ["native/vdrep_native.cc", "native/read_hash.cc", "native/sigbus_guard.cc", "native/writeback.cc", "native/sock_diag.cc", "native/fanotify.cc", "native/sd_notify.cc", "native/aligned_buffer.cc"],
      "defines": ["NAPI_VERSION=8", "_FILE_OFFSET_BITS=64"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2"],
      "cflags": ["-O3"],
      "conditions": [
        ["xxhash_dir!=''", {
          "include_dirs": ["<(xxhash_dir)"],
          "sources": ["<(xxhash_dir)/xxhash.c", "<(xxhash_dir)/xxh_x86dispatch.c"],
          "defines": ["VDREP_HAVE_XXHASH=1", "XXH_NAMESPACE=vdrep_"]
        }]
      ]
    }
  ]
}
