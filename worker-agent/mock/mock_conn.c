
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime connections: accepting, reading and parsing
 * requests, framing and writing responses without ever blocking.
 *
 * Lifetimes: a mock_conn_t owns its socket and buffers.  Nothing frees it
 * but mock_conn_finish(), which ends every entry from the loop (I/O event
 * or timer): inner functions only set c->dead, so no caller ever touches
 * a freed connection.
 */


#define _GNU_SOURCE

#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mock_conn.h"
#include "mock_gen.h"
#include "mock_state.h"
#include "mock_trace.h"


#define MOCK_READ_SIZE      16384
#define MOCK_IN_MAX         (1024 * 1024)
#define MOCK_LINGER_US      2000000
#define MOCK_ACCEPT_BATCH   128


static void mock_accept(gg_io_t *io, uint32_t revents);
static void mock_listen_resume(gg_timer_t *t);
static void mock_conn_handler(gg_io_t *io, uint32_t revents);
static void mock_conn_gen_timer(gg_timer_t *t);
static void mock_conn_drip_timer(gg_timer_t *t);
static void mock_conn_stray_timer(gg_timer_t *t);
static void mock_conn_finish(mock_conn_t *c);
static void mock_conn_free(mock_conn_t *c);


static gg_io_t       mock_listener;
static gg_timer_t    mock_listen_timer;
static mock_conn_t  *mock_conns;

/* the request layer above: given by mock_listen_start() */
static const mock_conn_ops_t  *mock_ops;


int
mock_listen_start(int fd, const mock_conn_ops_t *ops)
{
    mock_ops = ops;
    mock_listener.fd = fd;
    mock_listener.handler = mock_accept;
    mock_listen_timer.handler = mock_listen_resume;

    return gg_io_set(&mock_loop, &mock_listener, EPOLLIN);
}


static void
mock_listen_resume(gg_timer_t *t)
{
    (void) t;

    if (gg_io_set(&mock_loop, &mock_listener, EPOLLIN) != 0) {
        mock_log(1, "error: epoll_ctl(listener): %s", strerror(errno));
    }
}


static void
mock_conn_reset(mock_conn_t *c)
{
    c->state = MOCK_READ_HEAD;
    gg_http_head_init(&c->head, 0, MOCK_HEAD_MAX);
    gg_buf_reset(&c->body);
    gg_buf_reset(&c->pend);

    snprintf(c->method, sizeof(c->method), "-");
    snprintf(c->path, sizeof(c->path), "?");
    c->http11 = 0;
    c->keepalive = 0;
    c->status = 0;
    c->chunked_out = 0;
    c->body_ended = 0;
    c->last_chunk = 0;
    c->drop = 0;
    c->header_error = NULL;
    c->anthropic_version = 0;
    c->content_type[0] = '\0';

    c->ttft_ms = mock_conf.ttft_ms;
    c->token_delay_ms = mock_conf.token_delay_ms;
    c->tokens = mock_conf.tokens;
    c->fail_status = mock_conf.fail_status;
    c->drop_after = mock_conf.drop_after;
    c->stall_after = -1;
    c->cache_read = 0;
    c->cache_write = 0;
    c->write_mode = MOCK_WRITE_NORMAL;
    c->byte_delay_us = 200;
    c->stray_ms = -1;
    c->stray_kind = MOCK_STRAY_RESPONSE;
    c->think = 0;
    c->think_bytes = 0;
    c->think_report = 0;

    c->phase = MOCK_PH_TTFT;
    c->n = 0;
    c->tok = 0;
    c->sent = 0;
    c->delayed = 0;
    c->stalled = 0;
    c->finish = "stop";
}


