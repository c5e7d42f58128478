
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of gg_event: timers fire in order, deleted ones never, and
 * the loop stops from a handler.  Prints TAP.
 */


#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "gg_event.h"
#include "tap.h"


/* armed out of order; t[5] is deleted, t[2] re-armed for 25 ms */
static const int  delay_ms[6] = { 30, 10, 5, 20, 40, 15 };
static const int  order[5] = { 1, 3, 2, 0, 4 };

static gg_loop_t  loop;
static int        fired[64];
static int        nfired;


static void
on_timer(gg_timer_t *t)
{
    fired[nfired++] = (int) (intptr_t) t->data;

    if (nfired == 6) {
        loop.stop = 1;
    }
}


static void
on_pipe(gg_io_t *io, uint32_t revents)
{
    char  c;

    (void) revents;

    if (read(io->fd, &c, 1) == 1) {
        fired[nfired++] = 100 + c;
    }
}


int
main(void)
{
    int          i, j, ok, fds[2];
    uint64_t     start, took;
    gg_io_t      io;
    gg_timer_t   t[8];

    tap_ok(gg_loop_init(&loop) == 0, "loop created");

    memset(t, 0, sizeof(t));
    loop.now = gg_time_us();
    start = loop.now;


    for (i = 0; i < 6; i++) {
        t[i].handler = on_timer;
        t[i].data = (void *) (intptr_t) i;
        gg_timer_add(&loop, &t[i], (uint64_t) delay_ms[i] * 1000);
    }

    gg_timer_del(&loop, &t[5]);
    gg_timer_add(&loop, &t[2], 25000);

    tap_ok(gg_timer_armed(&t[0]) && !gg_timer_armed(&t[5]),
           "armed flags");

    tap_ok(pipe(fds) == 0, "pipe");
    memset(&io, 0, sizeof(io));
    io.fd = fds[0];
    io.handler = on_pipe;
    gg_io_set(&loop, &io, EPOLLIN);
    tap_ok(write(fds[1], "A", 1) == 1, "pipe written");

    tap_ok(gg_loop_run(&loop) == 0, "loop ran until a handler stopped it");
    took = gg_time_us() - start;

    /* the pipe event may come before or among the timers: skip it */
    ok = (nfired == 6);

    for (i = 0, j = 0; ok && i < nfired; i++) {
        if (fired[i] == 100 + 'A') {
            continue;
        }

        if (j == 5 || fired[i] != order[j++]) {
            ok = 0;
        }
    }

    for (i = 0; !ok && i < nfired; i++) {
        printf("# fired[%d] = %d\n", i, fired[i]);
    }

    tap_ok(ok, "timers by deadline, I/O served; deleted never fires");
    tap_ok(took >= 30000 && took < 2000000, "waited the longest delay "
           "(%llu us)", (unsigned long long) took);

    gg_io_set(&loop, &io, 0);
    close(fds[0]);
    close(fds[1]);
    gg_loop_free(&loop);

    return tap_done();
}
