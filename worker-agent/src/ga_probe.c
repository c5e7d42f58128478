
/*
 * Copyright (C) gpugate authors
 *
 * The runtime's health and load, read every load_interval seconds: its
 * metrics endpoint in its own dialect (runtime_type, ga_load.c), reported
 * to the gateway as X-Gpugate-Load in the handshake and in ping answers;
 * or, for a plain OpenAI-compatible runtime, GET /v1/models.
 *
 * A runtime that cannot be connected to (nothing listens: it died or has
 * not started) is down: the agent then offers the gateway no capacity
 * (ga_runtime_down()), so requests go to other agents instead of getting
 * 502s here, until a probe connects again.  Slow or odd answers are not
 * "down": a runtime busy generating may be slow to serve its metrics.
 *
 * One probe at a time, non-blocking in the event loop: HTTP/1.0, so the
 * answer ends where the runtime closes; at most GA_PROBE_MAX bytes and
 * GA_PROBE_TIMEOUT.  A failed probe keeps nothing: figures older than
 * three intervals are not reported, so a runtime that stops answering
 * stops steering traffic.  Failures are logged when they start and when
 * they end, not on every probe.
 */


#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ga_agent.h"


#define GA_PROBE_MAX      (1024 * 1024)
#define GA_PROBE_TIMEOUT  (2 * 1000000ULL)


typedef struct {
    gg_io_t          io;         /* the probe's socket, fd -1 if none */
    gg_timer_t       timer;      /* next probe, or this one's deadline */
    gg_buf_t         out;        /* request bytes not yet written */
    gg_buf_t         in;         /* the answer so far */
    gg_http_head_t   head;       /* its head */
    unsigned         connected:1; /* connect() finished */
    unsigned         failing:1;  /* the last probe failed: logged once */
} ga_probe_t;


static void ga_probe_tick(gg_timer_t *t);
static void ga_probe_io(gg_io_t *io, uint32_t revents);
static void ga_probe_done(const char *error, int down);


static ga_probe_t  ga_probe;


/* at start, and now rather than later: unless a probe is under way */

void
ga_probe_now(void)
{
    if (ga_probe.timer.handler == NULL) {
        ga_probe.io.fd = -1;
        ga_probe.timer.handler = ga_probe_tick;
    }

    if (ga_probe.io.fd != -1 || ga_agent.draining) {
        return;
    }

    (void) gg_timer_add(&ga_agent.loop, &ga_probe.timer, 0);
}


/* "X-Gpugate-Load: ...\r\n" into buf when fresh figures exist, else "" */

const char *
ga_probe_header(char *buf, size_t size)
{
    uint64_t  age;

    buf[0] = '\0';

    if (ga_agent.load_at == 0) {
        return buf;
    }

    age = gg_time_us() - ga_agent.load_at;

    if (age > 3ULL * ga_agent.conf.load_interval * 1000000ULL) {
        return buf;
    }

    snprintf(buf, size, "X-Gpugate-Load: queue=%llu\r\n",
             (unsigned long long) ga_agent.load.waiting);

    return buf;
}


static void
ga_probe_tick(gg_timer_t *t)
{
    int               fd, rc;
    const char       *path;
    struct addrinfo   hints, *res;

    (void) t;

    if (ga_probe.io.fd != -1) {
        ga_probe_done("no answer within 2 s", 0);
        return;
    }

    ga_probe.connected = 0;

    path = ga_runtime_metrics_path(ga_agent.conf.runtime_type);

    if (path == NULL) {
        /* runtime_type openai, perhaps since a SIGHUP: health only */
        ga_agent.load_at = 0;
        path = "/v1/models";
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(ga_agent.conf.runtime.host, ga_agent.conf.runtime.port,
                     &hints, &res);

    if (rc != 0) {
        ga_probe_done(gai_strerror(rc), 1);
        return;
    }

    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);

    if (fd == -1
        || (connect(fd, res->ai_addr, res->ai_addrlen) != 0
            && errno != EINPROGRESS))
    {
        rc = errno;
        freeaddrinfo(res);

        if (fd != -1) {
            close(fd);
        }

        ga_probe_done(strerror(rc), 1);
        return;
    }

    freeaddrinfo(res);

    ga_probe.io.fd = fd;
    ga_probe.io.events = 0;
    ga_probe.io.handler = ga_probe_io;
    ga_probe.io.data = &ga_probe;
    ga_probe.connected = 0;
    gg_buf_reset(&ga_probe.in);
    gg_buf_reset(&ga_probe.out);

    if (gg_buf_printf(&ga_probe.out, "GET %s HTTP/1.0\r\nHost: %s:%s\r\n"
                      "User-Agent: gpugate-agent/" GA_VERSION "\r\n\r\n",
                      path, ga_agent.conf.runtime.host,
                      ga_agent.conf.runtime.port)
        != 0
        || gg_io_set(&ga_agent.loop, &ga_probe.io, EPOLLOUT) != 0)
    {
        ga_probe_done("out of memory", 0);
        return;
    }

    (void) gg_timer_add(&ga_agent.loop, &ga_probe.timer, GA_PROBE_TIMEOUT);
}


