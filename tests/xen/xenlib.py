# SPDX-License-Identifier: MIT
"""xenlib: boot Xen 4.17 under QEMU with a PV dom0 that runs a script, and read its results back.
Used by tests/xen/test_xen.py (CTest label xen) and bench/xen/run.py. Builds on tests/vm/vmlib.py
(Failure, the guest image, process cleanup, failure reports).

    import xenlib
    x = xenlib.XenRun(test, agent, watch, run_script, adds=[...], guest_adds=[...])
                                                 # builds (cached) images; adds: more programs
                                                 # for dom0, guest_adds: for the guest
    x.boot(dom0_args="xt.vcpu=1", timeout=600)   # waits for XT-DONE on the serial console
    x.markers("HOSTILE")                         # [{k: v}, ...] of "XT-HOSTILE k=v ..." lines
    x.guest_crash()                              # a guest kernel's crash under emulation, or None
    x.keep_boot(n)                               # keeps this boot's logs before the next boot
    x.boot_sound("...", timeout=600, boots=10)   # boot, keep_boot, boot... until no guest_crash()
    x.result("w1.jsonl")                         # bytes of a file dom0 left in /results

What is measured on this project's machines (labs/README.md): a PVH guest needs
tsc_mode="native" (dom0-run.sh writes it); in QEMU's multiboot -initrd, a comma inside a
module's command line is written ",,". The CPU model is `qemu64,+svm,+npt`, not `-cpu max`:
under QEMU 7.2's TCG with `-cpu max` (which adds XSAVE, AVX and AVX2), vector registers leak
between contexts -- a checker that loads xmm/ymm registers, spins and reads them back saw other
processes' data in them in 35 of 60 rounds in dom0, and processes in dom0 and in the guests
died at random (SIGSEGV, "malloc(): invalid size") --, and every PVH guest started while
another guest ran triple-faulted in early boot. Xen's `spec-ctrl=eager-fpu` cured the
registers but not the triple faults. With `qemu64,+svm,+npt` the registers stay clean (checkers
in dom0 and in three guests booted 4 s apart) and no `smap=0` is needed, but PVH guests still
triple-faulted now and then under multi-threaded TCG (in the kernel's PIT calibration loop
while its vm_event monitor was being enabled, at a process's first SSE instruction, right after
xen+vcpu's `vmmcall`). Single-threaded TCG (`thread=single`) ended those; what is left is a
guest kernel that now and then takes an interrupt with interrupts off and panics (a wrong GS
base) or hangs (a spin on a seqcount or a lock), in 6 of 16 boots, also with every domain
pinned to a CPU of its own (dom0_vcpus_pin, 3 CPUs; kept: the boots are faster so).
guest_crash() recognises such a boot; test_xen.py boots again then, a
bounded number of times (docs/XEN.md, "Under QEMU"). Xen also runs with `spec-ctrl=eager-fpu`
(no lazy FPU switching, no #NM intercepts), and dom0-run.sh boots the PVH guest alone and
starts its monitor once its kernel is up.
"""
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
import vmlib  # noqa: E402

XEN_ARGS = ("console=com1 com1=115200,8n1 dom0_mem=768M,max:768M dom0_max_vcpus=1 dom0_vcpus_pin loglvl=all "
            "guest_loglvl=all noreboot spec-ctrl=eager-fpu")
CPU = "qemu64,+svm,+npt"  # SVM with nested paging for PVH; see above for why not "max"
TCG = "tcg,thread=single"  # see above for why not thread=multi
GUEST_MODULES = "xen-evtchn xen-gntalloc xen-privcmd"
RESULTS_MB = 64


