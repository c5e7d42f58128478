
/*
 * Copyright (C) gpugate authors
 *
 * The tunnel balancer and its wait queue.
 *
 * peer.get cannot wait, so waiting happens one phase earlier: a
 * precontent handler (after the router has read the body and chosen the
 * model and pool) reserves an idle connection of a suitable agent in this
 * worker, or queues the request with a deadline until one is parked here:
 * after a response (peer.free), a ping, or a new handshake.  peer.get then
 * hands the reserved connection out like the keepalive module hands out a
 * cached one; a retry takes any other suitable idle connection.
 *
 * Which agent takes a request is ngx_http_gpugate_tunnel_pick.c's
 * concern; a connection parked here is offered to the first waiting
 * request that its agent suits, in the queue's order: highest priority
 * first, FIFO within one, with aging (ngx_http_gpugate_tunnel_prio.c).
 *
 * Silent agents.  Once the request is out, an agent whose runtime has not
 * begun to answer sends a heartbeat (CRLF) every ping_timeout / 3; the
 * heartbeats are dropped before the upstream module reads the answer.  A
 * busy tunnel that brings nothing for ping_timeout (a frozen agent: its
 * kernel still ACKs, so TCP cannot tell) fails as a timeout, which
 * proxy_next_upstream retries on another agent; nothing was sent to the
 * client yet.  A slow runtime is not cut: its agent keeps beating.
 *
 * Reloads.  An agent whose last connection a reload closed is dialing the
 * new workers: a request that finds no agent waits for it rather than
 * getting a 503.  A worker that shuts down cannot be supplied any more:
 * its waiting requests get one of its own busy connections when that
 * comes back within a short grace, else a 503 that tells the client to
 * retry on a new connection, which a live worker accepts.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"
#include "ngx_http_gpugate_openai.h"


/* while requests wait, also look again this often: capacity freed in
   another worker is not announced here */
#define NGX_HTTP_GPUGATE_TUNNEL_RECHECK  25

/* in a worker that shuts down, how long a request waits for one of the
   worker's own busy connections to come back before it is handed on */
#define NGX_HTTP_GPUGATE_TUNNEL_EXIT_GRACE  1000


typedef struct {
    ngx_queue_t       waiting;     /* of ..._tunnel_ctx_t, by rank
                                      (_enqueue()) */
    ngx_uint_t        nwaiting;    /* their number */
    ngx_event_t       recheck;     /* periodic look while any wait */
    ngx_uint_t        busy;        /* connections of this worker handed
                                      out: they come back to the queue */
    ngx_msec_t        exiting;     /* when a waiting request first saw
                                      the worker shutting down */
    unsigned          exit_seen:1; /* "exiting" is set */
} ngx_http_gpugate_tunnel_queue_t;


static ngx_int_t ngx_http_gpugate_tunnel_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_gpugate_tunnel_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_gpugate_tunnel_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static ngx_http_gpugate_tunnel_ctx_t *ngx_http_gpugate_tunnel_ctx(
    ngx_http_request_t *r, ngx_http_gpugate_tunnel_srv_conf_t *tscf);
static void ngx_http_gpugate_tunnel_reserve(
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_http_gpugate_tunnel_conn_t *tc);
static void ngx_http_gpugate_tunnel_dequeue(
    ngx_http_gpugate_tunnel_ctx_t *ctx);
static ngx_int_t ngx_http_gpugate_tunnel_offer(
    ngx_http_gpugate_tunnel_conn_t *tc);
static void ngx_http_gpugate_tunnel_unreserve(
    ngx_http_gpugate_tunnel_ctx_t *ctx);
