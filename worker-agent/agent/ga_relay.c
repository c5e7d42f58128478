
/*
 * Copyright (C) gpugate authors
 *
 * The relay of gpugate-agent: requests nginx sends down a parked tunnel
 * are forwarded to the runtime and the answers streamed back, one request
 * per tunnel at a time.
 *
 * Runtime connections are kept alive in a pool (runtime_keepalive idle
 * ones at most, each for runtime_keepalive_timeout).  A connection is
 * pooled again only when its answer ended cleanly on its own framing; a
 * request that breaks a tunnel mid-answer closes its runtime connection at
 * once, which is what stops the GPU (the runtime sees its client go).
 * Response bytes are passed on as they arrive; the runtime is read only
 * while the tunnel's output holds less than GA_OUT_HIGH, so a slow client
 * slows the runtime, not memory.
 *
 * A runtime connection object can be named by epoll events of the batch
 * being handled after it is closed: the loop frees it after the batch
 * (gg_defer_free()), as it does tunnel connections.
 */


#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ga_agent.h"


struct ga_rconn_s {
    gg_io_t              io;         /* the socket; io.data is the tunnel
                                        relaying on it, or this object
                                        while pooled */
    ga_runtime_t        *rt;         /* whose pool it belongs to */
    struct ga_rconn_s   *next;       /* pool (newest first) */
    struct ga_rconn_s   *prev;       /* pool */
    uint64_t             idle_since; /* us, when it was pooled */
    unsigned             requests;   /* requests sent on it */
    unsigned             connected:1; /* connect() has finished */
    unsigned             pooled:1;   /* in the idle pool */
    gg_defer_t           defer;      /* its free() after the batch */
};


static int ga_serve_refuse(ga_conn_t *c, int status);
static int ga_serve_broken(ga_conn_t *c, int rc, const char *what);
static int ga_relay_start(ga_conn_t *c, size_t body, size_t total);
static int ga_relay_connect(ga_conn_t *c, int fresh);
static int ga_relay_send(ga_conn_t *c);
static int ga_relay_retry(ga_conn_t *c, const char *why);
static void ga_relay_io(gg_io_t *io, uint32_t revents);
static int ga_relay_response(ga_conn_t *c, int eof);
static void ga_relay_unreachable(ga_conn_t *c, const char *why, int gone);
static void ga_relay_fail(ga_conn_t *c, const char *why);
static int ga_answer(ga_conn_t *c, int status, const char *code,
    const char *message);
static ga_rconn_t *ga_rconn_get(ga_runtime_t *rt, int fresh, char *err,
    size_t size, int *gone);
static int ga_rconn_clean(ga_rconn_t *r);
static void ga_rconn_put(ga_rconn_t *rc);
static void ga_rconn_close(ga_rconn_t *rc);
static void ga_rconn_unlink(ga_rconn_t *rc);
static void ga_rconn_idle_io(gg_io_t *io, uint32_t revents);
static void ga_rconn_expire(gg_timer_t *t);


/* idle connections kept: "runtime_keepalive", -1 meaning "capacity" */
#define ga_relay_keepalive(rt)                                                \
    ((rt)->conf->keepalive < 0 ? (rt)->conf->capacity : (rt)->conf->keepalive)


/*
 * Handles complete requests in c->in while the connection is idle.  A
 * request the agent refuses is the request's fault, not the tunnel's: it
 * gets its answer on the same tunnel, which then serves on.  Only input
 * whose end cannot be found (a broken request line, ambiguous framing)
 * costs the tunnel, after a 400, and never counts as a gateway failure.
 */

