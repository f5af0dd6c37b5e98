#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_vm.py: the VM bench, guest to host through QEMU: ivshmem with doorbell against
virtio-serial, the same producer on both. bench/vm/run.sh builds what it needs and calls this;
run that, not this.

    bench_vm.py --host-bin PATH --agent PATH --clocksync PATH --image-dir DIR --workdir DIR
                [--reps N] [--count N] [--lat-count N] [--rate N] [--batch N] [--sizes A,B]
                [--results FILE] [--command TEXT]

One boot of the guest image (tests/vm/vmlib.py, scripts/guest-image.sh) with three devices: an
ivshmem-doorbell served by the library (ivmon-bench-vm-host opens ivshmem+doorbell:), an
ivshmem-plain clock page, and a virtio-serial port whose chardev socket ivmon-bench-vm-host reads.
The guest workload (guest/image/workloads/bench-vm.sh) runs ivmon-produce on both channels in
turn; this script matches the guest's runs with the host's, checks that every run delivered every
record with exact accounting, computes the figures, and replaces the section "vm-ivshmem-virtio-
serial" of bench/results.md (bench/results_section.py). A run that lost, rejected or missed a
record, or any failure, leaves results.md alone and exits 1.
"""
import argparse
import datetime
import json
import os
import platform
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "vm"))
sys.path.insert(0, os.path.dirname(HERE))
import vmlib  # noqa: E402
import results_section  # noqa: E402

SECTION = "vm-ivshmem-virtio-serial"
PORT = "org.ivmon.bench"
RING_PCI, CLOCK_PCI = "0000:00:04.0", "0000:00:05.0"
CHANNELS = ("ivshmem", "vser")
# A latency run counts only if the clock sync around it is this good: worse means the host's
# clock thread could not run beside the vCPU (another busy process), and the offset is unknown.
SYNC_OK_US = 1.0
LABEL = {
    ("ivshmem", "tput"): "ivshmem + doorbell, one emit per record",
    ("vser", "tput"): "virtio-serial, a write() per record",
    ("ivshmem", "batch"): "ivshmem + doorbell, batched publish",
    ("vser", "batch"): "virtio-serial, one write() per batch",
}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def median(values):
    """The median (for an even count, the upper middle value, as bench/run.sh does)."""
    v = sorted(values)
    return v[len(v) // 2]


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


# ---- running it ---------------------------------------------------------------------------------

def boot_and_run(t, a):
    img = vmlib.Image.build(a.agent, a.image_dir, ["--add", a.clocksync])
    out = os.path.join(t.workdir, "host")
    os.makedirs(out)
    db_sock = os.path.join(t.workdir, "doorbell.sock")
    vser_sock = os.path.join(t.workdir, "vser.sock")
    clock = "/dev/shm/ivmon-bench-vm-%d-clock" % os.getpid()
    vmlib.remove_at_exit(clock)
    err = open(os.path.join(t.workdir, "host.stderr"), "wb")
    host = subprocess.Popen([a.host_bin, "--doorbell", db_sock, "--vser", vser_sock, "--clock", clock,
                             "--out", out, "--samples", str(max(a.lat_count, 1000))],
                            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    vmlib.at_exit(lambda: host.poll() is None and host.kill())
    vmlib.wait_listening(t, db_sock)
    args = [a.reps, a.count, a.lat_count, a.rate, a.batch, "/".join(map(str, a.sizes)), RING_PCI,
            CLOCK_PCI, PORT]
    devices = [
        # Thread names ("CPU 0/TCG"): the host tells the vCPU threads' CPU time from the rest.
        "-name", "ivmon-bench,debug-threads=on",
        "-chardev", "socket,path=%s,id=ivsh" % db_sock,
        "-device", "ivshmem-doorbell,chardev=ivsh,vectors=1,addr=0x4",
        "-object", "memory-backend-file,id=clk,share=on,mem-path=%s,size=65536" % clock,
        "-device", "ivshmem-plain,memdev=clk,addr=0x5",
        "-device", "virtio-serial-pci,addr=0x6",
        "-chardev", "socket,id=vs,path=%s,server=on,wait=off" % vser_sock,
        "-device", "virtserialport,chardev=vs,name=%s" % PORT,
    ]
    vm = t.vm(img, params={"ivmon.agent": "0", "ivmon.workload": "bench-vm",
                           "ivmon.args": ",".join(map(str, args))}, devices=devices)
    load_before = loadavg()
    vm.start()
    vm.wait_for(r"IVMON-WORKLOAD-START name=bench-vm", timeout=60)
    vm.wait_for(r"IVMON-WORKLOAD-DONE name=bench-vm rc=0", timeout=3600)
    load_after = loadavg()
    vm.wait_exit(timeout=60)
    try:
        rc = host.wait(30)
    except subprocess.TimeoutExpired:
        t.fail("ivmon-bench-vm-host did not stop when QEMU closed the virtio-serial connection")
    if rc != 0:
        t.fail("ivmon-bench-vm-host exited with %d (see %s)" % (rc, err.name))
    with open(os.path.join(out, "runs.jsonl")) as f:
        host_runs = [json.loads(line) for line in f]
    return img, vm, host_runs, load_before, load_after


# ---- matching and checking ----------------------------------------------------------------------

def guest_events(vm):
    """The guest's RUN and SYNC markers, in order: [("RUN", dict) or ("SYNC", dict)]."""
    evs = []
    for m in vm.lines(r"IVMON-BENCH-(RUN|SYNC) (.*)$"):
        d = dict(kv.split("=", 1) for kv in m.group(2).split() if "=" in kv)
        if m.group(1) == "RUN":
            d["produce"] = json.loads(d.pop("json"))
            d["size"], d["rep"] = int(d["size"]), int(d["rep"])
        else:
            d = {k: int(v) for k, v in d.items() if k != "uptime"}
        evs.append((m.group(1), d))
    return evs


