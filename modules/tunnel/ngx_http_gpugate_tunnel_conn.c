
/*
 * Copyright (C) gpugate authors
 *
 * Parked tunnel connections: the detach from the handshake request, idle
 * watching, pings and closing.  The agent slots in shared memory that
 * these connections are counted in are ngx_http_gpugate_tunnel_registry.c's.
 *
 * Ownership.  After 101 the connection, its TLS state and its accept-time
 * pool belong to a ngx_http_gpugate_tunnel_conn_t (tc, heap-allocated).
 * While BUSY the upstream module drives the connection (it points c->log
 * and c->data at its request) and gives it back through peer.free, which
 * either parks it again or closes it through here; every close of a
 * tunnel connection goes through ngx_http_gpugate_tunnel_close(), which
 * undoes the shared counts.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_tunnel.h"
#include "gg_http_parse.h"
#include "gpugate_tunnel_msg.h"


typedef struct {
    ngx_queue_t                    *idle;     /* per agent slot: idle tcs
                                                 of this worker */
    ngx_queue_t                     all;      /* every tc of the worker */
    ngx_uint_t                      swept;    /* shutting down: one idle
                                                 connection per agent was
                                                 closed, the rest linger */
} ngx_http_gpugate_tunnel_worker_t;


static void ngx_http_gpugate_tunnel_detach(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_write(ngx_event_t *wev);
static void ngx_http_gpugate_tunnel_flushed(ngx_http_gpugate_tunnel_conn_t *tc);
static void ngx_http_gpugate_tunnel_idle_read(ngx_event_t *rev);
static ngx_int_t ngx_http_gpugate_tunnel_linger(
    ngx_http_gpugate_tunnel_conn_t *tc);
static void ngx_http_gpugate_tunnel_timer(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_ping(ngx_http_gpugate_tunnel_conn_t *tc);
static void ngx_http_gpugate_tunnel_pong(ngx_event_t *rev);
static ngx_int_t ngx_http_gpugate_tunnel_pong_parse(
    ngx_http_gpugate_tunnel_conn_t *tc, gg_http_head_t *h);
static void ngx_http_gpugate_tunnel_pong_load(
    ngx_http_gpugate_tunnel_conn_t *tc, gg_http_head_t *h);
static void ngx_http_gpugate_tunnel_keepalive(ngx_connection_t *c);
static ngx_int_t ngx_http_gpugate_tunnel_no_offer(
    ngx_http_gpugate_tunnel_conn_t *tc);
static void ngx_http_gpugate_tunnel_no_unreserve(
    ngx_http_gpugate_tunnel_ctx_t *ctx);


static ngx_http_gpugate_tunnel_worker_t  *ngx_http_gpugate_tunnel_worker;

/* no balancer yet: no request waits, none is promised a connection */
ngx_http_gpugate_tunnel_conn_on_t  ngx_http_gpugate_tunnel_conn_on = {
    ngx_http_gpugate_tunnel_no_offer,
    ngx_http_gpugate_tunnel_no_unreserve
};

static u_char  ngx_http_gpugate_tunnel_ping_req[] =
    "GET " GPUGATE_TUNNEL_PING_PATH " HTTP/1.1" CRLF
    "Host: gpugate" CRLF CRLF;


ngx_int_t
ngx_http_gpugate_tunnel_init_worker(ngx_cycle_t *cycle,
    ngx_http_gpugate_tunnel_main_conf_t *tmcf)
{
    ngx_uint_t                         i;
    ngx_http_gpugate_tunnel_shm_t     *shm;
    ngx_http_gpugate_tunnel_worker_t  *w;

    if (ngx_http_gpugate_tunnel_registry_init(cycle, tmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_tunnel_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    shm = ngx_http_gpugate_tunnel_shm();

    w->idle = ngx_palloc(cycle->pool, shm->nagents * sizeof(ngx_queue_t));
    if (w->idle == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < shm->nagents; i++) {
        ngx_queue_init(&w->idle[i]);
    }

    ngx_queue_init(&w->all);
    ngx_http_gpugate_tunnel_worker = w;

    return NGX_OK;
}


void
ngx_http_gpugate_tunnel_exit_worker(ngx_cycle_t *cycle)
{
    ngx_queue_t                       *q;
    ngx_http_gpugate_tunnel_conn_t    *tc;
    ngx_http_gpugate_tunnel_worker_t  *w;

    w = ngx_http_gpugate_tunnel_worker;

    if (w == NULL) {
        return;
    }

    /* fast shutdown leaves connections open; their counts go with us */

    while (!ngx_queue_empty(&w->all)) {
        q = ngx_queue_head(&w->all);
        tc = ngx_queue_data(q, ngx_http_gpugate_tunnel_conn_t, all);

        if (ngx_exiting
            && (tc->state == NGX_HTTP_GPUGATE_TC_IDLE
                || tc->state == NGX_HTTP_GPUGATE_TC_PING))
        {
            /* lingering since the shutdown began: nothing came for it */
            ngx_http_gpugate_tunnel_close(tc);
            continue;
        }

        ngx_queue_remove(q);

        if (tc->state == NGX_HTTP_GPUGATE_TC_IDLE) {
            ngx_queue_remove(&tc->queue);
        }

        ngx_free(tc);
    }

    ngx_http_gpugate_tunnel_registry_exit(cycle);

    ngx_http_gpugate_tunnel_worker = NULL;
}


ngx_queue_t *
ngx_http_gpugate_tunnel_idle(ngx_uint_t i)
{
    return &ngx_http_gpugate_tunnel_worker->idle[i];
}


ngx_uint_t
ngx_http_gpugate_tunnel_revoke(ngx_str_t *name, int64_t agent_id)
{
    ngx_uint_t                         n;
    ngx_queue_t                       *q, *next;
    ngx_http_gpugate_tunnel_conn_t    *tc;
    ngx_http_gpugate_tunnel_worker_t  *w;

    w = ngx_http_gpugate_tunnel_worker;

    if (w == NULL) {
        return 0;
    }

    ngx_http_gpugate_tunnel_revoke_slots(name, agent_id);

    /*
     * Connections we own close now; one carrying a request is cut with
     * shutdown(), so the upstream module ends that request (or retries
     * it elsewhere) and hands the connection back, and park() closes
     * it; one still writing its 101 is closed by park() too.
     */

    n = 0;

    for (q = ngx_queue_head(&w->all);
         q != ngx_queue_sentinel(&w->all);
         q = next)
    {
        next = ngx_queue_next(q);
        tc = ngx_queue_data(q, ngx_http_gpugate_tunnel_conn_t, all);

        if (!ngx_http_gpugate_tunnel_agent(tc)->revoked) {
            continue;
        }

        n++;

        switch (tc->state) {

        case NGX_HTTP_GPUGATE_TC_IDLE:
        case NGX_HTTP_GPUGATE_TC_PING:
        case NGX_HTTP_GPUGATE_TC_RESERVED:
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, tc->log, 0,
                           "gpugate tunnel: revoked, closing state %ui",
                           tc->state);
            ngx_http_gpugate_tunnel_close(tc);
            break;

        case NGX_HTTP_GPUGATE_TC_BUSY:
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, tc->log, 0,
                           "gpugate tunnel: revoked, cutting a busy "
                           "connection");
            /* the event module reports the end of the stream */
            (void) shutdown(tc->connection->fd, SHUT_RDWR);
            break;

        default:
            break;
        }
    }

    return n;
}


ngx_uint_t
ngx_http_gpugate_tunnel_held(int64_t *ids, ngx_uint_t n)
{
    int64_t                            id;
    ngx_uint_t                         i, k;
    ngx_queue_t                       *q;
    ngx_http_gpugate_tunnel_conn_t    *tc;
    ngx_http_gpugate_tunnel_worker_t  *w;

    w = ngx_http_gpugate_tunnel_worker;
    k = 0;

    if (w == NULL) {
        return 0;
    }

    for (q = ngx_queue_head(&w->all);
         q != ngx_queue_sentinel(&w->all) && k < n;
         q = ngx_queue_next(q))
    {
        tc = ngx_queue_data(q, ngx_http_gpugate_tunnel_conn_t, all);
        id = ngx_http_gpugate_tunnel_agent(tc)->agent_id;

        for (i = 0; i < k; i++) {
            if (ids[i] == id) {
                break;
            }
        }

        if (i == k) {
            ids[k++] = id;
        }
    }

    return k;
}


ngx_int_t
ngx_http_gpugate_tunnel_attach(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_loc_conf_t *conf, ngx_str_t *name,
    int64_t agent_id, ngx_str_t *instance, ngx_str_t *models,
    ngx_uint_t capacity, gpugate_tunnel_load_t *load,
    gpugate_tunnel_telemetry_t *telemetry, ngx_str_t *head,
    ngx_uint_t heartbeats)
{
    ngx_int_t                         agent;
    ngx_http_gpugate_tunnel_conn_t   *tc;
    ngx_http_gpugate_tunnel_agent_t  *a;

    if (head->len > sizeof(tc->head)) {
        return NGX_ERROR;
    }

    tc = ngx_calloc(sizeof(ngx_http_gpugate_tunnel_conn_t),
                    r->connection->log);
    if (tc == NULL) {
        return NGX_ERROR;
    }

    agent = ngx_http_gpugate_tunnel_register(name, agent_id, instance,
                                             models, capacity);
    if (agent == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate tunnel: no free agent slot for \"%V\", "
                      "gpugate_tunnel_zone is full", name);
        ngx_free(tc);
        return NGX_ERROR;
    }

    a = &ngx_http_gpugate_tunnel_shm()->agents[agent];

    ngx_http_gpugate_tunnel_set_load(a, load);

    if (telemetry) {
        ngx_http_gpugate_tunnel_set_telemetry(a, telemetry);
    }

    /*
     * An agent that says it beats is watched from its first request on:
     * a slot registered anew (after a restart or its runtime coming back)
     * must not wait for a first heartbeat that a frozen agent never sends.
     */

    if (heartbeats) {
        a->heartbeats = 1;
    }

    tc->agent = agent;
    tc->state = NGX_HTTP_GPUGATE_TC_DETACHING;
    tc->conf = conf;
    tc->connection = r->connection;
    tc->request = r;

    ngx_memcpy(tc->head, head->data, head->len);
    tc->out = tc->head;
    tc->out_len = head->len;

    ngx_queue_insert_tail(&ngx_http_gpugate_tunnel_worker->all, &tc->all);

    /*
     * The request cannot be freed from inside its own handler (the
     * caller and ngx_http_run_posted_requests() still use it), so the
     * detach runs as a posted event; until then the request is held.
     */

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    r->write_event_handler = ngx_http_request_empty_handler;
    r->read_event_handler = ngx_http_block_reading;
    r->main->count++;

    tc->timer.handler = ngx_http_gpugate_tunnel_detach;
    tc->timer.data = tc;
    tc->timer.log = r->connection->log;

    ngx_post_event(&tc->timer, &ngx_posted_events);

    return NGX_OK;
}


static void
ngx_http_gpugate_tunnel_detach(ngx_event_t *ev)
{
    ngx_http_gpugate_tunnel_conn_t *tc = ev->data;

    ngx_buf_t               *b;
    ngx_chain_t             *cl;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_connection_t   *hc;

    r = tc->request;
    c = r->connection;
    hc = r->http_connection;
    tc->request = NULL;

    /* anything the agent sent after step 2 breaks the protocol */

    if (r->header_in->pos < r->header_in->last) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "gpugate tunnel: agent sent data before the 101");
        ngx_http_free_request(r, 0);
        c->destroyed = 0;
        tc->log = c->log;
        ngx_http_gpugate_tunnel_close(tc);
        return;
    }

    /* logs the 101 and frees the request; the connection stays */

    ngx_http_free_request(r, 0);

    /*
     * The header buffers of the handshake are not needed again: a parked
     * connection is read by the upstream module into its own buffers.
     * They are large allocations of c->pool (as in ngx_http_set_keepalive)
     * and 1,000 parked connections would otherwise keep 1,000 of each.
     */

    b = c->buffer;

    if (b != NULL && b->start != NULL
        && ngx_pfree(c->pool, b->start) == NGX_OK)
    {
        b->start = NULL;
        b->pos = NULL;
        b->last = NULL;
        b->end = NULL;
    }

    for (cl = hc->busy; cl; cl = cl->next) {
        (void) ngx_pfree(c->pool, cl->buf->start);
    }

    for (cl = hc->free; cl; cl = cl->next) {
        (void) ngx_pfree(c->pool, cl->buf->start);
    }

    hc->busy = NULL;
    hc->free = NULL;
    hc->nbusy = 0;

    c->destroyed = 0;
    c->data = tc;
    tc->log = c->log;
    c->log->action = "serving a gpugate tunnel";

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_http_gpugate_tunnel_keepalive(c);

    tc->timer.handler = ngx_http_gpugate_tunnel_timer;
    tc->timer.cancelable = 1;
    tc->timer.log = c->log;

    c->read->handler = ngx_http_gpugate_tunnel_idle_read;
    c->write->handler = ngx_http_gpugate_tunnel_write;

    ngx_http_gpugate_tunnel_write(c->write);
}


