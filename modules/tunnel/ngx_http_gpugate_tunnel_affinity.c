
/*
 * Copyright (C) gpugate authors
 *
 * Cache-aware routing of a tunnel pool:
 *
 *     gpugate_prefix_affinity [block=N] [depth=N] [margin=N] [kv_max=PCT]
 *                             [session=on|off] [zone=SIZE]
 *                             [mode=prefix|random];          (upstream)
 *
 * A runtime with a prefix cache (vLLM's automatic prefix caching,
 * SGLang's radix cache, llama.cpp's slots) answers a prompt whose leading
 * blocks it holds without computing them again.  The router hashes the
 * prompt's leading blocks when it reads the body (gpugate_prefix.h); the
 * pool's zone remembers, per prefix hash, the agents that served it last
 * (an rbtree of entries in LRU order, like limit_req's, shared by all
 * workers and kept across reloads), and the balancer prefers the agent
 * holding the longest matching prefix.
 *
 * The rule, after SGLang's cache-aware router (balance_abs_threshold):
 * the holder is chosen while it has at most "margin" requests in flight
 * more than the least loaded suitable agent, and its KV cache (as its
 * agent reports it) is not fuller than kv_max; else the next shorter
 * prefix's holder is tried, and at last the load decides as without this
 * directive.  A holder is an agent instance (slot and instance id): one
 * that leaves is ignored, and found again in another slot after a
 * reload.
 *
 * Session affinity: X-Gpugate-Session, or else the body's "user", pins a
 * conversation to the agent that served it while that agent is connected
 * and below its capacity (no margin: the conversation's whole context is
 * there).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"
#include "gpugate_oai_body.h"
#include "gpugate_prefix.h"


/* session keys are kept in the same tree as prefixes, told apart by this */
#define NGX_HTTP_GPUGATE_AFFINITY_SESSION  0x5e5510ab5e5510abULL


/* an agent instance that served a key */
typedef struct {
    ngx_uint_t                  slot;     /* its slot in the tunnel zone */
    uint64_t                    instance; /* its instance id, hashed: a
                                             slot taken by another agent
                                             no longer matches */
} ngx_http_gpugate_affinity_holder_t;


/* one prefix (or session) key in the zone */
typedef struct {
    ngx_rbtree_node_t           node;     /* key: the hash, cut to a word */
    ngx_queue_t                 queue;    /* in the LRU list */
    uint64_t                    hash;     /* the whole hash */
    ngx_uint_t                  nholders; /* entries in "holders" */
    ngx_http_gpugate_affinity_holder_t
                                holders[NGX_HTTP_GPUGATE_AFFINITY_HOLDERS];
                                          /* most recent first */
} ngx_http_gpugate_affinity_node_t;


static ngx_int_t ngx_http_gpugate_affinity_init_zone(ngx_shm_zone_t *zone,
    void *data);
static char *ngx_http_gpugate_affinity_param(ngx_conf_t *cf,
    ngx_http_gpugate_affinity_conf_t *ac, ngx_str_t *arg, ssize_t *size);
static uint64_t ngx_http_gpugate_affinity_instance(
    ngx_http_gpugate_tunnel_agent_t *a);
static ngx_http_gpugate_affinity_node_t *ngx_http_gpugate_affinity_lookup(
    ngx_http_gpugate_affinity_conf_t *ac, uint64_t hash);
static ngx_int_t ngx_http_gpugate_affinity_usable(
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_http_gpugate_affinity_holder_t *h,
    ngx_uint_t kv_max);
static void ngx_http_gpugate_affinity_put(
    ngx_http_gpugate_affinity_conf_t *ac, uint64_t hash, ngx_uint_t slot,
    uint64_t instance, ngx_uint_t max);
static ngx_uint_t ngx_http_gpugate_affinity_random(
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_uint_t best);