static void
ga_probe_io(gg_io_t *io, uint32_t revents)
{
    int        err;
    ssize_t    n;
    ga_load_t  load;
    socklen_t  len;

    (void) revents;

    if (!ga_probe.connected) {
        len = sizeof(err);

        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0
            || err != 0)
        {
            /* nothing listens: the runtime is down */
            ga_probe_done(strerror(err ? err : errno), 1);
            return;
        }

        ga_probe.connected = 1;
    }

    while (gg_buf_len(&ga_probe.out)) {
        n = send(io->fd, gg_buf_pos(&ga_probe.out),
                 gg_buf_len(&ga_probe.out), MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }

            ga_probe_done(strerror(errno), 0);
            return;
        }

        gg_buf_consume(&ga_probe.out, n);
    }

    (void) gg_io_set(&ga_agent.loop, io, EPOLLIN);

    for ( ;; ) {
        if (gg_buf_len(&ga_probe.in) >= GA_PROBE_MAX
            || gg_buf_reserve(&ga_probe.in, 16384) != 0)
        {
            ga_probe_done("answer over 1 MiB", 0);
            return;
        }

        n = read(io->fd, gg_buf_last(&ga_probe.in),
                 gg_buf_room(&ga_probe.in));

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }

            ga_probe_done(strerror(errno), 0);
            return;
        }

        if (n == 0) {
            break;
        }

        ga_probe.in.end += n;
    }

    /* the runtime closed: the answer is whole */

    gg_http_head_init(&ga_probe.head, 1, 64 * 1024);

    if (gg_http_parse_head(&ga_probe.head, gg_buf_pos(&ga_probe.in),
                           gg_buf_len(&ga_probe.in)) != GG_HTTP_OK)
    {
        ga_probe_done("malformed answer", 0);
        return;
    }

    if (ga_probe.head.status != 200) {
        ga_probe_done("status is not 200", 0);
        return;
    }

    if (ga_runtime_metrics_path(ga_agent.conf.runtime_type) == NULL) {
        /* health only: the runtime answers */
        ga_probe_done(NULL, 0);
        return;
    }

    if (ga_load_parse(ga_agent.conf.runtime_type,
                      gg_buf_pos(&ga_probe.in) + ga_probe.head.head_len,
                      gg_buf_len(&ga_probe.in) - ga_probe.head.head_len,
                      &load)
        != 0)
    {
        ga_probe_done("no waiting-requests gauge of this runtime type", 0);
        return;
    }

    ga_agent.load = load;
    ga_agent.load_at = gg_time_us();
    ga_probe_done(NULL, 0);
}


static void
ga_probe_done(const char *error, int down)
{
    const char  *path;

    if (ga_probe.io.fd != -1) {
        (void) gg_io_set(&ga_agent.loop, &ga_probe.io, 0);
        close(ga_probe.io.fd);
        ga_probe.io.fd = -1;
    }

    gg_buf_free(&ga_probe.in);
    gg_buf_free(&ga_probe.out);

    path = ga_runtime_metrics_path(ga_agent.conf.runtime_type);

    if (error && !ga_probe.failing && !down) {
        ga_log(GA_WARN, "runtime %s:%s: cannot read its %s (%s %s): %s",
               ga_agent.conf.runtime.host, ga_agent.conf.runtime.port,
               path ? "load" : "models",
               ga_runtime_name(ga_agent.conf.runtime_type),
               path ? path : "/v1/models", error);

    } else if (!error && ga_probe.failing) {
        ga_log(GA_INFO, "runtime %s:%s: answers again",
               ga_agent.conf.runtime.host, ga_agent.conf.runtime.port);

    } else if (!error && path) {
        ga_log(GA_DEBUG, "runtime load: %llu running, %llu waiting",
               (unsigned long long) ga_agent.load.running,
               (unsigned long long) ga_agent.load.waiting);
    }

    ga_probe.failing = (error != NULL);

    if (down) {
        ga_runtime_down(1, error);

    } else if (ga_probe.connected) {
        /* it took the connection: whatever it said, it is up */
        ga_runtime_down(0, NULL);
    }

    if (!ga_agent.draining) {
        (void) gg_timer_add(&ga_agent.loop, &ga_probe.timer,
                            ga_agent.conf.load_interval * 1000000ULL);
    }
}
