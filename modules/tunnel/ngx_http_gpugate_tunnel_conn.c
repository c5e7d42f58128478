
/*
 * Copyright (C) gpugate authors
 *
 * Parked tunnel connections: the agent registry in shared memory, the
 * detach from the handshake request, idle watching, pings and closing.
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


typedef struct {
    ngx_http_gpugate_tunnel_shm_t  *shm;      /* the zone's data */
    ngx_slab_pool_t                *shpool;   /* its lock */
    ngx_uint_t                      proc;     /* our slot in shm->procs */
    ngx_uint_t                      generation; /* shm's at our start */
    ngx_queue_t                    *idle;     /* per agent slot: idle tcs
                                                 of this worker */
    ngx_queue_t                     all;      /* every tc of the worker */
    ngx_uint_t                      swept;    /* shutting down: one idle
                                                 connection per agent was
                                                 closed, the rest linger */
} ngx_http_gpugate_tunnel_worker_t;


static void ngx_http_gpugate_tunnel_reclaim(ngx_uint_t proc);
static ngx_int_t ngx_http_gpugate_tunnel_register(ngx_str_t *name,
    int64_t agent_id, ngx_str_t *instance, ngx_str_t *models,
    ngx_uint_t capacity);
static void ngx_http_gpugate_tunnel_release(ngx_uint_t agent);
static void ngx_http_gpugate_tunnel_detach(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_write(ngx_event_t *wev);
static void ngx_http_gpugate_tunnel_flushed(ngx_http_gpugate_tunnel_conn_t *tc);
static void ngx_http_gpugate_tunnel_idle_read(ngx_event_t *rev);
static ngx_int_t ngx_http_gpugate_tunnel_linger(
    ngx_http_gpugate_tunnel_conn_t *tc);
static void ngx_http_gpugate_tunnel_timer(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_ping(ngx_http_gpugate_tunnel_conn_t *tc);
static void ngx_http_gpugate_tunnel_pong(ngx_event_t *rev);
static void ngx_http_gpugate_tunnel_pong_load(
    ngx_http_gpugate_tunnel_conn_t *tc, u_char *end);
static void ngx_http_gpugate_tunnel_keepalive(ngx_connection_t *c);


static ngx_http_gpugate_tunnel_worker_t  *ngx_http_gpugate_tunnel_worker;

static u_char  ngx_http_gpugate_tunnel_ping_req[] =
    "GET /gpugate/ping HTTP/1.1" CRLF
    "Host: gpugate" CRLF CRLF;


ngx_int_t
ngx_http_gpugate_tunnel_init_worker(ngx_cycle_t *cycle,
    ngx_http_gpugate_tunnel_main_conf_t *tmcf)
{
    ngx_uint_t                         i, free;
    ngx_http_gpugate_tunnel_shm_t     *shm;
    ngx_http_gpugate_tunnel_worker_t  *w;

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_tunnel_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    shm = tmcf->zone->data;
    w->shm = shm;
    w->shpool = (ngx_slab_pool_t *) tmcf->zone->shm.addr;
    w->generation = shm->generation;

    w->idle = ngx_palloc(cycle->pool, shm->nagents * sizeof(ngx_queue_t));
    if (w->idle == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < shm->nagents; i++) {
        ngx_queue_init(&w->idle[i]);
    }

    ngx_queue_init(&w->all);
    ngx_http_gpugate_tunnel_worker = w;

    /*
     * A worker that died without exit (crash, SIGKILL) left its counts
     * behind: its process slot is reclaimed once the pid is gone.
     */

    ngx_shmtx_lock(&w->shpool->mutex);

    free = NGX_HTTP_GPUGATE_TUNNEL_PROCS;

    for (i = 0; i < NGX_HTTP_GPUGATE_TUNNEL_PROCS; i++) {
        if (shm->procs[i].pid != 0 && shm->procs[i].pid != ngx_pid
            && kill(shm->procs[i].pid, 0) == -1 && ngx_errno == NGX_ESRCH)
        {
            ngx_http_gpugate_tunnel_reclaim(i);
        }

        if (shm->procs[i].pid == 0 && free == NGX_HTTP_GPUGATE_TUNNEL_PROCS) {
            free = i;
        }
    }

    if (free == NGX_HTTP_GPUGATE_TUNNEL_PROCS) {
        /* shared with another process: sums stay right, per-worker
           figures in the status are merged */
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "gpugate tunnel: more than %d worker processes, "
                      "per-worker counts are merged",
                      NGX_HTTP_GPUGATE_TUNNEL_PROCS);
        free = NGX_HTTP_GPUGATE_TUNNEL_PROCS - 1;

    } else {
        shm->procs[free].pid = ngx_pid;
        shm->procs[free].generation = w->generation;
        shm->procs[free].waiting = 0;
    }

    w->proc = free;

    ngx_shmtx_unlock(&w->shpool->mutex);

    ngx_http_gpugate_tunnel_queue_init();

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

    ngx_shmtx_lock(&w->shpool->mutex);

    ngx_http_gpugate_tunnel_reclaim(w->proc);

    ngx_shmtx_unlock(&w->shpool->mutex);

    ngx_http_gpugate_tunnel_worker = NULL;
}


ngx_http_gpugate_tunnel_shm_t *
ngx_http_gpugate_tunnel_shm(void)
{
    /* NULL in a worker without a tunnel zone */
    return ngx_http_gpugate_tunnel_worker ? ngx_http_gpugate_tunnel_worker->shm
                                          : NULL;
}


ngx_int_t
ngx_http_gpugate_tunnel_live_models(ngx_pool_t *pool, ngx_array_t *out)
{
    u_char                           *p, *end, *s, *e;
    ngx_str_t                        *m;
    ngx_uint_t                        i, j, dup;
    ngx_http_gpugate_tunnel_agent_t  *a;
    ngx_http_gpugate_tunnel_worker_t *w;

    w = ngx_http_gpugate_tunnel_worker;

    if (w == NULL) {
        return NGX_OK;
    }

    /* the lock: a list rewritten by a reconnecting agent is not torn */

    ngx_shmtx_lock(&w->shpool->mutex);

    for (i = 0; i < w->shm->nagents; i++) {
        a = &w->shm->agents[i];

        if (!a->used) {
            continue;
        }

        p = a->models;
        end = a->models + a->models_len;

        while (p < end) {
            s = p;

            while (p < end && *p != ',') {
                p++;
            }

            e = p++;

            while (s < e && *s == ' ') {
                s++;
            }

            while (e > s && e[-1] == ' ') {
                e--;
            }

            if (s == e) {
                continue;
            }

            m = out->elts;
            dup = 0;

            for (j = 0; j < out->nelts; j++) {
                if (m[j].len == (size_t) (e - s)
                    && ngx_strncmp(m[j].data, s, e - s) == 0)
                {
                    dup = 1;
                    break;
                }
            }

            if (dup) {
                continue;
            }

            m = ngx_array_push(out);
            if (m == NULL) {
                ngx_shmtx_unlock(&w->shpool->mutex);
                return NGX_ERROR;
            }

            m->len = e - s;
            m->data = ngx_pnalloc(pool, m->len);

            if (m->data == NULL) {
                ngx_shmtx_unlock(&w->shpool->mutex);
                return NGX_ERROR;
            }

            ngx_memcpy(m->data, s, m->len);
        }
    }

    ngx_shmtx_unlock(&w->shpool->mutex);

    return NGX_OK;
}


ngx_uint_t
ngx_http_gpugate_tunnel_generation(void)
{
    return ngx_http_gpugate_tunnel_worker->generation;
}


ngx_queue_t *
ngx_http_gpugate_tunnel_idle(ngx_uint_t i)
{
    return &ngx_http_gpugate_tunnel_worker->idle[i];
}


ngx_http_gpugate_tunnel_agent_t *
ngx_http_gpugate_tunnel_agent(ngx_http_gpugate_tunnel_conn_t *tc)
{
    return &ngx_http_gpugate_tunnel_worker->shm->agents[tc->agent];
}


/* under the lock: forgets what process slot "proc" held */

static void
ngx_http_gpugate_tunnel_reclaim(ngx_uint_t proc)
{
    ngx_uint_t                        i, p;
    ngx_atomic_int_t                  busy;
    ngx_http_gpugate_tunnel_shm_t    *shm;
    ngx_http_gpugate_tunnel_agent_t  *a;

    shm = ngx_http_gpugate_tunnel_worker->shm;

    for (i = 0; i < shm->nagents; i++) {
        a = &shm->agents[i];

        if (!a->used) {
            continue;
        }

        busy = (ngx_atomic_int_t) a->count[proc].busy;

        if (busy) {
            (void) ngx_atomic_fetch_add(&a->inflight, -busy);
        }

        a->count[proc].idle = 0;
        a->count[proc].busy = 0;
        a->count[proc].conns = 0;

        for (p = 0; p < NGX_HTTP_GPUGATE_TUNNEL_PROCS; p++) {
            if (a->count[p].conns) {
                break;
            }
        }

        if (p == NGX_HTTP_GPUGATE_TUNNEL_PROCS) {
            a->used = 0;
            a->inflight = 0;
        }
    }

    shm->procs[proc].pid = 0;
}


static ngx_int_t
ngx_http_gpugate_tunnel_register(ngx_str_t *name, int64_t agent_id,
    ngx_str_t *instance, ngx_str_t *models, ngx_uint_t capacity)
{
    ngx_uint_t                         i, found, free;
    ngx_http_gpugate_tunnel_agent_t   *a;
    ngx_http_gpugate_tunnel_worker_t  *w;

    w = ngx_http_gpugate_tunnel_worker;

    if (name->len > NGX_HTTP_GPUGATE_TUNNEL_NAME_MAX
        || instance->len > GPUGATE_TUNNEL_INSTANCE_MAX
        || models->len > GPUGATE_TUNNEL_MODELS_MAX)
    {
        return NGX_ERROR;
    }

    found = w->shm->nagents;
    free = w->shm->nagents;

    ngx_shmtx_lock(&w->shpool->mutex);

    for (i = 0; i < w->shm->nagents; i++) {
        a = &w->shm->agents[i];

        if (!a->used) {
            if (free == w->shm->nagents) {
                free = i;
            }

            continue;
        }

        /* a revoked slot dies out with its connections */

        if (!a->revoked
            && a->name_len == name->len && a->instance_len == instance->len
            && ngx_memcmp(a->name, name->data, name->len) == 0
            && ngx_memcmp(a->instance, instance->data, instance->len) == 0)
        {
            found = i;
            break;
        }
    }

    if (found == w->shm->nagents) {

        if (free == w->shm->nagents) {
            ngx_shmtx_unlock(&w->shpool->mutex);
            return NGX_ERROR;
        }

        found = free;
        a = &w->shm->agents[found];

        ngx_memzero(a, sizeof(ngx_http_gpugate_tunnel_agent_t));
        a->used = 1;
        a->name_len = name->len;
        ngx_memcpy(a->name, name->data, name->len);
        a->instance_len = instance->len;
        ngx_memcpy(a->instance, instance->data, instance->len);
        a->since = ngx_time();
    }

    a = &w->shm->agents[found];

    /* the latest handshake's view wins: the agent re-advertises */

    a->agent_id = agent_id;
    a->capacity = capacity;
    a->models_len = models->len;
    ngx_memcpy(a->models, models->data, models->len);

    (void) ngx_atomic_fetch_add(&a->count[w->proc].conns, 1);

    ngx_shmtx_unlock(&w->shpool->mutex);

    return found;
}


static void
ngx_http_gpugate_tunnel_release(ngx_uint_t agent)
{
    ngx_uint_t                         p;
    ngx_http_gpugate_tunnel_agent_t   *a;
    ngx_http_gpugate_tunnel_worker_t  *w;

    w = ngx_http_gpugate_tunnel_worker;
    a = &w->shm->agents[agent];

    ngx_shmtx_lock(&w->shpool->mutex);

    if (a->count[w->proc].conns) {
        (void) ngx_atomic_fetch_add(&a->count[w->proc].conns, -1);
    }

    for (p = 0; p < NGX_HTTP_GPUGATE_TUNNEL_PROCS; p++) {
        if (a->count[p].conns) {
            break;
        }
    }

    if (p == NGX_HTTP_GPUGATE_TUNNEL_PROCS) {
        a->used = 0;

        /* a reload closed it: the agent is dialing the new workers */
        a->reload_left = ngx_exiting ? ngx_time() : 0;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate tunnel: agent slot %ui free%s", agent,
                       ngx_exiting ? ", left by a reload" : "");
    }

    ngx_shmtx_unlock(&w->shpool->mutex);
}