char *
ngx_http_gpugate_tunnel_affinity(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char                                 *rv;
    ssize_t                               size;
    ngx_str_t                            *value, name;
    ngx_uint_t                            i;
    ngx_http_upstream_srv_conf_t         *uscf;
    ngx_http_gpugate_affinity_conf_t     *ac;
    ngx_http_gpugate_tunnel_srv_conf_t  **tscfp, *tscf;
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);
    tmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_tunnel_module);

    tscf = NULL;
    tscfp = tmcf->upstreams.elts;

    for (i = 0; i < tmcf->upstreams.nelts; i++) {
        if (tscfp[i]->upstream == uscf) {
            tscf = tscfp[i];
        }
    }

    if (tscf == NULL) {
        return "must follow \"gpugate_tunnel\" in the upstream block";
    }

    if (tscf->affinity) {
        return "is duplicate";
    }

    ac = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_affinity_conf_t));
    if (ac == NULL) {
        return NGX_CONF_ERROR;
    }

    ac->block = 256;
    ac->depth = 8;
    ac->margin = 4;
    ac->kv_max = 95;
    size = 1024 * 1024;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        rv = ngx_http_gpugate_affinity_param(cf, ac, &value[i], &size);

        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    name.len = sizeof("gpugate_affinity_") - 1 + uscf->host.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(name.data, "gpugate_affinity_%V", &uscf->host);

    ac->zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_gpugate_tunnel_module);
    if (ac->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ac->zone->init = ngx_http_gpugate_affinity_init_zone;
    ac->zone->data = ac;

    tscf->affinity = ac;

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_affinity_param(ngx_conf_t *cf,
    ngx_http_gpugate_affinity_conf_t *ac, ngx_str_t *arg, ssize_t *size)
{
    ngx_int_t   n;
    ngx_str_t   val;

    if (ngx_http_gpugate_conf_param(arg, "zone", &val)) {
        *size = ngx_parse_size(&val);

        if (*size < (ssize_t) (8 * ngx_pagesize)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid zone size \"%V\" (at least 32k)",
                               arg);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_http_gpugate_conf_param(arg, "mode", &val)) {
        if (val.len == 6 && ngx_strncmp(val.data, "random", 6) == 0) {
            ac->random = 1;
            return NGX_CONF_OK;
        }

        if (val.len == 6 && ngx_strncmp(val.data, "prefix", 6) == 0) {
            return NGX_CONF_OK;
        }

        goto invalid;
    }

    if (ngx_http_gpugate_conf_param(arg, "session", &val)) {
        if (val.len == 2 && ngx_strncmp(val.data, "on", 2) == 0) {
            ac->session = 1;
            return NGX_CONF_OK;
        }

        if (val.len == 3 && ngx_strncmp(val.data, "off", 3) == 0) {
            return NGX_CONF_OK;
        }

        goto invalid;
    }

    if (ngx_http_gpugate_conf_param(arg, "block", &val)) {
        n = ngx_atoi(val.data, val.len);

        if (n < GPUGATE_PREFIX_BLOCK_MIN || n > GPUGATE_PREFIX_BLOCK_MAX) {
            goto invalid;
        }

        ac->block = n;
        return NGX_CONF_OK;
    }

    if (ngx_http_gpugate_conf_param(arg, "depth", &val)) {
        n = ngx_atoi(val.data, val.len);

        if (n < 1 || n > GPUGATE_PREFIX_DEPTH_MAX) {
            goto invalid;
        }

        ac->depth = n;
        return NGX_CONF_OK;
    }

    if (ngx_http_gpugate_conf_param(arg, "margin", &val)) {
        n = ngx_atoi(val.data, val.len);

        if (n == NGX_ERROR || n > 65535) {
            goto invalid;
        }

        ac->margin = n;
        return NGX_CONF_OK;
    }

    if (ngx_http_gpugate_conf_param(arg, "kv_max", &val)) {
        n = ngx_atoi(val.data, val.len);

        if (n == NGX_ERROR || n > 100) {
            goto invalid;
        }

        ac->kv_max = n;
        return NGX_CONF_OK;
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" (block=%d..%d, depth=1..%d, "
                       "margin=0..65535, kv_max=0..100, session=on|off, "
                       "zone=SIZE, mode=prefix|random)", arg,
                       GPUGATE_PREFIX_BLOCK_MIN, GPUGATE_PREFIX_BLOCK_MAX,
                       GPUGATE_PREFIX_DEPTH_MAX);

    return NGX_CONF_ERROR;
}


/* a reload keeps the zone (same name and size): what it knows stays */

static ngx_int_t
ngx_http_gpugate_affinity_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_gpugate_affinity_conf_t  *oac = data;

    ngx_http_gpugate_affinity_conf_t  *ac;

    ac = zone->data;

    if (oac) {
        ac->sh = oac->sh;
        ac->shpool = oac->shpool;
        return NGX_OK;
    }

    ac->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        ac->sh = ac->shpool->data;
        return NGX_OK;
    }

    ac->sh = ngx_slab_calloc(ac->shpool,
                             sizeof(ngx_http_gpugate_affinity_sh_t));
    if (ac->sh == NULL) {
        return NGX_ERROR;
    }

    ac->shpool->data = ac->sh;

    ngx_rbtree_init(&ac->sh->rbtree, &ac->sh->sentinel,
                    ngx_rbtree_insert_value);
    ngx_queue_init(&ac->sh->lru);

    ac->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_gpugate_tunnel_affinity_keys(ngx_http_request_t *r,
    ngx_str_t *pool, ngx_str_t *model, ngx_int_t kind, ngx_str_t *body,
    ngx_http_gpugate_tunnel_keys_t *keys)
{
    size_t                               n;
    uint64_t                             seed, h;
    ngx_uint_t                           i;
    ngx_list_part_t                     *part;
    ngx_table_elt_t                     *header;
    gpugate_prefix_kind_e                pk;
    ngx_http_gpugate_affinity_conf_t    *ac;
    ngx_http_gpugate_tunnel_srv_conf_t  *tscf;

    ngx_memzero(keys, sizeof(ngx_http_gpugate_tunnel_keys_t));

    tscf = ngx_http_gpugate_tunnel_find(pool, NULL);

    if (tscf == NULL || tscf->affinity == NULL) {
        return NGX_OK;
    }

    ac = tscf->affinity;
    seed = gpugate_prefix_bytes(model->data, model->len, 0);

    if (kind == GPUGATE_OAI_CHAT || kind == GPUGATE_OAI_MESSAGES
        || kind == GPUGATE_OAI_COMPLETIONS)
    {
        pk = (kind == GPUGATE_OAI_COMPLETIONS) ? GPUGATE_PREFIX_COMPLETIONS
                                               : GPUGATE_PREFIX_CHAT;

        keys->prefix = ngx_palloc(r->pool, ac->depth * sizeof(uint64_t));
        if (keys->prefix == NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "gpugate tunnel: no memory for the prompt's "
                          "prefix keys: routed by load");
            return NGX_ERROR;
        }

        n = gpugate_prefix_hashes(pk, (char *) body->data, body->len,
                                  ac->block, ac->depth, seed, keys->prefix);
        keys->nprefix = n;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate tunnel: %uz prefix blocks of %uz bytes",
                       n, ac->block);
    }

    if (!ac->session) {
        return NGX_OK;
    }

    part = &r->headers_in.headers.part;
    header = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            header = part->elts;
            i = 0;
        }

        if (header[i].key.len == sizeof("X-Gpugate-Session") - 1
            && header[i].value.len
            && ngx_strncasecmp(header[i].key.data,
                               (u_char *) "X-Gpugate-Session",
                               header[i].key.len) == 0)
        {
            keys->session = gpugate_prefix_bytes(header[i].value.data,
                                                 header[i].value.len, seed)
                            | 1;
            return NGX_OK;
        }
    }

    if (gpugate_prefix_user((char *) body->data, body->len, seed, &h) == 0) {
        keys->session = h | 1;
    }

    return NGX_OK;
}