static void ngx_http_gpugate_tunnel_resume(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_deadline(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_recheck(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_cleanup(void *data);
static ssize_t ngx_http_gpugate_tunnel_recv(ngx_connection_t *c, u_char *buf,
    size_t size);
static void ngx_http_gpugate_tunnel_watch(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_unwatch(ngx_http_gpugate_tunnel_ctx_t *ctx);
static ngx_uint_t ngx_http_gpugate_tunnel_exit_wait(void);
static void ngx_http_gpugate_tunnel_hand_on(
    ngx_http_gpugate_tunnel_ctx_t *ctx);
static ngx_int_t ngx_http_gpugate_tunnel_no_capacity(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_ctx_t *ctx, const char *why);
static ngx_int_t ngx_http_gpugate_tunnel_refuse(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_ctx_t *ctx, const char *code, const char *why,
    ngx_str_t *retry);


static ngx_http_gpugate_tunnel_queue_t  ngx_http_gpugate_tunnel_queue;


void
ngx_http_gpugate_tunnel_queue_init(void)
{
    ngx_http_gpugate_tunnel_queue_t  *wq;

    wq = &ngx_http_gpugate_tunnel_queue;

    /* the connections call up into the balancer through these */
    ngx_http_gpugate_tunnel_conn_on.offer = ngx_http_gpugate_tunnel_offer;
    ngx_http_gpugate_tunnel_conn_on.unreserve =
                                          ngx_http_gpugate_tunnel_unreserve;

    ngx_queue_init(&wq->waiting);
    wq->nwaiting = 0;
    wq->busy = 0;
    wq->exit_seen = 0;
    wq->recheck.handler = ngx_http_gpugate_tunnel_recheck;

    /* debug logs read a connection's fd through "data": never NULL */
    wq->recheck.data = wq;
    wq->recheck.log = ngx_cycle->log;
    wq->recheck.cancelable = 1;
}


ngx_int_t
ngx_http_gpugate_tunnel_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    us->peer.init = ngx_http_gpugate_tunnel_init_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_tunnel_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_gpugate_tunnel_ctx_t       *ctx;
    ngx_http_gpugate_tunnel_srv_conf_t  *tscf;

    tscf = ngx_http_gpugate_tunnel_find(NULL, us);
    if (tscf == NULL) {
        return NGX_ERROR;
    }

    ctx = ngx_http_gpugate_tunnel_ctx(r, tscf);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->conf = tscf;

    r->upstream->peer.data = ctx;
    r->upstream->peer.get = ngx_http_gpugate_tunnel_get_peer;
    r->upstream->peer.free = ngx_http_gpugate_tunnel_free_peer;
    r->upstream->peer.tries = NGX_HTTP_GPUGATE_TUNNEL_TRIES;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_tunnel_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_gpugate_tunnel_ctx_t *ctx = data;

    ngx_uint_t                        exists;
    ngx_str_t                        *name;
    ngx_connection_t                 *c;
    ngx_http_gpugate_tunnel_conn_t   *tc;
    ngx_http_gpugate_tunnel_agent_t  *a;

    tc = ctx->tc;

    if (tc == NULL) {
        /* a retry, or a location without the router's wait phase */

        tc = ngx_http_gpugate_tunnel_pick(ctx, &exists);

        if (tc == NULL) {
            pc->name = &ctx->conf->upstream->host;
            return NGX_BUSY;
        }

        ngx_http_gpugate_tunnel_reserve(ctx, tc);
    }

    ctx->tc = NULL;
    tc->reserved = NULL;
    ngx_http_gpugate_tunnel_set_state(tc, NGX_HTTP_GPUGATE_TC_BUSY);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "gpugate tunnel: busy, agent slot %ui", tc->agent);

    if (tc->timer.timer_set) {
        ngx_del_timer(&tc->timer);
    }

    a = ngx_http_gpugate_tunnel_agent(tc);

    if (ctx->ntried < NGX_HTTP_GPUGATE_TUNNEL_TRIES) {
        ctx->tried[ctx->ntried++] = tc->agent;
    }

    ctx->current = tc;
    ngx_http_gpugate_tunnel_queue.busy++;

    /* the region served, a spill, the TTFT clock */
    ngx_http_gpugate_tunnel_handed(ctx, a);

    /* $upstream_addr names the agent; the log outlives the slot */

    name = ngx_palloc(ctx->request->pool, sizeof(ngx_str_t) + a->name_len);
    if (name == NULL) {
        return NGX_ERROR;
    }

    name->data = (u_char *) (name + 1);
    name->len = a->name_len;
    ngx_memcpy(name->data, a->name, a->name_len);

    c = tc->connection;
    c->idle = 0;

    pc->connection = c;
    pc->cached = 1;
    pc->sockaddr = c->sockaddr;
    pc->socklen = c->socklen;
    pc->name = name;

    /* heartbeats are read (and dropped) until the answer begins */

    ctx->recv = c->recv;
    c->recv = ngx_http_gpugate_tunnel_recv;
    ctx->heard = ngx_current_msec;

    if (a->heartbeats && tc->conf->ping_timeout) {
        ngx_add_timer(&ctx->watch, tc->conf->ping_timeout);
    }

    return NGX_DONE;
}


/*
 * The tunnel's recv while the answer has not begun: CR and LF before it
 * are the agent's heartbeats.  The connection's own recv is back once a
 * byte of the answer came.
 */

static ssize_t
ngx_http_gpugate_tunnel_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    u_char                           *p, *end;
    ssize_t                           n;
    ngx_http_request_t               *r;
    ngx_http_gpugate_tunnel_ctx_t    *ctx;
    ngx_http_gpugate_tunnel_agent_t  *a;

    /* the upstream module points c->data at its request while busy */

    r = c->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_tunnel_module);

    for ( ;; ) {
        n = ctx->recv(c, buf, size);

        if (n <= 0) {
            return n;
        }

        ctx->heard = ngx_current_msec;

        p = buf;
        end = buf + n;

        while (p < end && (*p == CR || *p == LF)) {
            p++;
        }

        if (p != buf) {
            /* the first may come with the answer, in one read */

            a = ngx_http_gpugate_tunnel_agent(ctx->current);

            if (!a->heartbeats) {
                a->heartbeats = 1;
            }

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "gpugate tunnel: heartbeat, %z bytes", p - buf);
        }

        if (p == end) {
            continue;
        }

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "gpugate tunnel: the agent's answer begins");

        ngx_http_gpugate_tunnel_first_byte(ctx,
                             ngx_http_gpugate_tunnel_agent(ctx->current));

        ngx_http_gpugate_tunnel_unwatch(ctx);

        if (p != buf) {
            n = end - p;
            ngx_memmove(buf, p, n);
        }

        return n;
    }
}


