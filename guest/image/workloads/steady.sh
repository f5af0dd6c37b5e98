#!/bin/sh
# steady: keeps writing files for a while, for the restart tests. Arguments: SECONDS (default 10),
# RATE writes per second (default 200). One process, comm "wl-steady", rewrites DIR/steady/f0..f7
# in the first watched directory: open, modify, close_write per write (create the first 8 times),
# so about 3 records per write. Marks IVMON-STEADY-START and IVMON-STEADY-DONE.
. /lib/ivmon/ivmon.sh
secs=${1:-10}
rate=${2:-200}
dir=$(head -1 /run/ivmon/watch)/steady
ivmon_mark STEADY-START "dir=$dir seconds=$secs rate=$rate"
ivmon_step --name wl-steady steady "$dir" "$secs" "$rate"
rc=$?
ivmon_mark STEADY-DONE "rc=$rc"
exit $rc