int
ga_serve(ga_conn_t *c)
{
    int                 rc;
    size_t              used, out_len, body, total;
    const char         *buf;
    ga_runtime_t       *rt;
    gg_http_chunked_t   ck;
    char                scratch[4096], load[96];

    rt = c->gw->rt;

    for ( ;; ) {

        if (c->skipping) {
            rc = ga_serve_skip(c);

            if (rc == GG_HTTP_AGAIN) {
                return 0;
            }

            if (rc != GG_HTTP_OK) {
                /* answered, and closing: see ga_serve_broken() */
                return 0;
            }
        }

        if (c->state != GA_IDLE || gg_buf_len(&c->in) == 0) {
            return 0;
        }

        buf = gg_buf_pos(&c->in);

        /* a head already whole waits only for its body: not parsed again */

        rc = GG_HTTP_OK;

        if (c->head.head_len == 0) {
            rc = gg_http_parse_head(&c->head, buf, gg_buf_len(&c->in));
        }

        if (rc == GG_HTTP_AGAIN) {
            return 0;
        }

        if (rc == GG_HTTP_INVALID) {
            used = c->head.invalid_at - 1;

            ga_log(GA_WARN, "request refused (400): byte 0x%02x at offset "
                   "%zu of its head is not allowed in a header field",
                   (unsigned char) buf[used], used);

            if (ga_serve_refuse(c, 400) != 0) {
                return -1;
            }

            continue;
        }

        if (rc != GG_HTTP_OK) {
            return ga_serve_broken(c, rc, "malformed request head");
        }

        /* the request must be whole before the runtime is dialed */

        body = 0;

        if (c->head.chunked) {
            gg_http_chunked_init(&ck, GA_REQUEST_MAX);
            used = 0;
            rc = GG_HTTP_AGAIN;

            while (c->head.head_len + used < gg_buf_len(&c->in)) {
                size_t  n, k;

                n = gg_buf_len(&c->in) - c->head.head_len - used;
                n = n > sizeof(scratch) ? sizeof(scratch) : n;
                memcpy(scratch, buf + c->head.head_len + used, n);

                rc = gg_http_parse_chunked(&ck, scratch, n, scratch, &k,
                                           &out_len);
                used += k;

                if (rc != GG_HTTP_AGAIN) {
                    break;
                }
            }

            if (rc == GG_HTTP_AGAIN) {
                return 0;
            }

            if (rc == GG_HTTP_TOO_LARGE) {
                ga_log(GA_WARN, "request refused (413): chunked body over "
                       "%d bytes", GA_REQUEST_MAX);

                if (ga_serve_refuse(c, 413) != 0) {
                    return -1;
                }

                continue;
            }

            if (rc != GG_HTTP_OK) {
                return ga_serve_broken(c, rc, "malformed chunked body");
            }

            body = used;

        } else if (c->head.content_length > GA_REQUEST_MAX) {
            ga_log(GA_WARN, "request refused (413): Content-Length %lld "
                   "over %d", (long long) c->head.content_length,
                   GA_REQUEST_MAX);

            if (ga_serve_refuse(c, 413) != 0) {
                return -1;
            }

            continue;

        } else if (c->head.content_length > 0) {
            body = (size_t) c->head.content_length;

            if (gg_buf_len(&c->in) - c->head.head_len < body) {
                return 0;
            }
        }

        total = c->head.head_len + body;

        c->requests++;
        c->gw->flaps = 0;

        (void) gg_timer_add(&ga_agent.loop, &c->timer,
                            ga_agent.conf.idle_timeout * 1000000ULL);

        if (c->head.method_len == 3 && memcmp(buf + c->head.method, "GET", 3)
            == 0 && c->head.uri_len == sizeof("/gpugate/ping") - 1
            && memcmp(buf + c->head.uri, "/gpugate/ping",
                      c->head.uri_len) == 0)
        {
            gg_buf_consume(&c->in, total);
            gg_http_head_init(&c->head, 0, GA_REQUEST_HEAD_MAX);

            if (gg_buf_printf(&c->out, "HTTP/1.1 204 No Content\r\n"
                              "X-Gpugate-Inflight: %d\r\n%s%s\r\n",
                              rt->inflight,
                              ga_probe_header(rt, load, sizeof(load)),
                              ga_agent.telemetry)
                != 0)
            {
                return -1;
            }

            continue;
        }

        if (rt->inflight >= rt->conf->capacity) {
            gg_buf_consume(&c->in, total);
            gg_http_head_init(&c->head, 0, GA_REQUEST_HEAD_MAX);

            if (ga_answer(c, 503, "agent_busy", "agent at capacity") != 0) {
                return -1;
            }

            continue;
        }

        return ga_relay_start(c, body, total);
    }
}


/*
 * Refuses the request whose head is in c->head: its body is dropped as it
 * comes (however big: nothing of it is kept), then the refusal is
 * answered, so that the tunnel stays in step with nginx.
 */