/* the instance id of the agent in a slot, hashed */

static uint64_t
ngx_http_gpugate_affinity_instance(ngx_http_gpugate_tunnel_agent_t *a)
{
    return gpugate_prefix_bytes(a->instance, a->instance_len, 0);
}


static ngx_http_gpugate_affinity_node_t *
ngx_http_gpugate_affinity_lookup(ngx_http_gpugate_affinity_conf_t *ac,
    uint64_t hash)
{
    ngx_rbtree_key_t                   key;
    ngx_rbtree_node_t                 *node, *sentinel;
    ngx_http_gpugate_affinity_node_t  *an;

    key = (ngx_rbtree_key_t) hash;
    node = ac->sh->rbtree.root;
    sentinel = ac->sh->rbtree.sentinel;

    while (node != sentinel) {
        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        an = (ngx_http_gpugate_affinity_node_t *) node;

        if (an->hash == hash) {
            return an;
        }

        /* equal words of unequal hashes (32-bit keys): go on right */
        node = node->right;
    }

    return NULL;
}


/*
 * The in-flight count of the holder when it may take this request (the
 * instance is still there, maybe in another slot after a reload; it
 * serves the model and endpoint, has an idle connection here, is below
 * its capacity, and its KV cache is not too full), else -1.  A holder
 * found in another slot is moved there.
 */

