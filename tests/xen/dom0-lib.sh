# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# dom0-lib.sh: what dom0's scripts share (tests/xen/dom0-run.sh, bench/xen/dom0-bench.sh);
# tests/xen/xen-image.sh installs it as /lib/ivmon-dom0.sh. The caller sets R, the results
# directory.

# T WORD [TEXT]: a progress line on the console, "XT-WORD t=UPTIME TEXT", for the host's driver.
T() { echo "XT-$1 t=$(cut -d' ' -f1 /proc/uptime) ${2:-}"; }

# kernel_hung NAME: whether NAME's vCPU 0 is stuck in its kernel with interrupts off: the same
# rip and flags, ring 0, IF clear, in three looks 2 s apart. A kernel does not do that on its
# own; under QEMU's nested SVM it did, spinning on a seqcount whose writer an interrupt had
# broken into (docs/XEN.md, "Under QEMU"). Leaves the looks in $R/guest-hung-NAME.log if so.
kernel_hung() {
    _d=$(xl domid "$1" 2>/dev/null) || return 1
    _looks=""
    for _i in 1 2 3; do
        [ $_i = 1 ] || sleep 2
        _look=$(xenctx "$_d" 0 2>/dev/null |
            awk '/^rip:/ {r = $2} /^flags:/ {f = $2} /^ *cs:/ {c = $2} END {print r, f, c}')
        set -- "$1" $_look
        [ "$4" = 0010 ] && [ $((0x${3:-200} & 0x200)) = 0 ] || return 1
        [ -z "$_looks" ] || [ "$_look" = "${_looks##*;}" ] || return 1
        _looks="$_looks;$_look"
    done
    echo "$1 vCPU 0 (rip flags cs), 2 s apart:$_looks" >"$R/guest-hung-$1.log"
}

# console_crashed FILE: whether a guest's console shows its kernel's crash
console_crashed() { grep -q -e "Kernel panic" -e "stack guard page was hit" "$1" 2>/dev/null; }

# wait_for FILE PATTERN SECONDS: until a line of FILE matches (grep -E), or, if FILE is a guest's
# console, until that guest's kernel crashed or hung (docs/XEN.md, "Under QEMU": the driver
# then boots again)
wait_for() {
    _n=0
    _guest=$(expr "$1" : '.*/guest-\(.*\)\.log$')
    while ! grep -q -E "$2" "$1" 2>/dev/null; do
        if console_crashed "$1"; then
            T ERROR "a guest kernel crashed (its console: $1)"
            return 1
        fi
        if [ -n "$_guest" ] && [ $((_n % 200)) = 199 ] && kernel_hung "$_guest"; then
            T ERROR "the kernel of $_guest hung with interrupts off (its console: $1)"
            return 1
        fi
        _n=$((_n + 1))
        if [ $_n -gt $(($3 * 10)) ]; then
            T ERROR "timeout waiting for '$2' in $1"
            return 1
        fi
        sleep 0.1
    done
}

console() { echo "/var/log/xen/console/guest-$1.log"; }
