#!/bin/sh
# bench-vm: the guest half of the VM bench (bench/vm/run.sh; boot with ivmon.agent=0). The same
# producer, ivmon-produce, takes turns on the two channels of this guest, ivshmem with doorbell and
# virtio-serial, both lossless, record sizes interleaved and channels alternating in every round,
# after one warm-up run on each (kind warmup: COUNT/10 records, not reported):
#   tput   COUNT records as fast as it can, one emit each (one write() each on virtio-serial)
#   batch  the same in batches of BATCH records (batch_begin/batch_end, as the agent sends one
#          fanotify read: one publish or one write() per batch or per 4 KiB)
#   lat    LAT_COUNT records paced at RATE per second, with a clock sync (ivmon-clocksync on the
#          clock page) right before and right after it
#   encode (ch=none) COUNT records built but handed to no transport (--encode-only): what both
#          channels' figures include for the producer's own work
# Arguments (ivmon.args, comma-separated):
#   REPS,COUNT,LAT_COUNT,RATE,BATCH,SIZES,RING_PCI,CLOCK_PCI,PORT
# SIZES is a /-separated list of record sizes in bytes; RING_PCI and CLOCK_PCI the PCI addresses
# of the ivshmem-doorbell and the clock's ivshmem-plain device; PORT the virtserialport's name.
# Each run prints "IVMON-BENCH-RUN kind=K ch=ivshmem|vser size=S rep=R json={...}" (the JSON is
# ivmon-produce's line), each sync "IVMON-BENCH-SYNC offset_ns=O rtt_ns=R at_ns=T ..." (see
# bench/vm/ivmon-clocksync.c). The host matches runs to its own by order on each channel.
. /lib/ivmon/ivmon.sh
reps=$1 count=$2 lat_count=$3 rate=$4 batch=$5 sizes=$(echo "$6" | tr / ' ')
ring=$7 clock=$8 port=$9
rc=0

run() { # run KIND CHANNEL SIZE REP PRODUCE-ARGS...
    _kind=$1 _ch=$2 _size=$3 _rep=$4
    shift 4
    case $_ch in
    ivshmem) _uri=ivshmem:$ring ;;
    vser) _uri=virtio-serial:$port ;;
    *) _uri=--encode-only ;;
    esac
    if _out=$(/bin/ivmon-produce --lossless --size "$_size" "$@" "$_uri"); then
        ivmon_mark BENCH-RUN "kind=$_kind ch=$_ch size=$_size rep=$_rep json=$_out"
    else
        ivmon_mark ERROR "ivmon-produce $* $_uri failed: $_out"
        rc=1
    fi
}

sync_clock() {
    if _out=$(/bin/ivmon-clocksync "$clock"); then
        ivmon_mark BENCH-SYNC "$_out"
    else
        ivmon_mark ERROR "ivmon-clocksync $clock failed"
        rc=1
    fi
}

# The first runs after boot pay for cold translation caches (TCG) and first-touch page faults.
for ch in ivshmem vser; do
    run warmup $ch "${sizes%% *}" 0 --count $((count / 10))
done
for rep in $(seq 1 "$reps"); do
    for size in $sizes; do
        run encode none "$size" "$rep" --count "$count"
        for ch in ivshmem vser; do
            run tput $ch "$size" "$rep" --count "$count"
        done
        for ch in ivshmem vser; do
            run batch $ch "$size" "$rep" --count "$count" --batch "$batch"
        done
        for ch in ivshmem vser; do
            sync_clock
            run lat $ch "$size" "$rep" --count "$lat_count" --rate "$rate"
            sync_clock
        done
    done
done
exit $rc
