#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the fuzz seed corpus (corpus/decode, corpus/ring, corpus/uri, corpus/fragment,
corpus/xenstore) from the byte layouts in include/ivmon/proto.h, docs/PROTOCOL.md ("Register
fragments") and the XenStore keys in include/ivmon/xen.h. Re-run after a
protocol change; found inputs are kept beside the seeds."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
HDR = struct.Struct("<HHIQQ")


def rec(rtype, body, seq, t=1_700_000_000_000_000_000):
    return HDR.pack(rtype, 0, HDR.size + len(body), seq, t) + body


def file_rec(seq, op, path, new=b"", comm=b"touch", exe=b"/usr/bin/touch", flags=0):
    fixed = struct.pack("<IIIIIIIIHHHH", op, flags, 100, 101, 1, 0, 0, 0,
                        len(comm), len(exe), len(path), len(new))
    return rec(2, fixed + comm + exe + path + new, seq)


def hello(seq):
    host, agent = b"guest", b"ivmon-agent 0.1.0 linux"
    body = struct.pack("<HHI16s16sIHH", 1, 0, 3, b"B" * 16, b"I" * 16, 42, len(host), len(agent))
    return rec(1, body + host + agent, seq)


def lost(seq, first, last, reason=1):
    count = last - first + 1 if reason == 1 else 0
    return rec(3, struct.pack("<QQQII", count, first, last, reason, 0), seq)


def heartbeat(seq):
    return rec(4, struct.pack("<QQ", seq, 0), seq)


def pad8(b):
    return b + b"\0" * (-len(b) % 8)


def ring(records, mode=1, start=0):
    data_size = 65536
    hdr = bytearray(4096)
    struct.pack_into("<QHHIQQI", hdr, 0, 0x31474E524D564949, 1, 0, 4096, 4096, data_size, 0)
    stream = b"".join(pad8(r) for r in records)
    data = bytearray(data_size)
    for i, b in enumerate(stream):
        data[(start + i) % data_size] = b
    struct.pack_into("<Q", hdr, 64, start + len(stream))  # prod
    struct.pack_into("<Q", hdr, 128, start)  # cons
    return bytes([mode]) + bytes(hdr) + bytes(data)


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli), bit by bit: an implementation independent of fragment.h's."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def fragments(record, k):
    """The (header word, payload words) of each fragment of record with K = k."""
    stream = record + struct.pack("<I", crc32c(record))
    per = 8 * k
    count = (len(stream) + per - 1) // per
    stream += b"\0" * (count * per - len(stream))
    out = []
    for i in range(count):
        words = struct.unpack("<%dQ" % k, stream[i * per:(i + 1) * per])
        hdr = 0xF1 << 56 | k << 51 | record[8] << 43 | len(record) << 28 | i << 16
        check = crc32c(struct.pack("<Q", hdr) + struct.pack("<%dQ" % k, *words)) & 0xFFFF
        out.append((hdr | check, words))
    return out


def frag_input(k, vcpus, mode, ops):
    """A fuzz_fragment input: K, vCPU count and mode bytes, then ops (see fuzz_fragment.c)."""
    return bytes([k - 1, vcpus - 1, mode]) + b"".join(ops)


def op_record(vcpu, record, drop=255, dup=255):
    return bytes([1, vcpu]) + struct.pack("<HBB", len(record), drop, dup) + record


def op_raw(vcpu, hdr, words):
    return bytes([0, vcpu]) + struct.pack("<Q", hdr) + b"".join(struct.pack("<Q", w) for w in words)


# fuzz_xenstore.c's KEYS, in order
XS_KEYS = ["state", "layout", "proto", "backend-id", "pages", "event-channel", "generation",
           "gref/0", "gref/1", "gref/2"]


def xenstore(entries):
    out = b""
    for key, value in entries:
        out += bytes([XS_KEYS.index(key)]) + struct.pack("<H", len(value)) + value
    return out


