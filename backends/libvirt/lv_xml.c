/* SPDX-License-Identifier: MIT */
/*
 * Reading a libvirt domain's XML with libxml2 (which libvirt itself depends on, so it costs no
 * new package). The document comes from libvirtd, but whoever may define domains writes what is
 * in it, and a shmem name becomes a path under /dev/shm: so the names are checked, and a
 * document with a DOCTYPE is refused outright (libvirt never writes one; refusing it rules out
 * entity tricks without having to reason about libxml2's entity options).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "libvirt/lv_xml.h"

/* Names listed in an error message when the wanted device is missing. */
#define LV_LIST_MAX 8

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

/* libxml2 2.9 initialises lazily and not thread-safely; do it once, first. */
static void xml_init(void)
{
    xmlInitParser();
}

static void say(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t size, const char *fmt, ...)
{
    va_list ap;
    if (!why || !size)
        return;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
}

static int is_element(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static const xmlNode *child(const xmlNode *parent, const char *name)
{
    for (const xmlNode *n = parent->children; n; n = n->next)
        if (is_element(n, name))
            return n;
    return NULL;
}

/* An attribute's value copied into buf; "" when absent. Returns -1 if it does not fit. */
static int attr(const xmlNode *n, const char *name, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!n)
        return 0;
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    if (!v)
        return 0;
    size_t len = strlen((const char *)v);
    int r = len < size ? 0 : -1;
    if (r == 0)
        memcpy(buf, v, len + 1);
    xmlFree(v);
    return r;
}

/* The name becomes /dev/shm/NAME on the host: it must be one path component. */
static int valid_name(const char *s)
{
    if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == '/' || *p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* Fills ret from one <shmem> element. Returns 0, or -EINVAL with why set. */
static int read_shmem(const xmlNode *n, struct ivmon_lv_shmem *ret, char *why, size_t why_size)
{
    char model[64];
    const xmlNode *server = child(n, "server");

    memset(ret, 0, sizeof *ret);
    if (attr(n, "name", ret->name, sizeof ret->name) < 0) {
        say(why, why_size, "a <shmem> device has a name longer than %u bytes", IVMON_LV_NAME_MAX);
        return -EINVAL;
    }
    if (!valid_name(ret->name)) {
        say(why, why_size,
            ret->name[0] ? "<shmem name='%s'> cannot be a file name in /dev/shm"
                         : "a <shmem> device has no name%s",
            ret->name);
        return -EINVAL;
    }
    if (attr(child(n, "model"), "type", model, sizeof model) < 0)
        model[0] = '?';
    /* libvirt's legacy model "ivshmem" (or none) means a doorbell exactly when a server is
     * configured; the QEMU driver rewrites it the same way. */
    if (!strcmp(model, "ivshmem-plain") || ((!model[0] || !strcmp(model, "ivshmem")) && !server)) {
        ret->model = IVMON_LV_SHMEM_PLAIN;
    } else if (!strcmp(model, "ivshmem-doorbell") || !model[0] || !strcmp(model, "ivshmem")) {
        ret->model = IVMON_LV_SHMEM_DOORBELL;
    } else {
        say(why, why_size,
            "<shmem name='%s'> has model '%s'; libivmon reads ivshmem-plain and "
            "ivshmem-doorbell",
            ret->name, model);
        return -EINVAL;
    }
    if (ret->model == IVMON_LV_SHMEM_DOORBELL) {
        if (attr(server, "path", ret->server, sizeof ret->server) < 0) {
            say(why, why_size, "<shmem name='%s'>: the server path is longer than %u bytes",
                ret->name, IVMON_LV_SERVER_MAX);
            return -EINVAL;
        }
        /* No path: libvirt's documented default. */
        if (!ret->server[0]) {
            int w = snprintf(ret->server, sizeof ret->server, "/var/lib/libvirt/shmem-%s-sock",
                             ret->name);
            if (w < 0 || (size_t)w >= sizeof ret->server) {
                say(why, why_size, "<shmem name='%s'>: the default server path is too long",
                    ret->name);
                return -EINVAL;
            }
        }
    }
    return 0;
}

int ivmon__lv_find_shmem(const char *xml, size_t len, const char *want, struct ivmon_lv_shmem *ret,
                         char *why, size_t why_size)
{
    char names[LV_LIST_MAX][IVMON_LV_NAME_MAX + 1];
    unsigned n_names = 0, n_devices = 0;
    int r = -ENODEV;

    pthread_once(&xml_once, xml_init);
    if (!xml || len == 0 || len > INT_MAX) {
        say(why, why_size, "the domain XML is empty or too large");
        return -EBADMSG;
    }
    /* NONET: never fetch anything; NOERROR/NOWARNING: libxml2 would print to stderr, and a
     * library does not print. */
    xmlDoc *doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        say(why, why_size, "the domain XML is not well-formed");
        return -EBADMSG;
    }
    const xmlNode *root = xmlDocGetRootElement(doc);
    if (doc->intSubset || doc->extSubset) {
        say(why, why_size, "the domain XML has a DOCTYPE, which libvirt never writes");
        r = -EBADMSG;
        goto out;
    }
    if (!root || !is_element(root, "domain")) {
        say(why, why_size, "the XML is not a libvirt domain (its root element is <%s>)",
            root ? (const char *)root->name : "");
        r = -EBADMSG;
        goto out;
    }
    for (const xmlNode *devs = root->children; devs; devs = devs->next) {
        if (!is_element(devs, "devices"))
            continue;
        for (const xmlNode *n = devs->children; n; n = n->next) {
            if (!is_element(n, "shmem"))
                continue;
            n_devices++;
            char name[IVMON_LV_NAME_MAX + 1];
            if (attr(n, "name", name, sizeof name) < 0)
                name[0] = '\0';
            if (want && strcmp(name, want) != 0) {
                if (n_names < LV_LIST_MAX && name[0])
                    memcpy(names[n_names++], name, sizeof name);
                continue;
            }
            struct ivmon_lv_shmem s;
            r = read_shmem(n, &s, why, why_size);
            if (r == 0)
                *ret = s;
            goto out;
        }
    }
    if (!n_devices) {
        say(why, why_size, "the domain has no <shmem> device");
    } else {
        /* Only reached with want set: list what there is, so the fix is obvious. */
        char list[LV_LIST_MAX * 24] = "";
        size_t used = 0;
        for (unsigned i = 0; i < n_names && used < sizeof list; i++) {
            int w = snprintf(list + used, sizeof list - used, "%s'%.16s'", i ? ", " : "", names[i]);
            if (w < 0)
                break;
            used += (size_t)w;
        }
        say(why, why_size, "the domain has no <shmem name='%s'>; its <shmem> devices: %s", want,
            list[0] ? list : "(unnamed)");
    }
out:
    xmlFreeDoc(doc);
    return r;
}
