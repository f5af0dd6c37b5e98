/* SPDX-License-Identifier: MIT */
/*
 * A libvirt event loop implementation (virEventRegisterImpl) that lives inside the caller's poll
 * loop: see lv_loop.h for why.
 *
 * Why not virEventRegisterDefaultImpl() and a thread running virEventRunDefaultImpl()? That
 * would be simpler, but it is a thread the library starts (STYLE.md: only when a backend truly
 * needs one), libvirt's callbacks would run on it, and the loop can never be stopped (libvirt
 * has no way to unregister an implementation, and may still call it after virConnectClose).
 * libvirt only needs descriptors watched and timeouts kept, which an epoll set does; the callers
 * already run a loop. What this costs: the implementation is process-wide (libvirt allows one),
 * so it is set up once, shared by every libvirt: session, and kept until the process exits.
 *
 * Locking: one mutex guards the tables. libvirt calls add/update/remove from any thread and from
 * inside its own callbacks, so no callback runs with the mutex held, and the callbacks' free
 * functions run later, outside any libvirt call (libvirt may remove a watch while holding a lock
 * its free function takes).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "libvirt/lv_loop.h"

#define LV_TIMER_KEY  0u /* epoll data of the timerfd; watches are numbered from 1 */
#define LV_EVENTS_MAX 32
#define LV_REAP_BATCH 16
#define LV_NS_PER_MS  1000000ull

#define LV_UNSET 0
#define LV_OURS  1
#define LV_APP   2

struct lv_handle {
    int watch;
    int fd;     /* libvirt's descriptor, handed back to its callback */
    int dup_fd; /* ours, in the epoll set: see lv_add_handle */
    int events; /* VIR_EVENT_HANDLE_* libvirt wants */
    int in_set;
    int deleted;
    virEventHandleCallback cb;
    void *opaque;
    virFreeCallback ff;
};

struct lv_timeout {
    int timer;
    int freq;     /* milliseconds between calls; -1 disabled, 0 every loop iteration */
    uint64_t due; /* CLOCK_MONOTONIC nanoseconds */
    int deleted;
    virEventTimeoutCallback cb;
    void *opaque;
    virFreeCallback ff;
};

struct lv_free {
    virFreeCallback ff;
    void *opaque;
};

static pthread_once_t lv_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lv_lock = PTHREAD_MUTEX_INITIALIZER;
static int lv_state = LV_UNSET;
static int lv_setup_err;
static int lv_epfd = -1, lv_tfd = -1;
static struct lv_handle *lv_handles;
static size_t lv_n_handles, lv_cap_handles;
static struct lv_timeout *lv_timeouts;
static size_t lv_n_timeouts, lv_cap_timeouts;
static int lv_next_watch = 1, lv_next_timer = 1;
static int lv_running;
static int lv_probe_seen;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Grows a table by one slot. Returns 0 or -1. */
static int grow(void **table, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *t = realloc(*table, ncap * elem);
    if (!t)
        return -1;
    *table = t;
    *cap = ncap;
    return 0;
}

/* Ids must stay unique among live entries; they are ints and run for the process's life. */
static int next_id(int *counter)
{
    int id = (*counter)++;
    if (*counter == INT32_MAX)
        *counter = 1;
    return id;
}

static struct lv_handle *find_handle(int watch)
{
    for (size_t i = 0; i < lv_n_handles; i++)
        if (lv_handles[i].watch == watch && !lv_handles[i].deleted)
            return &lv_handles[i];
    return NULL;
}

static struct lv_timeout *find_timeout(int timer)
{
    for (size_t i = 0; i < lv_n_timeouts; i++)
        if (lv_timeouts[i].timer == timer && !lv_timeouts[i].deleted)
            return &lv_timeouts[i];
    return NULL;
}

