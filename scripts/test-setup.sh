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

if [ ${#need[@]} -eq 0 ]; then exit 0; fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "vdrep test setup: missing Debian packages: ${need[*]} (run as root to install them)" >&2
  exit 0
fi
echo "vdrep test setup: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
