# SPDX-License-Identifier: MIT
# Shell functions shared by /init and the workloads (/lib/ivmon/ivmon.sh in the guest image).
# Source it; it defines:
#
#   ivmon_mark WORD [TEXT...]   print "IVMON-WORD TEXT uptime=S" on the console: the markers the
#                               host (tests/vm/vmlib.py) waits for. One line, written at once.
#   ivmon_start_agent           start ivmon-agent with the options /init derived from the kernel
#                               command line (/run/ivmon/agent.args), wait until it is ready, print
#                               IVMON-READY pid=N. When it exits, IVMON-AGENT-EXIT pid=N rc=N is
#                               printed (rc 128+SIG if a signal killed it). Returns 1 (and prints
#                               IVMON-ERROR) if it died before it was ready.
#   ivmon_stop_agent [SIG]      send SIG (default TERM) to the running agent and wait for it to go
#                               (a TERM'ed agent flushes a final heartbeat first)
#   ivmon_agent_pid             print the running agent's pid (empty if none)
#   ivmon_step ARGS...          run /bin/ivmon-step ARGS (see guest/tools/ivmon-step.c); prints
#                               IVMON-ERROR if it fails, returns its status
#
# Files: /run/ivmon/agent.args (one agent argument per line), /run/ivmon/agent.pid,
# /run/ivmon/ready (the agent's --ready-file), /run/ivmon/watch (watched directories, one a line).

IVMON_RUN=/run/ivmon

ivmon_uptime() {
    cut -d' ' -f1 /proc/uptime
}

ivmon_mark() {
    _w=$1
    shift
    echo "IVMON-$_w ${*:+$* }uptime=$(ivmon_uptime)"
}

ivmon_agent_pid() {
    [ -f $IVMON_RUN/agent.pid ] || return 0
    _p=$(cat $IVMON_RUN/agent.pid)
    [ -n "$_p" ] && kill -0 "$_p" 2>/dev/null && echo "$_p"
    return 0
}

ivmon_start_agent() {
    rm -f $IVMON_RUN/ready $IVMON_RUN/agent.pid
    _old_ifs=$IFS
    IFS='
'
    set -f
    # The agent runs in a subshell that waits for it, so its exit status is reported even when
    # a workload restarted it (the new agent is then not a child of /init).
    (
        /bin/ivmon-agent $(cat $IVMON_RUN/agent.args) --ready-file $IVMON_RUN/ready &
        _pid=$!
        echo $_pid >$IVMON_RUN/agent.pid
        wait $_pid
        _rc=$?
        echo "IVMON-AGENT-EXIT pid=$_pid rc=$_rc uptime=$(ivmon_uptime)"
    ) &
    set +f
    IFS=$_old_ifs
    while [ ! -e $IVMON_RUN/ready ]; do
        if [ -f $IVMON_RUN/agent.pid ] && ! kill -0 "$(cat $IVMON_RUN/agent.pid)" 2>/dev/null; then
            sleep 0.1 # let the exit marker out first
            ivmon_mark ERROR "ivmon-agent exited before it was ready"
            return 1
        fi
        sleep 0.05
    done
    ivmon_mark READY "pid=$(cat $IVMON_RUN/agent.pid)"
}

ivmon_stop_agent() {
    _pid=$(ivmon_agent_pid)
    [ -n "$_pid" ] || return 0
    kill -"${1:-TERM}" "$_pid" 2>/dev/null
    # Not our child (maybe): poll. A TERM'ed agent waits at most 5 s for room to flush.
    _n=0
    while kill -0 "$_pid" 2>/dev/null; do
        _n=$((_n + 1))
        if [ $_n -gt 300 ]; then
            ivmon_mark ERROR "ivmon-agent pid $_pid did not stop within 15 s; killing it"
            kill -KILL "$_pid" 2>/dev/null
            break
        fi
        sleep 0.05
    done
    sleep 0.1 # the subshell prints IVMON-AGENT-EXIT
    rm -f $IVMON_RUN/agent.pid
}

ivmon_step() {
    /bin/ivmon-step "$@" || {
        _rc=$?
        ivmon_mark ERROR "ivmon-step $* failed (rc=$_rc)"
        return $_rc
    }
}