/* ERROR and HANGUP need not be asked for: epoll reports them always. */
static uint32_t to_epoll(int events)
{
    return ((events & VIR_EVENT_HANDLE_READABLE) ? EPOLLIN : 0u) |
           ((events & VIR_EVENT_HANDLE_WRITABLE) ? EPOLLOUT : 0u);
}

static int from_epoll(uint32_t e)
{
    return ((e & EPOLLIN) ? VIR_EVENT_HANDLE_READABLE : 0) |
           ((e & EPOLLOUT) ? VIR_EVENT_HANDLE_WRITABLE : 0) |
           ((e & EPOLLERR) ? VIR_EVENT_HANDLE_ERROR : 0) |
           ((e & EPOLLHUP) ? VIR_EVENT_HANDLE_HANGUP : 0);
}

/* Puts the handle's descriptor into the set, changes it, or takes it out. libvirt sets events
 * to 0 to stop hearing about a descriptor (after EOF, say); epoll would still report a hangup,
 * so such a descriptor leaves the set instead of spinning the caller's loop. */
static int sync_handle(struct lv_handle *h)
{
    struct epoll_event ev = {.events = to_epoll(h->events), .data.u64 = (uint64_t)h->watch};
    int want = h->events != 0 && !h->deleted;
    int r = 0;

    if (want && !h->in_set)
        r = epoll_ctl(lv_epfd, EPOLL_CTL_ADD, h->dup_fd, &ev);
    else if (want)
        r = epoll_ctl(lv_epfd, EPOLL_CTL_MOD, h->dup_fd, &ev);
    else if (h->in_set)
        r = epoll_ctl(lv_epfd, EPOLL_CTL_DEL, h->dup_fd, NULL);
    if (r == 0)
        h->in_set = want;
    return r;
}

/* Arms the timerfd for the earliest enabled timeout, or disarms it. A due time in the past makes
 * it readable at once, which is what a 0 ms timeout ("every iteration") needs. */
static void rearm(void)
{
    uint64_t best = UINT64_MAX;
    struct itimerspec its;

    memset(&its, 0, sizeof its);
    for (size_t i = 0; i < lv_n_timeouts; i++) {
        const struct lv_timeout *t = &lv_timeouts[i];
        if (!t->deleted && t->freq >= 0 && t->due < best)
            best = t->due;
    }
    if (best != UINT64_MAX) {
        best = best ? best : 1; /* an all-zero it_value would disarm */
        its.it_value.tv_sec = (time_t)(best / 1000000000ull);
        its.it_value.tv_nsec = (long)(best % 1000000000ull);
    }
    timerfd_settime(lv_tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* epoll keys a registration by descriptor number and open file. libvirt may close its
 * descriptor before removing the watch, and the number may be reused at once; with a private
 * duplicate in the set, we always remove exactly what we added and a stale registration can
 * never report someone else's file. */
static int lv_add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
                         virFreeCallback ff)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup_fd < 0)
        return -1;
    pthread_mutex_lock(&lv_lock);
    if (grow((void **)&lv_handles, &lv_cap_handles, lv_n_handles, sizeof *lv_handles) < 0) {
        pthread_mutex_unlock(&lv_lock);
        close(dup_fd);
        return -1;
    }
    struct lv_handle *h = &lv_handles[lv_n_handles];
    memset(h, 0, sizeof *h);
    h->watch = next_id(&lv_next_watch);
    h->fd = fd;
    h->dup_fd = dup_fd;
    h->events = events;
    h->cb = cb;
    h->opaque = opaque;
    h->ff = ff;
    if (sync_handle(h) < 0) {
        pthread_mutex_unlock(&lv_lock);
        close(dup_fd);
        return -1;
    }
    lv_n_handles++;
    int watch = h->watch;
    pthread_mutex_unlock(&lv_lock);
    return watch;
}

static void lv_update_handle(int watch, int events)
{
    pthread_mutex_lock(&lv_lock);
    struct lv_handle *h = find_handle(watch);
    if (h) {
        h->events = events;
        sync_handle(h);
    }
    pthread_mutex_unlock(&lv_lock);
}

