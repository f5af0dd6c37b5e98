#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# guest-image.sh: builds the Linux guest that the VM tests (tests/vm/), scripts/demo-vm.sh and the
# benchmarks boot under QEMU. Built once and cached; a re-run with nothing changed returns at once.
#
#   scripts/guest-image.sh [--agent PATH] [--add PATH]... [--modules "MOD..."] [--cache DIR]
#                          [--kernel-version KV] [--refresh] [--quiet] [OUTDIR]
#
# Interface (stable: tests/vm/vmlib.py and other scripts rely on it)
#   OUTDIR (default build/guest under the repository) receives:
#     vmlinux    the uncompressed kernel (ELF with a PVH entry): `qemu -kernel vmlinux` boots it in
#                ~2.5 s under TCG, where the compressed vmlinuz takes ~6.5 s (see labs/README.md)
#     vmlinuz    the kernel as Debian packages it (bzImage), for VMMs that want one
#     initrd.gz  the initramfs (cpio newc + gzip): /init, busybox, the agent, modules, workloads
#     image.env  KEY=VALUE lines, shell- and Python-readable: KERNEL_VERSION, VMLINUX, VMLINUZ,
#                INITRD, AGENT, AGENT_SHA256, STAMP
#   stdout gets exactly the content of image.env; progress and errors go to stderr.
#   Exit 0 on success, 1 on failure (the message names what is missing and how to install it),
#   2 on a usage error.
#
#   --agent PATH      the static ivmon-agent to put in the image; default $IVMON_AGENT, else the
#                     newest build/*/guest/ivmon-agent under the repository. The guest tools built
#                     beside it (ivmon-step, ivmon-produce, ivmon-scribble) are added too when they exist.
#   --add PATH        one more static program for /bin in the guest (repeatable)
#   --modules LIST    extra kernel modules to load at boot (space-separated, with dependencies)
#   --cache DIR       where the kernel package is downloaded and unpacked, shared by every
#                     OUTDIR; default $IVMON_CACHE_DIR, else ${XDG_CACHE_HOME:-~/.cache}/ivmon
#   --kernel-version  e.g. 6.1.0-56-amd64; default: the one Debian's linux-image-amd64 depends
#                     on now (apt-cache), asked only when the image has to be rebuilt anyway
#   --refresh         rebuild even if nothing changed (and ask apt again for the kernel version)
#
# What is inside the guest (guest/image/): /init parses ivmon.* parameters from the kernel
# command line (see guest/image/init), loads the modules, starts the agent, runs
# /workloads/NAME.sh and powers off. Every guest/image/workloads/*.sh is included, so a new
# workload is one new file there.
#
# Nothing is installed on the host: the kernel package is fetched with `apt-get download` and
# unpacked with `dpkg -x` into the cache. Runs as any user that can write OUTDIR and the cache
# (apt-get download needs no root). Concurrent runs on the same OUTDIR are serialised (flock).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
prog=guest-image.sh
die() { echo "$prog: $*" >&2; exit 1; }
say() { [ "$quiet" = 1 ] || echo "$prog: $*" >&2; }
usage() { sed -n '7,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

agent=${IVMON_AGENT:-}
adds=()
extra_modules=""
cache=${IVMON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ivmon}
kv=""
refresh=0
quiet=0
outdir=""
while (($#)); do
    case $1 in
        --agent) agent=${2:?--agent needs a path}; shift 2 ;;
        --add) adds+=("${2:?--add needs a path}"); shift 2 ;;
        --modules) extra_modules=${2?--modules needs a list}; shift 2 ;;
        --cache) cache=${2:?--cache needs a directory}; shift 2 ;;
        --kernel-version) kv=${2:?--kernel-version needs a value}; shift 2 ;;
        --refresh) refresh=1; shift ;;
        --quiet) quiet=1; shift ;;
        -h|--help) usage ;;
        -*) echo "$prog: unknown option $1" >&2; usage ;;
        *) [ -z "$outdir" ] || usage; outdir=$1; shift ;;
    esac
