#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End to end on this host: the real ivmon-agent (fanotify) watches a scratch directory and writes
into a real shm: ring; the real ivmon-watch --json reads it. A workload of ordinary programs
(touch, sh, chmod, mv, rm, a copied sleep binary) runs there, and every expected event is checked
with its operation, path(s) and process name. Also checks that a file name that is not UTF-8
survives the JSON output byte for byte, and that the stats line accounts for every record.

    test_agent_watch.py --agent PATH --watch PATH
Needs root (fanotify)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

TIMEOUT = 30


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def wait_for(pred, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    print("timed out waiting for " + what, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--watch", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        fail("needs root: fanotify requires CAP_SYS_ADMIN")

    work = tempfile.mkdtemp(prefix="ivmon-e2e-")
    ring = "/dev/shm/ivmon-e2e-%d" % os.getpid()
    uri = "shm:" + ring
    ready = os.path.join(work, "ready")
    watched = os.path.join(work, "w")
    os.mkdir(watched)
    out_path = os.path.join(work, "events.jsonl")
    err_path = os.path.join(work, "watch.err")
    procs = []
    try:
        # The monitor first: the agent may start before or after; here it finds the doorbell.
        out = open(out_path, "wb")
        err = open(err_path, "wb")
        watch = subprocess.Popen([args.watch, "--json", "--stats", uri], stdout=out, stderr=err)
        procs.append(watch)
        agent = subprocess.Popen([args.agent, "--uri", uri, "--watch", watched,
                                  "--ready-file", ready, "--heartbeat", "1"])
        procs.append(agent)
        wait_for(lambda: os.path.exists(ready), "the agent to be ready")

        def path(name):
            return os.path.join(watched, name)

        pids = {}

        def run(step, *argv):
            p = subprocess.Popen(list(argv))
            pids[step] = p.pid
            if p.wait() != 0:
                fail("workload step %s failed" % step)

        # The workload: each step by a distinct program. Every event must name the exact pid of
        # the program that caused it. Its name (comm) too, except where the program had already
        # exited when the agent read /proc (fanotify notification events do not keep the process
        # alive; the agent then sets the no_proc flag). The steps that stay alive afterwards
        # (sh sleeping, mysleep, this script) must always have their names.
        run("touch", "touch", path("a.txt"))
        run("sh", "sh", "-c", "echo hello >> '%s'; sleep 1" % path("a.txt"))
        run("chmod", "chmod", "600", path("a.txt"))
        run("mv", "mv", path("a.txt"), path("b.txt"))
        run("mkdir", "mkdir", path("sub"))
        run("rm", "rm", path("b.txt"))
        shutil.copy("/bin/sleep", path("mysleep"))
        run("mysleep", path("mysleep"), "1")
        odd = os.fsencode(watched) + b"/odd-\xff\xfe-\xc3\xa9.bin"
        with open(odd, "wb") as f:
            f.write(b"x")
        pids["python3"] = os.getpid()

        # (op, path, new_path, step = expected comm, comm required even if the process is gone)
        expected = [
            ("create", path("a.txt"), None, "touch", False),
            ("modify", path("a.txt"), None, "sh", True),
            ("close_write", path("a.txt"), None, "sh", True),
            ("attrib", path("a.txt"), None, "chmod", False),
            ("rename", path("a.txt"), path("b.txt"), "mv", False),
            ("create", path("sub"), None, "mkdir", False),
            ("delete", path("b.txt"), None, "rm", False),
            ("exec", path("mysleep"), None, "mysleep", True),
            ("create", odd.decode("utf-8", "surrogateescape"), None, "python3", True),
        ]

        def events():
            evs = []
            with open(out_path, "rb") as f:
                for line in f.read().splitlines():
                    evs.append(json.loads(line))
            return evs

        def matches(ev, op, p, newp, step, must_name):
            if (ev.get("type") != "file" or ev["op"] != op or ev["path"] != p or
                    (newp is not None and ev.get("new_path") != newp)):
                return False
            if ev["pid"] != pids[step]:
                return False
            if "no_proc" in ev.get("flags", []) and not must_name:
                return True
            return ev["comm"] == step

        def missing():
            evs = events()
            return [e for e in expected if not any(matches(ev, *e) for ev in evs)]

        odd_json = odd.decode("utf-8", "surrogateescape")
        wait_for(lambda: not missing(), "all expected events")
        if missing():
            fail("missing events: %s\nseen: %s" % (missing(), "\n".join(json.dumps(e) for e in events() if e.get("type") == "file")))

        evs = events()
        for ev in evs:
            if ev.get("type") != "file":
                continue
            for key in ("op", "path", "pid", "uid", "comm", "exe", "seq", "time", "source"):
                if key not in ev:
                    fail("event lacks %s: %s" % (key, ev))
            if ev["source"] != uri:
                fail("wrong source: %s" % ev)
            if ev["pid"] == agent.pid:
                fail("the agent reported its own activity: %s" % ev)
        exe_ev = [ev for ev in evs if matches(ev, *expected[7])][0]
        if exe_ev["exe"] != path("mysleep"):
            fail("exec event with the wrong executable: %s" % exe_ev)
        odd_ev = [ev for ev in evs if ev.get("path") == odd_json][0]
        if odd_ev["path"].encode("utf-8", "surrogateescape") != odd:
            fail("non-UTF-8 file name not preserved: %r" % odd_ev["path"])
        hellos = [ev for ev in evs if ev.get("type") == "hello"]
        if len(hellos) != 1 or hellos[0]["agent_pid"] != agent.pid:
            fail("expected one hello from the agent: %s" % hellos)
        if any(ev.get("type") == "lost" for ev in evs):
            fail("records lost in a quiet run: %s" % [ev for ev in evs if ev.get("type") == "lost"])

        # Agent stops first (a clean exit flushes), then the monitor prints its counters.
        agent.terminate()
        if agent.wait(10) != 0:
            fail("agent exited with %d" % agent.returncode)
        time.sleep(0.5)
        watch.terminate()
        if watch.wait(10) != 0:
            fail("ivmon-watch exited with %d" % watch.returncode)
        err.close()
        stats = [json.loads(l) for l in open(err_path, "rb").read().splitlines()
                 if l.startswith(b"{")]
        if len(stats) != 1:
            fail("expected one stats line on stderr: %r" % open(err_path, "rb").read())
        s = stats[0]
        if s["malformed"] or s["missed"] or s["lost"]:
            fail("bad counters: %s" % s)
        if s["delivered"] != s["last_seq"] - s["first_seq"] + 1:
            fail("accounting identity broken: %s" % s)
        print("agent e2e: %d events checked, stats %s" % (len(evs), s))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in (ring, ring + ".sock"):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