ngx_uint_t
ngx_http_gpugate_tunnel_revoke(ngx_str_t *name, int64_t agent_id)
{
    ngx_uint_t                         i, n;
    ngx_queue_t                       *q, *next;
    ngx_http_gpugate_tunnel_conn_t    *tc;
    ngx_http_gpugate_tunnel_agent_t   *a;
    ngx_http_gpugate_tunnel_worker_t  *w;

    w = ngx_http_gpugate_tunnel_worker;

    if (w == NULL) {
        return 0;
    }

    ngx_shmtx_lock(&w->shpool->mutex);

    for (i = 0; i < w->shm->nagents; i++) {
        a = &w->shm->agents[i];

        if (!a->used || a->revoked) {
            continue;
        }

        if (name ? (a->name_len != name->len
                    || ngx_memcmp(a->name, name->data, name->len) != 0)
                 : a->agent_id != agent_id)
        {
            continue;
        }

        a->revoked = 1;

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "gpugate tunnel: agent \"%*s\" (id %L) revoked, "
                      "closing its connections", a->name_len, a->name,
                      a->agent_id);
    }

    ngx_shmtx_unlock(&w->shpool->mutex);

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
ngx_http_gpugate_tunnel_take(ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_atomic_uint_t  n;

    /* a revoked agent gets nothing more, whichever worker holds it */

    if (a->revoked) {
        return NGX_BUSY;
    }

    /* increment first, so two workers cannot both take the last place */

    n = ngx_atomic_fetch_add(&a->inflight, 1);

    if (n >= a->capacity) {
        (void) ngx_atomic_fetch_add(&a->inflight, -1);
        return NGX_BUSY;
    }

    return NGX_OK;
}


