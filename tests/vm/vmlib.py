# SPDX-License-Identifier: MIT
"""vmlib: boot the ivmon guest image under QEMU and watch it from the host. Used by every VM test
(tests/vm/test_*.py, CTest label vm) and meant to stay small and boring.

Interface (stable: the ivshmem-doorbell and libvirt tests build on it)

    import vmlib
    t = vmlib.Test("plain", workdir)        # a test run: work directory, cleanup, failure report
    img = t.image(agent_path)               # scripts/guest-image.sh, cached: .vmlinux .initrd
    shm = t.shm_file("ring", size=4 << 20)  # /dev/shm/ivmon-vm-<test>-<pid>-ring, zeroed, removed
                                            # at the end (QEMU maps the existing file)
    disk = t.ext4_disk("disk.img", 64)      # mkfs.ext4 -F on a truncate'd file
    vm = t.vm(img, params={"ivmon.workload": "scripted", "ivmon.disk": "1"},
              devices=vmlib.ivshmem_plain(shm) + vmlib.virtio_disk(disk))
                                            # or vmlib.ivshmem_doorbell(sock), after
                                            # vmlib.wait_listening(t, sock)
    vm.start()
    vm.wait_for("IVMON-READY", timeout=60)  # regex on the serial log; returns the re.Match
    vm.wait_exit(timeout=60)                # the guest powered off (IVMON-POWEROFF); QEMU rc
    w = t.watch(watch_bin, ["ivshmem:" + shm], args=["--verbose"])   # ivmon-watch --json --stats
    w.start(); w.wait_for(lambda evs: ..., "what", timeout); evs = w.events()
    stats = w.stop()                        # SIGTERM; {source: stats dict} from --stats
    w.kill()                                # SIGKILL: no stats (a monitor crash)
    vmlib.check_events(evs, [vmlib.Expect("create", "/mnt/tmpfs/x", "wl-create"), ...])
    vmlib.check_accounting(stats[uri], lost=0, malformed=0, missed=0)
    vmlib.at_exit(fn); vmlib.remove_at_exit(path)   # cleanup at the end, pass or fail
    seen, lost = vmlib.covered(evs)         # seqs delivered, seqs reported lost
    t.fail("why")                           # raises vmlib.Failure; the report shows the tails
    vmlib.run(main)                         # runs main(), turns Failure into exit 1 + report,
                                            # kills every process started, removes shm files
    vmlib.main_cases("plain", {"scripted": fn, ...})   # the test_*.py command line, then run()

Failures are loud: a timeout names what was awaited and prints the tail of the guest's serial
log, of QEMU's stderr and of every watcher's stderr. Everything a test run writes goes to its
workdir (serial logs, event files), kept after the run for a look.

Environment: IVMON_VM_ACCEL=tcg|kvm (default: kvm when the CPU has vmx/svm and /dev/kvm opens,
else tcg; on this project's machines that is tcg, see labs/README.md), IVMON_VM_TIME_SCALE=F
(multiplies every timeout, default 1), IVMON_VM_QEMU (default qemu-system-x86_64).

The guest's kernel command line takes ivmon.* parameters: see guest/image/init.
"""
import argparse
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIME_SCALE = float(os.environ.get("IVMON_VM_TIME_SCALE", "1"))
QEMU = os.environ.get("IVMON_VM_QEMU", "qemu-system-x86_64")
TAIL_LINES = 40


class Failure(Exception):
    """A test failed; the message says why. Raised by Test.fail() and the helpers."""


_processes = []  # every Popen started, killed at exit
_files = []  # files removed at exit
_reporters = []  # callables printing logs for a failure report
_exit_hooks = []  # callables run at exit, last registered first


def at_exit(fn):
    """Runs fn() when the test ends, pass or fail (after the processes are killed)."""
    _exit_hooks.append(fn)


def remove_at_exit(path):
    """Removes the file path when the test ends (if it exists then)."""
    _files.append(path)


def _scaled(t):
    return t * TIME_SCALE


def _tail(path, n=TAIL_LINES):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "(no %s)" % path
    lines = data.decode("utf-8", "replace").replace("\r", "").splitlines()
    return "\n".join(lines[-n:]) if lines else "(empty)"


def _need(cmd, package):
    if shutil.which(cmd) is None:
        raise Failure("%s is missing: apt-get install %s" % (cmd, package))