/* writes tc->out; shared by the 101 and pings */

static void
ngx_http_gpugate_tunnel_write(ngx_event_t *wev)
{
    ssize_t                          n;
    ngx_connection_t                *c;
    ngx_http_gpugate_tunnel_conn_t  *tc;

    c = wev->data;
    tc = c->data;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "gpugate tunnel: write to agent timed out");
        ngx_http_gpugate_tunnel_close(tc);
        return;
    }

    while (tc->out_len) {
        n = c->send(c, tc->out, tc->out_len);

        if (n == NGX_AGAIN) {
            if (!wev->timer_set) {
                ngx_add_timer(wev, tc->conf->ping_timeout);
            }

            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_gpugate_tunnel_close(tc);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_gpugate_tunnel_close(tc);
            return;
        }

        tc->out += n;
        tc->out_len -= n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    wev->handler = ngx_http_empty_handler;

    ngx_http_gpugate_tunnel_flushed(tc);
}


static void
ngx_http_gpugate_tunnel_flushed(ngx_http_gpugate_tunnel_conn_t *tc)
{
    ngx_connection_t  *c;

    c = tc->connection;

    if (tc->state == NGX_HTTP_GPUGATE_TC_DETACHING) {
        ngx_http_gpugate_tunnel_park(tc);
        return;
    }

    /* a ping is out: wait for its answer */

    if (tc->in == NULL) {
        tc->in = ngx_alloc(NGX_HTTP_GPUGATE_TUNNEL_PONG_MAX, c->log);

        if (tc->in == NULL) {
            ngx_http_gpugate_tunnel_close(tc);
            return;
        }
    }

    tc->in_len = 0;
    c->read->handler = ngx_http_gpugate_tunnel_pong;

    if (tc->timer.timer_set) {
        ngx_del_timer(&tc->timer);
    }

    ngx_add_timer(&tc->timer, tc->conf->ping_timeout);

    if (c->read->ready) {
        ngx_http_gpugate_tunnel_pong(c->read);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_gpugate_tunnel_close(tc);
    }
}