static void
mock_accept(gg_io_t *io, uint32_t revents)
{
    int           fd, one, i;
    mock_conn_t  *c;

    (void) revents;

    for (i = 0; i < MOCK_ACCEPT_BATCH; i++) {
        fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }

            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
                || errno == ENOMEM)
            {
                /* level-triggered: without a pause this would spin */
                mock_log(1, "error: accept(): %s; pausing 100 ms",
                         strerror(errno));
                (void) gg_io_set(&mock_loop, io, 0);
                (void) gg_timer_add(&mock_loop, &mock_listen_timer, 100000);
            }

            return;
        }

        one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        mock_connections++;

        c = calloc(1, sizeof(mock_conn_t));
        if (c == NULL) {
            close(fd);
            continue;
        }

        c->io.fd = fd;
        c->io.handler = mock_conn_handler;
        c->io.data = c;
        c->gen_timer.handler = mock_conn_gen_timer;
        c->gen_timer.data = c;
        c->drip_timer.handler = mock_conn_drip_timer;
        c->drip_timer.data = c;
        c->stray_timer.handler = mock_conn_stray_timer;
        c->stray_timer.data = c;
        mock_conn_reset(c);

        if (gg_io_set(&mock_loop, &c->io, EPOLLIN | EPOLLRDHUP) != 0) {
            mock_log(1, "error: epoll_ctl(): %s", strerror(errno));
            close(fd);
            free(c);
            continue;
        }

        c->next = mock_conns;
        if (mock_conns) {
            mock_conns->prev = c;
        }
        mock_conns = c;
    }
}


/* the client went away or the socket failed */

void
mock_conn_fail(mock_conn_t *c)
{
    if (c->dead) {
        return;
    }

    mock_ops->release(c, 0);
    c->dead = 1;
}


static void
mock_conn_flush(mock_conn_t *c)
{
    ssize_t  n;

    while (gg_buf_len(&c->out) && !c->dead) {
        n = send(c->io.fd, gg_buf_pos(&c->out), gg_buf_len(&c->out),
                 MSG_NOSIGNAL);

        if (n > 0) {
            gg_buf_consume(&c->out, (size_t) n);
            continue;
        }

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->want_out = 1;
            return;
        }

        mock_conn_fail(c);
        return;
    }

    c->want_out = 0;
}


static void
mock_conn_out(mock_conn_t *c, const void *p, size_t len)
{
    if (gg_buf_append(&c->out, p, len) != 0) {
        mock_log(1, "error: out of memory");
        mock_conn_fail(c);
    }
}


void
mock_head(mock_conn_t *c, int status, const char *type, long length,
    const char *extra)
{
    const char  *reason;

    switch (status) {
    case 200: reason = "OK"; break;
    case 400: reason = "Bad Request"; break;
    case 401: reason = "Unauthorized"; break;
    case 403: reason = "Forbidden"; break;
    case 404: reason = "Not Found"; break;
    case 405: reason = "Method Not Allowed"; break;
    case 413: reason = "Payload Too Large"; break;
    case 429: reason = "Too Many Requests"; break;
    case 431: reason = "Request Header Fields Too Large"; break;
    case 500: reason = "Internal Server Error"; break;
    case 501: reason = "Not Implemented"; break;
    case 502: reason = "Bad Gateway"; break;
    case 503: reason = "Service Unavailable"; break;
    case 504: reason = "Gateway Timeout"; break;
    case 505: reason = "HTTP Version Not Supported"; break;
    default: reason = "Mock Status"; break;
    }

    c->status = status;
    c->chunked_out = (length < 0 && c->http11);

    /* an HTTP/1.0 body of unknown length ends where the connection does */
    if (length < 0 && !c->http11) {
        c->keepalive = 0;
    }

    if (gg_buf_printf(&c->out,
                      "HTTP/1.%d %d %s\r\n"
                      "Server: " MOCK_NAME "\r\n"
                      "Content-Type: %s\r\n"
                      "%s%s%s",
                      c->http11, status, reason, type,
                      c->chunked_out ? "Transfer-Encoding: chunked\r\n" : "",
                      c->keepalive
                      ? (c->http11 ? "" : "Connection: keep-alive\r\n")
                      : "Connection: close\r\n",
                      extra ? extra : "")
        != 0
        || (length >= 0
            && gg_buf_printf(&c->out, "Content-Length: %ld\r\n", length)
               != 0)
        || gg_buf_append(&c->out, "\r\n", 2) != 0)
    {
        mock_log(1, "error: out of memory");
        mock_conn_fail(c);
        return;
    }

    mock_count(c->path, status);
    mock_conn_flush(c);
}


