# The small N-API addon for the Linux system calls Node lacks (fallocate punch hole,
# SEEK_DATA/SEEK_HOLE, flock, BLKGETSIZE64, SO_PEERCRED). Plain node_api.h, so it needs
# no package and one build serves every Node version with N-API 8. Built at install by
# scripts/build-native.cjs (Linux only); src/core/disk/native.ts falls back to pure JS
# when the addon is absent.
{
  "targets": [
    {
      "target_name": "vdrep_native",
      "sources": ["native/vdrep_native.cc"],
      "defines": ["NAPI_VERSION=8", "_FILE_OFFSET_BITS=64"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    }
  ]
}
