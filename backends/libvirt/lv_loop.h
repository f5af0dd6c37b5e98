/* SPDX-License-Identifier: MIT */
/*
 * libvirt's event loop, run inside the caller's poll loop.
 *
 * libvirt delivers domain lifecycle events (and notices a closed connection) only through an
 * event loop implementation registered once per process with virEventRegisterImpl(). This one
 * keeps every descriptor and timeout libvirt asks for in one epoll set (timeouts through a
 * timerfd in the same set), so a session can put that one fd into its own epoll set and the
 * work gets done whenever the caller calls ivmon_process() on any libvirt: session. No thread.
 *
 * If the application registered its own implementation before (it uses libvirt itself), that
 * one stays, and libvirt's callbacks arrive whenever the application runs its loop.
 */
#ifndef IVMON_LV_LOOP_H
#define IVMON_LV_LOOP_H

/* Makes sure libvirt has an event implementation; safe to call from any thread, any number of
 * times. Returns 0 and stores in *ret_fd the fd to poll for libvirt's work (owned by the
 * process-wide loop, never closed), or -1 if the application's own implementation is in use
 * (there is nothing for us to run). Returns a negative errno if the loop could not be set up. */
int ivmon__lv_loop_init(int *ret_fd);

/* Runs what is ready: handle callbacks, due timeouts, then the free functions of what libvirt
 * removed. Never blocks; returns at once if another thread is already running it, or if the
 * loop is the application's. Call it with no libvirt lock held, i.e. not from a libvirt
 * callback. */
void ivmon__lv_loop_run(void);

#endif /* IVMON_LV_LOOP_H */