done
outdir=${outdir:-$root/build/guest}

# ---- host prerequisites: say which package is missing and how to get it ----------------------
need_cmd() {  # need_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$1" >/dev/null 2>&1 ||
        die "$1 is missing: apt-get install $2"
}
need_cmd cpio cpio
need_cmd gzip gzip
need_cmd modprobe kmod
need_cmd depmod kmod
need_cmd python3 python3
need_cmd flock util-linux
need_cmd sha256sum coreutils
need_cmd dpkg dpkg
export PATH=$PATH:/usr/sbin:/sbin
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
    die "busybox-static is not installed: apt-get install busybox-static"
fi
busybox=/bin/busybox

is_static() {  # a guest program must not need the host's shared libraries
    if command -v readelf >/dev/null 2>&1; then
        ! readelf -d "$1" 2>/dev/null | grep -q NEEDED
    else
        return 0
    fi
}

# ---- the agent and the guest tools built beside it -------------------------------------------
if [ -z "$agent" ]; then
    agent=$(ls -t "$root"/build/*/guest/ivmon-agent 2>/dev/null | head -1 || true)
    [ -n "$agent" ] || die "no ivmon-agent found under $root/build: build it (cmake -S . -B build &&" \
        "cmake --build build) or pass --agent PATH"
fi
[ -f "$agent" ] && [ -x "$agent" ] || die "--agent $agent: not an executable file"
agent=$(cd "$(dirname "$agent")" && pwd)/$(basename "$agent")
is_static "$agent" || die "$agent is dynamically linked; the guest needs the static agent" \
    "(a build with -DIVMON_SANITIZE=ON links it dynamically: use a normal build)"
progs=("$agent")
for t in ivmon-step ivmon-produce ivmon-scribble; do
    [ -x "$(dirname "$agent")/$t" ] && progs+=("$(dirname "$agent")/$t")
done
for a in "${adds[@]+"${adds[@]}"}"; do
    [ -f "$a" ] && [ -x "$a" ] || die "--add $a: not an executable file"
    is_static "$a" || die "--add $a: dynamically linked; guest programs must be static"
    progs+=("$(cd "$(dirname "$a")" && pwd)/$(basename "$a")")
done
modules="virtio_pci virtio_blk virtio_console ext4 crc32c_generic $extra_modules"

# ---- fast path: the inputs are unchanged ------------------------------------------------------
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
exec 9>"$outdir/.lock"
flock 9
stamp=$( {
    echo "kernel=${kv:-auto} modules=$modules"
    sha256sum "$0" "$busybox" "${progs[@]}"
    (cd "$root/guest/image" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
} | sha256sum | cut -d' ' -f1)
if [ "$refresh" = 0 ] && [ -f "$outdir/image.env" ] && [ -f "$outdir/initrd.gz" ] &&
    [ -f "$outdir/vmlinux" ] && grep -qx "STAMP=$stamp" "$outdir/image.env"; then
    cat "$outdir/image.env"
    exit 0
fi

# ---- the kernel: Debian's package, downloaded and unpacked once per version -------------------
if [ -z "$kv" ]; then
    need_cmd apt-cache apt
    kv=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { sub(/^linux-image-/, "", $2); print $2; exit }')
    if [ -z "$kv" ]; then
        # No package lists (offline, or apt-get update never ran): use the newest cached kernel.
        kv=$(ls -t "$cache/kernel" 2>/dev/null | head -1 || true)
        [ -n "$kv" ] || die "cannot resolve linux-image-amd64 with apt-cache: run apt-get update" \
            "(or pass --kernel-version, e.g. 6.1.0-56-amd64)"
        say "apt-cache knows no linux-image-amd64; using the cached kernel $kv"
    fi
fi
kdir=$cache/kernel/$kv
mkdir -p "$kdir"
(
    flock 8
    if [ ! -f "$kdir/ready" ]; then
        need_cmd apt-get apt
        cd "$kdir"
        rm -rf tree ./*.deb vmlinux
        say "downloading linux-image-$kv (apt-get download)"
        apt-get download -q "linux-image-$kv" >&2 2> >(grep -v 'unsandboxed as root' >&2) ||
            die "apt-get download linux-image-$kv failed: check the apt sources (apt-get update)"
        say "unpacking linux-image-$kv (dpkg -x)"
        dpkg -x linux-image-"$kv"_*.deb tree
        depmod -b "$kdir/tree" "$kv"
        # The uncompressed ELF kernel: Debian builds with CONFIG_PVH=y, so QEMU enters it
        # directly, skipping the bzImage loader and the xz decompression.
        python3 - "$kdir/tree/boot/vmlinuz-$kv" "$kdir/vmlinux" <<'EOF'
import lzma, sys
data = open(sys.argv[1], "rb").read()
off = data.find(b"\xfd7zXZ\x00")
if off < 0:
    sys.exit("no xz stream in %s" % sys.argv[1])
out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[off:])
if out[:4] != b"\x7fELF":
    sys.exit("the xz stream in %s is not an ELF kernel" % sys.argv[1])
open(sys.argv[2], "wb").write(out)
EOF
        touch ready
    fi
) 8>"$kdir.lock"

# ---- the initramfs ----------------------------------------------------------------------------
stage=$(mktemp -d "$outdir/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
r=$stage/root
mkdir -p "$r"/{bin,sbin,dev,proc,sys,tmp,run,mnt/tmpfs,mnt/ext4,root,etc,lib/modules,lib/ivmon,workloads}
cp "$busybox" "$r/bin/busybox"
for p in "${progs[@]}"; do cp "$p" "$r/bin/"; done
cp "$root/guest/image/init" "$r/init"
cp "$root/guest/image/lib/"*.sh "$r/lib/ivmon/"
cp "$root/guest/image/workloads/"*.sh "$r/workloads/"
chmod 755 "$r/init" "$r/workloads/"*.sh
: >"$r/modules.list"
for m in $modules; do
    modprobe -d "$kdir/tree" -S "$kv" --show-depends "$m" 2>/dev/null | awk '/^insmod/ { print $2 }' ||
        die "kernel module $m not found in linux-image-$kv"
done | awk '!seen[$0]++' | grep -v crc32c-intel | while read -r f; do
    # crc32c-intel needs SSE4.2, which QEMU's default TCG CPU lacks; crc32c_generic serves.
    cp "$f" "$r/lib/modules/"
    basename "$f" >>"$r/modules.list"
done
[ -s "$r/modules.list" ] || die "no kernel modules resolved for: $modules"
{
    echo "KERNEL_VERSION=$kv"
    echo "AGENT_SHA256=$(sha256sum "$agent" | cut -d' ' -f1)"
    echo "BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$r/etc/ivmon-image"
(cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$stage/initrd.gz"

cp "$kdir/vmlinux" "$stage/vmlinux"
cp "$kdir/tree/boot/vmlinuz-$kv" "$stage/vmlinuz"
chmod 644 "$stage/vmlinux" "$stage/vmlinuz" "$stage/initrd.gz"
for f in vmlinux vmlinuz initrd.gz; do mv -f "$stage/$f" "$outdir/$f"; done
cat >"$outdir/image.env.tmp" <<EOF
KERNEL_VERSION=$kv
VMLINUX=$outdir/vmlinux
VMLINUZ=$outdir/vmlinuz
INITRD=$outdir/initrd.gz
AGENT=$agent
AGENT_SHA256=$(sha256sum "$agent" | cut -d' ' -f1)
STAMP=$stamp
EOF
mv -f "$outdir/image.env.tmp" "$outdir/image.env"
say "built $outdir/initrd.gz ($(du -k "$outdir/initrd.gz" | cut -f1) KiB) for kernel $kv;" \
    "modules: $(tr '\n' ' ' <"$r/modules.list")"
cat "$outdir/image.env"
