
/*
 * Copyright (C) gpugate authors
 *
 * The agent's spans (see ga_trace.h).  The runtime is given the agent's
 * span as its parent: the gateway's traceparent is relayed with the
 * parent id overwritten in place (same length).  Spans wait in a bounded
 * buffer (GA_TRACE_BUFFER; over it they are dropped and counted) and go
 * to otlp_endpoint every second or per GA_TRACE_BATCH, one POST at a
 * time on a non-blocking connection of its own with "Connection:
 * close"; only the status line of the answer is read.  A dead or slow
 * collector costs the relay nothing: a POST has GA_TRACE_TIMEOUT_US,
 * its spans are then counted as lost.
 */


#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <openssl/rand.h>

#include "ga_agent.h"


#define GA_TRACE_BUFFER       2048
#define GA_TRACE_BATCH        256
#define GA_TRACE_INTERVAL_US  1000000ULL
#define GA_TRACE_TIMEOUT_US   5000000ULL
#define GA_TRACE_SPAN_MAX     4096


typedef struct {
    ga_url_t                 url;       /* otlp_endpoint */
    struct sockaddr_storage  addr;      /* resolved at start */
    socklen_t                addr_len;
    gpugate_trace_rng_t      rng;       /* span ids */
    gg_buf_t                 pending;   /* spans joined by commas */
    size_t                   ends[GA_TRACE_BUFFER]; /* where each ends */
    size_t                   npending;  /* spans in "pending" */
    gg_buf_t                 req;       /* the POST in flight */
    size_t                   sent;      /* of req */
    size_t                   nreq;      /* its spans */
    char                     resp[64];  /* the answer's start */
    size_t                   resp_len;
    gg_io_t                  io;        /* its socket; fd -1: none */
    gg_timer_t               tick;      /* the next POST */
    gg_timer_t               deadline;  /* the POST in flight's */
    uint64_t                 exported;  /* spans the collector took */
    uint64_t                 dropped;   /* over the buffer */
    uint64_t                 failed;    /* in batches that failed */
    int                      on;        /* otlp_endpoint configured */
    int                      failing;   /* the last POST failed */
} ga_trace_t;


static void ga_trace_flush(void);
static void ga_trace_io(gg_io_t *io, uint32_t revents);
static void ga_trace_done(int ok, const char *why);


static ga_trace_t  ga_trace;


static void
ga_trace_tick(gg_timer_t *t)
{
    (void) t;

    (void) gg_timer_add(&ga_agent.loop, &ga_trace.tick, GA_TRACE_INTERVAL_US);
    ga_trace_flush();
}


static void
ga_trace_timeout(gg_timer_t *t)
{
    (void) t;

    ga_trace_done(0, "no answer in time");
}


int
ga_trace_init(void)
{
    int               rc;
    uint8_t           seed[32];
    struct addrinfo   hints, *ai;

    if (RAND_bytes(seed, sizeof(seed)) != 1) {
        memset(seed, 0, sizeof(seed));
        memcpy(seed, &ga_agent.loop.now, sizeof(ga_agent.loop.now));
        seed[31] = (uint8_t) getpid();
    }

    gpugate_trace_rng_seed(&ga_trace.rng, seed);
    ga_trace.io.fd = -1;

    if (ga_agent.conf.otlp_endpoint[0] == '\0') {
        return 0;
    }

    if (ga_url_parse(&ga_trace.url, ga_agent.conf.otlp_endpoint, 1) != 0) {
        ga_log(GA_ERROR, "otlp_endpoint \"%s\": not a URL",
               ga_agent.conf.otlp_endpoint);
        return -1;
    }

    if (strcmp(ga_trace.url.path, "/gpugate/tunnel") == 0) {
        /* no path given: OTLP's */
        strcpy(ga_trace.url.path, "/v1/traces");
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;

    /* once, at start, like the gateways' names */
    rc = getaddrinfo(ga_trace.url.host, ga_trace.url.port, &hints, &ai);

    if (rc != 0) {
        ga_log(GA_ERROR, "otlp_endpoint \"%s\": %s",
               ga_agent.conf.otlp_endpoint, gai_strerror(rc));
        return -1;
    }

    memcpy(&ga_trace.addr, ai->ai_addr, ai->ai_addrlen);
    ga_trace.addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);

    ga_trace.tick.handler = ga_trace_tick;
    ga_trace.deadline.handler = ga_trace_timeout;
    ga_trace.io.handler = ga_trace_io;
    ga_trace.on = 1;

    ga_log(GA_INFO, "spans go to %s", ga_agent.conf.otlp_endpoint);

    return gg_timer_add(&ga_agent.loop, &ga_trace.tick, GA_TRACE_INTERVAL_US);
}