static ngx_int_t
ngx_http_gpugate_affinity_usable(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_affinity_holder_t *h, ngx_uint_t kv_max)
{
    ngx_uint_t                        i, n;
    ngx_http_gpugate_tunnel_shm_t    *shm;
    ngx_http_gpugate_tunnel_agent_t  *a;

    shm = ngx_http_gpugate_tunnel_shm();
    n = ngx_min(shm->high, shm->nagents);

    if (h->slot >= n) {
        return -1;
    }

    a = &shm->agents[h->slot];

    if (!a->used || ngx_http_gpugate_affinity_instance(a) != h->instance) {
        for (i = 0; i < n; i++) {
            a = &shm->agents[i];

            if (a->used
                && ngx_http_gpugate_affinity_instance(a) == h->instance)
            {
                break;
            }
        }

        if (i == n) {
            return -1;
        }

        h->slot = i;
    }

    if (a->revoked || a->inflight >= ngx_http_gpugate_tunnel_room(a)
        || (a->kv_pct && a->kv_pct - 1 > kv_max)
        || !ngx_http_gpugate_tunnel_suits(ctx, h->slot, a)
        || ngx_queue_empty(ngx_http_gpugate_tunnel_idle(h->slot)))
    {
        return -1;
    }

    return (ngx_int_t) a->inflight;
}


ngx_uint_t
ngx_http_gpugate_tunnel_affinity_pick(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_uint_t best, ngx_atomic_uint_t best_load)
{
    ngx_int_t                          load, cand_load;
    ngx_uint_t                         d, k, cand, held;
    ngx_http_gpugate_affinity_node_t  *an;
    ngx_http_gpugate_affinity_conf_t  *ac;

    ac = ctx->conf->affinity;

    if (ac == NULL) {
        return best;
    }

    if (ac->random) {
        return ngx_http_gpugate_affinity_random(ctx, best);
    }

    if (ctx->keys.nprefix == 0 && ctx->keys.session == 0) {
        return best;
    }

    cand = best;
    held = 0;

    ngx_shmtx_lock(&ac->shpool->mutex);

    if (ctx->keys.session) {
        an = ngx_http_gpugate_affinity_lookup(ac, ctx->keys.session
                                      ^ NGX_HTTP_GPUGATE_AFFINITY_SESSION);

        if (an && an->nholders
            && ngx_http_gpugate_affinity_usable(ctx, &an->holders[0], 100)
               >= 0)
        {
            cand = an->holders[0].slot;
            ngx_shmtx_unlock(&ac->shpool->mutex);

            (void) ngx_atomic_fetch_add(&ac->sh->sessions, 1);

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log,
                           0, "gpugate tunnel: session's agent, slot %ui",
                           cand);
            return cand;
        }
    }

    /* the longest prefix first; a holder within the margin wins */

    for (d = ctx->keys.nprefix; d-- > 0; /* void */) {
        an = ngx_http_gpugate_affinity_lookup(ac, ctx->keys.prefix[d]);

        if (an == NULL) {
            continue;
        }

        cand_load = -1;

        for (k = 0; k < an->nholders; k++) {
            held = 1;
            load = ngx_http_gpugate_affinity_usable(ctx, &an->holders[k],
                                                    ac->kv_max);

            if (load >= 0 && (cand_load < 0 || load < cand_load)) {
                cand_load = load;
                cand = an->holders[k].slot;
            }
        }

        if (cand_load >= 0
            && (ngx_atomic_uint_t) cand_load <= best_load + ac->margin)
        {
            ngx_shmtx_unlock(&ac->shpool->mutex);

            (void) ngx_atomic_fetch_add(&ac->sh->hits, 1);

            ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log,
                           0, "gpugate tunnel: prefix of %ui blocks held by "
                           "slot %ui, %i in flight", d + 1, cand, cand_load);
            return cand;
        }

        cand = best;
    }

    ngx_shmtx_unlock(&ac->shpool->mutex);

    if (ctx->keys.nprefix) {
        (void) ngx_atomic_fetch_add(&ac->sh->misses, 1);

        if (held) {
            (void) ngx_atomic_fetch_add(&ac->sh->skipped, 1);
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "gpugate tunnel: no usable prefix holder (%ui seen), "
                   "least loaded slot %ui", held, best);

    return best;
}