static int
ga_serve_refuse(ga_conn_t *c, int status)
{
    c->requests++;
    c->gw->flaps = 0;

    c->refuse = status;
    c->skipping = 1;
    c->skip_chunked = c->head.chunked;
    c->skip = c->head.content_length > 0
              ? (uint64_t) c->head.content_length : 0;

    if (c->skip_chunked) {
        gg_http_chunked_init(&c->skipck, UINT64_MAX);
    }

    gg_buf_consume(&c->in, c->head.head_len);
    gg_http_head_init(&c->head, 0, GA_REQUEST_HEAD_MAX);

    ga_log(GA_DEBUG, "refused request: dropping its body, then %d", status);

    return gg_timer_add(&ga_agent.loop, &c->timer,
                        ga_agent.conf.idle_timeout * 1000000ULL);
}


/*
 * Drops what has come of a refused request's body; once all of it is
 * gone, answers the refusal.  GG_HTTP_OK then, GG_HTTP_AGAIN while more
 * is to come, or GG_HTTP_ERROR when a chunked body turned out malformed
 * (answered, and the tunnel closing) or no memory was left.
 */

int
ga_serve_skip(ga_conn_t *c)
{
    int          rc;
    size_t       n, k, out_len;
    const char  *code, *msg;
    char         scratch[4096];

    if (!c->skip_chunked) {
        n = gg_buf_len(&c->in);
        n = (uint64_t) n > c->skip ? (size_t) c->skip : n;

        gg_buf_consume(&c->in, n);
        c->skip -= n;

        if (c->skip) {
            return GG_HTTP_AGAIN;
        }

    } else {
        rc = GG_HTTP_AGAIN;

        while (gg_buf_len(&c->in) && rc == GG_HTTP_AGAIN) {
            n = gg_buf_len(&c->in);
            n = n > sizeof(scratch) ? sizeof(scratch) : n;
            memcpy(scratch, gg_buf_pos(&c->in), n);

            rc = gg_http_parse_chunked(&c->skipck, scratch, n, scratch, &k,
                                       &out_len);
            gg_buf_consume(&c->in, k);
        }

        if (rc == GG_HTTP_AGAIN) {
            return rc;
        }

        if (rc != GG_HTTP_OK) {
            (void) ga_serve_broken(c, rc, "malformed chunked body");
            return GG_HTTP_ERROR;
        }
    }

    c->skipping = 0;

    ga_log(GA_DEBUG, "refused request's body dropped: answering %d",
           c->refuse);

    if (c->refuse == 413) {
        code = "request_too_large";
        msg = "request body too large for the agent";

    } else {
        code = "invalid_header";
        msg = "a request header holds a byte that is not allowed (a "
              "control character) or a malformed name";
    }

    if (ga_answer(c, c->refuse, code, msg) != 0) {
        return GG_HTTP_ERROR;
    }

    return GG_HTTP_OK;
}


/*
 * Input whose end cannot be found: answered, and the tunnel closed once
 * the answer is out.  This counts as a request served, not as a failed
 * tunnel: a gateway that sent it is up.  Returns 0, or -1 on no memory.
 */

static int
ga_serve_broken(ga_conn_t *c, int rc, const char *what)
{
    int  status;

    status = (rc == GG_HTTP_TOO_LARGE) ? 431
             : (rc == GG_HTTP_UNSUPPORTED) ? 501 : 400;

    ga_log(GA_WARN, "gateway %s:%s: %s (%d): answered %d, closing the "
           "tunnel", c->gw->url->host, c->gw->url->port, what, rc, status);

    c->requests++;
    c->gw->flaps = 0;
    c->skipping = 0;

    if (c->state == GA_IDLE) {
        c->worker->idle--;
        c->state = GA_CLOSING;
        ga_log(GA_DEBUG, "tunnel closing after its last answer");
    }

    gg_buf_reset(&c->in);

    if (ga_answer(c, status, status == 431 ? "header_too_large"
                  : "invalid_request", status == 431
                  ? "request head too large for the agent"
                  : "malformed request") != 0)
    {
        return -1;
    }

    return 0;
}