/* the agent sent nothing for ping_timeout: it is frozen or gone */

static void
ngx_http_gpugate_tunnel_watch(ngx_event_t *ev)
{
    ngx_http_gpugate_tunnel_ctx_t *ctx = ev->data;

    ngx_msec_t                        quiet, limit;
    ngx_connection_t                 *c;
    ngx_http_gpugate_tunnel_conn_t   *tc;
    ngx_http_gpugate_tunnel_agent_t  *a;

    tc = ctx->current;

    if (tc == NULL || ctx->recv == NULL) {
        return;
    }

    limit = tc->conf->ping_timeout;

    if (!ctx->request->upstream->request_body_sent) {
        /*
         * A big body still going out: the agent beats once it has read
         * it all (a frozen one stalls the write: proxy_send_timeout).
         */
        ctx->heard = ngx_current_msec;
    }

    quiet = ngx_current_msec - ctx->heard;

    if (quiet < limit) {
        ngx_add_timer(&ctx->watch, limit - quiet);
        return;
    }

    a = ngx_http_gpugate_tunnel_agent(tc);
    c = tc->connection;

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "gpugate tunnel: agent \"%*s\" sent no byte nor "
                  "heartbeat for %M ms on a busy tunnel, giving it up",
                  a->name_len, a->name, quiet);

    /* as a proxy_read_timeout: proxy_next_upstream tries another agent */

    c->read->timedout = 1;
    c->read->handler(c->read);
}


/* the answer began or the connection goes back: heartbeats are over */

