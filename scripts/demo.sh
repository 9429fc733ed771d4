#!/usr/bin/env bash
# `npm run demo`: the main job of vdrep on a generated disk, with nothing but this repo
# (npm run demo builds it first). In a temp folder: a 256 MiB disk of random, zero and
# text regions; init; a full sync to a fresh replica; 1% of the blocks changed; a second
# full sync that sends about 1%; a third with --json. Then the ongoing cycle: `vdrep track`
# in the background, writes through its NBD export with qemu-io, status, push, status, and
# a clean stop of the tracker (qemu-utils is installed when missing, as root, the way the
# test setup does). Each replica is checked with cmp. Exits non-zero if any step fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vdrep() { node "$ROOT/bin/run.js" "$@"; }
say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

for tool in node cmp dd du; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is required" >&2; exit 1; }
done
if [ ! -f "$ROOT/dist/src/commands/fullsync.js" ]; then
  echo "demo: vdrep is not built; run \`npm run demo\` (it builds first) or \`npm run build\`" >&2
  exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vdrep-demo-XXXXXX")"
TRACK_PID=
cleanup() {
  if [ -n "$TRACK_PID" ] && kill -0 "$TRACK_PID" 2>/dev/null; then
    kill -TERM "$TRACK_PID" 2>/dev/null || true
    for ((j = 0; j < 50; j++)); do kill -0 "$TRACK_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$TRACK_PID" 2>/dev/null || true
    wait "$TRACK_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
mkdir replica

BLOCK=65536
SIZE=$((256 * 1024 * 1024))
BLOCKS=$((SIZE / BLOCK))

say "generating disk.img: 256 MiB cut into 1 MiB regions of random data, zeros (holes) and text"
node --input-type=module -e "
  const {makeMixedDisk} = await import('$ROOT/dist/test/helpers/disks.js')
  await makeMixedDisk('disk.img', $SIZE, 'demo')
"
run ls -ls disk.img

say "vdrep init: write disk.img.psf with the settings (target, RPO, 64 KiB blocks) and print the cron line"
run vdrep init disk.img --to replica/disk.img

say "vdrep fullsync to a fresh target: zero blocks travel as run lengths and stay holes on the replica"
run vdrep fullsync disk.img

say "cmp: the replica equals the source; du: it is sparse (allocated vs apparent size)"
run cmp disk.img replica/disk.img
echo "identical"
echo "source:  $(du -h --apparent-size disk.img | cut -f1) apparent, $(du -h disk.img | cut -f1) allocated"
echo "replica: $(du -h --apparent-size replica/disk.img | cut -f1) apparent, $(du -h replica/disk.img | cut -f1) allocated"

CHANGED=$((BLOCKS / 100))
say "changing 1% of the disk: $CHANGED of $BLOCKS blocks of 64 KiB overwritten in place with dd conv=notrunc"
for ((i = 0; i < CHANGED; i++)); do
  block=$(((i * 97 + 13) % BLOCKS))
  dd if=/dev/urandom of=disk.img bs=$BLOCK seek=$block count=1 conv=notrunc status=none
done
awk -v n="$CHANGED" -v b="$BLOCK" -v s="$SIZE" 'BEGIN { printf "changed %d blocks: %d bytes, %.2f%% of the disk\n", n, n * b, 100 * n * b / s }'

say "vdrep fullsync again: both sides hash every block; only the $CHANGED changed blocks travel"
run vdrep fullsync disk.img

say "cmp: equal again"
run cmp disk.img replica/disk.img
echo "identical"

say "vdrep fullsync --json, for scripts: nothing differs now, so nothing is sent"
run vdrep fullsync disk.img --json

# --- track and push -----------------------------------------------------------------------
# The ongoing replication on the same disk and replica: a tracker in front of the disk (the VM
# would use its NBD export), writes through it with qemu-io, status, one push, cmp, status.
if ! command -v qemu-io >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    say "qemu-io is missing: installing qemu-utils the way the test setup does"
    bash "$ROOT/scripts/test-setup.sh"
  fi
  command -v qemu-io >/dev/null || { echo "demo: qemu-io is required (Debian: apt-get install qemu-utils, or run the demo as root)" >&2; exit 1; }
fi

SOCK="$WORK/nbd.sock"
URI="nbd+unix:///disk.img?socket=$SOCK"
say "vdrep track: serve disk.img over NBD on unix:$SOCK and record every write in disk.img.psf (in the background)"
printf '$ %s\n' "vdrep track disk.img --nbd unix:$SOCK &"
node "$ROOT/bin/run.js" track disk.img --nbd "unix:$SOCK" >track.out 2>track.err &
TRACK_PID=$!
for ((i = 0; i < 200; i++)); do
  grep -q '^tracking ' track.out 2>/dev/null && break
  kill -0 "$TRACK_PID" 2>/dev/null || { cat track.out track.err >&2; echo "demo: vdrep track exited before serving" >&2; exit 1; }
  sleep 0.1
done
grep -q '^tracking ' track.out || { cat track.out track.err >&2; echo "demo: vdrep track did not start within 20 s" >&2; exit 1; }
cat track.out

say "qemu-io writes through the export, as a VM would: 4 writes touching 5 blocks"
run qemu-io -f raw "$URI" -c 'write -P 0xab 0 65536' -c 'write -P 0xcd 10485760 131072' -c 'write -P 0xef 100000 3000' -c 'write -z 201326592 65536' -c 'flush'

say "vdrep status: the tracker runs; 5 blocks pending"
run vdrep status disk.img

say "vdrep push: only the changed blocks travel, as one bundle the replica journals and applies atomically"
run vdrep push disk.img

say "cmp: the replica equals the source again"
run cmp disk.img replica/disk.img
echo "identical"

say "vdrep status: nothing pending; the last sync is now the push's point in time"
run vdrep status disk.img

say "stopping the tracker with SIGTERM (a clean stop records the disk's state for the next start)"
printf '$ kill -TERM %s; wait %s\n' "$TRACK_PID" "$TRACK_PID"
kill -TERM "$TRACK_PID"
TRACK_RC=0
wait "$TRACK_PID" || TRACK_RC=$?
TRACK_PID=
sed -n '2,$p' track.out
[ "$TRACK_RC" = 0 ] || { cat track.err >&2; echo "demo: vdrep track exited $TRACK_RC" >&2; exit 1; }
# ------------------------------------------------------------------------------------------

say "demo done: the replica was proved and checked equal after each full sync and after the push"
