
/*
 * Copyright (C) gpugate authors
 *
 * The OTLP/HTTP exporter, one per worker, off the request path like the
 * ledger's writer: the log phase only appends a span's JSON to a bounded
 * buffer (full: the span is dropped and counted); a timer, or a full
 * batch, POSTs up to batch= spans to the collector on a connection of
 * their own (non-blocking connect, write and read through nginx's event
 * loop, "Connection: close", timeout= for the whole exchange).  One POST
 * at a time: a slow or dead collector holds only that one, spans pile
 * up to buffer= and the rest are dropped; a request never waits and
 * never fails for it.  A batch that is refused or not answered is
 * counted as failed, not sent again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_trace.h"


typedef struct {
    ngx_http_gpugate_trace_main_conf_t  *conf;     /* gpugate_otlp */
    ngx_http_gpugate_trace_shm_t        *shm;      /* the counts */
    u_char                              *pending;  /* spans, joined by
                                                      commas */
    size_t                               pending_len;
    size_t                               pending_cap;
    size_t                              *ends;     /* where each pending
                                                      span ends */
    ngx_uint_t                           pending_n; /* spans pending */
    u_char                              *req;      /* the POST in flight */
    size_t                               req_len;
    size_t                               req_cap;
    size_t                               sent;     /* of req */
    ngx_uint_t                           req_n;    /* its spans */
    u_char                               resp[128]; /* the answer's
                                                       start */
    size_t                               resp_len;
    ngx_peer_connection_t                peer;     /* to the collector */
    ngx_event_t                          flush;    /* the next POST */
    ngx_log_t                           *log;      /* the cycle's */
    unsigned                             busy:1;   /* a POST in flight */
    unsigned                             failing:1; /* the last one
                                                       failed (logged
                                                       once) */
} ngx_http_gpugate_trace_otlp_t;


static void ngx_http_gpugate_trace_otlp_flush(ngx_event_t *ev);
static void ngx_http_gpugate_trace_otlp_write(ngx_event_t *wev);
static void ngx_http_gpugate_trace_otlp_read(ngx_event_t *rev);
static void ngx_http_gpugate_trace_otlp_done(
    ngx_http_gpugate_trace_otlp_t *ox, ngx_uint_t ok, const char *why);


static ngx_http_gpugate_trace_otlp_t  *ngx_http_gpugate_trace_otlp;


ngx_int_t
ngx_http_gpugate_trace_otlp_init(ngx_cycle_t *cycle,
    ngx_http_gpugate_trace_main_conf_t *tmcf)
{
    ngx_http_gpugate_trace_otlp_t  *ox;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ox = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_trace_otlp_t));
    if (ox == NULL) {
        return NGX_ERROR;
    }

    ox->ends = ngx_alloc(tmcf->buffer * sizeof(size_t), cycle->log);
    if (ox->ends == NULL) {
        return NGX_ERROR;
    }

    ox->conf = tmcf;
    ox->shm = tmcf->zone->data;
    ox->log = cycle->log;

    ox->flush.handler = ngx_http_gpugate_trace_otlp_flush;
    ox->flush.data = ox;
    ox->flush.log = cycle->log;
    ox->flush.cancelable = 1;

    ngx_add_timer(&ox->flush, tmcf->interval);

    ngx_http_gpugate_trace_otlp = ox;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "gpugate trace: exporter to %V every %M ms",
                   &tmcf->addr.name, tmcf->interval);

    return NGX_OK;
}


void
ngx_http_gpugate_trace_otlp_exit(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_trace_otlp_t  *ox;

    ox = ngx_http_gpugate_trace_otlp;

    if (ox == NULL) {
        return;
    }

    /* what is still held is lost with the worker: counted */
    if (ox->busy) {
        (void) ngx_atomic_fetch_add(&ox->shm->failed, ox->req_n);
    }

    if (ox->pending_n) {
        (void) ngx_atomic_fetch_add(&ox->shm->dropped, ox->pending_n);
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                       "gpugate trace: %ui spans dropped at exit",
                       ox->pending_n);
    }

    ngx_free(ox->pending);
    ngx_free(ox->req);
    ngx_free(ox->ends);
    ngx_http_gpugate_trace_otlp = NULL;
}


/* room for "len" more bytes at buf[*used]; 0 or -1 */