static int
ga_relay_start(ga_conn_t *c, size_t body, size_t total)
{
    size_t                   pos;
    const char              *buf;
    gg_http_header_t         hd;
    const gg_http_header_t  *h;

    buf = gg_buf_pos(&c->in);

    gg_buf_reset(&c->rout);

    if (gg_buf_printf(&c->rout, "%.*s %.*s HTTP/1.1\r\n",
                      (int) c->head.method_len, buf + c->head.method,
                      (int) c->head.uri_len, buf + c->head.uri) != 0)
    {
        return -1;
    }

    /* every field, however many: nginx sets no limit on their number */

    pos = 0;

    while (gg_http_header_next(&c->head, buf, &pos, &hd)) {
        h = &hd;

        /* hop-by-hop: this hop ends here */

        if (gg_http_header_is(h, buf, "host")
            || gg_http_header_is(h, buf, "connection")
            || gg_http_header_is(h, buf, "keep-alive")
            || gg_http_header_is(h, buf, "proxy-connection")
            || gg_http_header_is(h, buf, "te")
            || gg_http_header_is(h, buf, "upgrade"))
        {
            continue;
        }

        if (gg_http_header_is(h, buf, "expect")) {
            /* the body is whole already: no "100 Continue" wanted */
            continue;
        }

        if (gg_buf_printf(&c->rout, "%.*s: %.*s\r\n", (int) h->name_len,
                          buf + h->name, (int) h->value_len, buf + h->value)
            != 0)
        {
            return -1;
        }
    }

    if (gg_buf_printf(&c->rout, "Host: %s:%s\r\n%s\r\n",
                      c->gw->rt->conf->url.host, c->gw->rt->conf->url.port,
                      ga_relay_keepalive(c->gw->rt)
                      ? "" : "Connection: close\r\n")
        != 0
        || gg_buf_append(&c->rout, buf + c->head.head_len, body) != 0)
    {
        return -1;
    }

    c->head_req = (c->head.method_len == 4
                   && memcmp(buf + c->head.method, "HEAD", 4) == 0);

    gg_buf_consume(&c->in, total);
    gg_http_head_init(&c->head, 0, GA_REQUEST_HEAD_MAX);

    c->state = GA_RELAY;
    c->worker->idle--;
    c->gw->rt->inflight++;
    ga_agent.inflight++;
    ga_agent.served++;

    /* one idle connection fewer in this worker: replace it now (§3) */
    ga_supply(c->gw);

    gg_timer_del(&ga_agent.loop, &c->timer);

    if (c->heartbeat_us) {
        /* a tunnel's first at once: the gateway learns that we beat */

        if (c->requests == 1 && gg_buf_len(&c->out) == 0
            && gg_buf_append(&c->out, "\r\n", 2) != 0)
        {
            return -1;
        }

        (void) gg_timer_add(&ga_agent.loop, &c->timer, c->heartbeat_us);
    }

    gg_buf_reset(&c->rin);
    gg_http_head_init(&c->rhead, 1, GA_HEAD_MAX);
    c->rhead_done = 0;
    c->rsent = 0;
    c->rretried = 0;
    c->rkeep = 1;

    return ga_relay_connect(c, 0);
}


/*
 * Attaches a runtime connection to the relay of c: a pooled one unless
 * "fresh".  A pooled one is written to at once, which saves a trip
 * through epoll on every request.  0, or 1 when c was closed here.
 */

static int
ga_relay_connect(ga_conn_t *c, int fresh)
{
    int          gone;
    char         err[GA_ERR_SIZE];
    ga_rconn_t  *rc;

    rc = ga_rconn_get(c->gw->rt, fresh, err, sizeof(err), &gone);

    if (rc == NULL) {
        ga_relay_unreachable(c, err, gone);
        return 1;
    }

    rc->io.handler = ga_relay_io;
    rc->io.data = c;
    rc->requests++;
    c->rc = rc;

    if (rc->connected && ga_relay_send(c) != 0) {
        return ga_conn_dead(c) ? 1 : 0;
    }

    return 0;
}


/*
 * Writes what is left of the request.  The request stays in c->rout
 * until the answer is done, so that it can be sent again on a fresh
 * connection.  0, or -1 when the relay was failed or retried here.
 */

