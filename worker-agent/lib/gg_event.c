
/*
 * Copyright (C) gpugate authors
 */


#define _GNU_SOURCE

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "gg_event.h"


#define GG_EVENTS_MAX  256


uint64_t
gg_time_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


static void
gg_loop_reap(gg_loop_t *loop)
{
    gg_defer_t  *d;

    while (loop->deferred) {
        d = loop->deferred;
        loop->deferred = d->next;
        free(d->ptr);
    }
}


void
gg_defer_free(gg_loop_t *loop, gg_defer_t *d, void *ptr)
{
    d->ptr = ptr;
    d->next = loop->deferred;
    loop->deferred = d;
}


static void
gg_loop_on_signal(gg_io_t *io, uint32_t revents)
{
    gg_loop_t                *loop;
    struct signalfd_siginfo   si;

    (void) revents;

    loop = io->data;

    while (read(io->fd, &si, sizeof(si)) == sizeof(si)) {

        if (si.ssi_signo == SIGHUP) {
            if (loop->on_hup) {
                loop->on_hup(loop);
            }

            continue;
        }

        if (si.ssi_signo == SIGCHLD) {
            /* signals merge: the handler reaps every child that ended */
            if (loop->on_child) {
                loop->on_child(loop);
            }

            continue;
        }

        loop->stop = 1;
        loop->signo = (int) si.ssi_signo;
    }
}


int
gg_loop_init(gg_loop_t *loop)
{
    sigset_t  set;

    memset(loop, 0, sizeof(gg_loop_t));
    loop->sig.fd = -1;

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        return -1;
    }

    /* blocked, so they are only ever seen through the signalfd */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);

    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        return -1;
    }

    loop->sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (loop->sig.fd < 0) {
        return -1;
    }

    loop->sig.handler = gg_loop_on_signal;
    loop->sig.data = loop;
    loop->now = gg_time_us();

    return gg_io_set(loop, &loop->sig, EPOLLIN);
}


void
gg_loop_free(gg_loop_t *loop)
{
    if (loop->sig.fd >= 0) {
        close(loop->sig.fd);
    }

    if (loop->epfd >= 0) {
        close(loop->epfd);
    }

    gg_loop_reap(loop);
    free(loop->heap);

    loop->heap = NULL;
    loop->nheap = 0;
    loop->heap_cap = 0;
}


int
gg_io_set(gg_loop_t *loop, gg_io_t *io, uint32_t events)
{
    int                 op;
    struct epoll_event  ev;

    if (events == io->events) {
        return 0;
    }

    if (events == 0) {
        op = EPOLL_CTL_DEL;

    } else if (io->events == 0) {
        op = EPOLL_CTL_ADD;

    } else {
        op = EPOLL_CTL_MOD;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = io;

    if (epoll_ctl(loop->epfd, op, io->fd, &ev) != 0) {
        return -1;
    }

    io->events = events;

    return 0;
}


static void
gg_heap_put(gg_loop_t *loop, size_t i, gg_timer_t *t)
{
    loop->heap[i] = t;
    t->slot = i + 1;
}


static void
gg_heap_up(gg_loop_t *loop, size_t i)
{
    size_t       parent;
    gg_timer_t  *t;

    t = loop->heap[i];

    while (i > 0) {
        parent = (i - 1) / 2;

        if (loop->heap[parent]->when <= t->when) {
            break;
        }

        gg_heap_put(loop, i, loop->heap[parent]);
        i = parent;
    }

    gg_heap_put(loop, i, t);
}


static void
gg_heap_down(gg_loop_t *loop, size_t i)
{
    size_t       child;
    gg_timer_t  *t;

    t = loop->heap[i];

    for ( ;; ) {
        child = 2 * i + 1;

        if (child >= loop->nheap) {
            break;
        }

        if (child + 1 < loop->nheap
            && loop->heap[child + 1]->when < loop->heap[child]->when)
        {
            child++;
        }

        if (t->when <= loop->heap[child]->when) {
            break;
        }

        gg_heap_put(loop, i, loop->heap[child]);
        i = child;
    }

    gg_heap_put(loop, i, t);
}


void
gg_timer_del(gg_loop_t *loop, gg_timer_t *t)
{
    size_t       i;
    gg_timer_t  *last;

    if (t->slot == 0) {
        return;
    }

    i = t->slot - 1;
    t->slot = 0;
    last = loop->heap[--loop->nheap];

    if (i == loop->nheap) {
        return;
    }

    /* the last timer fills the hole and moves whichever way it must */
    gg_heap_put(loop, i, last);
    gg_heap_up(loop, i);
    gg_heap_down(loop, last->slot - 1);
}


int
gg_timer_add(gg_loop_t *loop, gg_timer_t *t, uint64_t us)
{
    size_t        cap;
    gg_timer_t  **heap;

    gg_timer_del(loop, t);

    if (loop->nheap == loop->heap_cap) {
        cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        heap = realloc(loop->heap, cap * sizeof(gg_timer_t *));
        if (heap == NULL) {
            return -1;
        }

        loop->heap = heap;
        loop->heap_cap = cap;
    }

    t->when = loop->now + us;
    gg_heap_put(loop, loop->nheap++, t);
    gg_heap_up(loop, loop->nheap - 1);

    return 0;
}


/* runs the timers due by "now"; ones armed meanwhile for later wait */

static void
gg_timers_expire(gg_loop_t *loop)
{
    gg_timer_t  *t;

    while (loop->nheap && !loop->stop) {
        t = loop->heap[0];

        if (t->when > loop->now) {
            break;
        }

        gg_timer_del(loop, t);
        t->handler(t);
    }
}


int
gg_loop_run(gg_loop_t *loop)
{
    int                 i, n;
    uint64_t            wait;
    gg_io_t            *io;
    struct timespec     ts, *tsp;
    struct epoll_event  events[GG_EVENTS_MAX];

    while (!loop->stop) {
        loop->now = gg_time_us();
        gg_timers_expire(loop);

        /* no event or timer of the last round can name these any more */
        gg_loop_reap(loop);

        if (loop->stop) {
            break;
        }

        tsp = NULL;

        if (loop->nheap) {
            wait = loop->heap[0]->when > loop->now
                   ? loop->heap[0]->when - loop->now : 0;
            ts.tv_sec = (time_t) (wait / 1000000);
            ts.tv_nsec = (long) (wait % 1000000) * 1000;
            tsp = &ts;
        }

        /* epoll_pwait2 takes a timespec: byte-by-byte writes wait only
           microseconds, which epoll_wait's milliseconds cannot express */
        n = -1;
        errno = ENOSYS;

        if (!loop->no_pwait2) {
            n = epoll_pwait2(loop->epfd, events, GG_EVENTS_MAX, tsp, NULL);
        }

        if (n < 0 && errno == ENOSYS) {
            /* milliseconds, rounded up so that a timer is never early */
            loop->no_pwait2 = 1;
            n = epoll_wait(loop->epfd, events, GG_EVENTS_MAX,
                           tsp ? (int) ((wait + 999) / 1000) : -1);
        }

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }

        loop->now = gg_time_us();

        /*
         * A handler may free only its own object, never another one's, so
         * the pointers in the rest of this batch stay valid.
         */
        for (i = 0; i < n; i++) {
            io = events[i].data.ptr;
            io->handler(io, events[i].events);
        }

        gg_loop_reap(loop);
    }

    gg_loop_reap(loop);

    return 0;
}
