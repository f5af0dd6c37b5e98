/* SPDX-License-Identifier: MIT */
/* Guest-side URI parsing; see uri.h for the accepted forms. */
#include "uri.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ivmon/proto.h"
#ifdef IVMON_GUEST_HAVE_KVM_HCALL
#include "kvm_trap.h"
#endif
#include "ivmon/xen.h"

int ivmon_guest_parse_bytes(const char *s, uint64_t *ret)
{
    uint64_t v = 0;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    unsigned shift = 0;
    switch (*p) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        return -EINVAL;
    }
    if (shift) {
        p++;
        if (*p != '\0')
            return -EINVAL;
        if (v > (UINT64_MAX >> shift))
            return -EINVAL;
        v <<= shift;
    }
    *ret = v;
    return 0;
}

/* Compares the n-byte key at k with the NUL-terminated name. */
static int key_is(const char *k, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* kvm+hcall: options: port= only. */
static int parse_kvm_option(const char *key, size_t klen, const char *val, size_t vlen,
                            struct ivmon_guest_uri *u, const char **ret_why)
{
    if (!key_is(key, klen, "port")) {
        *ret_why = key_is(key, klen, "size") || key_is(key, klen, "lossless")
                       ? "kvm+hcall: there is no ring, and no record is ever dropped: only port= "
                         "applies"
                       : "unknown URI option (known: port)";
        return -EINVAL;
    }
    int hex = vlen > 2 && val[0] == '0' && val[1] == 'x';
    const char *digits = hex ? val + 2 : val;
    uint64_t v = 0;
    if (*digits == '\0' || (!hex && *digits == '0') ||
        strspn(digits, hex ? "0123456789abcdefABCDEF" : "0123456789") != strlen(digits)) {
        *ret_why = "port= must be 1..65535, in decimal or 0x hex";
        return -EINVAL;
    }
    for (const char *p = digits; *p && v <= 0xffff; p++)
        v = v * (hex ? 16 : 10) + (uint64_t)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
    if (v < 1 || v > 0xffff) {
        *ret_why = "port= must be 1..65535, in decimal or 0x hex";
        return -EINVAL;
    }
    u->port = (uint16_t)v;
    return 0;
}

/* Plain decimal digits, at most max. */
static int parse_decimal(const char *val, uint64_t max, uint64_t *ret)
{
    return strspn(val, "0123456789") == strlen(val) && ivmon_guest_parse_bytes(val, ret) == 0 &&
                   *ret <= max
               ? 0
               : -EINVAL;
}

/* The options of xen+shm: (pages=, backend=, lossless=) and xen+vcpu: (none). */
static int parse_xen_option(const char *opt, size_t klen, const char *val,
                            struct ivmon_guest_uri *u, const char **ret_why)
{
    uint64_t v;
    if (u->kind == IVMON_GUEST_URI_XEN_VCPU) {
        *ret_why = "xen+vcpu: takes no options";
        return -EINVAL;
    }
    if (key_is(opt, klen, "pages")) {
        if (parse_decimal(val, IVMON_XEN_DATA_PAGES_MAX, &v) < 0 || v < IVMON_XEN_DATA_PAGES_MIN ||
            (v & (v - 1))) {
            *ret_why = "xen+shm: pages= must be a power of two from 16 to 16384 (data pages)";
            return -EINVAL;
        }
        u->xen_pages = (uint32_t)v;
        return 0;
    }
    if (key_is(opt, klen, "backend")) {
        if (parse_decimal(val, 0x7fef, &v) < 0) {
            *ret_why = "xen+shm: backend= must be a domain id";
            return -EINVAL;
        }
        u->xen_backend = (uint32_t)v;
        return 0;
    }
    if (key_is(opt, klen, "lossless") && (!strcmp(val, "0") || !strcmp(val, "1"))) {
        u->lossless = val[0] == '1';
        return 0;
    }
    *ret_why = "xen+shm: unknown option or bad value (known: pages, backend, lossless=0|1)";
    return -EINVAL;
}

/* Applies one "key=value" option of n bytes at opt to u. */
static int parse_option(const char *opt, size_t n, struct ivmon_guest_uri *u, const char **ret_why)
{
    const char *eq = memchr(opt, '=', n);
    if (!eq) {
        *ret_why = "URI option without '=' (expected key=value)";
        return -EINVAL;
    }
    size_t klen = (size_t)(eq - opt), vlen = n - klen - 1;
    char val[32];
    if (vlen == 0 || vlen >= sizeof val) {
        *ret_why = "URI option value empty or too long";
        return -EINVAL;
    }
    memcpy(val, eq + 1, vlen);
    val[vlen] = '\0';

    if (u->kind == IVMON_GUEST_URI_KVM_HCALL)
        return parse_kvm_option(opt, klen, val, vlen, u, ret_why);
    if (u->kind == IVMON_GUEST_URI_XEN_SHM || u->kind == IVMON_GUEST_URI_XEN_VCPU)
        return parse_xen_option(opt, klen, val, u, ret_why);
    if (key_is(opt, klen, "size") && u->kind == IVMON_GUEST_URI_IVSHMEM) {
        *ret_why = "ivshmem: the host formats the ring and chooses its size; size= is not taken";
        return -EINVAL;
    }
    if (key_is(opt, klen, "size") && u->kind == IVMON_GUEST_URI_VIRTIO_SERIAL) {
        *ret_why = "virtio-serial: a stream has no ring to size; size= is not taken";
        return -EINVAL;
    }
    if (key_is(opt, klen, "wait") && u->kind == IVMON_GUEST_URI_IVSHMEM) {
        uint64_t v; /* plain digits: a K/M/G suffix means nothing for seconds */
        if (strspn(val, "0123456789") != vlen || ivmon_guest_parse_bytes(val, &v) < 0 ||
            v > (uint64_t)86400 * 365) {
            *ret_why = "wait= must be a number of seconds";
            return -EINVAL;
        }
        u->wait_s = (int)v;
        return 0;
    }
    if (key_is(opt, klen, "size")) {
        uint64_t v;
        if (ivmon_guest_parse_bytes(val, &v) < 0) {
            *ret_why = "size= is not a number (suffixes K, M, G allowed)";
            return -EINVAL;
        }
        if (v < IVMON_RING_MIN_DATA || v > IVMON_RING_MAX_DATA || (v & (v - 1))) {
            *ret_why = "size= must be a power of two between 64K and 1G";
            return -EINVAL;
        }
        u->size = v;
        return 0;
    }
    if (key_is(opt, klen, "lossless")) {
        if (strcmp(val, "0") != 0 && strcmp(val, "1") != 0) {
            *ret_why = "lossless= must be 0 or 1";
            return -EINVAL;
        }
        u->lossless = val[0] == '1';
        return 0;
    }
    switch (u->kind) {
    case IVMON_GUEST_URI_IVSHMEM:
        *ret_why = "unknown URI option (known: lossless, wait)";
        break;
    case IVMON_GUEST_URI_VIRTIO_SERIAL:
        *ret_why = "unknown URI option (known: lossless)";
        break;
    default:
        *ret_why = "unknown URI option (known: size, lossless)";
        break;
    }
    return -EINVAL;
}

/* Fills u->path from the shm target (n bytes at t): an absolute path or a /dev/shm name. */
static int parse_shm_target(const char *t, size_t n, struct ivmon_guest_uri *u,
                            const char **ret_why)
{
    static const char shm_dir[] = "/dev/shm/";

    if (n == 0) {
        *ret_why = "shm: URI needs a name or an absolute path";
        return -EINVAL;
    }
    if (memchr(t, '\0', n)) {
        *ret_why = "NUL inside URI";
        return -EINVAL;
    }
    if (t[0] == '/') {
        if (n >= sizeof u->path) {
            *ret_why = "shm: path too long";
            return -EINVAL;
        }
        memcpy(u->path, t, n);
        u->path[n] = '\0';
        return 0;
    }
    /* A bare name must stay inside /dev/shm: no separators, no dot entries. */
    if (memchr(t, '/', n) || (n == 1 && t[0] == '.') || (n == 2 && t[0] == '.' && t[1] == '.')) {
        *ret_why = "shm: NAME must be a plain file name (or give an absolute path)";
        return -EINVAL;
    }
    if (sizeof shm_dir - 1 + n >= sizeof u->path) {
        *ret_why = "shm: name too long";
        return -EINVAL;
    }
    memcpy(u->path, shm_dir, sizeof shm_dir - 1);
    memcpy(u->path + sizeof shm_dir - 1, t, n);
    u->path[sizeof shm_dir - 1 + n] = '\0';
    return 0;
}

static int hex_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

/* Fills u->pci from the ivshmem target (n bytes at t): "" (the first device), "DDDD:BB:DD.F" or
 * "BB:DD.F" (domain 0000), as sysfs names devices. */
static int parse_ivshmem_target(const char *t, size_t n, struct ivmon_guest_uri *u,
                                const char **ret_why)
{
    char addr[IVMON_GUEST_PCI_ADDR_MAX];

    if (n == 0) {
        u->pci[0] = '\0';
        return 0;
    }
    if (n == 7) { /* BB:DD.F */
        memcpy(addr, "0000:", 5);
        memcpy(addr + 5, t, n);
    } else if (n == 12) {
        memcpy(addr, t, n);
    } else {
        goto bad;
    }
    addr[12] = '\0';
    if (!hex_digits(addr, 4) || addr[4] != ':' || !hex_digits(addr + 5, 2) || addr[7] != ':' ||
        !hex_digits(addr + 8, 2) || addr[10] != '.' || addr[11] < '0' || addr[11] > '7')
        goto bad;
    for (char *p = addr; *p; p++) /* sysfs spells hex digits in lower case */
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    memcpy(u->pci, addr, sizeof addr);
    return 0;
bad:
    *ret_why = "ivshmem: target must be empty (the first ivshmem device) or a PCI address "
               "DDDD:BB:DD.F, e.g. ivshmem:0000:00:04.0";
    return -EINVAL;
}

/* Fills u->path from the virtio-serial target (n bytes at t): a port name as QEMU's
 * virtserialport name= gives it, or an absolute device path. */
static int parse_virtio_serial_target(const char *t, size_t n, struct ivmon_guest_uri *u,
                                      const char **ret_why)
{
    if (n == 0) {
        *ret_why = "virtio-serial: URI needs a port name (virtserialport name=) or a device path";
        return -EINVAL;
    }
    if (memchr(t, '\0', n)) {
        *ret_why = "NUL inside URI";
        return -EINVAL;
    }
    if (n >= sizeof u->path) {
        *ret_why = "virtio-serial: name or path too long";
        return -EINVAL;
    }
    /* A name is looked up in /dev/virtio-ports and /sys/class/virtio-ports: it must not be able
     * to climb out of them. */
    if (t[0] != '/' &&
        (memchr(t, '/', n) || (n == 1 && t[0] == '.') || (n == 2 && t[0] == '.' && t[1] == '.'))) {
        *ret_why = "virtio-serial: NAME must be a plain port name (or give an absolute path)";
        return -EINVAL;
    }
    memcpy(u->path, t, n);
    u->path[n] = '\0';
    return 0;
}

int ivmon_guest_uri_parse(const char *uri, struct ivmon_guest_uri *ret, const char **ret_why)
{
    struct ivmon_guest_uri u; /* built privately: *ret is written only on success */
    const char *colon = strchr(uri, ':');

    if (!colon) {
        *ret_why = "URI has no scheme (expected e.g. shm:NAME)";
        return -EINVAL;
    }
    size_t slen = (size_t)(colon - uri);
    memset(&u, 0, sizeof u);
    u.size = IVMON_GUEST_DEFAULT_RING_SIZE;
    u.wait_s = -1;

    if (key_is(uri, slen, "shm")) {
        u.kind = IVMON_GUEST_URI_SHM;
    } else if (key_is(uri, slen, "ivshmem")) {
        u.kind = IVMON_GUEST_URI_IVSHMEM;
    } else if (key_is(uri, slen, "virtio-serial")) {
        u.kind = IVMON_GUEST_URI_VIRTIO_SERIAL;
    } else if (key_is(uri, slen, "kvm+hcall")) {
#ifdef IVMON_GUEST_HAVE_KVM_HCALL
        u.kind = IVMON_GUEST_URI_KVM_HCALL;
        u.port = IVMON_KVM_TRAP_PORT_DEFAULT;
#else
        *ret_why = "kvm+hcall: needs an x86-64 build of the agent";
        return -EPROTONOSUPPORT;
#endif
    } else if (key_is(uri, slen, "xen+shm")) {
        u.kind = IVMON_GUEST_URI_XEN_SHM;
        u.xen_pages = IVMON_XEN_DATA_PAGES_DEFAULT;
    } else if (key_is(uri, slen, "xen+vcpu")) {
        u.kind = IVMON_GUEST_URI_XEN_VCPU;
    } else {
        *ret_why = "unknown URI scheme (known: shm, ivshmem, virtio-serial, kvm+hcall, xen+shm, "
                   "xen+vcpu)";
        return -EINVAL;
    }

    const char *rest = colon + 1, *q = strchr(rest, '?');
    size_t tlen = q ? (size_t)(q - rest) : strlen(rest);
    int r;
    switch (u.kind) {
    case IVMON_GUEST_URI_SHM:
        r = parse_shm_target(rest, tlen, &u, ret_why);
        break;
    case IVMON_GUEST_URI_IVSHMEM:
        r = parse_ivshmem_target(rest, tlen, &u, ret_why);
        break;
    case IVMON_GUEST_URI_VIRTIO_SERIAL:
        r = parse_virtio_serial_target(rest, tlen, &u, ret_why);
        break;
    case IVMON_GUEST_URI_KVM_HCALL: /* the VMM is the only peer there is, nothing to name */
        r = tlen ? -EINVAL : 0;
        if (r < 0)
            *ret_why = "kvm+hcall: takes no target (kvm+hcall:?port=P)";
        break;
    default: /* Xen: the guest's own domain is implied; the backend domain is an option */
        r = tlen ? -EINVAL : 0;
        if (r < 0)
            *ret_why = "xen+shm: and xen+vcpu: take no target (e.g. xen+shm:?pages=64)";
        break;
    }
    if (r < 0)
        return r;
    if (q) {
        const char *opt = q + 1;
        for (;;) {
            const char *amp = strchr(opt, '&');
            size_t olen = amp ? (size_t)(amp - opt) : strlen(opt);
            if (olen) { /* tolerate "?a=1&&b=2" and a trailing '&' */
                r = parse_option(opt, olen, &u, ret_why);
                if (r < 0)
                    return r;
            }
            if (!amp)
                break;
            opt = amp + 1;
        }
    }
    *ret = u;
    return 0;
}
