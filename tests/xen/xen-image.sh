#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# xen-image.sh: builds what the Xen tests (tests/xen/test_xen.py) and bench/xen boot under QEMU:
# Debian's Xen 4.17 hypervisor and a PV dom0 initramfs that holds the Xen toolstack, this build's
# ivmon-watch and libivmon.so (dynamically linked against the host's Debian Xen libraries, copied
# with their ldd dependencies), the guest kernel and guest initramfs (scripts/guest-image.sh),
# and a run script that dom0's /init executes once the toolstack is up.
#
#   tests/xen/xen-image.sh --guest-env FILE --watch PATH --run SCRIPT [--add PATH]... OUTDIR
#
#   --guest-env FILE  image.env written by scripts/guest-image.sh (its kernel is dom0's too)
#   --watch PATH      ivmon-watch of this build; libivmon.so is found with ldd
#   --run SCRIPT      copied to /run.sh in dom0 and started by /init (with tests/xen/dom0-lib.sh
#                     beside it as /lib/ivmon-dom0.sh, for the script to source)
#   --add PATH        one more program for dom0's /usr/bin (repeatable; ldd dependencies follow)
# OUTDIR receives xen (the multiboot hypervisor, gunzipped), dom0.cpio.gz and vmlinuz (dom0's
# kernel). Stdout: nothing; progress and errors on stderr. Exit 1 with the apt-get command to
# run when something is missing.
#
# Nothing is installed on the host for Xen itself: the hypervisor and the toolstack are fetched
# with `apt-get download` and unpacked with `dpkg -x` into ${IVMON_CACHE_DIR:-~/.cache/ivmon}/xen
# once (the kernel cache of scripts/guest-image.sh is reused for the modules). Building this
# project with the Xen backends needs libxen-dev, which scripts/deps.sh installs.
set -euo pipefail
prog=xen-image.sh
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

guest_env="" watch="" run="" outdir="" adds=()
while (($#)); do
    case $1 in
        --guest-env) guest_env=$2; shift 2 ;;
        --watch) watch=$2; shift 2 ;;
        --run) run=$2; shift 2 ;;
        --add) adds+=("$2"); shift 2 ;;
        -*) die "unknown option $1" ;;
        *) outdir=$1; shift ;;
    esac
done
[ -n "$guest_env" ] && [ -n "$watch" ] && [ -n "$run" ] && [ -n "$outdir" ] ||
    die "usage: $prog --guest-env FILE --watch PATH --run SCRIPT [--add PATH]... OUTDIR"
export PATH=$PATH:/usr/sbin:/sbin
for c in cpio:cpio gzip:gzip modprobe:kmod apt-get:apt dpkg:dpkg ldd:libc-bin flock:util-linux \
    file:file; do
    command -v "${c%%:*}" >/dev/null || die "${c%%:*} is missing: apt-get install ${c#*:}"
done
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
    die "busybox-static is not installed: apt-get install busybox-static"
# shellcheck disable=SC1090
. "$guest_env"
cache=${IVMON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ivmon}
ktree=$cache/kernel/$KERNEL_VERSION/tree
[ -d "$ktree/lib/modules/$KERNEL_VERSION" ] ||
    die "no unpacked kernel in $ktree: run scripts/guest-image.sh first"