/* "mode=random": any agent that may take the request now */

static ngx_uint_t
ngx_http_gpugate_affinity_random(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_uint_t best)
{
    ngx_uint_t                        i, n, seen, pick;
    ngx_http_gpugate_tunnel_shm_t    *shm;
    ngx_http_gpugate_tunnel_agent_t  *a;

    shm = ngx_http_gpugate_tunnel_shm();
    n = ngx_min(shm->high, shm->nagents);
    seen = 0;
    pick = best;

    for (i = 0; i < n; i++) {
        a = &shm->agents[i];

        if (!a->used || a->revoked || a->inflight >= a->capacity
            || !ngx_http_gpugate_tunnel_suits(ctx, i, a)
            || ngx_queue_empty(ngx_http_gpugate_tunnel_idle(i)))
        {
            continue;
        }

        /* reservoir sampling: each of the "seen" equally likely */

        if ((ngx_uint_t) ngx_random() % ++seen == 0) {
            pick = i;
        }
    }

    return pick;
}


void
ngx_http_gpugate_tunnel_affinity_record(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_uint_t slot)
{
    uint64_t                           instance;
    ngx_uint_t                         d;
    ngx_http_gpugate_affinity_conf_t  *ac;
    ngx_http_gpugate_tunnel_shm_t     *shm;

    ac = ctx->conf->affinity;

    if (ac == NULL || ac->random
        || (ctx->keys.nprefix == 0 && ctx->keys.session == 0))
    {
        return;
    }

    shm = ngx_http_gpugate_tunnel_shm();
    instance = ngx_http_gpugate_affinity_instance(&shm->agents[slot]);

    ngx_shmtx_lock(&ac->shpool->mutex);

    for (d = 0; d < ctx->keys.nprefix; d++) {
        ngx_http_gpugate_affinity_put(ac, ctx->keys.prefix[d], slot,
                                      instance,
                                      NGX_HTTP_GPUGATE_AFFINITY_HOLDERS);
    }

    if (ctx->keys.session) {
        ngx_http_gpugate_affinity_put(ac, ctx->keys.session
                                      ^ NGX_HTTP_GPUGATE_AFFINITY_SESSION,
                                      slot, instance, 1);
    }

    ngx_shmtx_unlock(&ac->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "gpugate tunnel: slot %ui holds %ui prefix blocks now",
                   slot, ctx->keys.nprefix);
}


/*
 * The key's entry (made, evicting the least recently used when the zone
 * is full) gets the holder at its front; at most "max" holders.  Under
 * the zone's lock.
 */

