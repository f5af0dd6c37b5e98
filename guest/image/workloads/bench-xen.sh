#!/bin/sh
# bench-xen: the guest half of the Xen bench (bench/xen/run.sh). The same synthetic FILE records
# (guest/tools/synth_record.h) over xen+shm: (ivmon-produce, lossless, the default 256 KiB ring),
# xen+vcpu: (ivmon-produce) and a 256 KiB libxenvchan stream (ivmon-vchan-produce), one after the
# other; dom0's readers (ivmon-bench-xen-read) wait for each from the start. Each producer's JSON
# line goes to the console as IVMON-BENCH-PRODUCER case=C json=...
# Arguments: RECORD_SIZE SHM_COUNT VCPU_COUNT VCHAN_COUNT.
. /lib/ivmon/ivmon.sh
size=${1:-128}
produce() { # CASE COMMAND...
    _case=$1
    shift
    sleep 1 # the guest settles after the previous case
    _out=$("$@")
    _rc=$?
    ivmon_mark BENCH-PRODUCER "case=$_case rc=$_rc json=$_out"
    [ $_rc = 0 ] || ivmon_mark ERROR "bench case $_case: $* exited $_rc"
}
produce shm /bin/ivmon-produce --count "${2:-150000}" --size "$size" --lossless xen+shm:
produce vcpu /bin/ivmon-produce --count "${3:-600}" --size "$size" --lossless xen+vcpu:
produce vchan /bin/ivmon-vchan-produce --count "${4:-150000}" --size "$size" --ring 262144 \
    data/ivmon-bench-vchan