void
mock_body_add(mock_conn_t *c, const char *p, size_t len)
{
    if (gg_buf_append(&c->pend, p, len) != 0) {
        mock_log(1, "error: out of memory");
        mock_conn_fail(c);
    }
}


/* frames what was generated since the last commit and sends it */

void
mock_body_commit(mock_conn_t *c)
{
    char    head[32];
    size_t  len;
    int     n;

    len = gg_buf_len(&c->pend);

    if (len == 0 || c->dead) {
        return;
    }

    if (c->write_mode == MOCK_WRITE_BYTE) {
        if (gg_buf_append(&c->drip, gg_buf_pos(&c->pend), len) != 0) {
            mock_conn_fail(c);
            return;
        }

        gg_buf_reset(&c->pend);

        if (!gg_timer_armed(&c->drip_timer) && !c->drip_blocked) {
            (void) gg_timer_add(&mock_loop, &c->drip_timer, 0);
        }

        return;
    }

    if (c->chunked_out) {
        n = snprintf(head, sizeof(head), "%zx\r\n", len);
        mock_conn_out(c, head, (size_t) n);
        mock_conn_out(c, gg_buf_pos(&c->pend), len);
        mock_conn_out(c, "\r\n", 2);

    } else {
        mock_conn_out(c, gg_buf_pos(&c->pend), len);
    }

    gg_buf_reset(&c->pend);
    mock_conn_flush(c);
}


void
mock_body_end(mock_conn_t *c, int last_chunk)
{
    mock_body_commit(c);

    c->body_ended = 1;
    c->last_chunk = last_chunk && c->chunked_out;
}


void
mock_respond(mock_conn_t *c, int status, const char *type, const char *body,
    const char *extra)
{
    size_t  len;

    len = strlen(body);

    mock_head(c, status, type, (long) len + 1, extra);
    mock_body_add(c, body, len);
    mock_body_add(c, "\n", 1);
    mock_body_end(c, 1);
}


void
mock_respond_error(mock_conn_t *c, int status, const char *message,
    const char *type, const char *param, const char *code, const char *extra)
{
    char  *body;

    body = mock_error(message, type, param, code);
    if (body == NULL) {
        mock_conn_fail(c);
        return;
    }

    mock_respond(c, status, "application/json", body, extra);
    free(body);
}


/* byte mode: one body byte per write, "byte_delay_us" apart */

static void
mock_drip(mock_conn_t *c)
{
    char  b, frame[8];

    if (gg_buf_len(&c->out)) {
        /* the previous byte is not out yet: resume when it is */
        c->drip_blocked = 1;
        return;
    }

    if (gg_buf_len(&c->drip) == 0) {
        return;
    }

    b = *gg_buf_pos(&c->drip);
    gg_buf_consume(&c->drip, 1);

    if (c->chunked_out) {
        memcpy(frame, "1\r\n", 3);
        frame[3] = b;
        memcpy(frame + 4, "\r\n", 2);
        mock_conn_out(c, frame, 6);

    } else {
        mock_conn_out(c, &b, 1);
    }

    mock_conn_flush(c);

    if (gg_buf_len(&c->drip) && !c->dead) {
        (void) gg_timer_add(&mock_loop, &c->drip_timer,
                            (uint64_t) c->byte_delay_us);
    }
}


static void
mock_request_done(mock_conn_t *c)
{
    if (c->active) {
        mock_ops->release(c, 1);

    } else {
        mock_log(0, "%s %s %d", c->method, c->path, c->status);
    }

    if (c->drop) {
        c->dead = 1;
        return;
    }

    if (c->keepalive) {
        if (c->stray_ms >= 0) {
            c->stray_send = c->stray_kind;
            (void) gg_timer_add(&mock_loop, &c->stray_timer,
                                (uint64_t) c->stray_ms * 1000);
            mock_log(0, "stray test mode: unasked bytes in %ld ms",
                     c->stray_ms);
        }

        mock_conn_reset(c);

        if (mock_conf.keepalive_ms) {
            /* READ_HEAD with no input: the timer closes the connection */
            (void) gg_timer_add(&mock_loop, &c->gen_timer,
                                mock_conf.keepalive_ms * 1000);
        }

        return;
    }

    /*
     * Half-close and drain what the client still sends: closing with
     * unread input would send a RST that can destroy the response before
     * the client has read it.
     */
    shutdown(c->io.fd, SHUT_WR);
    c->state = MOCK_LINGER;
    c->in_paused = 0;
    gg_buf_reset(&c->in);
    gg_timer_del(&mock_loop, &c->drip_timer);
    (void) gg_timer_add(&mock_loop, &c->gen_timer, MOCK_LINGER_US);
}


