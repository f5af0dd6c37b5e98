#!/bin/sh
# demo: a short story for scripts/demo-vm.sh. In the first watched directory: a user edits a
# report, keeps a backup and tightens its mode; a download lands, is made executable and runs;
# everything is cleaned up. Argument: rounds (default 1), 2 s apart.
. /lib/ivmon/ivmon.sh
rounds=${1:-1}
top=$(head -1 /run/ivmon/watch)
i=1
while [ "$i" -le "$rounds" ]; do
    d=$top/home/alice
    mkdir -p "$d" "$top/downloads"
    s="ivmon_step --linger 200 --name"
    $s vim create "$d/report.txt"
    $s vim write "$d/report.txt" "Q3 numbers: up 12%"
    $s backup copy "$d/report.txt" "$d/report.txt.bak"
    $s chmod chmod "$d/report.txt" 600
    $s mv rename "$d/report.txt" "$d/report-final.txt"
    $s curl copy /bin/busybox "$top/downloads/busybox-tool"
    $s chmod chmod "$top/downloads/busybox-tool" 755
    "$top/downloads/busybox-tool" sleep 0.2
    $s cat read "$d/report-final.txt"
    $s rm delete "$d/report.txt.bak"
    $s rm delete "$top/downloads/busybox-tool"
    $s rm delete "$d/report-final.txt"
    ivmon_mark DEMO-ROUND "round=$i"
    i=$((i + 1))
    [ "$i" -le "$rounds" ] && sleep 2
done
sleep 0.3
exit 0
