#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""VM tests over QEMU ivshmem-doorbell, served by the library itself (host URI
ivshmem+doorbell:SOCKET; guest URI ivshmem:), with the real QEMU, the real Debian guest kernel
and the real agent in the guest:

  scripted         (b) the scripted workload on tmpfs and ext4, every expected event with path,
                   operation and process name, zero loss, exact accounting; and the doorbell was
                   really used: the agent rang it (its exit summary), the monitor woke on it
                   (wakeups), at most once per ring (eventfd counts coalesce), and the monitor did
                   not poll its way there (a served session looks only once a second unless woken,
                   so without doorbells the workload's events would come late; the count is what
                   is checked, not the time).
  hostile-guest    one monitor process, two VMs: VM A runs the scripted workload over a doorbell;
                   VM B has no agent but a hostile workload that overwrites its ivshmem-plain
                   region with garbage (guest/tools/ivmon-scribble.c). B's session ends with a
                   clear error on its own; A's keeps delivering every event, exactly accounted.

    test_doorbell.py --case CASE --agent PATH --watch PATH --workdir DIR [--image-dir DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmlib  # noqa: E402


def sock_path(t):
    return os.path.join(t.workdir, "ivshmem.sock")


def check_doorbells(t, vm, st):
    rung = vm.agent_doorbells()
    if len(rung) != 1 or rung[0] < 1:
        t.fail("the agent rang no doorbell (exit summary: %s)" % rung)
    if not 1 <= st["wakeups"] <= rung[0]:
        t.fail("the monitor woke %d times for %d doorbells: expected 1..%d" % (st["wakeups"], rung[0], rung[0]))
    return rung[0]


def case_scripted(t, a, img):
    sock = sock_path(t)
    uri = "ivshmem+doorbell:" + sock
    vm, evs, st = vmlib.run_scripted(t, img, a.watch, uri, vmlib.ivshmem_doorbell(sock),
                                     listening=sock)
    rung = check_doorbells(t, vm, st)
    print("scripted: %d records, %d file events, %d doorbells rung, %d wakeups; QEMU ran %.1f s"
          % (st["delivered"], sum(e["type"] == "file" for e in evs), rung, st["wakeups"], vm.seconds()))


def case_hostile_guest(t, a, img):
    sock = sock_path(t)
    good = "ivshmem+doorbell:" + sock
    shm = t.shm_file("hostile")
    bad = "ivshmem:" + shm
    w = t.watch(a.watch, [good, bad], args=["--verbose"]).start()
    vmlib.wait_listening(t, sock)
    base = "/mnt/tmpfs"
    vm_a = t.vm(img, name="vm-a", params={"ivmon.workload": "scripted", "ivmon.heartbeat": "1"},
                devices=vmlib.ivshmem_doorbell(sock)).start()
    vm_b = t.vm(img, name="vm-b", params={"ivmon.workload": "scribble", "ivmon.args": "4", "ivmon.agent": "0"},
                devices=vmlib.ivshmem_plain(shm)).start()
    vm_b.wait_for(r"IVMON-SCRIBBLE-DONE rc=0", timeout=90)
    vm_a.wait_for(r"IVMON-WORKLOAD-DONE name=scripted rc=0", timeout=120)
    vm_a.wait_exit(timeout=60)
    vm_b.wait_exit(timeout=60)
    produced = vm_a.agent_produced()
    if len(produced) != 1:
        t.fail("expected one agent exit summary from VM A, found %d" % len(produced))
    w.wait_for(lambda evs: any(e.get("source") == good and e.get("seq", 0) >= produced[0] for e in evs),
               "VM A's last record (seq %d)" % produced[0], 20)
    # One session broke: ivmon-watch says so with exit status 1 and keeps serving the other.
    stats = w.stop(expect_rc=1)
    evs = w.events()
    sb = stats.get(bad)
    if not sb or not sb.get("error"):
        t.fail("the scribbled session did not end with an error: %s" % sb)
    if "protocol" not in sb["error"] and "ring" not in sb["error"]:
        t.fail("the scribbled session's error does not say what broke: %r" % sb["error"])
    ea = [e for e in evs if e.get("source") == good]
    vmlib.check_events(ea, vmlib.scripted_expected([base]))
    vmlib.check_accounting(stats.get(good), lost=0, malformed=0, missed=0, restarts=0, first_seq=1,
                           last_seq=produced[0], delivered=produced[0])
    if [e["seq"] for e in ea] != list(range(1, produced[0] + 1)):
        t.fail("VM A's sequence numbers are not exactly 1..%d in order" % produced[0])
    check_doorbells(t, vm_a, stats[good])
    print("hostile-guest: VM B's session ended with %r after %d records taken (%d malformed); "
          "VM A delivered all %d records" % (sb["error"], sb["records"], sb["malformed"], produced[0]))


CASES = {"scripted": case_scripted, "hostile-guest": case_hostile_guest}


if __name__ == "__main__":
    vmlib.main_cases("doorbell", CASES)