void
ngx_http_gpugate_tunnel_park(ngx_http_gpugate_tunnel_conn_t *tc)
{
    ngx_connection_t  *c;

    c = tc->connection;

    c->data = tc;
    c->log = tc->log;
    c->read->log = tc->log;
    c->write->log = tc->log;
    c->pool->log = tc->log;
    c->read->handler = ngx_http_gpugate_tunnel_idle_read;
    c->write->handler = ngx_http_empty_handler;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /* closed by ngx_close_idle_connections() when the worker exits */
    c->idle = 1;

#if (NGX_HTTP_SSL)

    /* the 16k send buffer is made again for the next request */
    if (c->ssl) {
        ngx_ssl_free_buffer(c);
    }

#endif

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_gpugate_tunnel_close(tc);
        return;
    }

    /* another worker (or a re-check) found the agent revoked */

    if (ngx_http_gpugate_tunnel_agent(tc)->revoked) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "gpugate tunnel: closing a connection of revoked "
                      "agent \"%*s\"",
                      ngx_http_gpugate_tunnel_agent(tc)->name_len,
                      ngx_http_gpugate_tunnel_agent(tc)->name);
        ngx_http_gpugate_tunnel_close(tc);
        return;
    }

    if (ngx_http_gpugate_tunnel_conn_on.offer(tc) == NGX_OK) {
        return;
    }

    if (ngx_exiting || ngx_terminate) {
        ngx_http_gpugate_tunnel_close(tc);
        return;
    }

    ngx_http_gpugate_tunnel_set_state(tc, NGX_HTTP_GPUGATE_TC_IDLE);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "gpugate tunnel: parked idle, agent slot %ui", tc->agent);

    /* most recently used first: the cold end gets the pings */
    ngx_queue_insert_head(ngx_http_gpugate_tunnel_idle(tc->agent),
                          &tc->queue);

    if (tc->timer.timer_set) {
        ngx_del_timer(&tc->timer);
    }

    ngx_add_timer(&tc->timer, tc->conf->ping);

    if (c->read->ready) {
        ngx_http_gpugate_tunnel_idle_read(c->read);
    }
}