static uint64_t
ga_trace_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}


void
ga_trace_start(ga_conn_t *c, const char *buf)
{
    char                     hex[2 * GPUGATE_SPAN_ID_SIZE], *p, *end;
    const gg_http_header_t  *hd;
    gpugate_trace_ctx_t      tc;
    ga_trace_span_t         *sp;

    sp = &c->relay.trace;
    sp->active = 0;

    hd = gg_http_find_header(c->head, buf, "traceparent");

    if (hd == NULL || hd->value_len != GPUGATE_TRACEPARENT_LEN
        || gpugate_traceparent_parse(buf + hd->value, hd->value_len, &tc)
           != GPUGATE_TRACE_OK)
    {
        return;
    }

    /* the same 55 bytes in the relayed head: our span replaces the
       gateway's as the runtime's parent */

    p = gg_buf_pos(&c->relay.out);
    end = p + gg_buf_len(&c->relay.out) - GPUGATE_TRACEPARENT_LEN;

    for ( /* void */ ; p <= end; p++) {
        if (memcmp(p, buf + hd->value, GPUGATE_TRACEPARENT_LEN) == 0) {
            break;
        }
    }

    if (p > end) {
        return;
    }

    memcpy(sp->trace_id, tc.trace_id, GPUGATE_TRACE_ID_SIZE);
    memcpy(sp->parent, tc.span_id, GPUGATE_SPAN_ID_SIZE);
    gpugate_trace_rng_id(&ga_trace.rng, sp->span_id, GPUGATE_SPAN_ID_SIZE);
    sp->flags = tc.flags;

    gpugate_trace_hex(hex, sp->span_id, GPUGATE_SPAN_ID_SIZE);
    memcpy(p + 36, hex, sizeof(hex));

    sp->start_ns = ga_trace_now_ns();
    sp->start_us = gg_time_us();
    sp->ttfb_us = 0;
    sp->status = 0;
    sp->active = 1;

    ga_log(GA_DEBUG, "runtime \"%s\": span %.16s of trace %.32s",
           c->gw->rt->conf->name, p + 36, p + 3);
}


void
ga_trace_first_byte(ga_conn_t *c)
{
    if (c->relay.trace.active && c->relay.trace.ttfb_us == 0) {
        c->relay.trace.ttfb_us = gg_time_us() - c->relay.trace.start_us;
        c->relay.trace.status = c->head->status;
        ga_log(GA_DEBUG, "runtime \"%s\": first byte after %llu us",
               c->gw->rt->conf->name,
               (unsigned long long) c->relay.trace.ttfb_us);
    }
}


/* a span's JSON to the pending batch, or dropped and counted */

static void
ga_trace_add(const char *json, size_t len)
{
    size_t  need;

    if (ga_trace.npending >= GA_TRACE_BUFFER) {
        ga_trace.dropped++;
        ga_log(GA_DEBUG, "span dropped: %d waiting (%llu dropped)",
               GA_TRACE_BUFFER, (unsigned long long) ga_trace.dropped);
        return;
    }

    need = len + (ga_trace.npending ? 1 : 0);

    if (gg_buf_reserve(&ga_trace.pending, need) != 0) {
        ga_trace.dropped++;
        return;
    }

    if (ga_trace.npending) {
        (void) gg_buf_append(&ga_trace.pending, ",", 1);
    }

    (void) gg_buf_append(&ga_trace.pending, json, len);
    ga_trace.ends[ga_trace.npending++] = gg_buf_len(&ga_trace.pending);

    if (ga_trace.npending >= GA_TRACE_BATCH) {
        ga_trace_flush();
    }
}