def match_runs(t, evs, host_runs):
    """Pairs each guest run with the host's run of the same order on its channel, checks both
    sides' counts and the accounting, and attaches the syncs around latency runs."""
    by_chan = {c: [r for r in host_runs if r["channel"] == c] for c in CHANNELS}
    taken = {c: 0 for c in CHANNELS}
    runs = []
    for i, (kind, g) in enumerate(evs):
        if kind != "RUN":
            continue
        ch = g["ch"]
        if ch == "none":  # the producer's baseline: no transport, nothing for the host to see
            runs.append(dict(g, host=None, what="encode only %d B" % g["size"]))
            continue
        if taken[ch] >= len(by_chan[ch]):
            t.fail("the guest ran more %s runs than the host saw (%d)" % (ch, len(by_chan[ch])))
        h = by_chan[ch][taken[ch]]
        taken[ch] += 1
        p = g["produce"]
        what = "%s %s %d B rep %d" % (g["kind"], ch, g["size"], g["rep"])
        # Exact accounting per run: the HELLO is counted before the handler that opens the run
        # sees it, so the run's own deliveries are the file records and the final heartbeat.
        if (h["file_records"] != p["file_records"] or h["last_seq"] != p["produced"] or
                h["delivered"] != p["produced"] - 1 or p["dropped"] or
                h["lost"] or h["malformed"] or h["missed"]):
            t.fail("%s: the host did not get exactly what the guest sent: guest %s, host %s"
                   % (what, p, h))
        if h["bytes"] != (p["produced"] - 1 - p["file_records"]) * 40 + p["file_records"] * g["size"]:
            t.fail("%s: %d bytes arrived, not %d-byte records" % (what, h["bytes"], g["size"]))
        run = dict(g, host=h, what=what)
        if g["kind"] == "lat":
            if i == 0 or i + 1 >= len(evs) or evs[i - 1][0] != "SYNC" or evs[i + 1][0] != "SYNC":
                t.fail("%s: not between two clock syncs" % what)
            run["sync"] = (evs[i - 1][1], evs[i + 1][1])
        runs.append(run)
    for c in CHANNELS:
        if taken[c] != len(by_chan[c]):
            t.fail("the host saw %d %s runs, the guest reported %d" % (len(by_chan[c]), c, taken[c]))
    return runs