static void
ngx_http_gpugate_tunnel_unwatch(ngx_http_gpugate_tunnel_ctx_t *ctx)
{
    ngx_http_gpugate_tunnel_conn_t  *tc;

    tc = ctx->current;

    if (ctx->recv && tc && tc->connection->recv
                           == ngx_http_gpugate_tunnel_recv)
    {
        tc->connection->recv = ctx->recv;
    }

    ctx->recv = NULL;

    if (ctx->watch.timer_set) {
        ngx_del_timer(&ctx->watch);
    }
}


static void
ngx_http_gpugate_tunnel_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_gpugate_tunnel_ctx_t *ctx = data;

    ngx_connection_t                *c;
    ngx_http_upstream_t             *u;
    ngx_http_gpugate_tunnel_conn_t  *tc;

    ngx_http_gpugate_tunnel_unwatch(ctx);

    tc = ctx->current;
    ctx->current = NULL;

    if (tc == NULL) {
        return;
    }

    ngx_http_gpugate_tunnel_queue.busy--;

    c = pc->connection;
    u = ctx->request->upstream;

    if (c == NULL || c != tc->connection) {
        /* cannot happen: the upstream closes only after peer.free */
        ngx_log_error(NGX_LOG_ALERT, pc->log, 0,
                      "gpugate tunnel: connection lost track of");
        return;
    }

    pc->connection = NULL;

    /* an error, a timeout or a 5xx answer counts against the agent */

    ngx_http_gpugate_tunnel_outcome(ctx, ngx_http_gpugate_tunnel_agent(tc),
                                    (state & NGX_PEER_FAILED)
                                    || u->headers_in.status_n >= 500);

    if (state & NGX_PEER_FAILED
        || c->read->eof
        || c->read->error
        || c->read->timedout
        || c->write->error
        || c->write->timedout
        || !u->keepalive
        || !u->request_body_sent
        || ngx_terminate)
    {
        /* the agent closes its runtime connection when this one goes */
        ngx_http_gpugate_tunnel_close(tc);
        return;
    }

    ngx_http_gpugate_tunnel_set_state(tc, NGX_HTTP_GPUGATE_TC_DETACHING);
    ngx_http_gpugate_tunnel_park(tc);
}


/* the per-request state, shared by the wait phase and the balancer */

static ngx_http_gpugate_tunnel_ctx_t *
ngx_http_gpugate_tunnel_ctx(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_srv_conf_t *tscf)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_gpugate_openai_ctx_t  *octx;
    ngx_http_gpugate_tunnel_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_tunnel_module);

    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_gpugate_tunnel_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_gpugate_tunnel_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->conf = tscf;
    ctx->endpoint = -1;

    octx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (octx && octx->routed) {
        ctx->model = octx->target;
        ctx->endpoint = octx->kind;
        ctx->keys = octx->affinity;
    }

    ctx->timer.handler = ngx_http_gpugate_tunnel_deadline;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    ctx->resume.handler = ngx_http_gpugate_tunnel_resume;
    ctx->resume.data = ctx;
    ctx->resume.log = r->connection->log;

    ctx->watch.handler = ngx_http_gpugate_tunnel_watch;
    ctx->watch.data = ctx;
    ctx->watch.log = r->connection->log;

    ngx_http_set_ctx(r, ctx, ngx_http_gpugate_tunnel_module);

    /* the priority and region headers; a bad one: ctx->bad */

    if (ngx_http_gpugate_tunnel_classify(ctx) != NGX_OK) {
        return NULL;
    }

    return ctx;
}