static int
ga_relay_send(ga_conn_t *c)
{
    int      err;
    ssize_t  n;

    while (c->rsent < gg_buf_len(&c->rout)) {
        n = send(c->rc->io.fd, gg_buf_pos(&c->rout) + c->rsent,
                 gg_buf_len(&c->rout) - c->rsent, MSG_NOSIGNAL);

        if (n >= 0) {
            c->rsent += n;
            continue;
        }

        if (errno == EAGAIN || errno == EINTR) {
            return 0;
        }

        err = errno;

        if (ga_relay_retry(c, strerror(err))) {
            return -1;
        }

        /* the runtime may answer before reading everything */
        c->rsent = gg_buf_len(&c->rout);
        c->rkeep = 0;
    }

    return 0;
}


/*
 * A pooled connection the runtime closed just as the request went out
 * (its own keep-alive limit ran out at that moment) fails with nothing
 * answered: the request is sent once more on a new connection.  The
 * pool's timeout is kept below the runtimes' usual keep-alive limit so
 * that this stays rare.  1 when retried (or the relay failed), else 0.
 */

static int
ga_relay_retry(ga_conn_t *c, const char *why)
{
    if (c->rretried || c->rc->requests < 2 || c->rhead_done
        || gg_buf_len(&c->rin))
    {
        return 0;
    }

    ga_log(GA_INFO, "runtime \"%s\" closed a kept-alive connection (%s): "
           "sending the request again", c->gw->rt->conf->name, why);

    ga_rconn_close(c->rc);
    c->rc = NULL;
    c->rsent = 0;
    c->rretried = 1;

    (void) ga_relay_connect(c, 1);

    if (!ga_conn_dead(c)) {
        ga_conn_update(c);
    }

    return 1;
}


static void
ga_relay_io(gg_io_t *io, uint32_t revents)
{
    ga_conn_t   *c = io->data;
    ga_rconn_t  *rc = c->rc;
    int          err, eof;
    size_t       room;
    ssize_t      n;
    socklen_t    len;

    (void) revents;

    if (!rc->connected) {
        len = sizeof(err);

        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0
            || err != 0)
        {
            /* resolved again next time: the runtime may have moved */
            c->gw->rt->addr_len = 0;

            ga_relay_unreachable(c, strerror(err ? err : errno), 1);
            return;
        }

        rc->connected = 1;
    }

    if (ga_relay_send(c) != 0) {
        return;
    }

    eof = 0;
    err = 0;

    while (c->rc != NULL && gg_buf_len(&c->out) < GA_OUT_HIGH) {
        if (gg_buf_reserve(&c->rin, 16384) != 0) {
            ga_conn_close(c, "out of memory");
            return;
        }

        room = gg_buf_room(&c->rin);
        n = read(io->fd, gg_buf_last(&c->rin), room);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }

            err = errno;
            eof = 1;
            break;
        }

        if (n == 0) {
            eof = 1;
            break;
        }

        c->rin.end += n;

        if (ga_relay_response(c, 0) != 0 || ga_conn_dead(c)) {
            return;
        }

        if ((size_t) n < room) {
            /* drained for now: epoll says when there is more */
            break;
        }
    }

    if (eof && c->rc != NULL) {
        if (ga_relay_retry(c, err ? strerror(err) : "closed")) {
            return;
        }

        if (ga_relay_response(c, 1) != 0 || ga_conn_dead(c)) {
            return;
        }
    }

    if (ga_conn_flush(c) != 0) {
        ga_conn_close(c, "write to gateway failed");
        return;
    }

    if (c->state == GA_CLOSING && gg_buf_len(&c->out) == 0) {
        ga_conn_close(c, NULL);
        return;
    }

    ga_conn_update(c);

    /* requests queued behind this one (nginx does not pipeline, but) */
    if (c->state == GA_IDLE && gg_buf_len(&c->in) && ga_serve(c) != 0) {
        ga_conn_close(c, NULL);
    }
}


/*
 * Moves what the runtime sent from c->rin to c->out: the head rewritten
 * (hop-by-hop fields dropped, a close-delimited body re-framed as
 * chunked), then body bytes as they are.  Returns 0, or -1 when the
 * connection was closed here.
 */

