/* SPDX-License-Identifier: MIT */
/*
 * virtio-serial: backend, producer side: a stream transport. The guest writes its records to a
 * virtio-serial port and the host reads them from the socket behind the port's chardev:
 *
 *   -device virtio-serial-pci
 *   -chardev socket,id=ivs,path=/run/vm1-ivmon.sock,server=on,wait=off
 *   -device virtserialport,chardev=ivs,name=org.ivmon.0
 *
 * It is the channel a user picks when there is no shared memory (vhost-vsock is the other one),
 * here so that the same agent can be measured against the rings. The host library has no backend
 * for it; bench/vm/ reads it with the library's decoder.
 *
 *  1. Port: virtio-serial:NAME is /dev/virtio-ports/NAME (udev's link) if it exists, else the
 *     /dev/vportNpM whose /sys/class/virtio-ports/vportNpM/name holds NAME (a guest without
 *     udev, such as the test image); virtio-serial:/dev/PATH is that device.
 *  2. open(O_WRONLY | O_NONBLOCK). The kernel lets one process at a time open a port, so a second
 *     producer gets EBUSY: "another producer is attached".
 *  3. stream_producer.c writes the records. Linux's virtio_console makes one buffer of each
 *     write() (up to 32 KiB, taken whole or not at all) and notifies the host: a VM exit per
 *     write(). While nobody is connected to the host end, writes are refused (EAGAIN) and poll
 *     says POLLHUP, so drop mode counts the records as lost and lossless mode waits.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport_backend.h"

#define PORTS_DEV   "/dev/virtio-ports/"
#define PORTS_SYSFS "/sys/class/virtio-ports"

struct vser_state {
    int fd;
    char dev[IVMON_GUEST_URI_PATH_MAX + sizeof PORTS_DEV];
};

/* Whether the port entry of /sys/class/virtio-ports is named name. */
static int port_named(const char *entry, const char *name)
{
    char path[sizeof PORTS_SYSFS + 256 + 8], buf[256];
    snprintf(path, sizeof path, PORTS_SYSFS "/%s/name", entry);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return strcmp(buf, name) == 0;
}

/* Finds the device of the port named name: udev's link, else a search of sysfs. */
static int find_port(struct vser_state *s, const char *name, char *err, size_t errlen)
{
    snprintf(s->dev, sizeof s->dev, PORTS_DEV "%s", name);
    if (access(s->dev, F_OK) == 0)
        return 0;
    DIR *d = opendir(PORTS_SYSFS);
    if (!d) {
        int e = errno;
        snprintf(err, errlen,
                 "virtio-serial: no port named %s: %s: %s (no virtio-serial device, or the "
                 "virtio_console module is not loaded)",
                 name, PORTS_SYSFS, strerror(e));
        return -ENODEV;
    }
    int found = 0;
    const struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.' && port_named(e->d_name, name)) {
            snprintf(s->dev, sizeof s->dev, "/dev/%s", e->d_name);
            found = 1;
        }
    }
    closedir(d);
    if (!found) {
        snprintf(err, errlen,
                 "virtio-serial: no port named %s in this guest: give the VM -device "
                 "virtserialport,name=%s",
                 name, name);
        return -ENODEV;
    }
    return 0;
}

static int vser_open_stream(void *priv, const struct ivmon_guest_uri *u, int *ret_fd, char *err,
                            size_t errlen)
{
    struct vser_state *s = priv;
    struct stat st;

    s->fd = -1;
    if (u->path[0] == '/') {
        snprintf(s->dev, sizeof s->dev, "%s", u->path);
    } else {
        int r = find_port(s, u->path, err, errlen);
        if (r < 0)
            return r;
    }
    s->fd = open(s->dev, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (s->fd < 0) {
        int e = errno;
        if (e == EBUSY)
            snprintf(err, errlen, "virtio-serial: %s: another producer is attached", s->dev);
        else
            snprintf(err, errlen, "virtio-serial: open %s: %s", s->dev, strerror(e));
        return -e;
    }
    if (fstat(s->fd, &st) < 0 || !S_ISCHR(st.st_mode)) {
        snprintf(err, errlen, "virtio-serial: %s is not a character device", s->dev);
        return -ENODEV;
    }
    *ret_fd = s->fd;
    return 0;
}

static void vser_close(void *priv)
{
    struct vser_state *s = priv;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

const struct ivmon_guest_backend ivmon_guest_backend_virtio_serial = {
    .abi = IVMON_GUEST_BACKEND_ABI,
    .size = sizeof(struct ivmon_guest_backend),
    .name = "virtio-serial",
    .uri_kind = IVMON_GUEST_URI_VIRTIO_SERIAL,
    .priv_size = sizeof(struct vser_state),
    .close = vser_close,
    .open_stream = vser_open_stream,
};