class XenRun:
    """One Xen boot: images in workdir/../xen-image (cached by their own scripts), the serial
    log and the results in workdir."""

    def __init__(self, test, agent, watch, run_script, adds=(), guest_adds=()):
        self.test = test
        self.workdir = test.workdir
        vmlib._need(vmlib.QEMU, "qemu-system-x86")
        base = os.path.dirname(self.workdir)
        extra = ["--modules", GUEST_MODULES]
        for a in guest_adds:
            extra += ["--add", a]
        self.image = vmlib.Image.build(agent, os.path.join(base, "xen-guest-image"), extra)
        self.imgdir = os.path.join(base, "xen-image")
        cmd = [os.path.join(HERE, "xen-image.sh"), "--guest-env",
               os.path.join(base, "xen-guest-image", "image.env"), "--watch", watch,
               "--run", run_script]
        for a in adds:
            cmd += ["--add", a]
        cmd.append(self.imgdir)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise vmlib.Failure("the Xen image build failed (%s):\n%s"
                                % (" ".join(cmd), p.stderr.decode(errors="replace")))
        self.serial = os.path.join(self.workdir, "serial.log")
        self.disk = os.path.join(self.workdir, "results.img")
        self.proc = None
        self.seconds = 0.0
        self._results = None
        vmlib._reporters.append(self.report)

    def command(self, dom0_args):
        dom0 = "console=hvc0 earlyprintk=xen " + dom0_args
        return [vmlib.QEMU, "-accel", TCG, "-machine", "pc", "-cpu", CPU,
                "-smp", "3", "-m", "2048", "-nographic", "-monitor", "none", "-no-reboot",
                "-nic", "none", "-serial", "file:" + self.serial,
                "-kernel", os.path.join(self.imgdir, "xen"), "-append", XEN_ARGS,
                "-initrd", "%s %s,%s" % (os.path.join(self.imgdir, "vmlinuz"), dom0.replace(",", ",,"),
                                          os.path.join(self.imgdir, "dom0.cpio.gz")),
                "-drive", "file=%s,if=virtio,format=raw" % self.disk]

    def log(self):
        try:
            with open(self.serial, "rb") as f:
                return f.read().decode("utf-8", "replace").replace("\r", "")
        except OSError:
            return ""

    def boot(self, dom0_args="", timeout=600):
        """Boots, waits for XT-DONE (or QEMU exiting, a panic, the timeout). Fails loudly."""
        with open(self.disk, "wb") as f:
            f.truncate(RESULTS_MB << 20)
        cmd = self.command(dom0_args)
        with open(os.path.join(self.workdir, "qemu.cmdline"), "w") as f:
            f.write(" ".join(cmd) + "\n")
        open(self.serial, "wb").close()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.workdir, "qemu.stderr"), "wb"))
        vmlib._processes.append(self.proc)
        deadline = t0 + vmlib._scaled(timeout)
        while True:
            text = self.log()
            if "XT-DONE" in text:
                break
            for bad in ("Kernel panic", "Panic on CPU", "Hardware Dom0 crashed", "Manual reset required"):
                if bad in text:
                    self.test.fail("Xen or dom0 crashed (%s)" % bad)
            if self.proc.poll() is not None:
                self.test.fail("QEMU exited (rc %s) before dom0 printed XT-DONE" % self.proc.returncode)
            if time.monotonic() > deadline:
                self.test.fail("timed out after %.0f s waiting for XT-DONE" % vmlib._scaled(timeout))
            time.sleep(0.2)
        try:
            self.proc.wait(vmlib._scaled(60))
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.seconds = time.monotonic() - t0
        with open(self.disk, "rb") as f:
            data = f.read()
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                self._results = {m.name.lstrip("./"): tf.extractfile(m).read()
                                 for m in tf.getmembers() if m.isfile()}
        except tarfile.TarError as e:
            self.test.fail("dom0 left no readable results on its disk: %s" % e)
        outdir = os.path.join(self.workdir, "results")
        os.makedirs(outdir, exist_ok=True)
        for name, body in self._results.items():
            with open(os.path.join(outdir, name), "wb") as f:
                f.write(body)
        return self

    def markers(self, word):
        out = []
        for m in re.finditer(r"XT-%s\b(.*)" % re.escape(word), self.log()):
            out.append(dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv))
        return out

    def guest_crash(self):
        """What shows that a guest's kernel crashed in this boot (its console, or Xen's log),
        or None. Under QEMU's emulation of nested SVM a PVH guest's kernel now and then gets an
        interrupt where it has them off: it finds its GS base wrong and panics, or spins for good
        on a seqcount the interrupt broke into (dom0-run.sh's kernel_hung; docs/XEN.md, "Under
        QEMU"): nothing any program in the guest or in dom0 can cause."""
        for name in sorted(self._results or {}):
            text = self.text(name)
            if name.startswith("guest-hung-"):
                return "%s: %s" % (name, text.strip())
            if name.startswith("console-"):
                for l in text.splitlines():
                    if "Kernel panic" in l or "stack guard page was hit" in l:
                        return "%s: %s" % (name, l.strip())
            if name == "xl-dmesg.log":
                for l in text.splitlines():
                    if "Triple fault" in l:
                        return "%s: %s" % (name, l.strip())
        return None

    def keep_boot(self, n):
        """Keeps this boot's serial log and results as serial-bootN.log and results-bootN."""
        os.replace(self.serial, os.path.join(self.workdir, "serial-boot%d.log" % n))
        kept = os.path.join(self.workdir, "results-boot%d" % n)
        shutil.rmtree(kept, ignore_errors=True)
        os.replace(os.path.join(self.workdir, "results"), kept)

    def boot_sound(self, dom0_args, timeout, boots):
        """Boots until a boot has no guest_crash(), keeping each broken boot's logs, boots times
        at most (then fails). Returns the number of the sound boot. A guest kernel's crash under
        emulation says nothing of libivmon, so such a boot is said loudly and done again; any
        other failure fails at once (in boot() or in the caller's checks)."""
        for n in range(1, boots + 1):
            self.boot(dom0_args, timeout=timeout)
            crash = self.guest_crash()
            if not crash:
                return n
            self.keep_boot(n)
            if n == boots:
                break
            print("%s: boot %d of %d at most: a guest kernel crashed or hung under QEMU's emulation, "
                  "so this boot proves nothing either way; booting again (its logs: %s/results-boot%d): %s"
                  % (self.test.name, n, boots, self.workdir, n, crash), file=sys.stderr)
        self.test.fail("a guest kernel crashed or hung under emulation in each of %d boots; the last: %s"
                       % (boots, crash))

    def errors(self):
        return [l for l in self.log().splitlines() if "XT-ERROR" in l]

    def result(self, name, default=None):
        if name not in self._results:
            if default is not None:
                return default
            self.test.fail("dom0 left no %s in its results (have: %s)" % (name, sorted(self._results)))
        return self._results[name]

    def text(self, name, default=None):
        return self.result(name, default).decode("utf-8", "replace")

    def events(self, name):
        import json
        out = []
        for line in self.result(name).split(b"\n"):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    self.test.fail("%s holds a line that is not JSON: %r" % (name, line[:200]))
        return out

    def stats(self, name):
        """{source: stats} from an ivmon-watch --stats stderr file."""
        import json
        out = {}
        for line in self.text(name).splitlines():
            if line.startswith("{"):
                obj = json.loads(line)
                if obj.get("type") == "stats":
                    out[obj["source"]] = obj
        return out

    def report(self):
        if not self.proc:
            return
        print("---- Xen serial console (last %d lines) of %s" % (vmlib.TAIL_LINES, self.serial), file=sys.stderr)
        print(vmlib._tail(self.serial), file=sys.stderr)
