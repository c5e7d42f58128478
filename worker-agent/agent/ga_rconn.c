
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-agent's runtime connections: dialed to the address resolved at
 * start, and kept alive in a pool per runtime (runtime_keepalive idle
 * ones at most, each for runtime_keepalive_timeout).  One that the
 * runtime closes, or that has unread bytes, is never reused.  A closed
 * one is freed after the epoll batch (gg_defer_free()).
 */


#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ga_agent.h"


static int ga_rconn_clean(ga_rconn_t *r);
static void ga_rconn_unlink(ga_rconn_t *rc);
static void ga_rconn_idle_io(gg_io_t *io, uint32_t revents);
static void ga_rconn_expire(gg_timer_t *t);


/*
 * The newest pooled connection with nothing unread, or a new one (connect
 * in progress).  NULL with "err" set on failure; "gone" then tells a
 * runtime that cannot be reached from a lack of the agent's resources.
 */

ga_rconn_t *
ga_rconn_get(ga_runtime_t *rt, int fresh, char *err, size_t size,
    int *gone)
{
    int          fd, on;
    ga_rconn_t  *r;

    *gone = 0;

    while (!fresh && rt->pool != NULL) {
        r = rt->pool;
        ga_rconn_unlink(r);

        if (ga_rconn_clean(r)) {
            ga_log(GA_DEBUG, "runtime \"%s\": reusing a kept-alive "
                   "connection (%d more idle)", rt->conf->name, rt->pool_n);
            return r;
        }

        ga_rconn_close(r);
    }

    if (rt->addr.len == 0) {
        snprintf(err, size, "%s: %s", rt->conf->url.host, rt->addr.err);
        *gone = rt->addr.gone;
        return NULL;
    }

    fd = socket(rt->addr.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK
                                       | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        snprintf(err, size, "socket: %s", strerror(errno));
        return NULL;
    }

    on = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

    if (connect(fd, (struct sockaddr *) &rt->addr.sa, rt->addr.len) != 0
        && errno != EINPROGRESS)
    {
        snprintf(err, size, "connect: %s", strerror(errno));
        *gone = (errno != EAGAIN && errno != EADDRNOTAVAIL
                 && errno != ENOBUFS && errno != ENOMEM);
        close(fd);
        return NULL;
    }

    r = calloc(1, sizeof(ga_rconn_t));
    if (r == NULL) {
        snprintf(err, size, "out of memory");
        close(fd);
        return NULL;
    }

    r->io.fd = fd;
    r->rt = rt;

    return r;
}


/*
 * A pooled connection is used again only if the runtime has sent nothing
 * on it since its last answer ended: a byte there (a stray second
 * response, garbage, a close) would be read as the next request's answer,
 * and every answer after it on this connection would be one behind, to
 * whichever tenant's request came next.  The epoll event that tells the
 * same may not have been handled yet (it can be later in this batch).
 */

static int
ga_rconn_clean(ga_rconn_t *r)
{
    char     byte;
    ssize_t  n;

    n = recv(r->io.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return 1;
    }

    if (n > 0) {
        ga_log(GA_WARN, "runtime \"%s\" sent unsolicited bytes on an idle "
               "kept-alive connection (first 0x%02x): closed, not reused",
               r->rt->conf->name, (unsigned char) byte);

    } else {
        ga_log(GA_DEBUG, "runtime closed an idle kept-alive connection "
               "(runtime \"%s\")", r->rt->conf->name);
    }

    return 0;
}


void
ga_rconn_put(ga_rconn_t *rc)
{
    ga_runtime_t  *rt;

    rt = rc->rt;

    if (rt->pool_n >= ga_runtime_keepalive(rt)) {
        /* the oldest goes: the newest is the one reused next */
        ga_rconn_close(rt->pool_tail);
    }

    rc->io.handler = ga_rconn_idle_io;
    rc->io.data = rc;
    rc->idle_since = gg_time_us();
    rc->pooled = 1;
    rc->prev = NULL;
    rc->next = rt->pool;

    if (rt->pool) {
        rt->pool->prev = rc;
    } else {
        rt->pool_tail = rc;
    }

    rt->pool = rc;
    rt->pool_n++;

    ga_log(GA_DEBUG, "runtime \"%s\": connection kept alive (%d idle)",
           rt->conf->name, rt->pool_n);

    /* a close by the runtime must be seen while pooled */
    if (gg_io_set(&ga_agent.loop, &rc->io, EPOLLIN | EPOLLRDHUP) != 0) {
        ga_rconn_close(rc);
        return;
    }

    if (!gg_timer_armed(&rt->pool_timer)) {
        rt->pool_timer.handler = ga_rconn_expire;
        rt->pool_timer.data = rt;
        (void) gg_timer_add(&ga_agent.loop, &rt->pool_timer,
                            rt->conf->keepalive_timeout * 1000000ULL);
    }
}


static void
ga_rconn_unlink(ga_rconn_t *rc)
{
    ga_runtime_t  *rt;

    if (!rc->pooled) {
        return;
    }

    rt = rc->rt;

    if (rc->prev) {
        rc->prev->next = rc->next;
    } else {
        rt->pool = rc->next;
    }

    if (rc->next) {
        rc->next->prev = rc->prev;
    } else {
        rt->pool_tail = rc->prev;
    }

    rc->next = NULL;
    rc->prev = NULL;
    rc->pooled = 0;
    rt->pool_n--;
}


void
ga_rconn_close(ga_rconn_t *rc)
{
    ga_rconn_unlink(rc);

    (void) gg_io_set(&ga_agent.loop, &rc->io, 0);
    close(rc->io.fd);

    rc->io.fd = -1;
    rc->io.handler = ga_dead_io;
    gg_defer_free(&ga_agent.loop, &rc->defer, rc);
}


/* a pooled connection became readable: the runtime closed it */

static void
ga_rconn_idle_io(gg_io_t *io, uint32_t revents)
{
    (void) revents;

    /* closed, or a stray byte: never to be reused either way */
    (void) ga_rconn_clean(io->data);

    ga_rconn_close(io->data);
}


static void
ga_rconn_expire(gg_timer_t *t)
{
    uint64_t       now, limit;
    ga_runtime_t  *rt;

    rt = t->data;
    now = gg_time_us();
    limit = rt->conf->keepalive_timeout * 1000000ULL;

    while (rt->pool_tail && now - rt->pool_tail->idle_since >= limit) {
        ga_rconn_close(rt->pool_tail);
    }

    if (rt->pool_tail) {
        (void) gg_timer_add(&ga_agent.loop, t,
                            rt->pool_tail->idle_since + limit - now);
    }
}


/* SIGTERM: idle runtime connections are not wanted any more */

void
ga_rconn_pool_close(ga_runtime_t *rt)
{
    while (rt->pool) {
        ga_rconn_close(rt->pool);
    }

    gg_timer_del(&ga_agent.loop, &rt->pool_timer);
}