static int
ga_relay_response(ga_conn_t *c, int eof)
{
    int                      rc;
    size_t                   pos, n, used, out_len;
    const char              *buf;
    gg_http_header_t         hd;
    const gg_http_header_t  *h;
    char                     scratch[16384];

    while (!c->rhead_done) {
        buf = gg_buf_pos(&c->rin);
        rc = gg_http_parse_head(&c->rhead, buf, gg_buf_len(&c->rin));

        if (rc == GG_HTTP_AGAIN) {
            if (eof) {
                /*
                 * Nothing has gone to nginx yet: another agent can take
                 * the request (a reused connection was retried already).
                 * Whether the runtime is gone is for the probe to say.
                 */
                ga_relay_unreachable(c, "closed before answering", 0);
            }

            return 0;
        }

        if (rc != GG_HTTP_OK) {
            ga_relay_fail(c, "malformed response from the runtime");
            return 0;
        }

        if (c->rhead.status >= 100 && c->rhead.status < 200
            && c->rhead.status != 101)
        {
            /* interim (103 Early Hints): the final head follows */
            gg_buf_consume(&c->rin, c->rhead.head_len);
            gg_http_head_init(&c->rhead, 1, GA_HEAD_MAX);
            continue;
        }

        if (gg_buf_printf(&c->out, "HTTP/1.1 %d %.*s\r\n", c->rhead.status,
                          (int) c->rhead.reason_len, buf + c->rhead.reason)
            != 0)
        {
            ga_conn_close(c, "out of memory");
            return -1;
        }

        if (c->head_req || c->rhead.status < 200 || c->rhead.status == 204
            || c->rhead.status == 304)
        {
            c->rframe = 3;

        } else if (c->rhead.chunked) {
            c->rframe = 1;
            gg_http_chunked_init(&c->rchunk, UINT64_MAX);

        } else if (c->rhead.content_length >= 0) {
            c->rframe = 0;
            c->rleft = c->rhead.content_length;

        } else {
            c->rframe = 2;
        }

        if (!c->rhead.keep_alive || c->rframe == 2 || c->rhead.status == 101)
        {
            c->rkeep = 0;
        }

        pos = 0;

        while (gg_http_header_next(&c->rhead, buf, &pos, &hd)) {
            h = &hd;

            if (gg_http_header_is(h, buf, "connection")
                || gg_http_header_is(h, buf, "keep-alive"))
            {
                continue;
            }

            (void) gg_buf_printf(&c->out, "%.*s: %.*s\r\n",
                                 (int) h->name_len, buf + h->name,
                                 (int) h->value_len, buf + h->value);
        }

        if (c->rframe == 2) {
            (void) gg_buf_append(&c->out, "Transfer-Encoding: chunked\r\n",
                                 28);
        }

        if (gg_buf_append(&c->out, "\r\n", 2) != 0) {
            ga_conn_close(c, "out of memory");
            return -1;
        }

        gg_buf_consume(&c->rin, c->rhead.head_len);
        c->rhead_done = 1;
    }

    n = gg_buf_len(&c->rin);

    switch (c->rframe) {

    case 0:
        if ((int64_t) n > c->rleft) {
            /* bytes past the answer: the connection is out of step */
            n = (size_t) c->rleft;
            c->rkeep = 0;
        }

        (void) gg_buf_append(&c->out, gg_buf_pos(&c->rin), n);
        gg_buf_reset(&c->rin);
        c->rleft -= n;

        if (c->rleft == 0) {
            ga_relay_end(c, 1);
        } else if (eof) {
            ga_conn_close(c, "runtime answer cut short");
            return -1;
        }

        break;

    case 1:
        used = 0;
        rc = GG_HTTP_AGAIN;

        while (used < n && rc == GG_HTTP_AGAIN) {
            size_t  k, m;

            m = n - used > sizeof(scratch) ? sizeof(scratch) : n - used;
            memcpy(scratch, gg_buf_pos(&c->rin) + used, m);
            rc = gg_http_parse_chunked(&c->rchunk, scratch, m, scratch, &k,
                                       &out_len);
            used += k;
        }

        if (rc != GG_HTTP_AGAIN && rc != GG_HTTP_OK) {
            ga_conn_close(c, "malformed chunked answer from the runtime");
            return -1;
        }

        (void) gg_buf_append(&c->out, gg_buf_pos(&c->rin), used);

        if (used < n) {
            c->rkeep = 0;
        }

        gg_buf_reset(&c->rin);

        if (rc == GG_HTTP_OK) {
            ga_relay_end(c, 1);
        } else if (eof) {
            ga_conn_close(c, "runtime answer cut short");
            return -1;
        }

        break;

    case 2:
        if (n) {
            (void) gg_buf_printf(&c->out, "%zx\r\n", n);
            (void) gg_buf_append(&c->out, gg_buf_pos(&c->rin), n);
            (void) gg_buf_append(&c->out, "\r\n", 2);
            gg_buf_reset(&c->rin);
        }

        if (eof) {
            (void) gg_buf_append(&c->out, "0\r\n\r\n", 5);
            ga_relay_end(c, 0);
        }

        break;

    default:
        if (n) {
            c->rkeep = 0;
        }

        gg_buf_reset(&c->rin);
        ga_relay_end(c, 1);
        break;
    }

    return 0;
}


