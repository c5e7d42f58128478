
/*
 * Copyright (C) gpugate authors
 *
 * The relay of gpugate-agent: requests nginx sends down a parked tunnel
 * are forwarded to the runtime and the answers streamed back, one request
 * per tunnel at a time.
 *
 * Runtime connections come from ga_rconn.c's keep-alive pool.  A
 * connection is pooled again only when its answer ended cleanly on its
 * own framing; a request that breaks a tunnel mid-answer closes its
 * runtime connection at once, which is what stops the GPU (the runtime
 * sees its client go).
 * Response bytes are passed on as they arrive; the runtime is read only
 * while the tunnel's output holds less than GA_OUT_HIGH, so a slow client
 * slows the runtime, not memory.
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




static int ga_serve_chunked(ga_conn_t *c, const char *buf, size_t *body);
static int ga_serve_pong(ga_conn_t *c);
static int ga_serve_refuse(ga_conn_t *c, int status);
static int ga_serve_broken(ga_conn_t *c, int rc, const char *what);
static int ga_relay_start(ga_conn_t *c, size_t body, size_t total);
static int ga_relay_connect(ga_conn_t *c, int fresh);
static int ga_relay_send(ga_conn_t *c);
static int ga_relay_retry(ga_conn_t *c, const char *why);
static void ga_relay_io(gg_io_t *io, uint32_t revents);
static int ga_relay_response(ga_conn_t *c, int eof);
static int ga_relay_head(ga_conn_t *c, const char *buf);
static void ga_relay_unreachable(ga_conn_t *c, const char *why, int gone);
static void ga_relay_fail(ga_conn_t *c, const char *why);
static int ga_answer(ga_conn_t *c, int status, const char *code,
    const char *message);


/* gpugate_tunnel_frame_e in the debug log */
static const char  *ga_relay_frames[] = {
    "by length", "chunked", "until close", "none"
};

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
    int            rc;
    size_t         used, body, total;
    const char    *buf;
    ga_runtime_t  *rt;

    rt = c->gw->rt;

    for ( ;; ) {

        if (c->relay.skipping) {
            rc = ga_serve_skip(c);

            if (rc != GG_HTTP_OK) {
                /* more to drop (GG_HTTP_AGAIN), or answered and closing:
                   see ga_serve_broken() */
                return 0;
            }
        }

        if (c->state != GA_IDLE || gg_buf_len(&c->in) == 0) {
            return 0;
        }

        /* a parked tunnel holds no parser: a request's first byte takes one */

        if (c->head == NULL
            && ga_conn_head(c, 0, GA_REQUEST_HEAD_MAX) != 0)
        {
            return -1;
        }

        buf = gg_buf_pos(&c->in);

        /* a head already whole waits only for its body: not parsed again */

        rc = GG_HTTP_OK;

        if (c->head->head_len == 0) {
            rc = gg_http_parse_head(c->head, buf, gg_buf_len(&c->in));
        }

        if (rc == GG_HTTP_AGAIN) {
            return 0;
        }

        if (rc == GG_HTTP_INVALID) {
            used = c->head->invalid_at - 1;

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

        if (c->head->chunked) {
            rc = ga_serve_chunked(c, buf, &body);

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

        } else if (c->head->content_length > GA_REQUEST_MAX) {
            ga_log(GA_WARN, "request refused (413): Content-Length %lld "
                   "over %d", (long long) c->head->content_length,
                   GA_REQUEST_MAX);

            if (ga_serve_refuse(c, 413) != 0) {
                return -1;
            }

            continue;

        } else if (c->head->content_length > 0) {
            body = (size_t) c->head->content_length;

            if (gg_buf_len(&c->in) - c->head->head_len < body) {

                if (body < GA_BODY_STREAM) {
                    return 0;
                }

                /* an upload: what came so far goes now, the rest as it
                   comes (ga_relay_body) */
                c->relay.body_left = body - (gg_buf_len(&c->in)
                                             - c->head->head_len);
                body -= c->relay.body_left;
            }
        }

        total = c->head->head_len + body;

        c->requests++;
        c->gw->flaps = 0;

        (void) gg_timer_add(&ga_agent.loop, &c->timer,
                            ga_agent.conf.idle_timeout * 1000000ULL);

        if (gpugate_tunnel_is_ping(c->head, buf)) {
            gg_buf_consume(&c->in, total);
            gg_http_head_init(c->head, 0, GA_REQUEST_HEAD_MAX);

            if (ga_serve_pong(c) != 0) {
                return -1;
            }

            continue;
        }

        if (rt->inflight >= rt->conf->capacity) {
            gg_buf_consume(&c->in, total);
            gg_http_head_init(c->head, 0, GA_REQUEST_HEAD_MAX);

            if (ga_answer(c, 503, "agent_busy", "agent at capacity") != 0) {
                return -1;
            }

            continue;
        }

        return ga_relay_start(c, body, total);
    }
}