static ngx_int_t
ngx_http_gpugate_trace_otlp_room(u_char **buf, size_t *cap, size_t used,
    size_t len, ngx_log_t *log)
{
    u_char  *p;
    size_t   n;

    if (used + len <= *cap) {
        return NGX_OK;
    }

    n = ngx_max(2 * *cap, used + len);
    n = ngx_max(n, 16384);

    p = ngx_alloc(n, log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (used) {
        ngx_memcpy(p, *buf, used);
    }

    ngx_free(*buf);
    *buf = p;
    *cap = n;

    return NGX_OK;
}


void
ngx_http_gpugate_trace_otlp_add(u_char *span, size_t len)
{
    size_t                          need;
    ngx_http_gpugate_trace_otlp_t  *ox;

    ox = ngx_http_gpugate_trace_otlp;

    if (ox == NULL) {
        return;
    }

    if (ox->pending_n >= ox->conf->buffer) {
        (void) ngx_atomic_fetch_add(&ox->shm->dropped, 1);
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ox->log, 0,
                       "gpugate trace: buffer full, span dropped");
        return;
    }

    need = len + (ox->pending_n ? 1 : 0);

    if (ngx_http_gpugate_trace_otlp_room(&ox->pending, &ox->pending_cap,
                                         ox->pending_len, need, ox->log)
        != NGX_OK)
    {
        (void) ngx_atomic_fetch_add(&ox->shm->dropped, 1);
        return;
    }

    if (ox->pending_n) {
        ox->pending[ox->pending_len++] = ',';
    }

    ngx_memcpy(ox->pending + ox->pending_len, span, len);
    ox->pending_len += len;
    ox->ends[ox->pending_n++] = ox->pending_len;

    if (ox->pending_n >= ox->conf->batch && !ox->busy
        && !ox->flush.posted)
    {
        /* a whole batch: sent after this request's log phase */
        ngx_post_event(&ox->flush, &ngx_posted_events);
    }
}


/* the next POST: up to batch= spans taken from the pending ones */

static ngx_int_t
ngx_http_gpugate_trace_otlp_request(ngx_http_gpugate_trace_otlp_t *ox)
{
    u_char                              *p;
    size_t                               body, spans, head, rest;
    ngx_uint_t                           n, i;
    ngx_http_gpugate_trace_main_conf_t  *conf;

    conf = ox->conf;
    n = ngx_min(ox->pending_n, conf->batch);
    spans = ox->ends[n - 1];

    head = gpugate_otlp_head(NULL, 0, (char *) conf->service.data,
                             conf->service.len);
    body = head + spans + sizeof(GPUGATE_OTLP_TAIL) - 1;

    ox->req_len = 0;

    if (ngx_http_gpugate_trace_otlp_room(&ox->req, &ox->req_cap, 0,
                                         body + 256 + conf->uri.len
                                         + conf->host.len, ox->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_sprintf(ox->req, "POST %V HTTP/1.1" CRLF "Host: %V" CRLF
                    "Content-Type: application/json" CRLF
                    "Content-Length: %uz" CRLF "Connection: close" CRLF
                    "User-Agent: gpugate" CRLF CRLF,
                    &conf->uri, &conf->host, body);

    p += gpugate_otlp_head((char *) p, head, (char *) conf->service.data,
                           conf->service.len);
    p = ngx_cpymem(p, ox->pending, spans);
    p = ngx_cpymem(p, GPUGATE_OTLP_TAIL, sizeof(GPUGATE_OTLP_TAIL) - 1);

    ox->req_len = p - ox->req;
    ox->req_n = n;
    ox->sent = 0;
    ox->resp_len = 0;

    /* the rest move up: past the comma after the last span taken */

    rest = (n < ox->pending_n) ? ox->pending_len - spans - 1 : 0;

    if (rest) {
        ngx_memmove(ox->pending, ox->pending + spans + 1, rest);
    }

    for (i = n; i < ox->pending_n; i++) {
        ox->ends[i - n] = ox->ends[i] - spans - 1;
    }

    ox->pending_n -= n;
    ox->pending_len = rest;

    return NGX_OK;
}


static void
ngx_http_gpugate_trace_otlp_flush(ngx_event_t *ev)
{
    ngx_int_t                       rc;
    ngx_connection_t               *c;
    ngx_http_gpugate_trace_otlp_t  *ox;

    ox = ev->data;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    /* the timer stays armed whatever happens: a POST in flight, or none
       to make, only waits for the next turn */
    if (!ox->flush.timer_set) {
        ngx_add_timer(&ox->flush, ox->conf->interval);
    }

    if (ox->busy || ox->pending_n == 0) {
        return;
    }

    if (ngx_http_gpugate_trace_otlp_request(ox) != NGX_OK) {
        (void) ngx_atomic_fetch_add(&ox->shm->failed, ox->pending_n);
        ox->pending_n = 0;
        ox->pending_len = 0;
        return;
    }

    ngx_memzero(&ox->peer, sizeof(ngx_peer_connection_t));
    ox->peer.sockaddr = ox->conf->addr.sockaddr;
    ox->peer.socklen = ox->conf->addr.socklen;
    ox->peer.name = &ox->conf->addr.name;
    ox->peer.get = ngx_event_get_peer;
    ox->peer.log = ox->log;
    ox->peer.log_error = NGX_ERROR_ERR;

    ox->busy = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ox->log, 0,
                   "gpugate trace: POST of %ui spans to %V", ox->req_n,
                   &ox->conf->addr.name);

    rc = ngx_event_connect_peer(&ox->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_http_gpugate_trace_otlp_done(ox, 0, "cannot connect");
        return;
    }

    c = ox->peer.connection;
    c->data = ox;
    c->write->handler = ngx_http_gpugate_trace_otlp_write;
    c->read->handler = ngx_http_gpugate_trace_otlp_read;

    /* one deadline for connect, request and answer; a quitting worker
       does not wait for it (the batch is counted as failed at exit) */
    c->read->cancelable = 1;
    ngx_add_timer(c->read, ox->conf->timeout);

    if (rc == NGX_OK) {
        ngx_http_gpugate_trace_otlp_write(c->write);
    }
}


static void
ngx_http_gpugate_trace_otlp_write(ngx_event_t *wev)
{
    ssize_t                         n;
    ngx_connection_t               *c;
    ngx_http_gpugate_trace_otlp_t  *ox;

    c = wev->data;
    ox = c->data;

    if (wev->timedout || c->read->timedout) {
        ngx_http_gpugate_trace_otlp_done(ox, 0, "timed out");
        return;
    }

    while (ox->sent < ox->req_len) {
        n = c->send(c, ox->req + ox->sent, ox->req_len - ox->sent);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_gpugate_trace_otlp_done(ox, 0, "write event");
            }

            return;
        }

        if (n <= 0) {
            ngx_http_gpugate_trace_otlp_done(ox, 0, "cannot send");
            return;
        }

        ox->sent += n;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ox->log, 0,
                   "gpugate trace: POST sent (%uz bytes), waiting",
                   ox->req_len);

    if (c->read->ready) {
        ngx_http_gpugate_trace_otlp_read(c->read);
    }
}