void
ga_trace_end(ga_conn_t *c, int clean)
{
    int                   status, n;
    char                  json[GA_TRACE_SPAN_MAX], name[80];
    size_t                len;
    ga_runtime_t         *rt;
    ga_trace_span_t      *sp;
    gpugate_otlp_attr_t   attrs[6];
    gpugate_otlp_span_t   span;

    sp = &c->relay.trace;

    if (!sp->active) {
        return;
    }

    sp->active = 0;
    rt = c->gw->rt;
    status = c->relay.head_done ? sp->status : 0;

    ga_log(GA_DEBUG, "runtime \"%s\": span ends (%s, status %d)",
           rt->conf->name, clean ? "clean" : "cut", status);

    if (!ga_trace.on
        || (!(sp->flags & GPUGATE_TRACE_SAMPLED) && clean && status < 500))
    {
        return;
    }

    n = snprintf(name, sizeof(name), "relay %s", rt->conf->name);

    attrs[0] = (gpugate_otlp_attr_t) { "gpugate.agent", GPUGATE_OTLP_STR,
                                       ga_agent.conf.name,
                                       strlen(ga_agent.conf.name), 0, 0 };
    attrs[1] = (gpugate_otlp_attr_t) { "gpugate.runtime", GPUGATE_OTLP_STR,
                                       rt->conf->name,
                                       strlen(rt->conf->name), 0, 0 };
    attrs[2] = (gpugate_otlp_attr_t) { "server.address", GPUGATE_OTLP_STR,
                                       rt->host, strlen(rt->host), 0, 0 };
    attrs[3] = (gpugate_otlp_attr_t) { "http.response.status_code",
                                       GPUGATE_OTLP_INT, NULL, 0, status,
                                       0 };
    attrs[4] = (gpugate_otlp_attr_t) { "gpugate.runtime_ttfb_ms",
                                       GPUGATE_OTLP_INT, NULL, 0,
                                       sp->ttfb_us
                                       ? (int64_t) (sp->ttfb_us / 1000)
                                       : -1, 0 };
    attrs[5] = (gpugate_otlp_attr_t) { "gpugate.partial", GPUGATE_OTLP_BOOL,
                                       NULL, 0, !clean, 0 };

    memset(&span, 0, sizeof(span));
    span.trace_id = sp->trace_id;
    span.span_id = sp->span_id;
    span.parent_id = sp->parent;
    span.name = name;
    span.name_len = (size_t) n < sizeof(name) ? (size_t) n
                                              : sizeof(name) - 1;
    span.kind = 3;
    span.start_ns = sp->start_ns;
    span.end_ns = sp->start_ns + (gg_time_us() - sp->start_us) * 1000;
    span.error = !clean || status >= 500 || status == 0;
    span.attrs = attrs;
    span.nattrs = 6;

    len = gpugate_otlp_span_json(json, sizeof(json), &span);

    if (len > sizeof(json)) {
        ga_trace.dropped++;
        return;
    }

    ga_trace_add(json, len);
}


/* the next POST: up to GA_TRACE_BATCH pending spans */

static void
ga_trace_flush(void)
{
    int          fd;
    size_t       n, spans, head, body, i, rest;
    const char  *svc;

    if (!ga_trace.on || ga_trace.io.fd != -1 || ga_trace.npending == 0) {
        return;
    }

    n = ga_trace.npending < GA_TRACE_BATCH ? ga_trace.npending
                                           : GA_TRACE_BATCH;
    spans = ga_trace.ends[n - 1];
    svc = "gpugate-agent";
    head = gpugate_otlp_head(NULL, 0, svc, strlen(svc));
    body = head + spans + sizeof(GPUGATE_OTLP_TAIL) - 1;

    gg_buf_reset(&ga_trace.req);

    if (gg_buf_printf(&ga_trace.req, "POST %s HTTP/1.1\r\nHost: %s:%s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n"
                      "User-Agent: gpugate-agent\r\n\r\n",
                      ga_trace.url.path, ga_trace.url.host,
                      ga_trace.url.port, body) != 0
        || gg_buf_reserve(&ga_trace.req, body) != 0)
    {
        return;
    }

    ga_trace.req.end += gpugate_otlp_head(gg_buf_last(&ga_trace.req), head,
                                          svc, strlen(svc));
    (void) gg_buf_append(&ga_trace.req, gg_buf_pos(&ga_trace.pending), spans);
    (void) gg_buf_append(&ga_trace.req, GPUGATE_OTLP_TAIL,
                         sizeof(GPUGATE_OTLP_TAIL) - 1);

    /* the rest move up, past the comma after the last span taken */

    rest = n < ga_trace.npending ? gg_buf_len(&ga_trace.pending) - spans - 1
                                 : 0;
    gg_buf_consume(&ga_trace.pending, rest ? spans + 1 : spans);

    for (i = n; i < ga_trace.npending; i++) {
        ga_trace.ends[i - n] = ga_trace.ends[i] - spans - 1;
    }

    ga_trace.npending -= n;
    ga_trace.nreq = n;
    ga_trace.sent = 0;
    ga_trace.resp_len = 0;

    fd = socket(ga_trace.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK
                                         | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        ga_trace_done(0, strerror(errno));
        return;
    }

    ga_trace.io.fd = fd;

    if (connect(fd, (struct sockaddr *) &ga_trace.addr, ga_trace.addr_len)
        != 0 && errno != EINPROGRESS)
    {
        ga_trace_done(0, strerror(errno));
        return;
    }

    if (gg_io_set(&ga_agent.loop, &ga_trace.io, EPOLLOUT) != 0) {
        ga_trace_done(0, strerror(errno));
        return;
    }

    (void) gg_timer_add(&ga_agent.loop, &ga_trace.deadline,
                        GA_TRACE_TIMEOUT_US);

    ga_log(GA_DEBUG, "POST of %zu spans to %s", n,
           ga_agent.conf.otlp_endpoint);
}


