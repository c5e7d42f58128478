
/*
 * Copyright (C) gpugate authors
 *
 * The agent registry in the tunnel zone: one slot per agent instance
 * (name, models, capacity, load, telemetry, revoked), each worker's
 * counts of its connections per slot, and the process slots that let a
 * worker reclaim what a dead one left behind.  Shared by every worker
 * under the zone's lock; the connections themselves, which only their
 * worker sees, are ngx_http_gpugate_tunnel_conn.c's.  Also what the
 * configuration registered: the pools, by name or upstream block.
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
} ngx_http_gpugate_tunnel_registry_t;


static void ngx_http_gpugate_tunnel_reclaim(ngx_uint_t proc);


/* NULL in a worker without a tunnel zone */
static ngx_http_gpugate_tunnel_registry_t  *ngx_http_gpugate_tunnel_registry;


ngx_int_t
ngx_http_gpugate_tunnel_registry_init(ngx_cycle_t *cycle,
    ngx_http_gpugate_tunnel_main_conf_t *tmcf)
{
    ngx_uint_t                           i, free;
    ngx_http_gpugate_tunnel_shm_t       *shm;
    ngx_http_gpugate_tunnel_registry_t  *w;

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_tunnel_registry_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    shm = tmcf->zone->data;
    w->shm = shm;
    w->shpool = (ngx_slab_pool_t *) tmcf->zone->shm.addr;
    w->generation = shm->generation;

    ngx_http_gpugate_tunnel_registry = w;

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
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                           "gpugate tunnel: reclaiming process slot %ui "
                           "of dead pid %P", i, shm->procs[i].pid);
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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "gpugate tunnel: process slot %ui, generation %ui",
                   w->proc, w->generation);

    return NGX_OK;
}


void
ngx_http_gpugate_tunnel_registry_exit(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_tunnel_registry_t  *w;

    w = ngx_http_gpugate_tunnel_registry;

    if (w == NULL) {
        return;
    }

    ngx_shmtx_lock(&w->shpool->mutex);

    ngx_http_gpugate_tunnel_reclaim(w->proc);

    ngx_shmtx_unlock(&w->shpool->mutex);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "gpugate tunnel: process slot %ui released", w->proc);

    ngx_http_gpugate_tunnel_registry = NULL;
}


ngx_http_gpugate_tunnel_shm_t *
ngx_http_gpugate_tunnel_shm(void)
{
    /* NULL in a worker without a tunnel zone */
    return ngx_http_gpugate_tunnel_registry
           ? ngx_http_gpugate_tunnel_registry->shm : NULL;
}