static void
mock_conn_check_done(mock_conn_t *c)
{
    if (c->dead || c->state != MOCK_BUSY || !c->body_ended
        || gg_buf_len(&c->pend) || gg_buf_len(&c->drip))
    {
        return;
    }

    if (c->last_chunk) {
        c->last_chunk = 0;
        mock_conn_out(c, "0\r\n\r\n", 5);
        mock_conn_flush(c);
    }

    if (c->dead || gg_buf_len(&c->out)) {
        return;
    }

    mock_request_done(c);
}


/*
 * A request that cannot be parsed: answer, then close.  "body" tells a
 * body error (413, 501) from a head error (431, 505).
 */

static void
mock_conn_bad(mock_conn_t *c, int rc, int body, const char *message)
{
    int  status;

    if (rc == GG_HTTP_TOO_LARGE) {
        status = body ? 413 : 431;

    } else if (rc == GG_HTTP_UNSUPPORTED) {
        status = body ? 501 : 505;

    } else {
        status = 400;
    }

    if (message == NULL) {
        message = (status == 431) ? "Request head too large."
                  : (status == 505) ? "HTTP version not supported."
                  : (status == 501) ? "Transfer-Encoding not supported."
                  : (status == 413) ? "Request body larger than 32 MiB."
                  : "Malformed HTTP request.";
    }

    c->state = MOCK_BUSY;
    c->keepalive = 0;
    gg_buf_reset(&c->in);

    mock_respond_error(c, status, message, "invalid_request_error", NULL,
                       status == 413 ? "request_too_large" : NULL, NULL);
}


static void
mock_conn_copy(char *dst, size_t size, const char *p, size_t len)
{
    if (len >= size) {
        len = size - 1;
    }

    memcpy(dst, p, len);
    dst[len] = '\0';
}


/* a non-negative integer header value, or -1 */

static long
mock_header_long(const char *p, size_t len)
{
    long    v;
    size_t  i;

    if (len == 0 || len > 9) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    return v;
}