def accel_args():
    """QEMU accelerator arguments: IVMON_VM_ACCEL, or KVM where it can run a stock kernel."""
    accel = os.environ.get("IVMON_VM_ACCEL", "auto")
    if accel == "auto":
        accel = "tcg"
        try:
            flags = open("/proc/cpuinfo").read()
            if re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M) and os.access("/dev/kvm", os.R_OK | os.W_OK):
                accel = "kvm"
        except OSError:
            pass
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    if accel == "tcg":
        return ["-accel", "tcg"]
    raise Failure("IVMON_VM_ACCEL must be tcg, kvm or auto, not %r" % accel)


def ivshmem_plain(path, size=None, ident="ivmem"):
    """QEMU arguments for an ivshmem-plain device backed by path (size: the file's by default)."""
    size = size or os.path.getsize(path)
    return ["-object", "memory-backend-file,id=%s,share=on,mem-path=%s,size=%d" % (ident, path, size),
            "-device", "ivshmem-plain,memdev=%s" % ident]


def ivshmem_doorbell(sock, ident="ivsh"):
    """QEMU arguments for an ivshmem-doorbell device served on the UNIX socket sock (by the
    library's ivshmem+doorbell: backend, which must listen before QEMU starts)."""
    return ["-chardev", "socket,path=%s,id=%s" % (sock, ident),
            "-device", "ivshmem-doorbell,chardev=%s,vectors=1" % ident]


def virtio_disk(path):
    """QEMU arguments for a raw virtio-blk disk (the guest's /dev/vda)."""
    return ["-drive", "file=%s,if=virtio,format=raw" % path]


class Image:
    """The guest image built by scripts/guest-image.sh: .vmlinux, .initrd, .kernel_version."""

    def __init__(self, env):
        self.env = env
        self.vmlinux = env["VMLINUX"]
        self.initrd = env["INITRD"]
        self.kernel_version = env["KERNEL_VERSION"]
        self.agent = env["AGENT"]

    @staticmethod
    def build(agent, outdir, extra_args=()):
        """Builds (or finds cached) the image for this agent in outdir. Raises Failure."""
        cmd = [os.path.join(ROOT, "scripts", "guest-image.sh"), "--quiet", "--agent", agent]
        cmd += list(extra_args) + [outdir]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise Failure("guest image build failed (%s):\n%s" % (" ".join(cmd), p.stderr.decode(errors="replace")))
        env = {}
        for line in p.stdout.decode().splitlines():
            k, sep, v = line.partition("=")
            if sep:
                env[k] = v
        return Image(env)