ngx_int_t
ngx_http_gpugate_tunnel_wait_handler(ngx_http_request_t *r)
{
    const char                          *why;
    ngx_uint_t                           exists;
    ngx_http_gpugate_tunnel_ctx_t       *ctx;
    ngx_http_gpugate_openai_ctx_t       *octx;
    ngx_http_gpugate_tunnel_conn_t      *tc;
    ngx_http_gpugate_tunnel_queue_t     *wq;
    ngx_http_gpugate_tunnel_srv_conf_t  *tscf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_tunnel_module);

    if (ctx == NULL) {
        octx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

        if (octx == NULL || !octx->routed || octx->pool.len == 0) {
            return NGX_DECLINED;
        }

        tscf = ngx_http_gpugate_tunnel_find(&octx->pool, NULL);

        if (tscf == NULL) {
            return NGX_DECLINED;
        }

        ctx = ngx_http_gpugate_tunnel_ctx(r, tscf);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->checked = 1;
        ctx->queued = ngx_current_msec;

        if (ctx->bad.len) {
            ngx_http_finalize_request(r,
                ngx_http_gpugate_tunnel_bad_request(r, ctx));
            return NGX_DONE;
        }

    } else if (!ctx->checked || ctx->tc) {
        return NGX_DECLINED;
    }

    if (ctx->waiting) {
        /* a write event re-ran the phases; keep waiting */
        return NGX_AGAIN;
    }

    tc = ngx_http_gpugate_tunnel_pick(ctx, &exists);

    if (tc) {
        ngx_http_gpugate_tunnel_reserve(ctx, tc);
        return NGX_DECLINED;
    }

    if (ngx_exiting && exists && !ngx_http_gpugate_tunnel_exit_wait()) {
        /* no agent can dial this worker any more: a live one serves it */
        ngx_http_finalize_request(r,
            ngx_http_gpugate_tunnel_refuse(r, ctx, "worker_exiting",
                "this gateway worker is shutting down; retry the request",
                NULL));
        return NGX_DONE;
    }

    wq = &ngx_http_gpugate_tunnel_queue;

    why = !exists ? "no connected agent serves this model at this endpoint"
          : wq->nwaiting >= ctx->conf->queue ? "the wait queue is full"
          : ngx_current_msec - ctx->queued >= ctx->conf->queue_timeout
            ? "no agent connection became free in time"
          : NULL;

    if (why) {
        /* answered here: the phases must not go on to proxy_pass */
        ngx_http_finalize_request(r,
            ngx_http_gpugate_tunnel_no_capacity(r, ctx, why));
        return NGX_DONE;
    }

    /* by priority, FIFO within one, with aging */
    ngx_http_gpugate_tunnel_enqueue(&wq->waiting, ctx, ctx->conf->aging);
    wq->nwaiting++;
    ctx->waiting = 1;
    ngx_http_gpugate_tunnel_waiting(1);

    ngx_add_timer(&ctx->timer,
                  ctx->conf->queue_timeout - (ngx_current_msec - ctx->queued));

    if (!wq->recheck.timer_set) {
        ngx_add_timer(&wq->recheck, NGX_HTTP_GPUGATE_TUNNEL_RECHECK);
    }

    /* a client that leaves while waiting ends the request */
    r->read_event_handler = ngx_http_test_reading;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate tunnel: request waits at priority %i, %ui in "
                   "queue", ctx->priority, wq->nwaiting);

    return NGX_AGAIN;
}


static void
ngx_http_gpugate_tunnel_reserve(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_tunnel_conn_t *tc)
{
    if (tc->state == NGX_HTTP_GPUGATE_TC_IDLE) {
        ngx_queue_remove(&tc->queue);
    }

    if (tc->timer.timer_set) {
        ngx_del_timer(&tc->timer);
    }

    ngx_http_gpugate_tunnel_set_state(tc, NGX_HTTP_GPUGATE_TC_RESERVED);
    tc->reserved = ctx;
    ctx->tc = tc;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "gpugate tunnel: reserved a connection of agent slot %ui",
                   tc->agent);
}


