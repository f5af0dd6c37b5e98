# SPDX-License-Identifier: MIT
# Sourced by bench/run.sh and bench/run-kvm.sh. bench_measure BIN ARGS... runs the bench with
# its progress on the terminal and its Markdown report in the file "$tmp" (set -e stops the
# caller on a failed run), and sets what a report header says about the run: cpu, and
# load_before and load_after. The machine may be shared: the load average around the run tells
# the reader whether anything else competed for the CPUs.
bench_measure() {
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    "$@" >"$tmp"
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
}
