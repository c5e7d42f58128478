
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of gg_event: timers fire in order, deleted ones never, the
 * loop stops from a handler, and objects a handler closes are freed only
 * after the epoll batch that may still name them.  Prints TAP.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gg_event.h"
#include "tests/tap.h"           /* modules/core/tests/tap.h */


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


/* a closable object: both are closed by whichever is served first */
typedef struct {
    gg_io_t      io;
    gg_defer_t   defer;
    int          dead;
} obj_t;

static obj_t  *objs[2];
static int     served, dead_seen_pending;


static void
on_obj(gg_io_t *io, uint32_t revents)
{
    int     i;
    obj_t  *o;

    (void) revents;

    o = io->data;
    served++;

    if (o->dead) {
        /* still in this batch: the memory must not be freed yet */
        dead_seen_pending = loop.deferred != NULL;
        loop.stop = 1;
        return;
    }

    for (i = 0; i < 2; i++) {
        gg_io_set(&loop, &objs[i]->io, 0);
        objs[i]->dead = 1;
        gg_defer_free(&loop, &objs[i]->defer, objs[i]);
    }
}


static void
test_defer(void)
{
    int  i, fds[2][2];

    served = 0;
    loop.stop = 0;

    for (i = 0; i < 2; i++) {
        objs[i] = calloc(1, sizeof(obj_t));
        tap_ok(objs[i] && pipe(fds[i]) == 0, "object %d", i);
        objs[i]->io.fd = fds[i][0];
        objs[i]->io.handler = on_obj;
        objs[i]->io.data = objs[i];
        gg_io_set(&loop, &objs[i]->io, EPOLLIN);
        tap_ok(write(fds[i][1], "x", 1) == 1, "pipe %d written", i);
    }

    tap_ok(gg_loop_run(&loop) == 0, "loop ran");
    tap_ok(served == 2 && dead_seen_pending,
           "a closed object named later in the batch is not freed yet");
    tap_ok(loop.deferred == NULL, "freed once the batch is over");

    for (i = 0; i < 2; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
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

    test_defer();

    gg_loop_free(&loop);

    return tap_done();
}