static void
ngx_http_gpugate_affinity_put(ngx_http_gpugate_affinity_conf_t *ac,
    uint64_t hash, ngx_uint_t slot, uint64_t instance, ngx_uint_t max)
{
    ngx_uint_t                           k, n;
    ngx_queue_t                         *q;
    ngx_http_gpugate_affinity_node_t    *an, *old;
    ngx_http_gpugate_affinity_holder_t   h;

    an = ngx_http_gpugate_affinity_lookup(ac, hash);

    if (an) {
        ngx_queue_remove(&an->queue);

    } else {
        for (n = 0; n < 16; n++) {
            an = ngx_slab_alloc_locked(ac->shpool,
                                   sizeof(ngx_http_gpugate_affinity_node_t));
            if (an || ngx_queue_empty(&ac->sh->lru)) {
                break;
            }

            q = ngx_queue_last(&ac->sh->lru);
            old = ngx_queue_data(q, ngx_http_gpugate_affinity_node_t, queue);

            ngx_queue_remove(q);
            ngx_rbtree_delete(&ac->sh->rbtree, &old->node);
            ngx_slab_free_locked(ac->shpool, old);

            ac->sh->entries--;
            ac->sh->evicted++;
        }

        if (an == NULL) {
            return;
        }

        an->node.key = (ngx_rbtree_key_t) hash;
        an->hash = hash;
        an->nholders = 0;

        ngx_rbtree_insert(&ac->sh->rbtree, &an->node);
        ac->sh->entries++;
    }

    ngx_queue_insert_head(&ac->sh->lru, &an->queue);

    /* the holder moves to the front; an older entry of it goes */

    h.slot = slot;
    h.instance = instance;

    for (k = 0; k < an->nholders; k++) {
        if (an->holders[k].instance == instance) {
            break;
        }
    }

    if (k == an->nholders) {
        k = ngx_min(an->nholders, max - 1);
        an->nholders = k + 1;
    }

    for ( /* void */ ; k > 0; k--) {
        an->holders[k] = an->holders[k - 1];
    }

    an->holders[0] = h;
}


/* the pool's affinity settings and counters, as a "pool" member */

u_char *
ngx_http_gpugate_tunnel_affinity_json(u_char *p,
    ngx_http_gpugate_affinity_conf_t *ac)
{
    ngx_http_gpugate_affinity_sh_t  *sh;

    /* a pool without the directive looks as it did before it existed */

    if (ac == NULL || ac->sh == NULL) {
        return p;
    }

    sh = ac->sh;

    return ngx_sprintf(p, ",\"affinity\":{\"mode\":\"%s\",\"block\":%uz,"
                       "\"depth\":%ui,\"margin\":%ui,\"kv_max\":%ui,"
                       "\"session\":%s,\"entries\":%uA,\"evicted\":%uA,"
                       "\"hits\":%uA,\"misses\":%uA,\"skipped\":%uA,"
                       "\"sessions\":%uA}",
                       ac->random ? "random" : "prefix", ac->block,
                       ac->depth, ac->margin, ac->kv_max,
                       ac->session ? "true" : "false", sh->entries,
                       sh->evicted, sh->hits, sh->misses, sh->skipped,
                       sh->sessions);
}


/* one agent name's cache figures on the Prometheus page */
typedef struct {
    u_char            name[2 * NGX_HTTP_GPUGATE_TUNNEL_NAME_MAX];
                                  /* label value, escaped */
    size_t            len;        /* its length */
    ngx_uint_t        kv;         /* the fullest runtime's KV use + 1 */
    ngx_uint_t        hit;        /* sum of the hit rates told */
    ngx_uint_t        nhit;       /* their number */
} ngx_http_gpugate_affinity_prom_t;


/*
 * The runtimes' cache figures by agent name (the fullest KV cache, the
 * mean hit rate of its runtimes), then each pool's affinity counters.
 */