/*
 * The runtime connection is done with: pooled again when "clean" (the
 * answer ended on its own framing) and nothing spoiled it, else closed;
 * the tunnel goes back to idle.
 */

void
ga_relay_end(ga_conn_t *c, int clean)
{
    if (c->rc != NULL) {
        if (clean && c->rkeep && c->rsent == gg_buf_len(&c->rout)
            && ga_relay_keepalive(c->gw->rt) > 0 && !ga_agent.draining)
        {
            ga_rconn_put(c->rc);

        } else {
            ga_rconn_close(c->rc);
        }

        c->rc = NULL;
    }

    if (c->state != GA_RELAY) {
        return;
    }

    /* a parked tunnel holds no buffers: 1,000 of them are cheap */
    gg_buf_free(&c->rin);
    gg_buf_free(&c->rout);

    c->gw->rt->inflight--;
    ga_agent.inflight--;

    if (ga_agent.draining || c->models_gen != c->gw->rt->models_gen) {
        /* closed once the answer is sent; a new list needs a new tunnel */
        c->state = GA_CLOSING;
        return;
    }

    c->worker->idle++;
    c->state = GA_IDLE;

    (void) gg_timer_add(&ga_agent.loop, &c->timer,
                        ga_agent.conf.idle_timeout * 1000000ULL);
}


/* what the tunnel's runtime side wants from epoll */

void
ga_relay_update(ga_conn_t *c)
{
    uint32_t  ev;

    if (c->rc == NULL) {
        return;
    }

    ev = 0;

    if (!c->rc->connected || c->rsent < gg_buf_len(&c->rout)) {
        ev |= EPOLLOUT;
    }

    if (c->rc->connected && gg_buf_len(&c->out) < GA_OUT_HIGH) {
        /* the same mask as in the pool: no epoll_ctl per request */
        ev |= EPOLLIN | EPOLLRDHUP;
    }

    (void) gg_io_set(&ga_agent.loop, &c->rc->io, ev);
}


/*
 * The runtime could not be connected to, so nothing of the request has
 * reached it and nothing of an answer has been sent: the tunnel is closed
 * without a byte, which nginx takes as an error before the response and
 * retries on another agent (proxy_next_upstream error ... non_idempotent),
 * where a 502 from here would be the client's error.  When the runtime is
 * "gone" (refused, unreachable, not resolved, not a lack of our own
 * resources), the agent withdraws at once: its idle tunnels close before
 * this one, so that the retry cannot land on them, and no new ones are
 * dialed until a probe connects again.
 */

static void
ga_relay_unreachable(ga_conn_t *c, const char *why, int gone)
{
    ga_runtime_t  *rt;

    rt = c->gw->rt;

    ga_log(GA_WARN, "runtime \"%s\" (%s:%s) unreachable: %s; the request "
           "goes back to the gateway for another agent", rt->conf->name,
           rt->conf->url.host, rt->conf->url.port, why);

    if (gone) {
        ga_runtime_down(rt, 1, why);
    }

    /* confirmed, or brought back, by a probe */
    ga_probe_now(rt);

    ga_relay_end(c, 0);
    ga_conn_close(c, "runtime unreachable before any answer");
}