# ---- figures ------------------------------------------------------------------------------------

def latencies(run):
    """Microseconds from the record's guest time stamp to its host callback, with the clock
    offset interpolated between the syncs before and after the run (guest clocks drift)."""
    a, b = run["sync"]
    span = b["at_ns"] - a["at_ns"]
    with open(run["host"]["samples"], "rb") as f:
        data = f.read()
    n = len(data) // 16
    vals = struct.unpack("<%dq" % (2 * n), data[:16 * n])
    out = []
    for k in range(n):
        g, h = vals[2 * k], vals[2 * k + 1]
        off = a["offset_ns"] + (b["offset_ns"] - a["offset_ns"]) * (g - a["at_ns"]) / span
        out.append((h - (g + off)) / 1000.0)
    out.sort()
    return out


def figures(run):
    h, p = run["host"], run["produce"]
    n = p["file_records"]
    if h is None:
        return {"guest_us": p["cpu_ns"] / n / 1000.0, "guest_rate": n / (p["elapsed_ns"] / 1e9)}
    f = {
        "rate": (n - 1) / ((h["last_ns"] - h["first_ns"]) / 1e9),
        "guest_us": p["cpu_ns"] / n / 1000.0,
        "qemu_us": h["qemu_cpu_ns"] / n / 1000.0 if h["qemu_cpu_ns"] >= 0 else None,
        "vcpu_us": h["qemu_vcpu_ns"] / n / 1000.0 if h["qemu_vcpu_ns"] > 0 else None,
        "writes": p["writes"] / p["produced"],
        "doorbells": p["doorbells"] / p["produced"],
        "wakeups": h["wakeups"] / p["produced"],
        "full_waits": p["full_waits"],
        "guest_rate": n / (p["elapsed_ns"] / 1e9),
    }
    f["mbps"] = f["rate"] * run["size"] / 1e6
    if run["kind"] == "lat":
        lat = latencies(run)
        a, b = run["sync"]
        f.update(p50=percentile(lat, 50), p99=percentile(lat, 99), max=lat[-1],
                 sync_us=max(a["rtt_ns"], b["rtt_ns"]) / 2000.0,
                 drift_ppm=(b["offset_ns"] - a["offset_ns"]) / max(1, b["at_ns"] - a["at_ns"]) * 1e6)
    return f


def med_of(runs, key):
    vals = [r["fig"][key] for r in runs if r["fig"].get(key) is not None]
    return median(vals) if vals else None


# ---- the report ---------------------------------------------------------------------------------

def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def latency_cell(runs):
    """p50 / p99 over the latency runs whose clock sync is good enough, with its uncertainty."""
    ok = [r for r in runs if r["fig"]["sync_us"] <= SYNC_OK_US]
    if not ok:
        return ("not measured: the clock sync was worse than +-%.0f us in every run (host too busy)"
                % SYNC_OK_US)
    cell = "%.1f / %.1f (sync +-%.2f)" % (med_of(ok, "p50"), med_of(ok, "p99"),
                                         max(r["fig"]["sync_us"] for r in ok))
    if len(ok) < len(runs):
        cell += ", %d of %d runs (the others' sync was worse than +-%.0f us)" % (len(ok), len(runs),
                                                                                SYNC_OK_US)
    return cell