class VM:
    """One QEMU process booting the guest image. Serial console goes to workdir/NAME.serial."""

    def __init__(self, test, image, name="vm", params=None, devices=(), memory=512, append=""):
        self.test = test
        self.image = image
        self.name = name
        self.params = dict(params or {})
        self.devices = list(devices)
        self.memory = memory
        self.extra_append = append
        self.serial = os.path.join(test.workdir, name + ".serial")
        self.stderr = os.path.join(test.workdir, name + ".qemu-stderr")
        self.proc = None
        self.started = None
        self.exited = None
        _reporters.append(self.report)

    def command(self):
        append = "console=ttyS0 quiet panic=-1 " + " ".join("%s=%s" % kv for kv in self.params.items())
        if self.extra_append:
            append += " " + self.extra_append
        return ([QEMU] + accel_args() +
                ["-m", str(self.memory), "-nographic", "-no-reboot", "-nic", "none",
                 "-serial", "file:" + self.serial, "-monitor", "none",
                 "-kernel", self.image.vmlinux, "-initrd", self.image.initrd, "-append", append] +
                self.devices)

    def start(self):
        _need(QEMU, "qemu-system-x86")
        cmd = self.command()
        with open(os.path.join(self.test.workdir, self.name + ".cmdline"), "w") as f:
            f.write(" ".join(cmd) + "\n")
        open(self.serial, "wb").close()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr, "wb"))
        _processes.append(self.proc)
        return self

    def log(self):
        """The serial log so far, as text (carriage returns removed)."""
        with open(self.serial, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\r", "")

    def lines(self, pattern):
        """re.Match objects for every serial line matching pattern (re.search)."""
        rx = re.compile(pattern)
        return [m for m in (rx.search(l) for l in self.log().splitlines()) if m]

    def markers(self, word):
        """Every "IVMON-WORD k=v ..." line as a dict of its key=value fields."""
        out = []
        for m in self.lines(r"IVMON-%s\b(.*)$" % re.escape(word)):
            out.append(dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv))
        return out

    def agent_doorbells(self):
        """The doorbells each agent that exited cleanly rang ("doorbells N" in its --verbose
        summary), in order."""
        return [int(m.group(1)) for m in self.lines(r"ivmon-agent: produced \d+, dropped \d+, doorbells (\d+)")]

    def agent_produced(self):
        """The last sequence number of each agent that exited cleanly ("produced N" in its
        --verbose summary), in order."""
        return [int(m.group(1)) for m in self.lines(r"ivmon-agent: produced (\d+),")]

    def wait_for(self, pattern, timeout, errors_fatal=True):
        """Waits until a serial line matches pattern; returns the match. Fails on timeout, on QEMU
        exiting first, on a kernel panic, and (errors_fatal) on an IVMON-ERROR line."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + _scaled(timeout)
        while True:
            text = self.log()
            for line in text.splitlines():
                m = rx.search(line)
                if m:
                    return m
            if errors_fatal and "IVMON-ERROR" in text:
                err = [l for l in text.splitlines() if "IVMON-ERROR" in l]
                self.test.fail("%s: the guest reported an error while waiting for %r: %s"
                               % (self.name, pattern, err[0]))
            if "Kernel panic" in text:
                self.test.fail("%s: kernel panic while waiting for %r" % (self.name, pattern))
            if self.proc.poll() is not None:
                self.test.fail("%s: QEMU exited (rc %s) before the guest printed %r"
                               % (self.name, self.proc.returncode, pattern))
            if time.monotonic() > deadline:
                self.test.fail("%s: timed out after %.0f s waiting for %r on the serial console"
                               % (self.name, _scaled(timeout), pattern))
            time.sleep(0.05)

    def wait_exit(self, timeout):
        """Waits for QEMU to exit on its own (the guest powers off). Returns its exit code."""
        try:
            rc = self.proc.wait(_scaled(timeout))
        except subprocess.TimeoutExpired:
            self.test.fail("%s: QEMU still running after %.0f s (the guest did not power off)"
                           % (self.name, _scaled(timeout)))
        self.exited = time.monotonic()
        if "IVMON-POWEROFF" not in self.log():
            self.test.fail("%s: QEMU exited (rc %d) without the guest powering off" % (self.name, rc))
        if "IVMON-ERROR" in self.log():
            err = [l for l in self.log().splitlines() if "IVMON-ERROR" in l]
            self.test.fail("%s: the guest reported an error: %s" % (self.name, err[0]))
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def seconds(self):
        """Wall seconds from QEMU start to exit (or to now)."""
        end = self.exited or time.monotonic()
        return end - self.started if self.started else 0.0

    def report(self):
        if not self.proc:
            return
        print("---- %s: serial console (last %d lines) of %s" % (self.name, TAIL_LINES, self.serial),
              file=sys.stderr)
        print(_tail(self.serial), file=sys.stderr)
        err = _tail(self.stderr)
        if err != "(empty)":
            print("---- %s: QEMU stderr\n%s" % (self.name, err), file=sys.stderr)


class Watch:
    """ivmon-watch --json --stats [ARGS] URI..., events to workdir/NAME.jsonl."""

    def __init__(self, test, binary, uris, args=(), name="watch"):
        self.test = test
        self.binary = binary
        self.uris = list(uris)
        self.args = list(args)
        self.name = name
        self.out = os.path.join(test.workdir, name + ".jsonl")
        self.err = os.path.join(test.workdir, name + ".stderr")
        self.proc = None
        self.stats = {}
        _reporters.append(self.report)

    def start(self):
        cmd = [self.binary, "--json", "--stats"] + self.args + self.uris
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.out, "wb"),
                                     stderr=open(self.err, "wb"))
        _processes.append(self.proc)
        return self

    def events(self):
        """Every JSON object printed so far (complete lines only)."""
        evs = []
        with open(self.out, "rb") as f:
            data = f.read()
        for line in data.split(b"\n")[:-1]:
            try:
                evs.append(json.loads(line))
            except ValueError:
                self.test.fail("%s printed a line that is not JSON: %r" % (self.name, line[:200]))
        return evs

    def wait_for(self, pred, what, timeout):
        """Waits until pred(events) is true; fails naming what on timeout or if the watcher
        exits first. Returns the events."""
        deadline = time.monotonic() + _scaled(timeout)
        while True:
            evs = self.events()
            if pred(evs):
                return evs
            if self.proc.poll() is not None:
                self.test.fail("%s exited (rc %s) while waiting for %s" % (self.name, self.proc.returncode, what))
            if time.monotonic() > deadline:
                self.test.fail("%s: timed out after %.0f s waiting for %s" % (self.name, _scaled(timeout), what))
            time.sleep(0.05)

    def wait_seq(self, seq, timeout):
        """Waits until a record with sequence number >= seq was printed (needs --verbose for the
        heartbeats)."""
        return self.wait_for(lambda evs: any(e.get("seq", 0) >= seq for e in evs),
                             "a record with seq >= %d" % seq, timeout)

    def stop(self, expect_rc=0):
        """SIGTERM, wait, parse the --stats lines. Returns {source: stats}; fails on an
        unexpected exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(_scaled(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.test.fail("%s did not stop on SIGTERM within 10 s" % self.name)
        self.stats = {}
        with open(self.err, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                if line.startswith("{"):
                    obj = json.loads(line)
                    if obj.get("type") == "stats":
                        self.stats[obj["source"]] = obj
        if expect_rc is not None and rc != expect_rc:
            self.test.fail("%s exited with %d, expected %d" % (self.name, rc, expect_rc))
        return self.stats

    def kill(self):
        """SIGKILL, as a crashing monitor: no stats are printed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def report(self):
        if not self.proc:
            return
        print("---- %s: stderr (last %d lines) of %s" % (self.name, TAIL_LINES, self.err), file=sys.stderr)
        print(_tail(self.err), file=sys.stderr)
        print("---- %s: last events of %s" % (self.name, self.out), file=sys.stderr)
        print(_tail(self.out, 10), file=sys.stderr)


class Test:
    """One test run: a clean work directory and the things created in it."""

    def __init__(self, name, workdir):
        if os.geteuid() != 0:
            raise Failure("the VM tests need root (fanotify in the guest is fine, but /dev/shm "
                          "files, QEMU and the monitor run here as root)")
        self.name = name
        self.workdir = os.path.abspath(workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.workdir)
        self.t0 = time.monotonic()

    def fail(self, msg):
        raise Failure(msg)

    def image(self, agent, outdir=None):
        return Image.build(agent, outdir or os.path.join(os.path.dirname(self.workdir), "guest-image"))

    def shm_file(self, tag, size=4 << 20):
        """A zeroed file in /dev/shm for QEMU's memory-backend-file, removed at exit."""
        path = "/dev/shm/ivmon-vm-%s-%d-%s" % (self.name, os.getpid(), tag)
        for p in (path, path + ".sock"):
            if os.path.exists(p):
                os.unlink(p)
        with open(path, "wb") as f:
            f.truncate(size)
        _files.extend([path, path + ".sock"])
        return path

    def ext4_disk(self, name, size_mb=64):
        _need("mkfs.ext4", "e2fsprogs")
        path = os.path.join(self.workdir, name)
        with open(path, "wb") as f:
            f.truncate(size_mb << 20)
        p = subprocess.run(["mkfs.ext4", "-q", "-F", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            self.fail("mkfs.ext4 %s failed: %s" % (path, p.stdout.decode(errors="replace")))
        return path

    def vm(self, image, **kw):
        return VM(self, image, **kw)

    def watch(self, binary, uris, args=(), name="watch"):
        return Watch(self, binary, uris, args, name)

    def elapsed(self):
        return time.monotonic() - self.t0


class Expect:
    """An expected file event: op, path, comm, and for renames new_path; dir=True demands the
    "dir" flag. Matching also demands that the process was seen alive (no "no_proc" flag)."""

    def __init__(self, op, path, comm, new_path=None, dir=False):
        self.op, self.path, self.comm, self.new_path, self.dir = op, path, comm, new_path, dir

    def matches(self, ev):
        return (ev.get("type") == "file" and ev["op"] == self.op and ev["path"] == self.path and
                ev["comm"] == self.comm and ev.get("new_path") == self.new_path and
                ("dir" in ev.get("flags", [])) == self.dir and "no_proc" not in ev.get("flags", []))

    def __repr__(self):
        s = "%s %s" % (self.op, self.path)
        if self.new_path:
            s += " -> " + self.new_path
        return s + " by %s%s" % (self.comm, " (dir)" if self.dir else "")


def missing_events(events, expected):
    return [x for x in expected if not any(x.matches(e) for e in events)]


def check_events(events, expected):
    """Fails listing every expected event that is not among events, with the file events seen."""
    miss = missing_events(events, expected)
    if miss:
        seen = ["  %s %s%s by %s%s" % (e["op"], e["path"], " -> " + e["new_path"] if e.get("new_path") else "",
                                       e["comm"], " " + ",".join(e["flags"]) if e.get("flags") else "")
                for e in events if e.get("type") == "file"]
        raise Failure("%d expected event(s) missing:\n  %s\nfile events seen (%d):\n%s"
                      % (len(miss), "\n  ".join(map(repr, miss)), len(seen), "\n".join(seen[-60:])))


def check_accounting(stats, **want):
    """Checks the invariant delivered + lost + malformed + missed == seq_span, then each
    counter=value given (e.g. lost=0, restarts=1). Fails with the whole stats line."""
    if not stats:
        raise Failure("no stats line from the monitor")
    total = stats["delivered"] + stats["lost"] + stats["malformed"] + stats["missed"]
    if total != stats["seq_span"]:
        raise Failure("accounting broken: delivered %d + lost %d + malformed %d + missed %d = %d != seq_span %d: %s"
                      % (stats["delivered"], stats["lost"], stats["malformed"], stats["missed"], total,
                         stats["seq_span"], json.dumps(stats)))
    for k, v in want.items():
        if stats.get(k) != v:
            raise Failure("stats: %s is %s, expected %s: %s" % (k, stats.get(k), v, json.dumps(stats)))
    if stats.get("error") is not None:
        raise Failure("the session failed: %s" % stats["error"])


def covered(evs):
    """Sequence numbers printed, and those reported lost (ring_full ranges): for checking that
    every number of a producer was either delivered by one of the monitors or reported lost."""
    seen, lost = set(), set()
    for e in evs:
        seen.add(e["seq"])
        if e["type"] == "lost" and e["reason"] == "ring_full":
            lost.update(range(e["first_seq"], e["last_seq"] + 1))
    return seen, lost


def scripted_expected(bases):
    """The events guest/image/workloads/scripted.sh causes in each watched directory base (the
    two must change together). Every event is checked with its process name."""
    out = []
    for base in bases:
        d = base + "/ivw"
        a, b, x = d + "/a.txt", d + "/b.txt", d + "/busybox-exec"
        out += [
            Expect("create", d, "wl-mkdir", dir=True),
            Expect("create", a, "wl-create"),
            Expect("close_write", a, "wl-create"),
            Expect("open", a, "wl-write"),
            Expect("modify", a, "wl-write"),
            Expect("close_write", a, "wl-write"),
            Expect("attrib", a, "wl-chmod"),
            Expect("rename", a, "wl-rename", new_path=b),
            Expect("delete", b, "wl-delete"),
            Expect("create", x, "wl-copy"),
            Expect("modify", x, "wl-copy"),
            Expect("close_write", x, "wl-copy"),
            Expect("exec", x, "busybox-exec"),
            Expect("delete", x, "wl-delete"),
            Expect("delete", d, "wl-rmdir", dir=True),
        ]
    return out


def wait_listening(t, sock, timeout=10):
    """Waits until the UNIX socket sock exists: a monitor serving ivshmem+doorbell: must listen
    before QEMU starts, or QEMU fails to connect. (The file appears at bind(), right before
    listen(); connecting to find out would make the server count a client.)"""
    deadline = time.monotonic() + _scaled(timeout)
    while True:
        try:
            if stat.S_ISSOCK(os.stat(sock).st_mode):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            t.fail("no socket %s after %.0f s: is the monitor serving it?" % (sock, _scaled(timeout)))
        time.sleep(0.05)


def run_scripted(t, image, watch_bin, uri, devices, params=None, disk=True, timeout=120,
                 listening=None):
    """The scripted workload end to end over one transport, with every check of VM test (a):
    the monitor (ivmon-watch --json --stats --verbose uri) starts first; the guest (devices: the
    transport's QEMU arguments; params: extra kernel parameters) runs guest/image/workloads/
    scripted.sh on /mnt/tmpfs and, with disk, on an ext4 disk, then powers off (listening: a
    UNIX socket the monitor must serve before QEMU starts); every expected
    event must arrive with path, operation and process name, and the accounting must be exact
    with nothing lost (delivered == seq_span == the agent's last sequence number). Returns
    (vm, events, stats)."""
    p = {"ivmon.workload": "scripted", "ivmon.heartbeat": "1"}
    bases = ["/mnt/tmpfs"]
    devs = list(devices)
    if disk:
        p["ivmon.disk"] = "1"
        devs += virtio_disk(t.ext4_disk("disk.img"))
        bases.append("/mnt/ext4")
    p.update(params or {})
    w = t.watch(watch_bin, [uri], args=["--verbose"]).start()
    if listening:
        wait_listening(t, listening)
    vm = t.vm(image, params=p, devices=devs).start()
    vm.wait_for(r"IVMON-READY", timeout=60)
    vm.wait_for(r"IVMON-WORKLOAD-DONE name=scripted rc=0", timeout=timeout)
    vm.wait_exit(timeout=60)
    produced = vm.agent_produced()
    if len(produced) != 1:
        t.fail("expected one agent exit summary on the console, found %d" % len(produced))
    w.wait_seq(produced[0], timeout=20)
    stats = w.stop()
    evs = w.events()
    check_events(evs, scripted_expected(bases))
    st = stats.get(uri)
    check_accounting(st, lost=0, malformed=0, missed=0, restarts=0, first_seq=1,
                     last_seq=produced[0], seq_span=produced[0], delivered=produced[0])
    hellos = [e for e in evs if e["type"] == "hello"]
    if len(hellos) != 1 or hellos[0]["seq"] != 1:
        t.fail("expected exactly one hello, with seq 1: %s" % hellos)
    for e in evs:
        if e.get("source") != uri:
            t.fail("event from the wrong source: %s" % e)
        if e["type"] == "file" and e["op"] == "exec" and e["exe"] != e["path"]:
            t.fail("exec event whose exe is not the executed file: %s" % e)
    seqs = [e["seq"] for e in evs]
    if seqs != list(range(1, produced[0] + 1)):
        t.fail("sequence numbers are not exactly 1..%d in order" % produced[0])
    return vm, evs, st


def _cleanup():
    for p in _processes:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    for fn in reversed(_exit_hooks):
        try:
            fn()
        except Exception as e:  # cleanup goes on; the report says what failed
            print("cleanup: %s" % e, file=sys.stderr)
    for f in _files:
        try:
            os.unlink(f)
        except OSError:
            pass


def main_cases(prefix, cases, setup=None):
    """The command line of every tests/vm/test_*.py: --case CASE --agent PATH --watch PATH
    --workdir DIR [--image-dir DIR]. Builds (or finds) the guest image, runs setup(t) if given,
    then cases[CASE](t, args, image), all under run()."""
    def main():
        ap = argparse.ArgumentParser()
        ap.add_argument("--case", required=True, choices=sorted(cases))
        ap.add_argument("--agent", required=True)
        ap.add_argument("--watch", required=True)
        ap.add_argument("--workdir", required=True)
        ap.add_argument("--image-dir")
        a = ap.parse_args()
        t = Test(prefix + "-" + a.case, a.workdir)
        img = t.image(a.agent, a.image_dir)
        if setup:
            setup(t)
        cases[a.case](t, a, img)
    run(main)


def run(main):
    """Runs main(); on Failure prints it and every log tail, exits 1. Always cleans up."""
    t0 = time.monotonic()
    rc = 0
    try:
        main()
        print("PASS (%.1f s)" % (time.monotonic() - t0))
    except Failure as e:
        print("FAIL: %s" % e, file=sys.stderr)
        for r in _reporters:
            r()
        rc = 1
    except BaseException:
        for r in _reporters:
            r()
        raise
    finally:
        _cleanup()
    sys.exit(rc)