static void
ga_relay_fail(ga_conn_t *c, const char *why)
{
    char  msg[300];

    ga_log(GA_WARN, "runtime \"%s\" (%s:%s): %s", c->gw->rt->conf->name,
           c->gw->rt->conf->url.host, c->gw->rt->conf->url.port, why);

    if (c->rhead_done) {
        ga_conn_close(c, "runtime failed mid-answer");
        return;
    }

    ga_relay_end(c, 0);

    snprintf(msg, sizeof(msg), "runtime unreachable: %s", why);

    if (ga_answer(c, 502, "runtime_unavailable", msg) != 0) {
        ga_conn_close(c, "out of memory");
    }
}


/*
 * An OpenAI error answer from the agent itself: "invalid_request_error"
 * for what the request did wrong (4xx), "server_error" for the rest.
 */

static int
ga_answer(ga_conn_t *c, int status, const char *code, const char *message)
{
    char         body[1024], esc[600], *e;
    int          n;
    size_t       i;
    const char  *reason;

    switch (status) {
    case 400:
        reason = "Bad Request";
        break;
    case 413:
        reason = "Content Too Large";
        break;
    case 431:
        reason = "Request Header Fields Too Large";
        break;
    case 501:
        reason = "Not Implemented";
        break;
    case 502:
        reason = "Bad Gateway";
        break;
    default:
        reason = "Service Unavailable";
        break;
    }

    /* the message may quote strerror() or a host name: keep JSON valid */

    e = esc;

    for (i = 0; message[i] && e < esc + sizeof(esc) - 7; i++) {
        unsigned char  ch = (unsigned char) message[i];

        if (ch == '"' || ch == '\\') {
            *e++ = '\\';
            *e++ = (char) ch;

        } else if (ch < 0x20 || ch == 0x7f) {
            e += snprintf(e, 7, "\\u%04x", ch);

        } else {
            *e++ = (char) ch;
        }
    }

    *e = '\0';

    n = snprintf(body, sizeof(body),
                 "{\"error\":{\"message\":\"%s\",\"type\":\"%s\","
                 "\"param\":null,\"code\":\"%s\"}}\n", esc,
                 status < 500 ? "invalid_request_error" : "server_error",
                 code);

    return gg_buf_printf(&c->out, "HTTP/1.1 %d %s\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n%s",
                         status, reason, n, body);
}


/*
 * The newest pooled connection with nothing unread, or a new one (connect
 * in progress).  NULL with "err" set on failure; "gone" then tells a
 * runtime that cannot be reached from a lack of the agent's resources.
 */

static ga_rconn_t *
ga_rconn_get(ga_runtime_t *rt, int fresh, char *err, size_t size,
    int *gone)
{
    int               fd, on, rc;
    ga_rconn_t       *r;
    struct addrinfo   hints, *res;

    *gone = 0;

    while (!fresh && rt->pool != NULL) {
        r = rt->pool;
        ga_rconn_unlink(r);

        if (ga_rconn_clean(r)) {
            return r;
        }

        ga_rconn_close(r);
    }

    if (rt->addr_len == 0) {
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;

        rc = getaddrinfo(rt->conf->url.host, rt->conf->url.port, &hints,
                         &res);

        if (rc != 0) {
            snprintf(err, size, "%s: %s", rt->conf->url.host,
                     gai_strerror(rc));
            *gone = (rc != EAI_MEMORY && rc != EAI_SYSTEM);
            return NULL;
        }

        memcpy(&rt->addr, res->ai_addr, res->ai_addrlen);
        rt->addr_len = res->ai_addrlen;
        freeaddrinfo(res);
    }

    fd = socket(rt->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK
                                    | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        snprintf(err, size, "socket: %s", strerror(errno));
        return NULL;
    }

    on = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

    if (connect(fd, (struct sockaddr *) &rt->addr, rt->addr_len) != 0
        && errno != EINPROGRESS)
    {
        snprintf(err, size, "connect: %s", strerror(errno));
        *gone = (errno != EAGAIN && errno != EADDRNOTAVAIL
                 && errno != ENOBUFS && errno != ENOMEM);
        rt->addr_len = 0;
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


static void
ga_rconn_put(ga_rconn_t *rc)
{
    ga_runtime_t  *rt;

    rt = rc->rt;

    if (rt->pool_n >= ga_relay_keepalive(rt)) {
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


static void
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
ga_relay_pool_close(ga_runtime_t *rt)
{
    while (rt->pool) {
        ga_rconn_close(rt->pool);
    }

    gg_timer_del(&ga_agent.loop, &rt->pool_timer);
}