/*
 * An idle, pinging or reserved connection became readable: the agent
 * closed it, or sent bytes nobody asked for; either way it is done.
 */

static void
ngx_http_gpugate_tunnel_idle_read(ngx_event_t *rev)
{
    char                             buf[1];
    ssize_t                          n;
    ngx_connection_t                *c;
    ngx_http_gpugate_tunnel_conn_t  *tc;

    c = rev->data;
    tc = c->data;

    if (c->close) {
        if (ngx_exiting && ngx_http_gpugate_tunnel_linger(tc) == NGX_OK) {
            return;
        }

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "gpugate tunnel: closing idle agent connection, "
                      "worker is exiting");
        ngx_http_gpugate_tunnel_close(tc);
        return;
    }

    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
        rev->ready = 0;

        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            ngx_http_gpugate_tunnel_close(tc);
        }

        return;
    }

    if (n == 0) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "gpugate tunnel: agent closed an idle connection");
    } else if (n == -1) {
        ngx_log_error(NGX_LOG_INFO, c->log, ngx_socket_errno,
                      "gpugate tunnel: idle agent connection failed");
    } else {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "gpugate tunnel: agent sent unrequested data on an "
                      "idle connection, closing it");
    }

    ngx_http_gpugate_tunnel_close(tc);
}


