#!/usr/bin/env bash
# Installs what building and testing libivmon needs on Debian 12 (run as root). Idempotent: it
# asks apt only for packages that are missing, so a warm machine starts at once.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libcmocka-dev python3 clang-format cppcheck valgrind
      util-linux procps clang libclang-rt-14-dev)
# The libvirt backend: libvirt-dev builds it (libxml2-dev comes along). Its VM test starts a
# libvirtd of its own (virtlogd -d; libvirtd -d) and boots QEMU: libvirt-daemon-system brings the
# daemon, the libvirt-qemu user and /etc/libvirt, libvirt-clients virsh. Where systemd is not
# init (containers, CI), the -sysv flavour keeps apt from installing systemd-sysv in its place.
pkgs+=(libvirt-dev libvirt-daemon-system libvirt-clients qemu-system-x86)
[ -d /run/systemd/system ] || pkgs+=(libvirt-daemon-system-sysv)
# The VM tests (label vm) and scripts/demo-vm.sh: QEMU, and what scripts/guest-image.sh builds
# the guest from (busybox-static, cpio, kmod's modprobe/depmod, gzip) plus mkfs.ext4 for the
# guest's disk. The guest kernel is not installed: guest-image.sh fetches it with apt-get download.
pkgs+=(qemu-system-x86 busybox-static cpio kmod e2fsprogs gzip)
# The Xen backends (xen+shm:, xen+vcpu:) build against the Xen tools' libraries: libxen-dev
# (libxenctrl, libxenstore, libxengnttab, libxenevtchn, libxentoollog and their pkg-config files;
# the runtime libraries come with it). The Xen test (label xen) boots Debian's hypervisor and
# toolstack, which tests/xen/xen-image.sh fetches with apt-get download, and needs `file`.
pkgs+=(libxen-dev file)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: missing packages: ${missing[*]}; run as root or: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