void
ngx_http_gpugate_tunnel_set_state(ngx_http_gpugate_tunnel_conn_t *tc,
    ngx_uint_t state)
{
    ngx_uint_t                        old, proc;
    ngx_http_gpugate_tunnel_agent_t  *a;

    a = ngx_http_gpugate_tunnel_agent(tc);
    proc = ngx_http_gpugate_tunnel_worker->proc;
    old = tc->state;

    if (old == NGX_HTTP_GPUGATE_TC_IDLE) {
        (void) ngx_atomic_fetch_add(&a->count[proc].idle, -1);
    }

    if (state == NGX_HTTP_GPUGATE_TC_IDLE) {
        (void) ngx_atomic_fetch_add(&a->count[proc].idle, 1);
    }

    /*
     * "inflight" counts RESERVED and BUSY: ngx_http_gpugate_tunnel_take()
     * added the place before the connection was reserved or handed out.
     */

    if (old == NGX_HTTP_GPUGATE_TC_BUSY) {
        (void) ngx_atomic_fetch_add(&a->count[proc].busy, -1);
    }

    if (state == NGX_HTTP_GPUGATE_TC_BUSY) {
        (void) ngx_atomic_fetch_add(&a->count[proc].busy, 1);
        (void) ngx_atomic_fetch_add(&a->requests, 1);
    }

    if ((old == NGX_HTTP_GPUGATE_TC_BUSY
         || old == NGX_HTTP_GPUGATE_TC_RESERVED)
        && state != NGX_HTTP_GPUGATE_TC_BUSY
        && state != NGX_HTTP_GPUGATE_TC_RESERVED)
    {
        (void) ngx_atomic_fetch_add(&a->inflight, -1);
    }

    tc->state = state;
}


