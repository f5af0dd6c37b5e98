#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""VM tests over QEMU ivshmem-plain (host URI ivshmem:FILE, polled; guest URI ivshmem:), with the
real QEMU, the real Debian guest kernel and the real agent in the guest:

  scripted         (a) the scripted workload on tmpfs and ext4: every expected event with path,
                   operation and process name, zero loss, exact accounting (vmlib.run_scripted).
  monitor-restart  (d) the guest keeps writing (steady workload, 64 KiB ring) while the monitor is
                   killed with SIGKILL and started again 3 s later: the ring fills meanwhile, the
                   second monitor reports the gap as lost records and events resume; the records
                   the two monitors printed plus the reported losses cover every sequence number
                   the agent produced, and the second monitor's accounting is exact. The first
                   monitor is started only once the agent waits for the ring to be formatted, so
                   that path is covered too.
  agent-restart    (e) the agent is killed with SIGKILL inside the running guest and started again;
                   the host session carries on: one restart, both agents' events, exact
                   accounting with nothing lost.

    test_plain.py --case CASE --agent PATH --watch PATH --workdir DIR [--image-dir DIR]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmlib  # noqa: E402


def case_scripted(t, a, img):
    shm = t.shm_file("ring")
    uri = "ivshmem:" + shm
    vm, evs, st = vmlib.run_scripted(t, img, a.watch, uri, vmlib.ivshmem_plain(shm))
    print("scripted: %d records, %d file events, QEMU ran %.1f s, guest uptime at power-off %s s"
          % (st["delivered"], sum(e["type"] == "file" for e in evs), vm.seconds(),
             vm.markers("POWEROFF")[0].get("uptime")))


def case_monitor_restart(t, a, img):
    shm = t.shm_file("ring")
    uri = "ivshmem:" + shm + "?size=64K"
    seconds, rate = 12, 200
    vm = t.vm(img, params={"ivmon.workload": "steady", "ivmon.args": "%d,%d" % (seconds, rate),
                           "ivmon.heartbeat": "1"},
              devices=vmlib.ivshmem_plain(shm)).start()
    # Nobody has formatted the ring yet: the agent must wait for the host.
    vm.wait_for(r"waiting for the host to format the ring", timeout=60)
    w1 = t.watch(a.watch, [uri], args=["--verbose"], name="watch1").start()
    vm.wait_for(r"IVMON-STEADY-START", timeout=60)
    w1.wait_for(lambda evs: sum(e["type"] == "file" for e in evs) >= 300, "300 file events", 30)
    w1.kill()
    evs1 = w1.events()
    killed_at = max(e["seq"] for e in evs1)
    time.sleep(3)  # ~1800 records at 200 writes/s; the 64 KiB ring holds ~600
    w2 = t.watch(a.watch, [uri], args=["--verbose"], name="watch2").start()
    vm.wait_for(r"IVMON-STEADY-DONE rc=0", timeout=seconds + 60)
    vm.wait_exit(timeout=60)
    produced = vm.agent_produced()
    if len(produced) != 1:
        t.fail("expected one agent exit summary on the console, found %d" % len(produced))
    produced = produced[0]
    w2.wait_seq(produced, timeout=20)
    stats = w2.stop()[uri]
    evs2 = w2.events()

    # The second monitor: exact accounting from the first record it saw, the gap reported.
    vmlib.check_accounting(stats, malformed=0, missed=0, restarts=0, last_seq=produced)
    lost_recs = [e for e in evs2 if e["type"] == "lost"]
    if stats["lost"] == 0 or not lost_recs:
        t.fail("the ring did not overflow while the monitor was down (lost 0): %s" % stats)
    for e in lost_recs:
        if e["reason"] != "ring_full" or e["count"] != e["last_seq"] - e["first_seq"] + 1 or \
                e["seq"] != e["last_seq"] + 1:
            t.fail("bad loss report: %s" % e)
    last_gap = max(e["last_seq"] for e in lost_recs)
    resumed = [e for e in evs2 if e["type"] == "file" and e["seq"] > last_gap]
    if len(resumed) < 100:
        t.fail("events did not resume after the gap: %d file events after seq %d" % (len(resumed), last_gap))
    bad = [e for e in evs2 if e["type"] == "file" and (e["comm"] != "wl-steady" or "no_proc" in e["flags"])]
    if bad:
        t.fail("file events not attributed to wl-steady: %s" % bad[:3])

    # Both monitors together: every sequence number 1..produced printed or reported lost.
    seen1, _ = vmlib.covered(evs1)
    seen2, lost2 = vmlib.covered(evs2)
    if lost2 & (seen1 | seen2):
        t.fail("sequence numbers both delivered and reported lost: %s" % sorted(lost2 & (seen1 | seen2))[:10])
    hole = set(range(1, produced + 1)) - seen1 - seen2 - lost2
    if hole:
        t.fail("sequence numbers neither printed nor reported lost: %d, first %s" % (len(hole), sorted(hole)[:10]))
    first2 = min(seen2 | lost2)
    if first2 > killed_at + 1:
        t.fail("the second monitor started at seq %d, after the first one's last %d: a gap" % (first2, killed_at))
    redelivered = len(seen1 & seen2)
    if stats["first_seq"] != first2:
        t.fail("first_seq %d, but the first record the second monitor printed is %d" % (stats["first_seq"], first2))
    print("monitor-restart: produced %d; monitor 1 printed %d (up to seq %d, killed); monitor 2 "
          "delivered %d from seq %d, lost %d in %d report(s), %d printed again (not committed by "
          "monitor 1 before SIGKILL); %d file events after the gap"
          % (produced, len(seen1), killed_at, stats["delivered"], first2, stats["lost"],
             len(lost_recs), redelivered, len(resumed)))