/* nginx's ping: the core's 204 with what the agent knows of its load */

static int
ga_serve_pong(ga_conn_t *c)
{
    char           load[96];
    size_t         n;
    unsigned       inflight;
    const char    *lh;

    /* this gateway's requests and share: each node counts its own */
    inflight = (unsigned) ga_gateway_inflight(c->gw);
    lh = ga_gateway_header(c->gw, load, sizeof(load));

    n = gpugate_tunnel_pong(NULL, 0, inflight, lh, ga_agent.telemetry);

    if (gg_buf_reserve(&c->out, n) != 0) {
        return -1;
    }

    c->out.end += gpugate_tunnel_pong(gg_buf_last(&c->out), n, inflight, lh,
                                      ga_agent.telemetry);

    return 0;
}


/*
 * A chunked request body must be whole before the runtime is dialed: its
 * end is looked for without changing c->in (the runtime gets the chunks
 * as they came).  Sets "body" to its length once GG_HTTP_OK.
 */

static int
ga_serve_chunked(ga_conn_t *c, const char *buf, size_t *body)
{
    int                 rc;
    size_t              used, n, k, out_len;
    gg_http_chunked_t   ck;
    char                scratch[4096];

    gg_http_chunked_init(&ck, GA_REQUEST_MAX);
    used = 0;
    rc = GG_HTTP_AGAIN;

    while (c->head->head_len + used < gg_buf_len(&c->in)) {
        n = gg_buf_len(&c->in) - c->head->head_len - used;
        n = n > sizeof(scratch) ? sizeof(scratch) : n;
        memcpy(scratch, buf + c->head->head_len + used, n);

        rc = gg_http_parse_chunked(&ck, scratch, n, scratch, &k, &out_len);
        used += k;

        if (rc != GG_HTTP_AGAIN) {
            break;
        }
    }

    *body = used;

    return rc;
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

    c->relay.refuse = status;
    c->relay.skipping = 1;
    c->relay.skip_chunked = c->head->chunked;
    c->relay.skip = c->head->content_length > 0
                    ? (uint64_t) c->head->content_length : 0;

    if (c->relay.skip_chunked) {
        gg_http_chunked_init(&c->relay.skipck, UINT64_MAX);
    }

    gg_buf_consume(&c->in, c->head->head_len);
    gg_http_head_init(c->head, 0, GA_REQUEST_HEAD_MAX);

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

    if (!c->relay.skip_chunked) {
        n = gg_buf_len(&c->in);
        n = (uint64_t) n > c->relay.skip ? (size_t) c->relay.skip : n;

        gg_buf_consume(&c->in, n);
        c->relay.skip -= n;

        if (c->relay.skip) {
            return GG_HTTP_AGAIN;
        }

    } else {
        rc = GG_HTTP_AGAIN;

        while (gg_buf_len(&c->in) && rc == GG_HTTP_AGAIN) {
            n = gg_buf_len(&c->in);
            n = n > sizeof(scratch) ? sizeof(scratch) : n;
            memcpy(scratch, gg_buf_pos(&c->in), n);

            rc = gg_http_parse_chunked(&c->relay.skipck, scratch, n,
                                       scratch, &k, &out_len);
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

    c->relay.skipping = 0;

    ga_log(GA_DEBUG, "refused request's body dropped: answering %d",
           c->relay.refuse);

    if (c->relay.refuse == 413) {
        code = "request_too_large";
        msg = "request body too large for the agent";

    } else {
        code = "invalid_header";
        msg = "a request header holds a byte that is not allowed (a "
              "control character) or a malformed name";
    }

    if (ga_answer(c, c->relay.refuse, code, msg) != 0) {
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
    c->relay.skipping = 0;

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
    int            keepalive;
    size_t         n;
    const char    *buf, *host;
    ga_runtime_t  *rt;

    buf = gg_buf_pos(&c->in);
    rt = c->gw->rt;

    gg_buf_reset(&c->relay.out);

    if (rt->host[0] == '\0') {
        snprintf(rt->host, sizeof(rt->host), "%s:%s", rt->conf->url.host,
                 rt->conf->url.port);
    }

    host = rt->host;
    keepalive = ga_runtime_keepalive(c->gw->rt) != 0;

    /* room for the most it can take: the head is walked once, to fill */
    n = gpugate_tunnel_relay_max(c->head, strlen(host));

    for ( ;; ) {
        if (gg_buf_reserve(&c->relay.out, n + body) != 0) {
            return -1;
        }

        n = gpugate_tunnel_relay_request(gg_buf_last(&c->relay.out),
                                         gg_buf_room(&c->relay.out),
                                         c->head, buf, host, keepalive);

        if (n <= gg_buf_room(&c->relay.out)) {
            break;
        }

        /* cannot happen (relay_max is a bound): once more, measured */
    }

    c->relay.out.end += n;
    ga_trace_start(c, buf);

    if (gg_buf_append(&c->relay.out, buf + c->head->head_len, body) != 0) {
        return -1;
    }

    c->relay.head_req = (c->head->method_len == 4
                         && memcmp(buf + c->head->method, "HEAD", 4) == 0);

    gg_buf_consume(&c->in, total);

    /*
     * The request's head is done with: the tunnel's one parser reads the
     * runtime's answer now, and the next request only after it
     * (ga_relay_end()); two would cost 2.2 KiB per parked tunnel.
     */
    gg_http_head_init(c->head, 1, GA_HEAD_MAX);

    c->state = GA_RELAY;
    c->worker->idle--;
    c->gw->rt->inflight++;
    c->gw->inflight++;
    ga_agent.inflight++;
    ga_agent.served++;

    ga_log(GA_DEBUG, "runtime \"%s\": relaying a request (%d in flight)",
           c->gw->rt->conf->name, c->gw->rt->inflight);

    /* one idle connection fewer in this worker: replace it now (§3) */
    ga_agent.on.supply(c->gw);

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

    gg_buf_reset(&c->relay.in);
    c->relay.head_done = 0;
    c->relay.sent = 0;

    /* a streamed body cannot be sent again: its start is gone */
    c->relay.retried = (c->relay.body_left != 0);
    c->relay.keep = 1;

    if (c->relay.body_left) {
        ga_log(GA_DEBUG, "runtime \"%s\": request body streams, %llu "
               "bytes to come", c->gw->rt->conf->name,
               (unsigned long long) c->relay.body_left);
    }

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
    c->relay.rc = rc;

    if (rc->connected && ga_relay_send(c) != 0) {
        return ga_conn_dead(c) ? 1 : 0;
    }

    return 0;
}


/*
 * Writes what is left of the request.  The request stays in c->relay.out
 * until the answer is done, so that it can be sent again on a fresh
 * connection.  0, or -1 when the relay was failed or retried here.
 */

static int
ga_relay_send(ga_conn_t *c)
{
    int      err;
    ssize_t  n;

    while (c->relay.sent < gg_buf_len(&c->relay.out)) {
        n = send(c->relay.rc->io.fd,
                 gg_buf_pos(&c->relay.out) + c->relay.sent,
                 gg_buf_len(&c->relay.out) - c->relay.sent, MSG_NOSIGNAL);

        if (n >= 0) {
            c->relay.sent += n;
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
        c->relay.sent = gg_buf_len(&c->relay.out);
        c->relay.keep = 0;
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
    if (c->relay.retried || c->relay.rc->requests < 2 || c->relay.head_done
        || gg_buf_len(&c->relay.in))
    {
        return 0;
    }

    ga_log(GA_INFO, "runtime \"%s\" closed a kept-alive connection (%s): "
           "sending the request again", c->gw->rt->conf->name, why);

    ga_rconn_close(c->relay.rc);
    c->relay.rc = NULL;
    c->relay.sent = 0;
    c->relay.retried = 1;

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
    ga_rconn_t  *rc = c->relay.rc;
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
            ga_relay_unreachable(c, strerror(err ? err : errno), 1);
            return;
        }

        rc->connected = 1;
    }

    if (ga_relay_send(c) != 0 || ga_relay_body(c) != 0) {
        return;
    }

    eof = 0;
    err = 0;

    while (c->relay.rc != NULL && gg_buf_len(&c->out) < GA_OUT_HIGH) {
        if (gg_buf_reserve(&c->relay.in, GG_BUF_BLOCK) != 0) {
            ga_conn_close(c, "out of memory");
            return;
        }

        room = gg_buf_room(&c->relay.in);
        n = read(io->fd, gg_buf_last(&c->relay.in), room);

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

        c->relay.in.end += n;

        if (ga_relay_response(c, 0) != 0 || ga_conn_dead(c)) {
            return;
        }

        if ((size_t) n < room) {
            /* drained for now: epoll says when there is more */
            break;
        }
    }

    if (eof && c->relay.rc != NULL) {
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
 * The runtime's final answer head, in c->relay.in at "buf", goes to nginx
 * rewritten as HTTP/1.1 without hop-by-hop fields, and decides how the
 * body ends.  0, or -1 when the tunnel was closed.
 */

static int
ga_relay_head(ga_conn_t *c, const char *buf)
{
    size_t  n;

    c->relay.frame = gpugate_tunnel_answer_frame(c->head,
                                                 c->relay.head_req);

    if (c->relay.frame == GPUGATE_TUNNEL_FRAME_CHUNKED) {
        gg_http_chunked_init(&c->relay.chunk, UINT64_MAX);

    } else if (c->relay.frame == GPUGATE_TUNNEL_FRAME_LENGTH) {
        c->relay.left = c->head->content_length;
    }

    if (!c->head->keep_alive
        || c->relay.frame == GPUGATE_TUNNEL_FRAME_CLOSE
        || c->head->status == 101)
    {
        c->relay.keep = 0;
    }

    /* as in ga_relay_start(): room for the most, one walk to fill */
    n = gpugate_tunnel_relay_max(c->head, 0);

    for ( ;; ) {
        if (gg_buf_reserve(&c->out, n) != 0) {
            ga_conn_close(c, "out of memory");
            return -1;
        }

        n = gpugate_tunnel_relay_answer(gg_buf_last(&c->out),
                                        gg_buf_room(&c->out),
                                        c->head, buf, c->relay.frame);

        if (n <= gg_buf_room(&c->out)) {
            break;
        }
    }

    c->out.end += n;

    gg_buf_consume(&c->relay.in, c->head->head_len);
    c->relay.head_done = 1;
    ga_trace_first_byte(c);

    ga_log(GA_DEBUG, "runtime \"%s\" answered %d, body %s",
           c->gw->rt->conf->name, c->head->status,
           ga_relay_frames[c->relay.frame]);

    return 0;
}


/*
 * Moves what the runtime sent from c->relay.in to c->out: the head rewritten
 * (hop-by-hop fields dropped, a close-delimited body re-framed as
 * chunked), then body bytes as they are.  Returns 0, or -1 when the
 * connection was closed here.
 */

static int
ga_relay_response(ga_conn_t *c, int eof)
{
    int          rc;
    size_t       n, used, out_len;
    const char  *buf;

    while (!c->relay.head_done) {
        buf = gg_buf_pos(&c->relay.in);
        rc = gg_http_parse_head(c->head, buf, gg_buf_len(&c->relay.in));

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

        if (c->head->status >= 100 && c->head->status < 200
            && c->head->status != 101)
        {
            /* interim (103 Early Hints): the final head follows */
            gg_buf_consume(&c->relay.in, c->head->head_len);
            gg_http_head_init(c->head, 1, GA_HEAD_MAX);
            continue;
        }

        if (ga_relay_head(c, buf) != 0) {
            return -1;
        }
    }

    n = gg_buf_len(&c->relay.in);

    switch (c->relay.frame) {

    case GPUGATE_TUNNEL_FRAME_LENGTH:
        if ((int64_t) n > c->relay.left) {
            /* bytes past the answer: the connection is out of step */
            n = (size_t) c->relay.left;
            c->relay.keep = 0;
        }

        (void) gg_buf_append(&c->out, gg_buf_pos(&c->relay.in), n);
        gg_buf_reset(&c->relay.in);
        c->relay.left -= n;

        if (c->relay.left == 0) {
            ga_relay_end(c, 1);
        } else if (eof) {
            ga_conn_close(c, "runtime answer cut short");
            return -1;
        }

        break;

    case GPUGATE_TUNNEL_FRAME_CHUNKED:
        /*
         * The chunks go to nginx as they came, so they are copied out
         * first; the decoder then runs where they lie in c->relay.in,
         * which is dropped after, only to find where the answer ends.
         * Bytes past that end are taken back from c->out.
         */
        if (gg_buf_append(&c->out, gg_buf_pos(&c->relay.in), n) != 0) {
            ga_conn_close(c, "out of memory");
            return -1;
        }

        used = 0;
        rc = GG_HTTP_AGAIN;

        if (n) {
            rc = gg_http_parse_chunked(&c->relay.chunk,
                                       gg_buf_pos(&c->relay.in), n,
                                       gg_buf_pos(&c->relay.in), &used,
                                       &out_len);
        }

        if (rc != GG_HTTP_AGAIN && rc != GG_HTTP_OK) {
            c->out.end -= n;
            ga_conn_close(c, "malformed chunked answer from the runtime");
            return -1;
        }

        if (used < n) {
            c->out.end -= n - used;
            c->relay.keep = 0;
        }

        gg_buf_reset(&c->relay.in);

        if (rc == GG_HTTP_OK) {
            ga_relay_end(c, 1);
        } else if (eof) {
            ga_conn_close(c, "runtime answer cut short");
            return -1;
        }

        break;

    case GPUGATE_TUNNEL_FRAME_CLOSE:
        if (n) {
            (void) gg_buf_printf(&c->out, "%zx\r\n", n);
            (void) gg_buf_append(&c->out, gg_buf_pos(&c->relay.in), n);
            (void) gg_buf_append(&c->out, "\r\n", 2);
            gg_buf_reset(&c->relay.in);
        }

        if (eof) {
            (void) gg_buf_append(&c->out, "0\r\n\r\n", 5);
            ga_relay_end(c, 0);
        }

        break;

    default:
        if (n) {
            c->relay.keep = 0;
        }

        gg_buf_reset(&c->relay.in);
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
    ga_trace_end(c, clean);

    if (c->relay.rc != NULL) {
        if (clean && c->relay.keep && c->relay.sent == gg_buf_len(&c->relay.out)
            && ga_runtime_keepalive(c->gw->rt) > 0 && !ga_agent.draining)
        {
            ga_rconn_put(c->relay.rc);

        } else {
            ga_rconn_close(c->relay.rc);
        }

        c->relay.rc = NULL;
    }

    if (c->state != GA_RELAY) {
        return;
    }

    /* the parser goes back to requests: ga_serve() reads the next one */
    gg_http_head_init(c->head, 0, GA_REQUEST_HEAD_MAX);

    /* a parked tunnel holds no buffers: 1,000 of them are cheap */
    gg_buf_free(&c->relay.in);
    gg_buf_free(&c->relay.out);

    c->gw->rt->inflight--;
    c->gw->inflight--;
    ga_agent.inflight--;

    if (c->relay.body_left) {
        /* the answer came before the whole upload: the rest of it would
           be read as the next request */
        c->relay.body_left = 0;
        c->state = GA_CLOSING;
        ga_log(GA_INFO, "runtime \"%s\" answered before the whole "
               "request body: the tunnel closes after the answer",
               c->gw->rt->conf->name);
        return;
    }

    if (ga_agent.draining || c->models_gen != c->gw->rt->models_gen) {
        /* closed once the answer is sent; a new list needs a new tunnel */
        c->state = GA_CLOSING;
        ga_log(GA_DEBUG, "runtime \"%s\": answer done, tunnel closes "
               "after it (%s)", c->gw->rt->conf->name,
               ga_agent.draining ? "draining" : "model list changed");
        return;
    }

    c->worker->idle++;
    c->state = GA_IDLE;

    ga_log(GA_DEBUG, "runtime \"%s\": answer done (%s), tunnel idle",
           c->gw->rt->conf->name, clean ? "clean" : "cut");

    (void) gg_timer_add(&ga_agent.loop, &c->timer,
                        ga_agent.conf.idle_timeout * 1000000ULL);
}


/*
 * Moves what has come of a streamed request body from the tunnel to the
 * runtime.  What the runtime took is dropped first: at most GA_BODY_HIGH
 * of the body is held here (see ga_relay_body_full()).  0, or -1 when
 * the relay was failed here.
 */

int
ga_relay_body(ga_conn_t *c)
{
    size_t  n;

    if (c->state != GA_RELAY || c->relay.body_left == 0
        || gg_buf_len(&c->in) == 0)
    {
        return 0;
    }

    gg_buf_consume(&c->relay.out, c->relay.sent);
    c->relay.sent = 0;

    n = gg_buf_len(&c->in);
    n = (uint64_t) n > c->relay.body_left ? (size_t) c->relay.body_left : n;

    if (gg_buf_append(&c->relay.out, gg_buf_pos(&c->in), n) != 0) {
        return -1;
    }

    gg_buf_consume(&c->in, n);
    c->relay.body_left -= n;

    if (c->relay.body_left == 0) {
        ga_log(GA_DEBUG, "runtime \"%s\": request body all received",
               c->gw->rt->conf->name);
    }

    if (c->relay.rc != NULL && c->relay.rc->connected
        && ga_relay_send(c) != 0)
    {
        return -1;
    }

    ga_relay_update(c);

    return 0;
}


/* 1 when the tunnel is not read for now: the runtime is behind */

int
ga_relay_body_full(ga_conn_t *c)
{
    return c->state == GA_RELAY && c->relay.body_left
           && gg_buf_len(&c->in) + gg_buf_len(&c->relay.out)
              - c->relay.sent >= GA_BODY_HIGH;
}


/* what the tunnel's runtime side wants from epoll */

void
ga_relay_update(ga_conn_t *c)
{
    uint32_t  ev;

    if (c->relay.rc == NULL) {
        return;
    }

    ev = 0;

    if (!c->relay.rc->connected || c->relay.sent < gg_buf_len(&c->relay.out)) {
        ev |= EPOLLOUT;
    }

    if (c->relay.rc->connected && gg_buf_len(&c->out) < GA_OUT_HIGH) {
        /* the same mask as in the pool: no epoll_ctl per request */
        ev |= EPOLLIN | EPOLLRDHUP;
    }

    (void) gg_io_set(&ga_agent.loop, &c->relay.rc->io, ev);
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
        ga_agent.on.runtime_down(rt, 1, why);
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

    if (c->relay.head_done) {
        ga_conn_close(c, "runtime failed mid-answer");
        return;
    }

    ga_relay_end(c, 0);

    snprintf(msg, sizeof(msg), "runtime unreachable: %s", why);

    if (ga_answer(c, 502, "runtime_unavailable", msg) != 0) {
        ga_conn_close(c, "out of memory");
    }
}


/* an OpenAI error answer from the agent itself, built by the core */

static int
ga_answer(ga_conn_t *c, int status, const char *code, const char *message)
{
    size_t  n;

    n = gpugate_tunnel_error_answer(NULL, 0, status, code, message);

    if (gg_buf_reserve(&c->out, n) != 0) {
        return -1;
    }

    c->out.end += gpugate_tunnel_error_answer(gg_buf_last(&c->out), n,
                                              status, code, message);

    return 0;
}