# ---- Xen 4.17 from Debian, downloaded and unpacked once ---------------------------------------
XV=4.17
pkgs="xen-hypervisor-$XV-amd64 xen-utils-$XV xen-utils-common xenstore-utils libyajl2"
xdir=$cache/xen
mkdir -p "$xdir/debs"
(
    flock 8
    if [ ! -f "$xdir/ready" ]; then
        cd "$xdir/debs"
        need=""
        for p in $pkgs; do ls "${p}"_*.deb >/dev/null 2>&1 || need="$need $p"; done
        if [ -n "$need" ]; then
            say "apt-get download$need"
            # shellcheck disable=SC2086
            apt-get download -q $need >&2 2> >(grep -v 'unsandboxed as root' >&2) ||
                die "apt-get download$need failed: run apt-get update (Debian 12 sources)"
        fi
        rm -rf "$xdir/root"
        for d in "$xdir"/debs/*.deb; do dpkg -x "$d" "$xdir/root"; done
        touch "$xdir/ready"
    fi
) 8>"$xdir.lock"
xroot=$xdir/root
[ -f "$xroot/boot/xen-$XV-amd64.gz" ] || die "no hypervisor in $xroot (remove $xdir and retry)"

# ---- dom0 initramfs ----------------------------------------------------------------------------
mkdir -p "$outdir"
stage=$(mktemp -d "$outdir/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
S=$stage/root
mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,proc,sys,dev,run,tmp} \
    "$S"/{etc/xen,root,var/log,var/lib/xen,var/lib/xenstored,mnt,guest,lib/modules,results}
ln -s ../run "$S/var/run"
cp /bin/busybox "$S/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$S/bin/$a" ] || ln -s busybox "$S/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" >"$S/etc/passwd"
# bookworm's merged /usr: /lib and /lib64 are links into /usr
rmdir "$S/lib/modules" "$S/lib" 2>/dev/null || true
ln -s usr/lib "$S/lib"
ln -s usr/lib64 "$S/lib64"
mkdir -p "$S/usr/lib/modules"

mkdir -p "$S/usr/lib/xen-$XV"
cp -a "$xroot/usr/lib/xen-$XV/bin" "$xroot/usr/lib/xen-$XV/boot" "$S/usr/lib/xen-$XV/"
cp -a "$xroot"/usr/bin/xenstore* "$S/usr/bin/"
cp -a "$xroot"/usr/lib/x86_64-linux-gnu/lib* "$S/usr/lib/x86_64-linux-gnu/" 2>/dev/null || true
cp "$watch" "$S/usr/bin/ivmon-watch"
for a in "${adds[@]+"${adds[@]}"}"; do cp "$a" "$S/usr/bin/"; done

# Shared libraries: the Xen tools' (from the unpacked packages first) and ivmon-watch's (this
# build's libivmon.so and the host's Debian Xen libraries), with their own dependencies.
libs() {
    LD_LIBRARY_PATH=$xroot/usr/lib/x86_64-linux-gnu ldd "$1" 2>/dev/null |
        awk '/=> \//{print $3} /^\t\/lib64/{print $1}'
}
{
    for f in "$xroot/usr/lib/xen-$XV/bin/"* "$xroot/usr/bin/xenstore" "$watch" "${adds[@]+"${adds[@]}"}"; do
        file -L "$f" 2>/dev/null | grep -q 'ELF.*dynamic' || continue
        if LD_LIBRARY_PATH=$xroot/usr/lib/x86_64-linux-gnu ldd "$f" 2>/dev/null | grep -q 'not found'; then
            case $f in "$xroot"/*) continue ;; esac # a tool we do not use may want more
            die "$f needs a library that is not there: $(ldd "$f" | grep 'not found')"
        fi
        libs "$f"
    done
} | sort -u | while read -r lib; do
    case $lib in
        */ld-linux-x86-64.so.2) cp -L "$lib" "$S/usr/lib64/" ;;
        *) cp -L "$lib" "$S/usr/lib/x86_64-linux-gnu/" ;;
    esac
done

# Kernel modules for dom0: the Xen devices and the virtio disk that carries the results out.
: >"$S/modules.list"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs virtio_pci virtio_blk; do
    modprobe -d "$ktree" -S "$KERNEL_VERSION" --show-depends "$m" 2>/dev/null |
        awk '/^insmod/ { print $2 }' || die "kernel module $m not found in $ktree"
done | awk '!seen[$0]++' | while read -r f; do
    cp "$f" "$S/usr/lib/modules/"
    basename "$f" >>"$S/modules.list"
done

cp "$VMLINUX" "$S/guest/vmlinux"
cp "$INITRD" "$S/guest/initrd.gz"
cp "$run" "$S/run.sh"
chmod 755 "$S/run.sh"
cp "$here/dom0-lib.sh" "$S/lib/ivmon-dom0.sh"
echo 'autoballoon="off"' >"$S/etc/xen/xl.conf"
cat >"$S/init" <<'EOF'
#!/bin/sh
# dom0 /init (tests/xen/xen-image.sh): the Xen toolstack as the labs measured it, then /run.sh.
export PATH=/usr/lib/xen-4.17/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
mkdir -p /run/xen /run/xenstored /var/log/xen/console
for m in $(cat /modules.list); do insmod /lib/modules/$m || echo "XT-ERROR insmod $m"; done
mount -t xenfs xenfs /proc/xen || echo "XT-ERROR mount xenfs"
xenstored --pid-file /run/xenstored.pid || echo "XT-ERROR xenstored"
xen-init-dom0 >/dev/null || echo "XT-ERROR xen-init-dom0"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console ||
    echo "XT-ERROR xenconsoled"
echo "XT-DOM0-READY t=$(cut -d' ' -f1 /proc/uptime)"
/run.sh
echo "XT-POWEROFF t=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
while :; do sleep 3600; done
EOF
chmod 755 "$S/init"
(cd "$S" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$stage/dom0.cpio.gz"
zcat "$xroot/boot/xen-$XV-amd64.gz" >"$stage/xen"
mv -f "$stage/xen" "$stage/dom0.cpio.gz" "$outdir/"
cp "$VMLINUZ" "$outdir/vmlinuz"
say "built $outdir/dom0.cpio.gz ($(du -k "$outdir/dom0.cpio.gz" | cut -f1) KiB)"