def xs_ring(npages, **over):
    refs = [str(100 + i).encode() for i in range(npages)]
    keys = {"layout": b"1", "proto": b"1.0", "backend-id": b"0", "pages": str(npages).encode(),
            "event-channel": b"5", "generation": b"7", "state": b"ready"}
    for k in range(0, npages, 128):
        keys["gref/%d" % (k // 128)] = b" ".join(refs[k:k + 128])
    keys.update(over)
    return xenstore((k, v) for k, v in keys.items() if v is not None)


def write(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    samples = {
        "hello": hello(1),
        "create": file_rec(2, 4, b"/tmp/a.txt"),
        "rename": file_rec(3, 6, b"/tmp/a.txt", b"/tmp/b.txt", comm=b"mv", exe=b"/usr/bin/mv"),
        "exec": file_rec(4, 8, b"/tmp/x/payload", comm=b"payload", exe=b"/tmp/x/payload"),
        "dir": file_rec(5, 5, b"/tmp/d", flags=1),
        "lost": lost(9, 6, 8),
        "overflow": lost(10, 0, 0, reason=2),
        "heartbeat": heartbeat(11),
        "long": file_rec(12, 2, b"/" + b"p" * 4095, comm=b"c" * 16, exe=b"/" + b"e" * 4095),
    }
    for name, data in samples.items():
        write("decode", name, b"\x03" + data)
    seq = [samples[k] for k in ("hello", "create", "rename", "exec", "dir", "lost",
                                "overflow", "heartbeat")]
    write("ring", "stream", ring(seq))
    write("ring", "stream-wrapped", ring(seq, start=65536 - 40))
    write("ring", "stream-raw-header", ring(seq, mode=0))
    write("ring", "long-records", ring([hello(1), samples["long"].replace(
        struct.pack("<Q", 12), struct.pack("<Q", 2), 1)]))
    stall = 63 << 1  # stall_fragments 64, as the default
    stream = [samples["hello"], samples["create"], samples["rename"], samples["long"],
              samples["heartbeat"]]
    for k in (7, 2, 1):
        ops = [op_record(i % 2, r) for i, r in enumerate(stream)]
        write("fragment", "records-k%d" % k, frag_input(k, 2, stall, ops))
    # the same records as raw traps, two vCPUs interleaved fragment by fragment
    a, b = fragments(samples["rename"], 7), fragments(samples["long"], 7)
    ops = []
    for i in range(max(len(a), len(b))):
        if i < len(a):
            ops.append(op_raw(0, *a[i]))
        if i < len(b):
            ops.append(op_raw(1, *b[i]))
    write("fragment", "interleaved-raw", frag_input(7, 2, stall, ops))
    # damage: a fragment dropped, one duplicated, time passing, a bad trap, a sweep, garbage
    ops = [op_record(0, samples["hello"]), op_record(0, samples["long"], drop=3),
           op_record(1, samples["rename"], dup=1), bytes([2]) + struct.pack("<I", 2000000),
           bytes([3, 0]), bytes([4]), op_raw(0, 0x1234, [0] * 7), op_record(0, samples["exec"])]
    write("fragment", "damage", frag_input(7, 2, stall | 1, ops))
    for i, u in enumerate([b"shm:demo", b"shm:/dev/shm/x?size=4M&lossless=1&budget=64",
                           b"ivshmem+doorbell:/run/ivmon.sock?shm=vm1", b"libvirt:guest1",
                           b"shm:x?create=0&size=64K", b"xen+shm:5",
                           b"kvm:vm1?vcpus=4&port=0x4956&queue=256K"]):
        write("uri", "uri%d" % i, u)
    for name, data in {
        "ready17": xs_ring(17),
        "ready257": xs_ring(257),
        "closed": xs_ring(17, state=b"closed"),
        "pages-absurd": xs_ring(17, pages=b"99999999"),
        "pages-blank": xs_ring(17, pages=b" 17"),
        "grefs-short": xs_ring(17, **{"gref/0": b"1 2 3"}),
        "state-nul": xs_ring(17, state=b"ready\0x"),
        "proto-major": xs_ring(17, proto=b"2.0"),
        "generation-missing": xs_ring(17, generation=None),
    }.items():
        write("xenstore", name, data)


if __name__ == "__main__":
    main()