/*
 * The worker begins to shut down (ngx_close_idle_connections()).  Requests
 * whose bodies are still being read will want a connection here, and no
 * agent can dial this worker any more, so idle connections are kept for
 * them; one per agent is closed at once, which makes the agent dial
 * again, land on a new worker and learn the reload.  A kept connection is
 * used once, or closed at its next ping (ngx_http_gpugate_tunnel_park()),
 * or when the worker exits; it holds no timer that delays the exit.
 * NGX_OK: "tc" lingers.
 */

static ngx_int_t
ngx_http_gpugate_tunnel_linger(ngx_http_gpugate_tunnel_conn_t *tc)
{
    ngx_uint_t                         i, self;
    ngx_queue_t                       *idle;
    ngx_http_gpugate_tunnel_conn_t    *t;
    ngx_http_gpugate_tunnel_worker_t  *w;

    w = ngx_http_gpugate_tunnel_worker;
    self = 0;

    if (!w->swept) {
        w->swept = 1;

        for (i = 0; i < ngx_http_gpugate_tunnel_shm()->nagents; i++) {
            idle = &w->idle[i];

            if (ngx_queue_empty(idle)) {
                continue;
            }

            /* the coldest: the one least likely to be chosen */

            t = ngx_queue_data(ngx_queue_last(idle),
                               ngx_http_gpugate_tunnel_conn_t, queue);

            if (t == tc) {
                self = 1;
                continue;
            }

            ngx_log_error(NGX_LOG_INFO, t->connection->log, 0,
                          "gpugate tunnel: closing one idle agent "
                          "connection, worker is exiting");
            ngx_http_gpugate_tunnel_close(t);
        }
    }

    /* a reserved one is about to carry its request: kept too */

    if (self
        || (tc->state != NGX_HTTP_GPUGATE_TC_IDLE
            && tc->state != NGX_HTTP_GPUGATE_TC_RESERVED))
    {
        return NGX_DECLINED;
    }

    tc->connection->close = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, tc->connection->log, 0,
                   "gpugate tunnel: idle connection of agent slot %ui "
                   "lingers, worker is exiting", tc->agent);

    return NGX_OK;
}


