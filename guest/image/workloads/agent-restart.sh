#!/bin/sh
# agent-restart: the agent is killed (SIGKILL, no flush) and started again while the guest runs.
#   phase 1: wl-before creates and writes DIR/restart/before.txt; 1 s for the agent to send it
#   kill -9 the agent (IVMON-AGENT-KILLED pid=N), start a new one (IVMON-READY pid=M)
#   phase 2: wl-after creates and writes DIR/restart/after.txt
# DIR is the first watched directory. Arguments: the signal (default KILL; TERM for a clean stop),
# the steps' linger in ms (default 300, as scripted.sh).
. /lib/ivmon/ivmon.sh
sig=${1:-KILL}
s="ivmon_step --linger ${2:-300}"
d=$(head -1 /run/ivmon/watch)/restart
mkdir -p "$d"
$s --name wl-before create "$d/before.txt" &&
    $s --name wl-before write "$d/before.txt" "written before the restart" || exit 1
sleep 1
old=$(ivmon_agent_pid)
ivmon_stop_agent "$sig"
ivmon_mark AGENT-KILLED "pid=$old signal=$sig"
ivmon_start_agent || exit 1
$s --name wl-after create "$d/after.txt" &&
    $s --name wl-after write "$d/after.txt" "written after the restart" || exit 1
sleep 0.5
exit 0