def report(a, img, runs, load_before, load_after):
    by = {}
    for r in runs:
        if r["kind"] != "warmup":
            by.setdefault((r["kind"], r["ch"], r["size"]), []).append(r)
    cpu = subprocess.run(["sed", "-n", "s/^model name[[:space:]]*: //p", "/proc/cpuinfo"],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout.splitlines()
    qemu_ver = subprocess.run([vmlib.QEMU, "--version"], stdout=subprocess.PIPE,
                              universal_newlines=True).stdout.splitlines()[0]
    accel = vmlib.accel_args()[1]
    kvm_note = ("" if accel == "kvm" else
                " (TCG: this CPU has no vmx/svm flag, so tests/vm/vmlib.py does not use /dev/kvm for a "
                "stock kernel; see labs/README.md)")
    vsock = ("/dev/vhost-vsock exists, but this bench does not measure vsock yet" if
             os.path.exists("/dev/vhost-vsock") else
             "**not measured**: this host has no /dev/vhost-vsock, which QEMU's vhost-vsock-pci "
             "needs, and modules cannot be loaded here")
    L = []
    w = L.append
    w("# QEMU guest to host: ivshmem with doorbell vs. virtio-serial")
    w("")
    w("Generated by `%s` on %s. Do not edit by hand; run the script again."
      % (a.command, datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")))
    w("")
    w("- Host: %d CPUs, %s; kernel %s %s; %s, accelerator %s%s"
      % (os.cpu_count(), cpu[0] if cpu else "unknown CPU", platform.system(), platform.release(),
         qemu_ver, accel.upper(), kvm_note))
    w("- Guest: Debian kernel %s, 1 vCPU, 512 MiB (scripts/guest-image.sh); producer "
      "`ivmon-produce --lossless`, built Release `-O2 -DNDEBUG` with the agent" % img.kernel_version)
    w("- Load average (1, 5, 15 min): %s before the guest ran, %s after it. The bench itself "
      "keeps about 2 busy (QEMU's vCPU thread and the host's consumer); more means something else "
      "competed for the two CPUs, and every figure below is less trustworthy." % (load_before, load_after))
    w("- vsock (vhost-vsock-pci): %s." % vsock)
    w("")
    w("**Target (issue 3):** ivshmem with doorbell moves at least 5x the records per second of "
      "virtio-serial, at no more guest CPU per record. Whether it is met is stated under the table.")
    w("")
    w("## Results")
    w("")
    w("%d runs per case, median shown; %d records per throughput run, %d per latency run paced at "
      "%d records/s; batches of %d records. One boot, both channels in turn, record sizes and "
      "channels interleaved (guest/image/workloads/bench-vm.sh)."
      % (a.reps, a.count, a.lat_count, a.rate, a.batch))
    w("")
    w("| channel | record size | records/s | MB/s | guest CPU us/record (producer) | host QEMU CPU "
      "us/record | latency p50 / p99 us (paced) |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for size in a.sizes:
        for kind in ("tput", "batch"):
            for ch in CHANNELS:
                rs = by[(kind, ch, size)]
                lat = "n/a (batches wait for records)"
                if kind == "tput":
                    lat = latency_cell(by[("lat", ch, size)])
                w("| %s | %d B | %s | %s | %s | %s | %s |"
                  % (LABEL[(ch, kind)], size, fmt(med_of(rs, "rate"), ",.0f"),
                     fmt(med_of(rs, "mbps"), ".1f"), fmt(med_of(rs, "guest_us"), ".2f"),
                     fmt(med_of(rs, "qemu_us"), ".2f"), lat))
    w("")
    w("### Target: at least 5x virtio-serial's records/s at no more guest CPU per record")
    w("")
    met_all = True
    for kind, what in (("tput", "one record at a time on both"), ("batch", "batched on both")):
        for size in a.sizes:
            iv, vs = by[(kind, "ivshmem", size)], by[(kind, "vser", size)]
            ratio = med_of(iv, "rate") / med_of(vs, "rate")
            gi, gv = med_of(iv, "guest_us"), med_of(vs, "guest_us")
            qi, qv = med_of(iv, "qemu_us"), med_of(vs, "qemu_us")
            met = ratio >= 5 and gi <= gv
            met_all = met_all and met
            w("- %s, %d B: %.2fx the records/s; guest CPU %.2f vs %.2f us/record, host QEMU CPU %s vs "
              "%s us/record: target **%s**%s."
              % (what, size, ratio, gi, gv, fmt(qi, ".2f"), fmt(qv, ".2f"), "met" if met else "NOT met",
                 "" if met else (" (records/s below 5x)" if ratio < 5 else " (more guest CPU per record)")))
    w("- Overall: target **%s**." % ("met" if met_all else "NOT met"))
    # What no transport could beat: the producer alone, handing its records to nobody. When
    # virtio-serial's batched rate is within 5x of that, no channel can be 5x it.
    ceil = []
    for size in a.sizes:
        alone = med_of(by[("encode", "none", size)], "guest_rate")
        vs = med_of(by[("batch", "vser", size)], "rate")
        if alone and vs:
            room = 1e6 / (5 * vs) - 1e6 / alone  # us per record a channel may cost for 5x
            ceil.append("%d B: %.2fx (%s vs %s records/s; %s)" % (
                size, alone / vs, fmt(alone, ",.0f"), fmt(vs, ",.0f"),
                "5x is out of any channel's reach" if room <= 0 else
                "5x needs a channel that costs the guest at most %.2f us per record" % room))
    if ceil:
        w("- Ceiling when both batch: a channel that cost the guest nothing would move as many "
          "records per second as the producer builds alone (`--encode-only`); over virtio-serial's "
          "batched rate that is %s." % "; ".join(ceil))
    vw = [med_of(by[("tput", "vser", size)], "writes") for size in a.sizes]
    if min(vw) < 0.95:
        w("- Note: the virtio-serial rows \"a write() per record\" made %s write() calls per record "
          "(median per size). While the port was full (its host end did not keep up), records queued in "
          "the producer and went out together in the next write(): that spares virtio-serial VM exits, "
          "so it favours virtio-serial over a producer that blocks in one write() per record."
          % " and ".join("%.2f" % v for v in vw))
    w("")
    w("What the producer costs by itself, building and time-stamping the same records with no "
      "transport (`ivmon-produce --encode-only`), is in both channels' figures; the rest is the "
      "transport's, measured as the difference in guest CPU per record:")
    w("")
    for size in a.sizes:
        enc = by[("encode", "none", size)]
        e = med_of(enc, "guest_us")
        gi, gv = med_of(by[("tput", "ivshmem", size)], "guest_us"), med_of(by[("tput", "vser", size)], "guest_us")
        w("- %d B: the producer alone %.2f us/record (%s records/s); the transport adds %.2f us "
          "(ivshmem + doorbell) and %.2f us (virtio-serial, a write() per record) per record "
          "(differences of medians of noisy runs: rough)."
          % (size, e, fmt(med_of(enc, "guest_rate"), ",.0f"), gi - e, gv - e))
        bi, bv = med_of(by[("batch", "ivshmem", size)], "guest_us"), med_of(by[("batch", "vser", size)], "guest_us")
        w("  Batched: %.2f us (ivshmem + doorbell, batched publish) and %.2f us (virtio-serial, one "
          "write() per batch)." % (bi - e, bv - e))
    w("")
    w("### Detail (median of the runs unless stated)")
    w("")
    w("Guest CPU is the producer's getrusage() user + system time from its HELLO to the end of its "
      "final flush; host QEMU CPU is the run time (schedstat) of every QEMU thread from the host's "
      "HELLO callback to its final HEARTBEAT callback, \"vCPU\" the vCPU threads' share. "
      "writes/rec: write() calls per record (virtio-serial; each one notifies the host); "
      "doorbells/rec: doorbells the guest rang per record (ivshmem); wakeups/rec: doorbells the "
      "host woke on. guest records/s: the producer's own rate on the guest clock, before the host "
      "has seen the last record.")
    w("")
    w("| case | size | records/s, every run | guest records/s | guest CPU us/rec | QEMU CPU us/rec "
      "| vCPU us/rec | writes/rec | doorbells/rec | wakeups/rec | lossless waits |")
    w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in a.sizes:
        enc = by[("encode", "none", size)]
        w("| the producer alone, no transport (--encode-only) | %d B | n/a | %s | %s | n/a | n/a | "
          "n/a | n/a | n/a | n/a |" % (size, fmt(med_of(enc, "guest_rate"), ",.0f"),
                                      fmt(med_of(enc, "guest_us"), ".2f")))
        for kind in ("tput", "batch", "lat"):
            for ch in CHANNELS:
                rs = by[(kind, ch, size)]
                name = LABEL[(ch, "tput" if kind == "lat" else kind)]
                if kind == "lat":
                    name += ", paced at %d/s" % a.rate
                w("| %s | %d B | %s | %s | %s | %s | %s | %s | %s | %s | %d |"
                  % (name, size, ", ".join("%.0f" % r["fig"]["rate"] for r in rs),
                     fmt(med_of(rs, "guest_rate"), ",.0f"), fmt(med_of(rs, "guest_us"), ".2f"),
                     fmt(med_of(rs, "qemu_us"), ".2f"), fmt(med_of(rs, "vcpu_us"), ".2f"),
                     fmt(med_of(rs, "writes"), ".3f"), fmt(med_of(rs, "doorbells"), ".3f"),
                     fmt(med_of(rs, "wakeups"), ".3f"), sum(r["fig"]["full_waits"] for r in rs)))
    w("")
    w("Latency runs, every run: p50 / p99 / max in us; the clock sync's uncertainty (half the "
      "smallest round trip through the clock page, the larger of the two syncs around the run; a "
      "run whose sync is worse than +-%.0f us is left out of the table above); the guest clock's "
      "drift against the host's between them." % SYNC_OK_US)
    w("")
    w("| channel | size | rep | p50 | p99 | max | sync +- us | drift ppm |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for size in a.sizes:
        for ch in CHANNELS:
            for r in by[("lat", ch, size)]:
                f = r["fig"]
                w("| %s | %d B | %d | %.1f | %.1f | %.1f | %.2f | %.1f |"
                  % (ch, size, r["rep"], f["p50"], f["p99"], f["max"], f["sync_us"], f["drift_ppm"]))
    w("")
    # The method does not change from run to run: it is kept as prose beside this script.
    with open(os.path.join(HERE, "method.md")) as f:
        w(f.read().rstrip("\n"))
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--host-bin", "--agent", "--clocksync", "--image-dir", "--workdir"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--lat-count", type=int, default=10000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--results", default=os.path.join(os.path.dirname(HERE), "results.md"))
    ap.add_argument("--command", default="bench/vm/run.sh")
    a = ap.parse_args()
    a.sizes = [int(s) for s in a.sizes.split(",")]
    if a.reps < 1 or a.count < 2 or a.lat_count < 2 or a.rate < 1 or a.batch < 2:
        ap.error("--reps >= 1, --count and --lat-count >= 2, --rate >= 1, --batch >= 2")
    t = vmlib.Test("bench-vm", a.workdir)
    img, vm, host_runs, load_before, load_after = boot_and_run(t, a)
    runs = match_runs(t, guest_events(vm), host_runs)
    for r in runs:
        r["fig"] = figures(r)
    text = report(a, img, runs, load_before, load_after)
    with open(os.path.join(t.workdir, "section.md"), "w") as f:
        f.write(text)
    results_section.replace_section(a.results, SECTION, text)
    print("bench_vm.py: wrote section %s of %s (QEMU ran %.0f s)" % (SECTION, a.results, vm.seconds()))


if __name__ == "__main__":
    vmlib.run(main)
