#!/usr/bin/env bash
# The main job, end to end on this machine (Debian 12, as root):
#   ./scripts/demo.sh           build, start the agent on /tmp/ivmon-demo, run a short workload,
#                               show the events ivmon-watch printed, then stop
#   ./scripts/demo.sh --live    the same, then keep watching until Ctrl-C
# The agent writes into the shared-memory ring shm:ivmon-demo (/dev/shm/ivmon-demo); ivmon-watch
# reads it through libivmon. No hypervisor is needed for this local transport.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
live=0
[ "${1:-}" = "--live" ] && live=1
if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: run as root: the agent uses fanotify" >&2
    exit 1
fi
"$root/scripts/deps.sh"
build=$root/build/demo
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIVMON_BUILD_TESTS=OFF \
      -DIVMON_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
agent=$build/guest/ivmon-agent
watch=$build/examples/ivmon-watch/ivmon-watch
dir=/tmp/ivmon-demo
uri=shm:ivmon-demo
mkdir -p "$dir"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== ivmon-watch $uri   (events from the agent watching $dir)"
"$watch" --stats "$uri" &
pids+=($!)
"$agent" --uri "$uri" --watch "$dir" --ready-file /run/ivmon-demo.ready &
pids+=($!)
for _ in $(seq 100); do [ -e /run/ivmon-demo.ready ] && break; sleep 0.05; done
rm -f /run/ivmon-demo.ready

# A short workload: each step by a different program, so the process column tells them apart.
touch "$dir/report.txt"
echo "quarterly numbers" >> "$dir/report.txt"
chmod 600 "$dir/report.txt"
mv "$dir/report.txt" "$dir/report-final.txt"
cp /bin/true "$dir/payload" && "$dir/payload"
rm -f "$dir/report-final.txt" "$dir/payload"
sleep 1

if [ "$live" = 1 ]; then
    echo "== watching $dir live; touch files there, Ctrl-C to stop"
    wait "${pids[0]}"
else
    kill "${pids[1]}"; sleep 0.5; kill "${pids[0]}"; wait 2>/dev/null || true
    echo "== done (run with --live to keep watching)"
fi
