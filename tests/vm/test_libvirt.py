#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""VM tests through libvirt (host URI libvirt:DOMAIN), with a libvirtd this test starts when
none runs (virtlogd -d; libvirtd -d: there is no systemd here), the real QEMU it spawns, the real
Debian guest kernel and the real agent:

  restart    (c) a domain with an ivshmem-plain <shmem>, defined by the test and watched by name
             before it starts. It runs the scripted workload (tmpfs and an ext4 disk) and
             powers off; the session stays
             open, and when the domain is started again it re-attaches (reattaches 1) and the
             second run's agent is a new producer instance (restarts 1). Every expected event of
             both runs arrives with path, operation and process name, nothing lost, exact
             accounting. Also: a domain without <shmem> and a domain that does not exist fail at
             open with -ENODEV and a message that names the fix.
  doorbell   a domain with an ivshmem-doorbell <shmem> and <server path=...>: the library serves
             the socket QEMU connects to, and the guest's doorbell wakes the monitor.

    test_libvirt.py --case CASE --agent PATH --watch PATH --workdir DIR [--image-dir DIR]
"""
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmlib  # noqa: E402

CONNECT = "qemu:///system"
SOCKET = "/var/run/libvirt/libvirt-sock"
QEMU_USER = "libvirt-qemu"


def virsh(t, *args, check=True):
    p = subprocess.run(["virsh", "-q", "-c", CONNECT] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = p.stdout.decode(errors="replace")
    if check and p.returncode != 0:
        t.fail("virsh %s failed (%d): %s" % (" ".join(args), p.returncode, out.strip()))
    return out


def kvm_device_as_udev_leaves_it():
    """Debian's udev rules give /dev/kvm to group kvm, mode 0660, and libvirt-qemu is in that
    group. Where udev does not run (containers, CI) the node stays root's, 0600, and libvirt 9.0
    then re-probes every QEMU binary's capabilities (20-40 s each under TCG) on nearly every call:
    its probe saw KVM, and its cache check, made as libvirt-qemu, does not ("KVM was enabled when
    probing ..., but it is not available now"). Do what udev would have done."""
    try:
        st = os.stat("/dev/kvm")
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except (OSError, KeyError):
        return
    if st.st_uid == 0 and st.st_gid == 0 and (st.st_mode & 0o777) == 0o600:
        os.chown("/dev/kvm", 0, kvm_gid)
        os.chmod("/dev/kvm", 0o660)


def start_libvirtd(t):
    """Starts virtlogd and libvirtd unless they run; stops at exit what it started."""
    kvm_device_as_udev_leaves_it()
    for cmd, pkg in (("virsh", "libvirt-clients"), ("libvirtd", "libvirt-daemon-system"),
                     ("virtlogd", "libvirt-daemon-system")):
        vmlib._need(cmd, pkg)
    started = []
    for d in ("virtlogd", "libvirtd"):
        if subprocess.run(["pgrep", "-x", d], stdout=subprocess.DEVNULL).returncode != 0:
            p = subprocess.run([d, "-d"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode != 0:
                t.fail("%s -d failed: %s" % (d, p.stdout.decode(errors="replace")))
            started.append(d)
    # The first answer after a start can take a while: libvirtd probes each QEMU binary's
    # capabilities when its cache is stale (20-40 s each under TCG on these machines).
    deadline = time.monotonic() + vmlib._scaled(180)
    while subprocess.run(["virsh", "-c", CONNECT, "version"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL).returncode != 0:
        if time.monotonic() > deadline:
            t.fail("libvirtd does not answer on %s after %.0f s" % (SOCKET, vmlib._scaled(180)))
        time.sleep(0.2)
    if started:
        vmlib.at_exit(lambda: stop_daemons(reversed(started)))
    return started


def stop_daemons(names):
    """SIGTERM, then wait until each is gone: a daemon still shutting down when the next test
    looks would count as running and then vanish."""
    for d in names:
        subprocess.run(["pkill", "-x", d])
        deadline = time.monotonic() + 30
        while subprocess.run(["pgrep", "-x", d], stdout=subprocess.DEVNULL).returncode == 0:
            if time.monotonic() > deadline:
                subprocess.run(["pkill", "-9", "-x", d])
                break
            time.sleep(0.1)


class Domain:
    """A persistent libvirt domain booting the guest image, undefined (and its ring file
    removed) at exit."""

    def __init__(self, t, img, name, params, devices_xml):
        self.t, self.name = t, name
        self.serial = os.path.join(t.workdir, name + ".serial")
        cmdline = "console=ttyS0 quiet panic=-1 " + " ".join("%s=%s" % kv for kv in params.items())
        xml = """<domain type='qemu'>
  <name>%(name)s</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%(kernel)s</kernel>
    <initrd>%(initrd)s</initrd>
    <cmdline>%(cmdline)s</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>%(qemu)s</emulator>
    <serial type='file'><source path='%(serial)s' append='on'/><target port='0'/></serial>
    %(devices)s
    <memballoon model='none'/>
  </devices>
</domain>
""" % {"name": name, "kernel": img.vmlinux, "initrd": img.initrd, "cmdline": cmdline,
       "qemu": shutil.which(vmlib.QEMU) or vmlib.QEMU, "serial": self.serial, "devices": devices_xml}
        path = os.path.join(t.workdir, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        virsh(t, "destroy", name, check=False)
        virsh(t, "undefine", name, check=False)
        virsh(t, "define", path)
        vmlib.at_exit(self.remove)

    def remove(self):
        subprocess.run(["virsh", "-q", "-c", CONNECT, "destroy", self.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["virsh", "-q", "-c", CONNECT, "undefine", self.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def start(self):
        virsh(self.t, "start", self.name)

    def state(self):
        return virsh(self.t, "domstate", self.name).strip()

    def wait_off(self, timeout):
        deadline = time.monotonic() + vmlib._scaled(timeout)
        while self.state() != "shut off":
            if time.monotonic() > deadline:
                self.t.fail("domain %s still '%s' after %.0f s; console:\n%s"
                            % (self.name, self.state(), vmlib._scaled(timeout), vmlib._tail(self.serial)))
            time.sleep(0.2)

    def console(self):
        with open(self.serial, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\r", "")

    def produced(self):
        """The last sequence number of every agent that exited cleanly, in order."""
        return [int(m.group(1)) for m in re.finditer(r"ivmon-agent: produced (\d+),", self.console())]

    def wait_console(self, pattern, count, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + vmlib._scaled(timeout)
        while True:
            try:
                n = sum(1 for l in self.console().splitlines() if rx.search(l))
            except OSError:
                n = 0
            if n >= count:
                return
            if time.monotonic() > deadline:
                self.t.fail("domain %s: %d x %r not on the console after %.0f s:\n%s"
                            % (self.name, count, pattern, vmlib._scaled(timeout), vmlib._tail(self.serial)))
            time.sleep(0.1)


def run_done(evs, run, last_seq):
    """True once the run-th agent instance's record last_seq was printed."""
    hellos = [i for i, e in enumerate(evs) if e["type"] == "hello"]
    return len(hellos) >= run and any(e["seq"] == last_seq for e in evs[hellos[run - 1]:])


def unique(t, what):
    return "ivmon-%s-%d" % (what, os.getpid())


def check_open_errors(t, a, img):
    """A domain without <shmem> and a missing domain: -ENODEV at open, with the fix named."""
    bare = Domain(t, img, unique(t, "bare"), {}, "")
    for target, want in ((bare.name, "<shmem name="), (unique(t, "missing"), "")):
        p = subprocess.run([a.watch, "--count", "1", "libvirt:%s?connect=%s" % (target, CONNECT)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        err = p.stderr.decode(errors="replace")
        # ivmon-watch: exit status 2 when a session cannot be opened; "no such target" is
        # ivmon_strerror(-ENODEV).
        if p.returncode != 2 or "no such target" not in err or want not in err:
            t.fail("ivmon-watch libvirt:%s: expected exit 2 with -ENODEV%s, got %d: %s"
                   % (target, " naming " + want if want else "", p.returncode, err.strip()))
    bare.remove()


SCRIPTED_BASES = ["/mnt/tmpfs", "/mnt/ext4"]


def scripted_params():
    return {"ivmon.workload": "scripted", "ivmon.heartbeat": "1", "ivmon.disk": "1"}


def ext4_disk_xml(t):
    """An ext4 disk for the scripted workload's second directory (the guest's /dev/vda); libvirt
    gives the file to libvirt-qemu while the domain runs."""
    return ("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>"
            "<target dev='vda' bus='virtio'/></disk>" % t.ext4_disk("disk.img"))


def case_restart(t, a, img):
    check_open_errors(t, a, img)
    name = unique(t, "plain")
    shm = "/dev/shm/" + name
    vmlib.remove_at_exit(shm)
    dom = Domain(t, img, name, scripted_params(), ext4_disk_xml(t) +
                 "<shmem name='%s'><model type='ivshmem-plain'/><size unit='M'>4</size></shmem>" % name)
    uri = "libvirt:%s?connect=%s&poll_ms=5" % (name, CONNECT)
    w = t.watch(a.watch, [uri], args=["--verbose"]).start()
    time.sleep(0.5)  # the session opens on a stopped domain and waits for it
    for run in (1, 2):
        dom.start()
        dom.wait_console(r"IVMON-WORKLOAD-DONE name=scripted rc=0", run, 120)
        dom.wait_off(60)
        last = dom.produced()
        if len(last) != run:
            t.fail("expected %d agent exit summaries on the console, found %d" % (run, len(last)))
        w.wait_for(lambda evs: run_done(evs, run, last[-1]), "run %d's last record (seq %d)" % (run, last[-1]), 30)
    stats = w.stop()[uri]
    evs = w.events()
    vmlib.check_accounting(stats, lost=0, malformed=0, missed=0, restarts=1, reattaches=1)
    hellos = [i for i, e in enumerate(evs) if e["type"] == "hello"]
    if len(hellos) != 2 or evs[hellos[0]]["boot_id"] == evs[hellos[1]]["boot_id"]:
        t.fail("expected two hellos from two boots: %s" % [evs[i] for i in hellos])
    for lo, hi in ((hellos[0], hellos[1]), (hellos[1], len(evs))):
        vmlib.check_events(evs[lo:hi], vmlib.scripted_expected(SCRIPTED_BASES))
        seqs = [e["seq"] for e in evs[lo:hi]]
        if seqs != list(range(1, len(seqs) + 1)):
            t.fail("a run's sequence numbers are not 1..%d: %s" % (len(seqs), seqs))
    if any(e.get("source") != uri for e in evs):
        t.fail("an event with the wrong source")
    print("restart: two runs of domain %s, %d + %d records, delivered %d, reattaches %d, restarts %d"
          % (name, hellos[1], len(evs) - hellos[1], stats["delivered"], stats["reattaches"], stats["restarts"]))


def case_doorbell(t, a, img):
    name = unique(t, "db")
    sock_dir = os.path.join(t.workdir, "sock")
    os.makedirs(sock_dir)
    sock = os.path.join(sock_dir, "ivshmem.sock")
    # QEMU runs as libvirt-qemu: it must reach the socket (the directories on the way too).
    qemu = pwd.getpwnam(QEMU_USER)
    os.chown(sock_dir, qemu.pw_uid, qemu.pw_gid)
    dom = Domain(t, img, name, scripted_params(), ext4_disk_xml(t) +
                 "<shmem name='%s'><model type='ivshmem-doorbell'/><server path='%s'/>"
                 "<msi vectors='1' ioeventfd='on'/></shmem>" % (name, sock))
    uri = "libvirt:%s?connect=%s" % (name, CONNECT)
    w = t.watch(a.watch, [uri], args=["--verbose"]).start()
    vmlib.wait_listening(t, sock)
    os.chown(sock, qemu.pw_uid, qemu.pw_gid)
    dom.start()
    dom.wait_console(r"IVMON-WORKLOAD-DONE name=scripted rc=0", 1, 120)
    dom.wait_off(60)
    last = dom.produced()
    if len(last) != 1:
        t.fail("expected one agent exit summary on the console, found %d" % len(last))
    w.wait_for(lambda evs: run_done(evs, 1, last[0]), "the last record (seq %d)" % last[0], 30)
    stats = w.stop()[uri]
    evs = w.events()
    vmlib.check_accounting(stats, lost=0, malformed=0, missed=0, restarts=0)
    vmlib.check_events(evs, vmlib.scripted_expected(SCRIPTED_BASES))
    if stats["wakeups"] < 1:
        t.fail("the monitor was never woken by the guest's doorbell: %s" % stats)
    print("doorbell: domain %s, %d records, %d wakeups" % (name, stats["delivered"], stats["wakeups"]))


CASES = {"restart": case_restart, "doorbell": case_doorbell}


if __name__ == "__main__":
    vmlib.main_cases("libvirt", CASES, setup=start_libvirtd)