def case_agent_restart(t, a, img):
    shm = t.shm_file("ring")
    uri = "ivshmem:" + shm
    w = t.watch(a.watch, [uri], args=["--verbose"]).start()
    vm = t.vm(img, params={"ivmon.workload": "agent-restart", "ivmon.heartbeat": "1"},
              devices=vmlib.ivshmem_plain(shm)).start()
    vm.wait_for(r"IVMON-AGENT-KILLED", timeout=90)
    vm.wait_for(r"IVMON-WORKLOAD-DONE name=agent-restart rc=0", timeout=60)
    vm.wait_exit(timeout=60)
    ready = vm.markers("READY")
    exits = vm.markers("AGENT-EXIT")
    if len(ready) != 2 or len(exits) != 2 or exits[0].get("rc") != "137" or exits[1].get("rc") != "0":
        t.fail("expected two agents, the first killed (rc 137), the second stopped cleanly: "
               "ready %s, exits %s" % (ready, exits))
    produced = vm.agent_produced()
    if len(produced) != 1:
        t.fail("expected one clean agent exit summary, found %d" % len(produced))

    def second_done(evs):
        hellos = [i for i, e in enumerate(evs) if e["type"] == "hello"]
        return len(hellos) == 2 and any(e["seq"] == produced[0] for e in evs[hellos[1]:])
    w.wait_for(second_done, "the second agent's final record (seq %d)" % produced[0], 20)
    stats = w.stop()[uri]
    evs = w.events()
    vmlib.check_accounting(stats, lost=0, malformed=0, missed=0, restarts=1)
    hellos = [i for i, e in enumerate(evs) if e["type"] == "hello"]
    h1, h2 = evs[hellos[0]], evs[hellos[1]]
    if h1["instance_id"] == h2["instance_id"] or h1["boot_id"] != h2["boot_id"]:
        t.fail("the two hellos should differ in instance_id and share the boot_id: %s %s" % (h1, h2))
    if h1["agent_pid"] != int(ready[0]["pid"]) or h2["agent_pid"] != int(ready[1]["pid"]):
        t.fail("hello agent_pid does not match the guest's agents: %s %s %s" % (h1, h2, ready))
    d = "/mnt/tmpfs/restart"
    before = [vmlib.Expect("create", d + "/before.txt", "wl-before"),
              vmlib.Expect("modify", d + "/before.txt", "wl-before"),
              vmlib.Expect("close_write", d + "/before.txt", "wl-before")]
    after = [vmlib.Expect("create", d + "/after.txt", "wl-after"),
             vmlib.Expect("modify", d + "/after.txt", "wl-after"),
             vmlib.Expect("close_write", d + "/after.txt", "wl-after")]
    vmlib.check_events(evs[:hellos[1]], before)
    vmlib.check_events(evs[hellos[1]:], after)
    # Each instance's numbers run 1, 2, 3, ... without a hole.
    for lo, hi in ((hellos[0], hellos[1]), (hellos[1], len(evs))):
        seqs = [e["seq"] for e in evs[lo:hi]]
        if seqs != list(range(1, len(seqs) + 1)):
            t.fail("an instance's sequence numbers are not 1..%d: %s" % (len(seqs), seqs))
    print("agent-restart: instance 1 sent %d records (killed), instance 2 %d; restarts %d, "
          "delivered %d = seq_span %d" % (hellos[1] - hellos[0], len(evs) - hellos[1],
                                           stats["restarts"], stats["delivered"], stats["seq_span"]))


CASES = {"scripted": case_scripted, "monitor-restart": case_monitor_restart,
         "agent-restart": case_agent_restart}


if __name__ == "__main__":
    vmlib.main_cases("plain", CASES)