ngx_int_t
ngx_http_gpugate_tunnel_attach(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_loc_conf_t *conf, ngx_str_t *name,
    int64_t agent_id, ngx_str_t *instance, ngx_str_t *models,
    ngx_uint_t capacity, gpugate_tunnel_load_t *load,
    gpugate_tunnel_telemetry_t *telemetry, ngx_str_t *head,
    ngx_uint_t heartbeats)
{
    ngx_int_t                        agent;
    ngx_http_gpugate_tunnel_conn_t  *tc;

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

    ngx_http_gpugate_tunnel_set_load(&ngx_http_gpugate_tunnel_worker->shm
                                          ->agents[agent], load);

    if (telemetry) {
        ngx_http_gpugate_tunnel_set_telemetry(
            &ngx_http_gpugate_tunnel_worker->shm->agents[agent], telemetry);
    }

    /*
     * An agent that says it beats is watched from its first request on:
     * a slot registered anew (after a restart or its runtime coming back)
     * must not wait for a first heartbeat that a frozen agent never sends.
     */

    if (heartbeats) {
        ngx_http_gpugate_tunnel_worker->shm->agents[agent].heartbeats = 1;
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


void
ngx_http_gpugate_tunnel_set_load(ngx_http_gpugate_tunnel_agent_t *a,
    gpugate_tunnel_load_t *load)
{
    /* word-sized stores: a reader sees the old value or the new one */

    if (load->has_queue) {
        a->queue = (ngx_atomic_uint_t) load->queue;
    }

    if (load->has_gpu) {
        a->gpu_free_mb = (ngx_atomic_uint_t) load->gpu_free_mb;
    }
}


void
ngx_http_gpugate_tunnel_set_telemetry(ngx_http_gpugate_tunnel_agent_t *a,
    gpugate_tunnel_telemetry_t *t)
{
    ngx_slab_pool_t  *shpool;

    /* too big for one store: readers take the lock too */

    shpool = ngx_http_gpugate_tunnel_worker->shpool;

    ngx_shmtx_lock(&shpool->mutex);
    ngx_memcpy(&a->telemetry, t, sizeof(gpugate_tunnel_telemetry_t));
    a->telemetry_at = ngx_time();
    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_gpugate_tunnel_waiting(ngx_int_t delta)
{
    ngx_http_gpugate_tunnel_worker_t  *w;

    w = ngx_http_gpugate_tunnel_worker;

    (void) ngx_atomic_fetch_add(&w->shm->procs[w->proc].waiting, delta);
}


ngx_slab_pool_t *
ngx_http_gpugate_tunnel_shpool(void)
{
    return ngx_http_gpugate_tunnel_worker->shpool;
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

    if (ngx_http_gpugate_tunnel_offer(tc) == NGX_OK) {
        return;
    }

    if (ngx_exiting || ngx_terminate) {
        ngx_http_gpugate_tunnel_close(tc);
        return;
    }

    ngx_http_gpugate_tunnel_set_state(tc, NGX_HTTP_GPUGATE_TC_IDLE);

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

        for (i = 0; i < w->shm->nagents; i++) {
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

    tc->out = ngx_http_gpugate_tunnel_ping_req;
    tc->out_len = sizeof(ngx_http_gpugate_tunnel_ping_req) - 1;

    c->write->handler = ngx_http_gpugate_tunnel_write;
    ngx_http_gpugate_tunnel_write(c->write);
}


/* the value of header "name" (CRLF, lower case, colon) in a ping answer */

static ngx_int_t
ngx_http_gpugate_tunnel_pong_header(ngx_http_gpugate_tunnel_conn_t *tc,
    u_char *end, const char *name, size_t len, ngx_str_t *value)
{
    u_char  *v, *e;

    v = ngx_strlcasestrn(tc->in, end, (u_char *) name, len - 1);

    if (v == NULL) {
        return NGX_DECLINED;
    }

    v += len;
    e = ngx_strlcasestrn(v, end, (u_char *) CRLF, 2 - 1);

    if (e == NULL) {
        e = end;
    }

    while (v < e && (*v == ' ' || *v == '\t')) {
        v++;
    }

    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }

    value->data = v;
    value->len = e - v;

    return NGX_OK;
}


/*
 * X-Gpugate-Load and X-Gpugate-Telemetry in a ping's answer (head up to
 * "end"): a bad value is logged and ignored, since telemetry is no
 * reason to drop a tunnel.
 */

static void
ngx_http_gpugate_tunnel_pong_load(ngx_http_gpugate_tunnel_conn_t *tc,
    u_char *end)
{
    ngx_str_t                    v;
    gpugate_tunnel_load_t        load;
    gpugate_tunnel_telemetry_t   tel;

    static const char  load_name[] = CRLF "x-gpugate-load:";
    static const char  tel_name[] = CRLF "x-gpugate-telemetry:";

    if (ngx_http_gpugate_tunnel_pong_header(tc, end, load_name,
                                            sizeof(load_name) - 1, &v)
        == NGX_OK)
    {
        if (gpugate_tunnel_parse_load((char *) v.data, v.len, &load) == 0) {
            ngx_http_gpugate_tunnel_set_load(
                ngx_http_gpugate_tunnel_agent(tc), &load);

        } else {
            ngx_log_error(NGX_LOG_WARN, tc->log, 0,
                          "gpugate tunnel: invalid X-Gpugate-Load in a ping "
                          "answer: \"%*s\"", ngx_min(v.len, 64), v.data);
        }
    }

    if (ngx_http_gpugate_tunnel_pong_header(tc, end, tel_name,
                                            sizeof(tel_name) - 1, &v)
        == NGX_OK)
    {
        if (gpugate_tunnel_parse_telemetry((char *) v.data, v.len, &tel)
            == 0)
        {
            ngx_http_gpugate_tunnel_set_telemetry(
                ngx_http_gpugate_tunnel_agent(tc), &tel);

        } else {
            ngx_log_error(NGX_LOG_WARN, tc->log, 0,
                          "gpugate tunnel: invalid X-Gpugate-Telemetry in a "
                          "ping answer: \"%*s\"", ngx_min(v.len, 128),
                          v.data);
        }
    }
}


static void
ngx_http_gpugate_tunnel_pong(ngx_event_t *rev)
{
    ssize_t                          n;
    u_char                          *end;
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

        end = ngx_strlcasestrn(tc->in, tc->in + tc->in_len,
                               (u_char *) CRLF CRLF, 4 - 1);

        if (end) {
            break;
        }

        if (tc->in_len == NGX_HTTP_GPUGATE_TUNNEL_PONG_MAX) {
            goto invalid;
        }
    }

    /* nothing may follow the answer: the connection must be clean */

    if (end + 4 != tc->in + tc->in_len
        || tc->in_len < sizeof("HTTP/1.1 204") - 1
        || ngx_strncmp(tc->in, "HTTP/1.1 204", sizeof("HTTP/1.1 204") - 1)
           != 0)
    {
        goto invalid;
    }

    ngx_http_gpugate_tunnel_pong_load(tc, end + 2);

    ngx_free(tc->in);
    tc->in = NULL;

    ngx_http_gpugate_tunnel_park(tc);

    return;

invalid:

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "gpugate tunnel: invalid answer to a ping: \"%*s\"",
                  ngx_min(tc->in_len, 64), tc->in);
    ngx_http_gpugate_tunnel_close(tc);
}


void
ngx_http_gpugate_tunnel_close(ngx_http_gpugate_tunnel_conn_t *tc)
{
    ngx_connection_t  *c;

    c = tc->connection;

    if (tc->state == NGX_HTTP_GPUGATE_TC_IDLE) {
        ngx_queue_remove(&tc->queue);
    }

    if (tc->state == NGX_HTTP_GPUGATE_TC_RESERVED && tc->reserved) {
        ngx_http_gpugate_tunnel_unreserve(tc->reserved);
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
