#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""VM test of the guest's virtio-serial transport (guest URI virtio-serial:NAME), with the real
QEMU, the real Debian guest kernel and the real agent in the guest:

  scripted   the scripted workload on tmpfs, written by ivmon-agent to a virtserialport whose
             chardev is a UNIX socket (server=on) that ivmon-vser-watch reads: every expected
             event with path, operation and process name, sequence numbers 1..N in order, zero
             loss and exact accounting, all through the library's decoder and sequence
             accounting (vmlib.run_scripted, as for the ring transports); and the agent really
             used the stream (its startup line names it).

    test_vser.py --agent PATH --watch PATH-OF-ivmon-vser-watch --workdir DIR [--image-dir DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmlib  # noqa: E402

PORT = "org.ivmon.test"


def virtio_serial(sock, name=PORT, ident="ivs"):
    """QEMU arguments for a virtio-serial port named name whose host end is the UNIX socket sock,
    served by QEMU (the reader connects to it)."""
    return ["-device", "virtio-serial-pci",
            "-chardev", "socket,id=%s,path=%s,server=on,wait=off" % (ident, sock),
            "-device", "virtserialport,chardev=%s,name=%s" % (ident, name)]


def case_scripted(t, a, img):
    sock = os.path.join(t.workdir, "vser.sock")
    uri = "virtio-serial:" + sock
    # tmpfs only: the ext4 half of the workload tests fanotify, not the transport, and the test
    # stays short.
    vm, evs, st = vmlib.run_scripted(t, img, a.watch, uri, virtio_serial(sock),
                                     params={"ivmon.uri": "virtio-serial:" + PORT}, disk=False)
    if not vm.lines(r"ivmon-agent .*: virtio-serial:%s, stream, queue \d+ bytes" % PORT):
        t.fail("the agent's startup line does not show the virtio-serial stream")
    print("scripted: %d records, %d file events over virtio-serial; QEMU ran %.1f s"
          % (st["delivered"], sum(e["type"] == "file" for e in evs), vm.seconds()))


CASES = {"scripted": case_scripted}


if __name__ == "__main__":
    vmlib.main_cases("vser", CASES)