static void
mock_conn_headers(mock_conn_t *c, const char *buf)
{
    long                     v;
    size_t                   i, len;
    const char              *p;
    const gg_http_header_t  *hd;

    static const struct {
        const char  *name;
        size_t       off;
    } overrides[] = {
        { "x-mock-ttft-ms", offsetof(mock_conn_t, ttft_ms) },
        { "x-mock-token-delay-ms", offsetof(mock_conn_t, token_delay_ms) },
        { "x-mock-tokens", offsetof(mock_conn_t, tokens) },
        { "x-mock-drop-after", offsetof(mock_conn_t, drop_after) },
        { "x-mock-stall-after", offsetof(mock_conn_t, stall_after) },
        { "x-mock-byte-delay-us", offsetof(mock_conn_t, byte_delay_us) },
        { "x-mock-stray-ms", offsetof(mock_conn_t, stray_ms) },
        { "x-mock-cache-read", offsetof(mock_conn_t, cache_read) },
        { "x-mock-cache-write", offsetof(mock_conn_t, cache_write) },
        { "x-mock-think", offsetof(mock_conn_t, think) },
        { "x-mock-think-bytes", offsetof(mock_conn_t, think_bytes) },
        { "x-mock-think-report", offsetof(mock_conn_t, think_report) },
    };

    for (i = 0; i < c->head.nheaders; i++) {
        hd = &c->head.headers[i];

        /* Anthropic's version header: the mock refuses a messages
           request without it, as Anthropic does */
        if (hd->name_len == 17
            && strncasecmp(buf + hd->name, "anthropic-version", 17) == 0)
        {
            c->anthropic_version = 1;
            continue;
        }

        if (hd->name_len == 12
            && strncasecmp(buf + hd->name, "content-type", 12) == 0)
        {
            snprintf(c->content_type, sizeof(c->content_type), "%.*s",
                     (int) hd->value_len, buf + hd->value);
            continue;
        }

        if (hd->name_len < 7 || strncasecmp(buf + hd->name, "x-mock-", 7)) {
            continue;
        }

        p = buf + hd->value;
        len = hd->value_len;

        if (gg_http_header_is(hd, buf, "x-mock-write-mode")) {
            if (len == 6 && strncasecmp(p, "normal", 6) == 0) {
                c->write_mode = MOCK_WRITE_NORMAL;

            } else if (len == 4 && strncasecmp(p, "byte", 4) == 0) {
                c->write_mode = MOCK_WRITE_BYTE;

            } else if (len == 4 && strncasecmp(p, "bulk", 4) == 0) {
                c->write_mode = MOCK_WRITE_BULK;

            } else {
                c->header_error = "X-Mock-Write-Mode must be normal, byte "
                                  "or bulk.";
            }

            continue;
        }

        if (gg_http_header_is(hd, buf, "x-mock-stray-kind")) {
            if (len == 8 && strncasecmp(p, "response", 8) == 0) {
                c->stray_kind = MOCK_STRAY_RESPONSE;

            } else if (len == 4 && strncasecmp(p, "byte", 4) == 0) {
                c->stray_kind = MOCK_STRAY_BYTE;

            } else if (len == 4 && strncasecmp(p, "head", 4) == 0) {
                c->stray_kind = MOCK_STRAY_HEAD;

            } else {
                c->header_error = "X-Mock-Stray-Kind must be response, "
                                  "byte or head.";
            }

            continue;
        }

        v = mock_header_long(p, len);

        if (gg_http_header_is(hd, buf, "x-mock-fail-status")) {
            if (v < 100 || v > 599) {
                c->header_error = "X-Mock-Fail-Status must be an HTTP "
                                  "status (100-599).";
            } else {
                c->fail_status = (int) v;
            }

            continue;
        }

        for (len = 0; len < sizeof(overrides) / sizeof(overrides[0]);
             len++)
        {
            if (gg_http_header_is(hd, buf, overrides[len].name)) {
                if (v < 0) {
                    c->header_error = "X-Mock-* values must be integers "
                                      "in 0..999999999.";
                } else {
                    *(long *) ((char *) c + overrides[len].off) = v;
                }
                break;
            }
        }
    }
}


/* the head is complete: what the request is and how its body comes */