static void
ngx_http_gpugate_tunnel_timer(ngx_event_t *ev)
{
    ngx_http_gpugate_tunnel_conn_t *tc = ev->data;

    if (tc->state == NGX_HTTP_GPUGATE_TC_IDLE) {
        ngx_http_gpugate_tunnel_ping(tc);
        return;
    }

    if (tc->state == NGX_HTTP_GPUGATE_TC_PING) {
        ngx_log_error(NGX_LOG_WARN, tc->connection->log, 0,
                      "gpugate tunnel: agent did not answer a ping in "
                      "%M ms, closing the connection",
                      tc->conf->ping_timeout);
        ngx_http_gpugate_tunnel_close(tc);
    }
}


static void
ngx_http_gpugate_tunnel_ping(ngx_http_gpugate_tunnel_conn_t *tc)
{
    ngx_connection_t  *c;

    c = tc->connection;

    ngx_queue_remove(&tc->queue);
    ngx_http_gpugate_tunnel_set_state(tc, NGX_HTTP_GPUGATE_TC_PING);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "gpugate tunnel: ping, agent slot %ui", tc->agent);

    tc->out = ngx_http_gpugate_tunnel_ping_req;
    tc->out_len = sizeof(ngx_http_gpugate_tunnel_ping_req) - 1;

    c->write->handler = ngx_http_gpugate_tunnel_write;
    ngx_http_gpugate_tunnel_write(c->write);
}


/*
 * The ping answer read so far, parsed from its start with the core's
 * HTTP/1.x head parser (the head is small and comes in one read as a
 * rule, so nothing is kept between reads).  NGX_OK once it is a whole
 * "HTTP/1.1 204" head with nothing after it (the connection must be
 * clean to be parked again), NGX_AGAIN while more may come, NGX_ERROR
 * for anything else: a status other than 204, a malformed line, a field
 * with a control byte or a bad name, bytes past the head, too long.
 */

static ngx_int_t
ngx_http_gpugate_tunnel_pong_parse(ngx_http_gpugate_tunnel_conn_t *tc,
    gg_http_head_t *h)
{
    int  rc;

    gg_http_head_init(h, 1, NGX_HTTP_GPUGATE_TUNNEL_PONG_MAX);

    rc = gg_http_parse_head(h, (const char *) tc->in, tc->in_len);

    if (rc == GG_HTTP_AGAIN) {
        return tc->in_len < NGX_HTTP_GPUGATE_TUNNEL_PONG_MAX
               ? NGX_AGAIN : NGX_ERROR;
    }

    if (rc != GG_HTTP_OK || h->version != 11 || h->status != 204
        || h->head_len != tc->in_len)
    {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, tc->log, 0,
                       "gpugate tunnel: ping answer refused: parse %d, "
                       "status %d, %uz bytes past its head", rc,
                       rc == GG_HTTP_OK ? h->status : 0,
                       rc == GG_HTTP_OK ? tc->in_len - h->head_len : 0);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * X-Gpugate-Load and X-Gpugate-Telemetry in a ping's answer: a bad value
 * is logged and ignored, since telemetry is no reason to drop a tunnel.
 */

static void
ngx_http_gpugate_tunnel_pong_load(ngx_http_gpugate_tunnel_conn_t *tc,
    gg_http_head_t *h)
{
    const char                  *buf, *v;
    gpugate_tunnel_load_t        load;
    const gg_http_header_t      *hd;
    gpugate_tunnel_telemetry_t   tel;

    buf = (const char *) tc->in;

    hd = gg_http_find_header(h, buf, "x-gpugate-load");

    if (hd != NULL) {
        v = buf + hd->value;

        if (gpugate_tunnel_parse_load(v, hd->value_len, &load) == 0) {
            ngx_http_gpugate_tunnel_set_load(
                ngx_http_gpugate_tunnel_agent(tc), &load);

        } else {
            ngx_log_error(NGX_LOG_WARN, tc->log, 0,
                          "gpugate tunnel: invalid X-Gpugate-Load in a ping "
                          "answer: \"%*s\"", ngx_min(hd->value_len, 64), v);
        }
    }

    hd = gg_http_find_header(h, buf, "x-gpugate-telemetry");

    if (hd != NULL) {
        v = buf + hd->value;

        if (gpugate_tunnel_parse_telemetry(v, hd->value_len, &tel) == 0) {
            ngx_http_gpugate_tunnel_set_telemetry(
                ngx_http_gpugate_tunnel_agent(tc), &tel);

        } else {
            ngx_log_error(NGX_LOG_WARN, tc->log, 0,
                          "gpugate tunnel: invalid X-Gpugate-Telemetry in a "
                          "ping answer: \"%*s\"",
                          ngx_min(hd->value_len, 128), v);
        }
    }
}


static void
ngx_http_gpugate_tunnel_pong(ngx_event_t *rev)
{
    ssize_t                          n;
    ngx_int_t                        rc;
    gg_http_head_t                   h;
    ngx_connection_t                *c;
    ngx_http_gpugate_tunnel_conn_t  *tc;

    c = rev->data;
    tc = c->data;

    if (c->close) {
        ngx_http_gpugate_tunnel_close(tc);
        return;
    }

    for ( ;; ) {
        n = c->recv(c, tc->in + tc->in_len,
                    NGX_HTTP_GPUGATE_TUNNEL_PONG_MAX - tc->in_len);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_gpugate_tunnel_close(tc);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "gpugate tunnel: agent closed the connection "
                          "during a ping");
            ngx_http_gpugate_tunnel_close(tc);
            return;
        }

        tc->in_len += n;

        rc = ngx_http_gpugate_tunnel_pong_parse(tc, &h);

        if (rc == NGX_OK) {
            break;
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_WARN, c->log, 0,
                          "gpugate tunnel: invalid answer to a ping: "
                          "\"%*s\"", ngx_min(tc->in_len, 64), tc->in);
            ngx_http_gpugate_tunnel_close(tc);
            return;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "gpugate tunnel: pong, agent slot %ui", tc->agent);

    ngx_http_gpugate_tunnel_pong_load(tc, &h);

    ngx_free(tc->in);
    tc->in = NULL;

    ngx_http_gpugate_tunnel_park(tc);
}