static ngx_int_t
ngx_http_gpugate_tunnel_offer(ngx_http_gpugate_tunnel_conn_t *tc)
{
    ngx_queue_t                      *q;
    ngx_http_gpugate_tunnel_ctx_t    *ctx;
    ngx_http_gpugate_tunnel_agent_t  *a;
    ngx_http_gpugate_tunnel_queue_t  *wq;

    wq = &ngx_http_gpugate_tunnel_queue;

    if (wq->nwaiting == 0) {
        return NGX_DECLINED;
    }

    a = ngx_http_gpugate_tunnel_agent(tc);

    for (q = ngx_queue_head(&wq->waiting);
         q != ngx_queue_sentinel(&wq->waiting);
         q = ngx_queue_next(q))
    {
        ctx = ngx_queue_data(q, ngx_http_gpugate_tunnel_ctx_t, queue);

        if (!ngx_http_gpugate_tunnel_suits(ctx, tc->agent, a)) {
            continue;
        }

        if (ngx_http_gpugate_tunnel_take(a) != NGX_OK) {
            return NGX_DECLINED;
        }

        ngx_http_gpugate_tunnel_chosen(ctx, tc->agent);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "gpugate tunnel: agent slot %ui offered to a waiting "
                       "request", tc->agent);

        ngx_http_gpugate_tunnel_dequeue(ctx);
        ngx_http_gpugate_tunnel_reserve(ctx, tc);

        /* not from here: the caller may be inside another request */
        ngx_post_event(&ctx->resume, &ngx_posted_events);

        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_http_gpugate_tunnel_unreserve(ngx_http_gpugate_tunnel_ctx_t *ctx)
{
    ngx_http_gpugate_tunnel_conn_t  *tc;

    tc = ctx->tc;
    ctx->tc = NULL;

    if (tc) {
        tc->reserved = NULL;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "gpugate tunnel: reserved connection lost");

    /* a resume already posted will find no connection and choose again */
}


static void
ngx_http_gpugate_tunnel_dequeue(ngx_http_gpugate_tunnel_ctx_t *ctx)
{
    ngx_http_gpugate_tunnel_queue_t  *wq;

    wq = &ngx_http_gpugate_tunnel_queue;

    if (!ctx->waiting) {
        return;
    }

    ngx_queue_remove(&ctx->queue);
    wq->nwaiting--;
    ctx->waiting = 0;
    ngx_http_gpugate_tunnel_waiting(-1);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "gpugate tunnel: dequeued, %ui still waiting",
                   wq->nwaiting);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (wq->nwaiting == 0 && wq->recheck.timer_set) {
        ngx_del_timer(&wq->recheck);
    }
}