/* the status line is all that is read: 2xx, the batch is taken */

static void
ngx_http_gpugate_trace_otlp_read(ngx_event_t *rev)
{
    u_char                         *nl;
    ssize_t                         n;
    ngx_int_t                       status;
    ngx_connection_t               *c;
    ngx_http_gpugate_trace_otlp_t  *ox;

    c = rev->data;
    ox = c->data;

    if (rev->timedout) {
        ngx_http_gpugate_trace_otlp_done(ox, 0, "no answer in time");
        return;
    }

    for ( ;; ) {
        n = c->recv(c, ox->resp + ox->resp_len,
                    sizeof(ox->resp) - ox->resp_len);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_gpugate_trace_otlp_done(ox, 0, "read event");
            }

            return;
        }

        if (n > 0) {
            ox->resp_len += n;
        }

        nl = ngx_strlchr(ox->resp, ox->resp + ox->resp_len, '\n');

        if (nl || n <= 0 || ox->resp_len == sizeof(ox->resp)) {
            break;
        }
    }

    if (ox->resp_len == 0) {
        ngx_http_gpugate_trace_otlp_done(ox, 0, n == 0
                                         ? "closed without an answer"
                                         : "cannot connect or read");
        return;
    }

    if (ox->resp_len < 12 || ngx_strncmp(ox->resp, "HTTP/1.", 7) != 0) {
        ngx_http_gpugate_trace_otlp_done(ox, 0, "not an HTTP answer");
        return;
    }

    status = ngx_atoi(ox->resp + 9, 3);

    if (status < 200 || status > 299) {
        ngx_log_error(NGX_LOG_WARN, ox->log, 0,
                      "gpugate trace: the collector answered %i to a "
                      "batch of %ui spans", status, ox->req_n);
        ngx_http_gpugate_trace_otlp_done(ox, 0, NULL);
        return;
    }

    ngx_http_gpugate_trace_otlp_done(ox, 1, NULL);
}


static void
ngx_http_gpugate_trace_otlp_done(ngx_http_gpugate_trace_otlp_t *ox,
    ngx_uint_t ok, const char *why)
{
    ngx_uint_t  level;

    if (ox->peer.connection) {
        ngx_close_connection(ox->peer.connection);
        ox->peer.connection = NULL;
    }

    ox->busy = 0;

    if (ok) {
        (void) ngx_atomic_fetch_add(&ox->shm->exported, ox->req_n);
        (void) ngx_atomic_fetch_add(&ox->shm->batches, 1);

        if (ox->failing) {
            ngx_log_error(NGX_LOG_NOTICE, ox->log, 0,
                          "gpugate trace: the collector %V takes spans "
                          "again", &ox->conf->addr.name);
        }

        ox->failing = 0;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ox->log, 0,
                       "gpugate trace: %ui spans exported", ox->req_n);

    } else {
        (void) ngx_atomic_fetch_add(&ox->shm->failed, ox->req_n);
        (void) ngx_atomic_fetch_add(&ox->shm->batch_errors, 1);

        /* once per outage at warn: a dead collector is one line */
        if (why) {
            level = ox->failing ? NGX_LOG_INFO : NGX_LOG_WARN;
            ngx_log_error(level, ox->log, 0, "gpugate trace: collector %V: %s, "
                          "%ui spans lost", &ox->conf->addr.name, why,
                          ox->req_n);
        }

        ox->failing = 1;
    }

    ox->req_n = 0;

    /* after a failure the timer says when to try again */
    if (ok && ox->pending_n >= ox->conf->batch && !ox->flush.posted) {
        ngx_post_event(&ox->flush, &ngx_posted_events);
    }
}