void
ngx_http_gpugate_tunnel_affinity_prometheus(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_tunnel_shm_t *shm)
{
    u_char                                label[2
                                            * NGX_HTTP_GPUGATE_TUNNEL_NAME_MAX];
    size_t                                len;
    ngx_uint_t                            i, k, n, na, f;
    ngx_http_conf_ctx_t                  *cctx;
    ngx_http_gpugate_affinity_sh_t       *sh;
    ngx_http_gpugate_affinity_prom_t     *ag;
    ngx_http_gpugate_tunnel_agent_t      *a;
    ngx_http_gpugate_tunnel_srv_conf_t  **tscfp;
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    static const char  *results[] = { "hit", "miss", "skipped", "session" };

    n = ngx_min(shm->high, shm->nagents);
    ag = ngx_pcalloc(out->pool,
                     (n + 1) * sizeof(ngx_http_gpugate_affinity_prom_t));
    if (ag == NULL) {
        out->failed = 1;
        return;
    }

    na = 0;

    ngx_shmtx_lock(&ngx_http_gpugate_tunnel_shpool()->mutex);

    for (i = 0; i < n; i++) {
        a = &shm->agents[i];

        if (!a->used || (a->kv_pct == 0 && a->hit_pct == 0)) {
            continue;
        }

        len = ngx_http_gpugate_prom_label(label, a->name,
                                          ngx_min(a->name_len,
                                          NGX_HTTP_GPUGATE_TUNNEL_NAME_MAX))
              - label;

        for (k = 0; k < na; k++) {
            if (ag[k].len == len && ngx_memcmp(ag[k].name, label, len) == 0)
            {
                break;
            }
        }

        if (k == na) {
            ngx_memcpy(ag[k].name, label, len);
            ag[k].len = len;
            na++;
        }

        ag[k].kv = ngx_max(ag[k].kv, a->kv_pct);

        if (a->hit_pct) {
            ag[k].hit += a->hit_pct - 1;
            ag[k].nhit++;
        }
    }

    ngx_shmtx_unlock(&ngx_http_gpugate_tunnel_shpool()->mutex);

    ngx_http_gpugate_prom_family(out, "gpugate_agent_kv_cache_usage_ratio",
        "gauge", "KV cache in use in the agent's fullest runtime, as "
        "reported.");

    for (k = 0; k < na; k++) {
        if (ag[k].kv) {
            ngx_http_gpugate_out_printf(out,
                "gpugate_agent_kv_cache_usage_ratio{agent=\"%*s\"} %.2f\n",
                ag[k].len, ag[k].name, (double) (ag[k].kv - 1) / 100);
        }
    }

    ngx_http_gpugate_prom_family(out, "gpugate_agent_prefix_cache_hit_ratio",
        "gauge", "Prefix cache hits of the agent's runtimes (their mean), "
        "as reported.");

    for (k = 0; k < na; k++) {
        if (ag[k].nhit) {
            ngx_http_gpugate_out_printf(out,
                "gpugate_agent_prefix_cache_hit_ratio{agent=\"%*s\"} %.2f\n",
                ag[k].len, ag[k].name,
                (double) ag[k].hit / ag[k].nhit / 100);
        }
    }

    cctx = (ngx_http_conf_ctx_t *) ngx_cycle->conf_ctx[ngx_http_module.index];
    tmcf = cctx->main_conf[ngx_http_gpugate_tunnel_module.ctx_index];
    tscfp = tmcf->upstreams.elts;

    ngx_http_gpugate_prom_family(out, "gpugate_affinity_entries", "gauge",
        "Prefix and session keys the pool's affinity zone holds.");

    for (i = 0; i < tmcf->upstreams.nelts; i++) {
        if (tscfp[i]->affinity && tscfp[i]->affinity->sh) {
            ngx_http_gpugate_out_printf(out,
                "gpugate_affinity_entries{pool=\"%V\"} %uA\n",
                &tscfp[i]->upstream->host,
                tscfp[i]->affinity->sh->entries);
        }
    }

    ngx_http_gpugate_prom_family(out, "gpugate_affinity_choices_total",
        "counter", "Balancer choices of a pool with affinity: a prefix "
        "holder (hit), none usable (miss; skipped: one was held but too "
        "loaded or too full), a session's agent.");

    for (i = 0; i < tmcf->upstreams.nelts; i++) {
        if (tscfp[i]->affinity == NULL || tscfp[i]->affinity->sh == NULL) {
            continue;
        }

        sh = tscfp[i]->affinity->sh;

        for (f = 0; f < 4; f++) {
            ngx_http_gpugate_out_printf(out,
                "gpugate_affinity_choices_total{pool=\"%V\",result=\"%s\"} "
                "%uA\n", &tscfp[i]->upstream->host, results[f],
                f == 0 ? sh->hits : f == 1 ? sh->misses
                : f == 2 ? sh->skipped : sh->sessions);
        }
    }
}