static void
ngx_http_gpugate_tunnel_resume(ngx_event_t *ev)
{
    ngx_http_gpugate_tunnel_ctx_t *ctx = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    r->read_event_handler = ngx_http_block_reading;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_gpugate_tunnel_deadline(ngx_event_t *ev)
{
    ngx_http_gpugate_tunnel_ctx_t *ctx = ev->data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_http_gpugate_tunnel_dequeue(ctx);

    rc = ngx_http_gpugate_tunnel_no_capacity(r, ctx,
             "no agent connection became free in time");

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_gpugate_tunnel_recheck(ngx_event_t *ev)
{
    ngx_uint_t                        exists;
    ngx_queue_t                      *q, *next;
    ngx_http_gpugate_tunnel_ctx_t    *ctx;
    ngx_http_gpugate_tunnel_conn_t   *tc;
    ngx_http_gpugate_tunnel_queue_t  *wq;

    wq = &ngx_http_gpugate_tunnel_queue;

    for (q = ngx_queue_head(&wq->waiting);
         q != ngx_queue_sentinel(&wq->waiting);
         q = next)
    {
        next = ngx_queue_next(q);
        ctx = ngx_queue_data(q, ngx_http_gpugate_tunnel_ctx_t, queue);

        tc = ngx_http_gpugate_tunnel_pick(ctx, &exists);

        if (tc == NULL) {
            if (ngx_exiting && !ngx_http_gpugate_tunnel_exit_wait()) {
                /* finishing it may end other requests: look again */
                ngx_http_gpugate_tunnel_hand_on(ctx);
                next = ngx_queue_head(&wq->waiting);
            }

            continue;
        }

        ngx_http_gpugate_tunnel_dequeue(ctx);
        ngx_http_gpugate_tunnel_reserve(ctx, tc);
        ngx_post_event(&ctx->resume, &ngx_posted_events);
    }

    if (wq->nwaiting && !wq->recheck.timer_set) {
        ngx_add_timer(&wq->recheck, NGX_HTTP_GPUGATE_TUNNEL_RECHECK);
    }
}


static void
ngx_http_gpugate_tunnel_cleanup(void *data)
{
    ngx_http_gpugate_tunnel_ctx_t *ctx = data;

    ngx_http_gpugate_tunnel_conn_t  *tc;

    ngx_http_gpugate_tunnel_dequeue(ctx);

    if (ctx->watch.timer_set) {
        ngx_del_timer(&ctx->watch);
    }

    if (ctx->resume.posted) {
        ngx_delete_posted_event(&ctx->resume);
    }

    /* a promised connection that was never used goes back */

    tc = ctx->tc;

    if (tc) {
        ctx->tc = NULL;
        tc->reserved = NULL;
        ngx_http_gpugate_tunnel_set_state(tc,
                                          NGX_HTTP_GPUGATE_TC_DETACHING);
        ngx_http_gpugate_tunnel_park(tc);
    }
}


/*
 * In a worker that shuts down, 1 while a waiting request may still get a
 * connection here: one of the worker's own answers may end soon and bring
 * its connection back, so requests wait for that for a short grace.
 */

static ngx_uint_t
ngx_http_gpugate_tunnel_exit_wait(void)
{
    ngx_http_gpugate_tunnel_queue_t  *wq;

    wq = &ngx_http_gpugate_tunnel_queue;

    if (!wq->exit_seen) {
        wq->exit_seen = 1;
        wq->exiting = ngx_current_msec;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate tunnel: worker is exiting, %ui connections "
                       "still busy", wq->busy);
    }

    return wq->busy
           && ngx_current_msec - wq->exiting
              < NGX_HTTP_GPUGATE_TUNNEL_EXIT_GRACE;
}


/*
 * A waiting request in a worker that shuts down: nothing new will be
 * parked here (listening sockets are closed, agents dial the new
 * workers), and the busy connections it holds may stream for minutes.
 * The request never reached an agent, so it is answered now and the
 * client retries it on a new connection, which a live worker takes.
 */

static void
ngx_http_gpugate_tunnel_hand_on(ngx_http_gpugate_tunnel_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_http_gpugate_tunnel_dequeue(ctx);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "gpugate tunnel: waiting request handed back, "
                   "worker is exiting");

    rc = ngx_http_gpugate_tunnel_refuse(r, ctx, "worker_exiting",
             "this gateway worker is shutting down; retry the request",
             NULL);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_gpugate_tunnel_no_capacity(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_ctx_t *ctx, const char *why)
{
    static ngx_str_t  retry = ngx_string("1");

    return ngx_http_gpugate_tunnel_refuse(r, ctx, "no_capacity",
               ngx_http_gpugate_tunnel_region_why(ctx, why), &retry);
}


/*
 * 503 with Retry-After: "retry" seconds, or 0 and a closed connection
 * when this worker is exiting (the retry must reach a live worker).
 */

static ngx_int_t
ngx_http_gpugate_tunnel_refuse(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_ctx_t *ctx, const char *code, const char *why,
    ngx_str_t *retry)
{
    ngx_uint_t                 level;
    ngx_table_elt_t           *h;
    ngx_http_gpugate_error_t   err;

    static ngx_str_t  now = ngx_string("0");

    /* a reload is routine; capacity running out is worth a warning */
    level = retry ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, r->connection->log, 0,
                  "gpugate tunnel: 503 for model \"%V\" on \"%V\": %s",
                  &ctx->model, &ctx->conf->upstream->host, why);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value = retry ? *retry : now;

    if (retry == NULL) {
        r->keepalive = 0;
    }

    ngx_http_gpugate_status_error(NGX_HTTP_SERVICE_UNAVAILABLE, &err);
    err.type = NGX_HTTP_GPUGATE_ERR_SERVER;
    err.code = code;
    err.message.data = (u_char *) why;
    err.message.len = ngx_strlen(why);

    return ngx_http_gpugate_send_error(r, &err);
}