ngx_int_t
ngx_http_gpugate_tunnel_live_models(ngx_pool_t *pool, ngx_array_t *out)
{
    u_char                           *p, *end, *s, *e;
    ngx_str_t                        *m;
    ngx_uint_t                        i, j, dup;
    ngx_http_gpugate_tunnel_agent_t  *a;
    ngx_http_gpugate_tunnel_registry_t *w;

    w = ngx_http_gpugate_tunnel_registry;

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


/*
 * A pool by its name (the router's choice) or by its upstream block (the
 * balancer's init).  Configuration rather than the zone, but here, below
 * every file that looks a pool up (_peer.c, _affinity.c, the router
 * through _is_pool()), so that none of them calls up into another.
 */

ngx_http_gpugate_tunnel_srv_conf_t *
ngx_http_gpugate_tunnel_find(ngx_str_t *name,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                            i;
    ngx_http_conf_ctx_t                  *ctx;
    ngx_http_gpugate_tunnel_srv_conf_t  **tscfp;
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    ctx = (ngx_http_conf_ctx_t *) ngx_cycle->conf_ctx[ngx_http_module.index];
    tmcf = ctx->main_conf[ngx_http_gpugate_tunnel_module.ctx_index];
    tscfp = tmcf->upstreams.elts;

    for (i = 0; i < tmcf->upstreams.nelts; i++) {
        if (us) {
            if (tscfp[i]->upstream == us) {
                return tscfp[i];
            }

            continue;
        }

        if (tscfp[i]->upstream->host.len == name->len
            && ngx_strncasecmp(tscfp[i]->upstream->host.data, name->data,
                               name->len) == 0)
        {
            return tscfp[i];
        }
    }

    return NULL;
}


ngx_uint_t
ngx_http_gpugate_tunnel_is_pool(ngx_str_t *name)
{
    return ngx_http_gpugate_tunnel_find(name, NULL) != NULL;
}


ngx_int_t
ngx_http_gpugate_tunnel_free_slots(void)
{
    ngx_int_t                            free;
    ngx_uint_t                           i, cap, busy;
    ngx_http_gpugate_tunnel_agent_t     *a;
    ngx_http_gpugate_tunnel_registry_t  *w;

    w = ngx_http_gpugate_tunnel_registry;

    if (w == NULL) {
        return -1;
    }

    free = 0;

    /* no lock: counters read a moment apart only misjudge one tick */

    for (i = 0; i < w->shm->high && i < w->shm->nagents; i++) {
        a = &w->shm->agents[i];

        if (!a->used || a->revoked) {
            continue;
        }

        cap = a->capacity;
        busy = a->inflight;

        if (cap > busy) {
            free += cap - busy;
        }
    }

    for (i = 0; i < NGX_HTTP_GPUGATE_TUNNEL_PROCS; i++) {
        if (w->shm->procs[i].pid) {
            free -= w->shm->procs[i].waiting;
        }
    }

    /* more waiting than room is none free, not "no tunnel" (-1) */

    return free < 0 ? 0 : free;
}


ngx_uint_t
ngx_http_gpugate_tunnel_generation(void)
{
    return ngx_http_gpugate_tunnel_registry->generation;
}


ngx_http_gpugate_tunnel_agent_t *
ngx_http_gpugate_tunnel_agent(ngx_http_gpugate_tunnel_conn_t *tc)
{
    return &ngx_http_gpugate_tunnel_registry->shm->agents[tc->agent];
}


/* under the lock: forgets what process slot "proc" held */

static void
ngx_http_gpugate_tunnel_reclaim(ngx_uint_t proc)
{
    ngx_uint_t                        i, p;
    ngx_atomic_int_t                  busy;
    ngx_http_gpugate_tunnel_shm_t    *shm;
    ngx_http_gpugate_tunnel_agent_t  *a;

    shm = ngx_http_gpugate_tunnel_registry->shm;

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


ngx_int_t
ngx_http_gpugate_tunnel_register(ngx_str_t *name, int64_t agent_id,
    ngx_str_t *instance, ngx_str_t *models, ngx_uint_t capacity)
{
    ngx_uint_t                         i, found, free;
    ngx_http_gpugate_tunnel_agent_t   *a;
    ngx_http_gpugate_tunnel_registry_t *w;

    w = ngx_http_gpugate_tunnel_registry;

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

        if (w->shm->high <= found) {
            w->shm->high = found + 1;
        }
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


void
ngx_http_gpugate_tunnel_release(ngx_uint_t agent)
{
    ngx_uint_t                         p;
    ngx_http_gpugate_tunnel_agent_t   *a;
    ngx_http_gpugate_tunnel_registry_t *w;

    w = ngx_http_gpugate_tunnel_registry;
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


/* the cooldown the score set (_score.c) narrows the slot's capacity */

ngx_uint_t
ngx_http_gpugate_tunnel_room(ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_msec_int_t  left;

    if (a->cool_until == 0) {
        return a->capacity;
    }

    left = (ngx_msec_int_t) (a->cool_until - ngx_current_msec);

    if (left > 0) {
        return 0;
    }

    /* on trial: one request until one succeeds */

    return ngx_min(a->capacity, 1);
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

    /* less than the capacity while cooled down or on trial */

    if (n >= ngx_http_gpugate_tunnel_room(a)) {
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
    proc = ngx_http_gpugate_tunnel_registry->proc;
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


/*
 * Found as _register() finds the slot; kept out of _attach()'s arguments
 * so that the tunnel connection code needs no change.  The connection
 * just attached is not idle yet, so no request can reach the slot before
 * its endpoints are right; an older connection of the same instance
 * advertised the same runtime.
 */

void
ngx_http_gpugate_tunnel_set_endpoints(ngx_str_t *name, ngx_str_t *instance,
    uint32_t endpoints)
{
    ngx_uint_t                          i;
    ngx_http_gpugate_tunnel_agent_t    *a;
    ngx_http_gpugate_tunnel_registry_t *w;

    w = ngx_http_gpugate_tunnel_registry;

    ngx_shmtx_lock(&w->shpool->mutex);

    for (i = 0; i < w->shm->nagents; i++) {
        a = &w->shm->agents[i];

        if (a->used && !a->revoked
            && a->name_len == name->len && a->instance_len == instance->len
            && ngx_memcmp(a->name, name->data, name->len) == 0
            && ngx_memcmp(a->instance, instance->data, instance->len) == 0)
        {
            if (a->endpoints != endpoints) {
                ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                               "gpugate tunnel: agent \"%V\" endpoints "
                               "%08xA -> %08xD", name, a->endpoints,
                               endpoints);

                a->endpoints = endpoints;
            }

            break;
        }
    }

    ngx_shmtx_unlock(&w->shpool->mutex);
}


/* as _set_endpoints(): the region of X-Gpugate-Region ("": none) */

void
ngx_http_gpugate_tunnel_set_region(ngx_str_t *name, ngx_str_t *instance,
    ngx_str_t *region)
{
    ngx_uint_t                          i;
    ngx_http_gpugate_tunnel_agent_t    *a;
    ngx_http_gpugate_tunnel_registry_t *w;

    w = ngx_http_gpugate_tunnel_registry;

    if (region->len > NGX_HTTP_GPUGATE_REGION_MAX) {
        return;
    }

    ngx_shmtx_lock(&w->shpool->mutex);

    for (i = 0; i < w->shm->nagents; i++) {
        a = &w->shm->agents[i];

        if (a->used && !a->revoked
            && a->name_len == name->len && a->instance_len == instance->len
            && ngx_memcmp(a->name, name->data, name->len) == 0
            && ngx_memcmp(a->instance, instance->data, instance->len) == 0)
        {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "gpugate tunnel: agent \"%V\" region \"%V\"",
                           name, region);

            a->region_len = region->len;
            ngx_memcpy(a->region, region->data, region->len);
            break;
        }
    }

    ngx_shmtx_unlock(&w->shpool->mutex);
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

    if (load->has_kv) {
        a->kv_pct = (ngx_atomic_uint_t) load->kv_pct + 1;
    }

    if (load->has_hit) {
        a->hit_pct = (ngx_atomic_uint_t) load->hit_pct + 1;
    }

    /*
     * An agent serving several gateway nodes offers each a share of its
     * capacity, and moves the shares as nodes come and go; 0 is allowed
     * here (its other nodes use it all), not at the handshake.
     */

    if (load->has_capacity && a->capacity != load->capacity) {
        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate tunnel: agent \"%*s\" capacity %uA -> %uL",
                       a->name_len, a->name, a->capacity, load->capacity);

        a->capacity = (ngx_atomic_uint_t) load->capacity;
    }
}


void
ngx_http_gpugate_tunnel_set_telemetry(ngx_http_gpugate_tunnel_agent_t *a,
    gpugate_tunnel_telemetry_t *t)
{
    ngx_slab_pool_t  *shpool;

    /* too big for one store: readers take the lock too */

    shpool = ngx_http_gpugate_tunnel_registry->shpool;

    ngx_shmtx_lock(&shpool->mutex);
    ngx_memcpy(&a->telemetry, t, sizeof(gpugate_tunnel_telemetry_t));
    a->telemetry_at = ngx_time();
    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_gpugate_tunnel_waiting(ngx_int_t delta)
{
    ngx_http_gpugate_tunnel_registry_t *w;

    w = ngx_http_gpugate_tunnel_registry;

    (void) ngx_atomic_fetch_add(&w->shm->procs[w->proc].waiting, delta);
}


ngx_slab_pool_t *
ngx_http_gpugate_tunnel_shpool(void)
{
    return ngx_http_gpugate_tunnel_registry->shpool;
}


/*
 * Marks the agent slots named "name" (or, name NULL, of "agent_id")
 * revoked: no worker hands them a request any more.
 */

void
ngx_http_gpugate_tunnel_revoke_slots(ngx_str_t *name, int64_t agent_id)
{
    ngx_uint_t                           i;
    ngx_http_gpugate_tunnel_agent_t     *a;
    ngx_http_gpugate_tunnel_registry_t  *w;

    w = ngx_http_gpugate_tunnel_registry;

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
}