static void
ga_trace_io(gg_io_t *io, uint32_t revents)
{
    int       status;
    ssize_t   n;

    (void) revents;

    if (ga_trace.sent < gg_buf_len(&ga_trace.req)) {
        n = send(io->fd, gg_buf_pos(&ga_trace.req) + ga_trace.sent,
                 gg_buf_len(&ga_trace.req) - ga_trace.sent, MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }

        if (n <= 0) {
            ga_trace_done(0, n < 0 ? strerror(errno) : "closed");
            return;
        }

        ga_trace.sent += (size_t) n;

        if (ga_trace.sent == gg_buf_len(&ga_trace.req)
            && gg_io_set(&ga_agent.loop, io, EPOLLIN) != 0)
        {
            ga_trace_done(0, strerror(errno));
        }

        return;
    }

    n = recv(io->fd, ga_trace.resp + ga_trace.resp_len,
             sizeof(ga_trace.resp) - 1 - ga_trace.resp_len, 0);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }

    if (n > 0) {
        ga_trace.resp_len += (size_t) n;
        ga_trace.resp[ga_trace.resp_len] = '\0';

        if (strchr(ga_trace.resp, '\n') == NULL
            && ga_trace.resp_len < sizeof(ga_trace.resp) - 1)
        {
            return;
        }
    }

    if (ga_trace.resp_len < 12
        || strncmp(ga_trace.resp, "HTTP/1.", 7) != 0)
    {
        ga_trace_done(0, "not an HTTP answer");
        return;
    }

    status = atoi(ga_trace.resp + 9);

    if (status < 200 || status > 299) {
        ga_log(GA_WARN, "otlp_endpoint answered %d to %zu spans", status,
               ga_trace.nreq);
        ga_trace_done(0, NULL);
        return;
    }

    ga_trace_done(1, NULL);
}


static void
ga_trace_done(int ok, const char *why)
{
    if (ga_trace.io.fd != -1) {
        (void) gg_io_set(&ga_agent.loop, &ga_trace.io, 0);
        close(ga_trace.io.fd);
        ga_trace.io.fd = -1;
    }

    gg_timer_del(&ga_agent.loop, &ga_trace.deadline);

    if (ok) {
        ga_trace.exported += ga_trace.nreq;

        if (ga_trace.failing) {
            ga_log(GA_INFO, "otlp_endpoint takes spans again");
        }

        ga_trace.failing = 0;
        ga_log(GA_DEBUG, "%zu spans exported (%llu in all)", ga_trace.nreq,
               (unsigned long long) ga_trace.exported);

    } else {
        ga_trace.failed += ga_trace.nreq;

        if (why) {
            ga_log(ga_trace.failing ? GA_DEBUG : GA_WARN, "otlp_endpoint "
                   "%s: %s, %zu spans lost (%llu in all)",
                   ga_agent.conf.otlp_endpoint, why, ga_trace.nreq,
                   (unsigned long long) ga_trace.failed);
        }

        ga_trace.failing = 1;
    }

    ga_trace.nreq = 0;
}