static int lv_remove_handle(int watch)
{
    pthread_mutex_lock(&lv_lock);
    struct lv_handle *h = find_handle(watch);
    if (h) {
        h->deleted = 1;
        sync_handle(h);
        close(h->dup_fd);
        h->dup_fd = -1;
    }
    pthread_mutex_unlock(&lv_lock);
    return h ? 0 : -1;
}

static int lv_add_timeout(int freq, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
    pthread_mutex_lock(&lv_lock);
    lv_probe_seen = 1;
    if (grow((void **)&lv_timeouts, &lv_cap_timeouts, lv_n_timeouts, sizeof *lv_timeouts) < 0) {
        pthread_mutex_unlock(&lv_lock);
        return -1;
    }
    struct lv_timeout *t = &lv_timeouts[lv_n_timeouts++];
    memset(t, 0, sizeof *t);
    t->timer = next_id(&lv_next_timer);
    t->freq = freq;
    t->due = now_ns() + (freq > 0 ? (uint64_t)freq * LV_NS_PER_MS : 0);
    t->cb = cb;
    t->opaque = opaque;
    t->ff = ff;
    int timer = t->timer;
    rearm();
    pthread_mutex_unlock(&lv_lock);
    return timer;
}

static void lv_update_timeout(int timer, int freq)
{
    pthread_mutex_lock(&lv_lock);
    struct lv_timeout *t = find_timeout(timer);
    if (t) {
        t->freq = freq;
        t->due = now_ns() + (freq > 0 ? (uint64_t)freq * LV_NS_PER_MS : 0);
        rearm();
    }
    pthread_mutex_unlock(&lv_lock);
}

static int lv_remove_timeout(int timer)
{
    pthread_mutex_lock(&lv_lock);
    struct lv_timeout *t = find_timeout(timer);
    if (t) {
        t->deleted = 1;
        rearm();
    }
    pthread_mutex_unlock(&lv_lock);
    return t ? 0 : -1;
}

/* Takes up to LV_REAP_BATCH removed entries out of the tables (lock held), collecting the free
 * functions to call. Only the thread running the loop compacts, and no one else keeps an index
 * across an unlock, so moving entries is safe. Returns how many free functions were collected. */
static size_t collect_removed(struct lv_free *out)
{
    size_t n = 0, j = 0;
    for (size_t i = 0; i < lv_n_handles; i++) {
        struct lv_handle *h = &lv_handles[i];
        if (h->deleted && n < LV_REAP_BATCH) {
            if (h->ff)
                out[n++] = (struct lv_free){h->ff, h->opaque};
            continue;
        }
        lv_handles[j++] = *h;
    }
    lv_n_handles = j;
    j = 0;
    for (size_t i = 0; i < lv_n_timeouts; i++) {
        struct lv_timeout *t = &lv_timeouts[i];
        if (t->deleted && n < LV_REAP_BATCH) {
            if (t->ff)
                out[n++] = (struct lv_free){t->ff, t->opaque};
            continue;
        }
        lv_timeouts[j++] = *t;
    }
    lv_n_timeouts = j;
    return n;
}