void
ngx_http_gpugate_tunnel_close(ngx_http_gpugate_tunnel_conn_t *tc)
{
    ngx_connection_t  *c;

    c = tc->connection;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, tc->log, 0,
                   "gpugate tunnel: close, agent slot %ui, state %ui",
                   tc->agent, tc->state);

    if (tc->state == NGX_HTTP_GPUGATE_TC_IDLE) {
        ngx_queue_remove(&tc->queue);
    }

    if (tc->state == NGX_HTTP_GPUGATE_TC_RESERVED && tc->reserved) {
        ngx_http_gpugate_tunnel_conn_on.unreserve(tc->reserved);
    }

    ngx_http_gpugate_tunnel_set_state(tc, NGX_HTTP_GPUGATE_TC_DETACHING);
    ngx_http_gpugate_tunnel_release(tc->agent);

    if (tc->timer.timer_set) {
        ngx_del_timer(&tc->timer);
    }

    if (tc->timer.posted) {
        ngx_delete_posted_event(&tc->timer);
    }

    ngx_queue_remove(&tc->all);

    if (tc->in) {
        ngx_free(tc->in);
        tc->in = NULL;
    }

    /* the upstream may have left its request's log here */

    c->log = tc->log;
    c->read->log = tc->log;
    c->write->log = tc->log;
    c->pool->log = tc->log;
    c->idle = 0;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
    }
#endif

    ngx_free(tc);

    ngx_http_close_connection(c);
}


static void
ngx_http_gpugate_tunnel_keepalive(ngx_connection_t *c)
{
    int  on;

    /* the backstop for half-open connections, under the pings */

    on = 1;

    if (setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, (const void *) &on,
                   sizeof(int))
        == -1)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, ngx_socket_errno,
                      "setsockopt(SO_KEEPALIVE) failed, ignored");
    }
}


static ngx_int_t
ngx_http_gpugate_tunnel_no_offer(ngx_http_gpugate_tunnel_conn_t *tc)
{
    return NGX_DECLINED;
}


static void
ngx_http_gpugate_tunnel_no_unreserve(ngx_http_gpugate_tunnel_ctx_t *ctx)
{
}