static void
mock_conn_begin(mock_conn_t *c)
{
    size_t       len;
    const char  *buf, *q;

    buf = gg_buf_pos(&c->in);

    mock_conn_copy(c->method, sizeof(c->method), buf + c->head.method,
                   c->head.method_len);

    len = c->head.uri_len;
    q = memchr(buf + c->head.uri, '?', len);
    if (q) {
        len = (size_t) (q - (buf + c->head.uri));
    }

    if (len < sizeof(c->path)) {
        mock_conn_copy(c->path, sizeof(c->path), buf + c->head.uri, len);

    } else {
        snprintf(c->path, sizeof(c->path), "other");
    }

    c->http11 = (c->head.version == 11);
    c->keepalive = c->head.keep_alive;

    mock_conn_headers(c, buf);
    mock_trace_headers(&c->head, buf, c->method, c->path);

    gg_buf_consume(&c->in, c->head.head_len);

    if (c->head.content_length > MOCK_BODY_MAX) {
        mock_conn_bad(c, GG_HTTP_TOO_LARGE, 1, NULL);
        return;
    }

    if (c->head.expect_continue && c->http11
        && (c->head.chunked || c->head.content_length > 0))
    {
        mock_conn_out(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        mock_conn_flush(c);
    }

    if (c->head.chunked) {
        gg_http_chunked_init(&c->chunked, MOCK_BODY_MAX);
        c->state = MOCK_READ_CHUNKED;

    } else if (c->head.content_length > 0) {
        c->state = MOCK_READ_BODY;

    } else {
        c->state = MOCK_BUSY;
        mock_ops->dispatch(c);
    }
}


/* parses and answers what is buffered, pipelined requests included */

static void
mock_conn_process(mock_conn_t *c)
{
    int      rc;
    char    *p;
    size_t   take, used, out_len;

    for ( ;; ) {
        if (c->dead) {
            return;
        }

        switch (c->state) {

        case MOCK_READ_HEAD:
            c->in_paused = 0;

            if (gg_buf_len(&c->in) == 0) {
                return;
            }

            /* a request came: the keep-alive limit no longer applies */
            gg_timer_del(&mock_loop, &c->gen_timer);

            rc = gg_http_parse_head(&c->head, gg_buf_pos(&c->in),
                                    gg_buf_len(&c->in));

            if (rc == GG_HTTP_AGAIN) {
                return;
            }

            if (rc != GG_HTTP_OK) {
                /* a bad Transfer-Encoding is found with the head */
                mock_conn_bad(c, rc, rc == GG_HTTP_UNSUPPORTED
                                     && c->head.head_len != 0, NULL);
                break;
            }

            mock_conn_begin(c);
            break;

        case MOCK_READ_BODY:
            take = (size_t) c->head.content_length - gg_buf_len(&c->body);

            if (take > gg_buf_len(&c->in)) {
                take = gg_buf_len(&c->in);
            }

            if (gg_buf_append(&c->body, gg_buf_pos(&c->in), take) != 0) {
                mock_conn_fail(c);
                return;
            }

            gg_buf_consume(&c->in, take);

            if (gg_buf_len(&c->body) < (size_t) c->head.content_length) {
                return;
            }

            c->state = MOCK_BUSY;
            mock_ops->dispatch(c);
            break;

        case MOCK_READ_CHUNKED:
            if (gg_buf_len(&c->in) == 0) {
                return;
            }

            /* decoded in place: the raw chunk framing is not needed again */
            p = gg_buf_pos(&c->in);
            rc = gg_http_parse_chunked(&c->chunked, p, gg_buf_len(&c->in),
                                       p, &used, &out_len);

            if (gg_buf_append(&c->body, p, out_len) != 0) {
                mock_conn_fail(c);
                return;
            }

            gg_buf_consume(&c->in, used);

            if (rc == GG_HTTP_AGAIN) {
                return;
            }

            if (rc != GG_HTTP_OK) {
                mock_conn_bad(c, rc, 1, rc == GG_HTTP_ERROR
                                        ? "Malformed chunked request body."
                                        : NULL);
                break;
            }

            c->state = MOCK_BUSY;
            mock_ops->dispatch(c);
            break;

        case MOCK_BUSY:
            mock_conn_check_done(c);

            if (c->state == MOCK_BUSY) {
                return;
            }

            break;

        case MOCK_LINGER:
            return;
        }
    }
}


static void
mock_conn_read(mock_conn_t *c, uint32_t revents)
{
    int      i;
    ssize_t  n;

    for (i = 0; i < 16 && !c->in_paused; i++) {
        if (c->state == MOCK_LINGER) {
            gg_buf_reset(&c->in);
        }

        /* a client pipelining megabytes while we answer must wait */
        if (c->state == MOCK_BUSY && gg_buf_len(&c->in) >= MOCK_IN_MAX) {
            c->in_paused = 1;
            break;
        }

        if (gg_buf_reserve(&c->in, MOCK_READ_SIZE) != 0) {
            mock_conn_fail(c);
            return;
        }

        n = recv(c->io.fd, gg_buf_last(&c->in), gg_buf_room(&c->in), 0);

        if (n > 0) {
            c->in.end += (size_t) n;

            if ((size_t) n < MOCK_READ_SIZE) {
                break;
            }

            continue;
        }

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }

        /* EOF or a reset: in any state the connection is over */
        mock_conn_fail(c);
        return;
    }

    /* with EPOLLIN off only these tell that the client left */
    if (c->in_paused && (revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        mock_conn_fail(c);
    }
}


static void
mock_conn_events(mock_conn_t *c)
{
    uint32_t  ev;

    ev = EPOLLRDHUP;

    if (!c->in_paused) {
        ev |= EPOLLIN;
    }

    if (c->want_out) {
        ev |= EPOLLOUT;
    }

    if (gg_io_set(&mock_loop, &c->io, ev) != 0) {
        mock_log(1, "error: epoll_ctl(): %s", strerror(errno));
        mock_conn_fail(c);
    }
}


/* the common end of every entry from the loop */

static void
mock_conn_finish(mock_conn_t *c)
{
    if (!c->dead && gg_buf_len(&c->out) == 0) {
        /* output drained: whatever waited for it goes on */
        if (c->drip_blocked) {
            c->drip_blocked = 0;
            (void) gg_timer_add(&mock_loop, &c->drip_timer, 0);
        }

        if (c->gen_blocked && gg_buf_len(&c->drip) <= MOCK_OUT_HIGH) {
            c->gen_blocked = 0;
            mock_ops->resume(c);
        }
    }

    mock_conn_process(c);

    if (!c->dead) {
        mock_conn_events(c);
    }

    if (c->dead) {
        mock_conn_free(c);
    }
}


static void
mock_conn_handler(gg_io_t *io, uint32_t revents)
{
    mock_conn_t  *c;

    c = io->data;

    if (revents & EPOLLOUT) {
        mock_conn_flush(c);
    }

    if (!c->dead && (revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
    {
        mock_conn_read(c, revents);
    }

    mock_conn_finish(c);
}


static void
mock_conn_gen_timer(gg_timer_t *t)
{
    mock_conn_t  *c;

    c = t->data;

    if (c->state == MOCK_LINGER) {
        c->dead = 1;

    } else if (c->state == MOCK_READ_HEAD) {
        mock_log(0, "keep-alive connection idle %ld ms: closed",
                 mock_conf.keepalive_ms);
        c->dead = 1;

    } else {
        mock_ops->resume(c);
    }

    mock_conn_finish(c);
}


/*
 * The stray test mode: unasked bytes on an idle kept-alive connection, as
 * a runtime with a bug might send them.  Not while another request is on
 * the connection (its answer would be torn, which tests nothing).
 */

static void
mock_conn_stray_timer(gg_timer_t *t)
{
    mock_conn_t  *c;
    const char   *p;

    static const char  stray[] =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Content-Length: 36\r\n\r\n"
        "{\"stray\":\"STRAY RESPONSE, UNASKED\"}\n";

    c = t->data;

    if (c->dead || c->state != MOCK_READ_HEAD || gg_buf_len(&c->in)
        || gg_buf_len(&c->out))
    {
        mock_log(1, "stray test mode: connection busy, nothing sent");
        c->stray_send = 0;
        return;
    }

    p = (c->stray_send == MOCK_STRAY_BYTE) ? "X"
        : (c->stray_send == MOCK_STRAY_HEAD) ? "HTTP/1.1 200 OK\r\n"
        : stray;

    mock_log(1, "stray test mode: %zu unasked bytes sent", strlen(p));

    c->stray_send = 0;
    mock_strays++;

    mock_conn_out(c, p, strlen(p));
    mock_conn_flush(c);
    mock_conn_finish(c);
}


static void
mock_conn_drip_timer(gg_timer_t *t)
{
    mock_conn_t  *c;

    c = t->data;

    mock_drip(c);
    mock_conn_finish(c);
}


static void
mock_conn_free(mock_conn_t *c)
{
    gg_timer_del(&mock_loop, &c->gen_timer);
    gg_timer_del(&mock_loop, &c->drip_timer);
    gg_timer_del(&mock_loop, &c->stray_timer);

    /* close() drops the epoll registration: the fd is not shared */
    close(c->io.fd);

    if (c->active) {
        mock_ops->release(c, -1);
    }

    if (c->prev) {
        c->prev->next = c->next;
    } else {
        mock_conns = c->next;
    }

    if (c->next) {
        c->next->prev = c->prev;
    }

    gg_buf_free(&c->in);
    gg_buf_free(&c->out);
    gg_buf_free(&c->body);
    gg_buf_free(&c->pend);
    gg_buf_free(&c->drip);
    free(c);
}


void
mock_conns_free(void)
{
    while (mock_conns) {
        mock_conn_free(mock_conns);
    }

    gg_timer_del(&mock_loop, &mock_listen_timer);
}