void ivmon__lv_loop_run(void)
{
    struct epoll_event evs[LV_EVENTS_MAX];
    struct lv_free frees[LV_REAP_BATCH];

    pthread_mutex_lock(&lv_lock);
    if (lv_state != LV_OURS || lv_running) {
        pthread_mutex_unlock(&lv_lock);
        return;
    }
    lv_running = 1;
    int n = epoll_wait(lv_epfd, evs, LV_EVENTS_MAX, 0);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == LV_TIMER_KEY) {
            /* Only to clear it: the timeouts are checked below whatever it says (EAGAIN means
             * it was re-armed since epoll looked). */
            uint64_t expirations;
            ssize_t got = read(lv_tfd, &expirations, sizeof expirations);
            (void)got;
            continue;
        }
        /* An earlier callback of this round may have removed or muted this one. */
        const struct lv_handle *h = find_handle((int)evs[i].data.u64);
        if (!h || !h->in_set)
            continue;
        int watch = h->watch, fd = h->fd, events = from_epoll(evs[i].events);
        virEventHandleCallback cb = h->cb;
        void *opaque = h->opaque;
        pthread_mutex_unlock(&lv_lock);
        cb(watch, fd, events, opaque);
        pthread_mutex_lock(&lv_lock);
    }
    /* By index: a callback may add timeouts, which can move the table. */
    uint64_t now = now_ns();
    for (size_t i = 0; i < lv_n_timeouts; i++) {
        struct lv_timeout *t = &lv_timeouts[i];
        if (t->deleted || t->freq < 0 || t->due > now)
            continue;
        t->due = now + (uint64_t)t->freq * LV_NS_PER_MS;
        int timer = t->timer;
        virEventTimeoutCallback cb = t->cb;
        void *opaque = t->opaque;
        pthread_mutex_unlock(&lv_lock);
        cb(timer, opaque);
        pthread_mutex_lock(&lv_lock);
    }
    rearm();
    for (;;) {
        size_t nf = collect_removed(frees);
        pthread_mutex_unlock(&lv_lock);
        for (size_t i = 0; i < nf; i++)
            frees[i].ff(frees[i].opaque);
        pthread_mutex_lock(&lv_lock);
        if (nf < LV_REAP_BATCH)
            break;
    }
    lv_running = 0;
    pthread_mutex_unlock(&lv_lock);
}

static void lv_probe_cb(int timer, void *opaque)
{
}

/* libvirt prints every error to stderr unless an error function is set, and a library must not
 * print: the backend reads the errors itself with virGetLastErrorMessage(). */
static void lv_silent(void *userdata, virErrorPtr err)
{
}

static void lv_setup(void)
{
    /* Is an implementation registered already? virEventAddTimeout returns -1 only if none is. */
    int probe = virEventAddTimeout(-1, lv_probe_cb, NULL, NULL);
    if (probe >= 0) {
        virEventRemoveTimeout(probe);
        lv_state = LV_APP;
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LV_TIMER_KEY};
    lv_epfd = epoll_create1(EPOLL_CLOEXEC);
    lv_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (lv_epfd < 0 || lv_tfd < 0 || epoll_ctl(lv_epfd, EPOLL_CTL_ADD, lv_tfd, &ev) < 0) {
        lv_setup_err = -errno;
        goto fail;
    }
    virEventRegisterImpl(lv_add_handle, lv_update_handle, lv_remove_handle, lv_add_timeout,
                         lv_update_timeout, lv_remove_timeout);
    /* Another thread may have registered one between the probe and here, and libvirt keeps the
     * first: make sure ours is the one in place before relying on it. */
    probe = virEventAddTimeout(-1, lv_probe_cb, NULL, NULL);
    if (probe >= 0)
        virEventRemoveTimeout(probe);
    if (!lv_probe_seen) {
        lv_state = LV_APP;
        goto fail;
    }
    /* Only when the loop is ours: an application with its own loop handles libvirt's errors
     * its own way, and the error function, like the loop, is process-wide. */
    virSetErrorFunc(NULL, lv_silent);
    lv_state = LV_OURS;
    return;
fail:
    if (lv_tfd >= 0)
        close(lv_tfd);
    if (lv_epfd >= 0)
        close(lv_epfd);
    lv_tfd = lv_epfd = -1;
}

int ivmon__lv_loop_init(int *ret_fd)
{
    pthread_once(&lv_once, lv_setup);
    if (lv_state == LV_OURS)
        *ret_fd = lv_epfd;
    else if (lv_state == LV_APP)
        *ret_fd = -1;
    else
        return lv_setup_err ? lv_setup_err : -ENOMEM;
    return 0;
}
