#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when they are missing:
# OpenSSH's sshd, qemu-io/qemu-img (qemu-utils), nbdcopy/nbdinfo (libnbd-bin), rsync.
# promtool (prometheus) checks the metrics text.
# Runs as root (CI does); without root it only reports what is missing.
set -euo pipefail

# The power-cut recorder (an LD_PRELOAD shim the power-cut tests run vdrep under; issue 22).
node "$(dirname "$0")/build-recorder.cjs" >/dev/null || true

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have sshd || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
have ssh || need+=(openssh-client)
have ssh-keygen || need+=(openssh-client)
have qemu-img || need+=(qemu-utils)
have qemu-io || need+=(qemu-utils)
have nbdcopy || need+=(libnbd-bin)
have nbdinfo || need+=(libnbd-bin)
have rsync || need+=(rsync)
have losetup || need+=(mount)
have runuser || need+=(util-linux)
have promtool || need+=(prometheus)  # promtool: `status --prometheus` is checked against it
# The guest of the consistency-group test (test/helpers/guest.ts): qemu-system-x86_64 (TCG),
# a static busybox for its initramfs, gcc -static for its record writer.
have qemu-system-x86_64 || need+=(qemu-system-x86)
[ -e /bin/busybox ] && ! file -L /bin/busybox 2>/dev/null | grep -q dynamically || need+=(busybox-static)
have gcc || need+=(gcc)
have file || need+=(file)

# The guest's kernel: the Debian cloud kernel's vmlinuz and modules, unpacked once into the
# cache the helper reads (it does the same itself when this did not run).
guest_kernel() {
  local cache="${VDREP_GUEST_CACHE:-$HOME/.cache/vdrep-guest}"
  ls "$cache"/root/boot/vmlinuz-* >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || return 0
  local pkg dl
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-.*-cloud-amd64\)$/\1/p' | head -1)
  if [ -z "$pkg" ]; then apt-get update -qq >/dev/null; pkg=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/.*Depends: \(linux-image-.*-cloud-amd64\)$/\1/p' | head -1); fi
  [ -n "$pkg" ] || { echo "vdrep test setup: no cloud kernel package found" >&2; return 0; }
  mkdir -p "$cache" && dl=$(mktemp -d "$cache/dl-XXXXXX")
  (cd "$dl" && apt-get download -qq "$pkg" >/dev/null 2>&1) && dpkg-deb -x "$dl"/*.deb "$cache/root"
  rm -rf "$dl"
}

if [ ${#need[@]} -eq 0 ]; then guest_kernel; exit 0; fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "vdrep test setup: missing Debian packages: ${need[*]} (run as root to install them)" >&2
  exit 0
fi
echo "vdrep test setup: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
guest_kernel
