
/*
 * Copyright (C) gpugate authors
 *
 * Shared-memory API-key cache: a red-black tree keyed by the key digest
 * plus LRU queues, in one slab zone for all workers (the shape of
 * ngx_http_limit_req_module).  Valid keys and refused keys have separate
 * LRU queues, and refused keys a budget of their own (negative_max): a
 * flood of random keys recycles refused entries and never evicts a valid
 * one, which would otherwise lose its stale grace.  Entries carry two
 * deadlines: fresh_until,
 * after which a lookup must go to Redis/PostgreSQL again, and stale_until,
 * until which an entry may still be served while PostgreSQL is down.  The
 * zone is kept across reloads, so a reload does not empty the cache.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_auth.h"


typedef struct {
    ngx_rbtree_node_t               node;        /* key: digest's first
                                                    bytes */
    ngx_queue_t                     lru;         /* head: most recent; in
                                                    the shctx's lru or
                                                    neg_lru (refusals) */
    u_char                          digest[NGX_HTTP_GPUGATE_DIGEST_LEN];
                                                 /* SHA-256 of the key */
    time_t                          fresh_until; /* serve without lookup */
    time_t                          stale_until; /* serve in an outage */
    ngx_uint_t                      refusal;     /* see key_info_t */
    int64_t                         key_id;      /* see key_info_t */
    int64_t                         tenant_id;   /* see key_info_t */
    ngx_http_gpugate_limit_set_t    key_limits;  /* see key_info_t */
    ngx_http_gpugate_limit_set_t    tenant_limits; /* see key_info_t */
    time_t                          expires;     /* see key_info_t */
    uint16_t                        name_len;    /* lengths of the strings */
    uint16_t                        prefix_len;  /*   stored back to back */
    uint16_t                        tenant_len;  /*   in "data" */
    uint32_t                        models_len;
    u_char                          data[1];     /* name prefix tenant
                                                    models */
} ngx_http_gpugate_auth_node_t;


typedef struct {
    ngx_rbtree_t                    rbtree;      /* digest -> node */
    ngx_rbtree_node_t               sentinel;    /* rbtree's sentinel */
    ngx_queue_t                     lru;         /* valid keys, LRU order */
    ngx_queue_t                     neg_lru;     /* refused keys, same */
    ngx_uint_t                      negatives;   /* nodes in neg_lru */
    ngx_http_gpugate_auth_stats_t   stats;       /* counters */
} ngx_http_gpugate_auth_shctx_t;


struct ngx_http_gpugate_auth_cache_s {
    ngx_http_gpugate_auth_shctx_t  *sh;          /* in shared memory */
    ngx_slab_pool_t                *shpool;      /* the zone's allocator */
    ngx_uint_t                      negative_max; /* most nodes in neg_lru,
                                                    from the config */
};


static ngx_int_t ngx_http_gpugate_auth_cache_init(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_gpugate_auth_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_gpugate_auth_node_t *ngx_http_gpugate_auth_cache_find(
    ngx_http_gpugate_auth_cache_t *cache, u_char *digest);
static void ngx_http_gpugate_auth_cache_free(
    ngx_http_gpugate_auth_cache_t *cache, ngx_http_gpugate_auth_node_t *an);


static ngx_rbtree_key_t
ngx_http_gpugate_auth_cache_key(u_char *digest)
{
    /* a SHA-256 digest is uniformly distributed: its bytes are the hash */
    return ((ngx_rbtree_key_t) digest[0] << 24)
           | ((ngx_rbtree_key_t) digest[1] << 16)
           | ((ngx_rbtree_key_t) digest[2] << 8)
           | (ngx_rbtree_key_t) digest[3];
}


ngx_shm_zone_t *
ngx_http_gpugate_auth_cache_zone(ngx_conf_t *cf, ngx_str_t *name, size_t size,
    ngx_uint_t negative_max, void *tag)
{
    ngx_shm_zone_t                 *zone;
    ngx_http_gpugate_auth_cache_t  *cache;

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_auth_cache_t));
    if (cache == NULL) {
        return NULL;
    }

    zone = ngx_shared_memory_add(cf, name, size, tag);
    if (zone == NULL) {
        return NULL;
    }

    if (zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "auth zone \"%V\" is already defined", name);
        return NULL;
    }

    cache->negative_max = negative_max;

    zone->init = ngx_http_gpugate_auth_cache_init;
    zone->data = cache;

    return zone;
}


static ngx_int_t
ngx_http_gpugate_auth_cache_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_gpugate_auth_cache_t  *ocache = data;

    size_t                          len;
    ngx_http_gpugate_auth_cache_t  *cache;

    cache = zone->data;

    if (ocache) {
        /* a reload: keep the old zone's entries (a lower negative_max
           takes effect as refusals are cached) */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_calloc(cache->shpool,
                                sizeof(ngx_http_gpugate_auth_shctx_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_gpugate_auth_cache_insert);
    ngx_queue_init(&cache->sh->lru);
    ngx_queue_init(&cache->sh->neg_lru);

    len = sizeof(" in gpugate auth zone \"\"") + zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in gpugate auth zone \"%V\"%Z",
                &zone->shm.name);

    /* eviction is the normal way to make room: not worth an alert */
    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_gpugate_auth_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_gpugate_auth_node_t   *an, *at;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            an = (ngx_http_gpugate_auth_node_t *) node;
            at = (ngx_http_gpugate_auth_node_t *) temp;

            p = (ngx_memcmp(an->digest, at->digest,
                            NGX_HTTP_GPUGATE_DIGEST_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_gpugate_auth_node_t *
ngx_http_gpugate_auth_cache_find(ngx_http_gpugate_auth_cache_t *cache,
    u_char *digest)
{
    ngx_int_t                      rc;
    ngx_rbtree_key_t               key;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_gpugate_auth_node_t  *an;

    key = ngx_http_gpugate_auth_cache_key(digest);

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        an = (ngx_http_gpugate_auth_node_t *) node;

        rc = ngx_memcmp(digest, an->digest, NGX_HTTP_GPUGATE_DIGEST_LEN);

        if (rc == 0) {
            return an;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


ngx_int_t
ngx_http_gpugate_auth_cache_get(ngx_shm_zone_t *zone, u_char *digest,
    ngx_uint_t stale, ngx_http_gpugate_key_info_t *info, ngx_pool_t *pool)
{
    u_char                         *p, *copy;
    size_t                          len;
    time_t                          now;
    ngx_int_t                       rc;
    ngx_http_gpugate_auth_node_t   *an;
    ngx_http_gpugate_auth_cache_t  *cache;

    cache = zone->data;
    now = ngx_time();

    ngx_shmtx_lock(&cache->shpool->mutex);

    an = ngx_http_gpugate_auth_cache_find(cache, digest);

    if (an == NULL) {
        rc = NGX_DECLINED;
        goto done;
    }

    if (an->fresh_until > now) {
        rc = NGX_OK;

    } else if (stale && an->stale_until > now) {
        rc = NGX_AGAIN;

    } else {
        rc = NGX_DECLINED;
        goto done;
    }

    ngx_queue_remove(&an->lru);
    ngx_queue_insert_head(an->refusal ? &cache->sh->neg_lru : &cache->sh->lru,
                          &an->lru);

    /* copy out under the lock: another worker may free the node next */

    len = an->name_len + an->prefix_len + an->tenant_len + an->models_len;

    copy = ngx_pnalloc(pool, len ? len : 1);
    if (copy == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    ngx_memcpy(copy, an->data, len);

    info->refusal = an->refusal;
    info->key_id = an->key_id;
    info->tenant_id = an->tenant_id;
    info->key_limits = an->key_limits;
    info->tenant_limits = an->tenant_limits;
    info->expires = an->expires;

    p = copy;
    info->name.data = p;
    info->name.len = an->name_len;
    p += an->name_len;
    info->prefix.data = p;
    info->prefix.len = an->prefix_len;
    p += an->prefix_len;
    info->tenant.data = p;
    info->tenant.len = an->tenant_len;
    p += an->tenant_len;
    info->models.data = p;
    info->models.len = an->models_len;

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_http_gpugate_auth_cache_put(ngx_shm_zone_t *zone, u_char *digest,
    ngx_http_gpugate_key_info_t *info, time_t ttl, time_t grace)
{
    u_char                         *p;
    size_t                          size;
    time_t                          now;
    ngx_uint_t                      tries, negative;
    ngx_queue_t                    *q;
    ngx_http_gpugate_auth_node_t   *an;
    ngx_http_gpugate_auth_cache_t  *cache;

    cache = zone->data;
    now = ngx_time();
    negative = (info->refusal != NGX_HTTP_GPUGATE_KEY_OK);

    if (info->name.len > 0xffff || info->prefix.len > 0xffff
        || info->tenant.len > 0xffff || info->models.len > 0xffffffff)
    {
        return;
    }

    if (negative && cache->negative_max == 0) {
        (void) ngx_atomic_fetch_add(&cache->sh->stats.not_cached, 1);
        return;
    }

    size = offsetof(ngx_http_gpugate_auth_node_t, data)
           + info->name.len + info->prefix.len + info->tenant.len
           + info->models.len;

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* an entry filled by another worker meanwhile is simply replaced */

    an = ngx_http_gpugate_auth_cache_find(cache, digest);
    if (an) {
        ngx_http_gpugate_auth_cache_free(cache, an);
    }

    /* a refusal replaces the oldest refusal once the budget is spent */

    while (negative && cache->sh->negatives >= cache->negative_max
           && !ngx_queue_empty(&cache->sh->neg_lru))
    {
        q = ngx_queue_last(&cache->sh->neg_lru);
        ngx_http_gpugate_auth_cache_free(cache,
            ngx_queue_data(q, ngx_http_gpugate_auth_node_t, lru));
        (void) ngx_atomic_fetch_add(&cache->sh->stats.evicted, 1);
    }

    an = ngx_slab_alloc_locked(cache->shpool, size);

    /*
     * Full: evict least recently used refusals first; a valid key may
     * evict valid keys, a refusal never does.
     */

    for (tries = 0; an == NULL && tries < 64; tries++) {

        if (!ngx_queue_empty(&cache->sh->neg_lru)) {
            q = ngx_queue_last(&cache->sh->neg_lru);

        } else if (!negative && !ngx_queue_empty(&cache->sh->lru)) {
            q = ngx_queue_last(&cache->sh->lru);

        } else {
            break;
        }

        ngx_http_gpugate_auth_cache_free(cache,
            ngx_queue_data(q, ngx_http_gpugate_auth_node_t, lru));
        (void) ngx_atomic_fetch_add(&cache->sh->stats.evicted, 1);

        an = ngx_slab_alloc_locked(cache->shpool, size);
    }

    if (an == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate auth: zone full, %s entry not cached",
                       negative ? "refused" : "valid");

        if (negative) {
            (void) ngx_atomic_fetch_add(&cache->sh->stats.not_cached, 1);
        }

        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    ngx_memcpy(an->digest, digest, NGX_HTTP_GPUGATE_DIGEST_LEN);
    an->node.key = ngx_http_gpugate_auth_cache_key(digest);
    an->fresh_until = now + ttl;
    an->stale_until = now + ttl + grace;
    an->refusal = info->refusal;
    an->key_id = info->key_id;
    an->tenant_id = info->tenant_id;
    an->key_limits = info->key_limits;
    an->tenant_limits = info->tenant_limits;
    an->expires = info->expires;
    an->name_len = (uint16_t) info->name.len;
    an->prefix_len = (uint16_t) info->prefix.len;
    an->tenant_len = (uint16_t) info->tenant.len;
    an->models_len = (uint32_t) info->models.len;

    p = an->data;
    p = ngx_cpymem(p, info->name.data, info->name.len);
    p = ngx_cpymem(p, info->prefix.data, info->prefix.len);
    p = ngx_cpymem(p, info->tenant.data, info->tenant.len);
    (void) ngx_cpymem(p, info->models.data, info->models.len);

    ngx_rbtree_insert(&cache->sh->rbtree, &an->node);

    if (negative) {
        ngx_queue_insert_head(&cache->sh->neg_lru, &an->lru);
        cache->sh->negatives++;

    } else {
        ngx_queue_insert_head(&cache->sh->lru, &an->lru);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


static ngx_uint_t
ngx_http_gpugate_auth_cache_expire_node(ngx_http_gpugate_auth_cache_t *cache,
    ngx_http_gpugate_auth_node_t *an, time_t now)
{
    if (an->refusal) {
        ngx_http_gpugate_auth_cache_free(cache, an);
        return 1;
    }

    if (an->fresh_until <= now) {
        return 0;                    /* already due: another worker was
                                        first, or it aged out */
    }

    an->fresh_until = now;

    return 1;
}


static ngx_uint_t
ngx_http_gpugate_auth_cache_expire_tenant(ngx_http_gpugate_auth_cache_t *cache,
    ngx_queue_t *lru, int64_t tenant_id, time_t now)
{
    ngx_uint_t                     n;
    ngx_queue_t                   *q, *next;
    ngx_http_gpugate_auth_node_t  *an;

    n = 0;

    for (q = ngx_queue_head(lru); q != ngx_queue_sentinel(lru); q = next) {
        next = ngx_queue_next(q);
        an = ngx_queue_data(q, ngx_http_gpugate_auth_node_t, lru);

        if (an->tenant_id == tenant_id) {
            n += ngx_http_gpugate_auth_cache_expire_node(cache, an, now);
        }
    }

    return n;
}


ngx_uint_t
ngx_http_gpugate_auth_cache_expire(ngx_shm_zone_t *zone, u_char *digest,
    int64_t tenant_id)
{
    time_t                          now;
    ngx_uint_t                      n;
    ngx_queue_t                    *q, *next;
    ngx_http_gpugate_auth_node_t   *an;
    ngx_http_gpugate_auth_cache_t  *cache;

    cache = zone->data;
    now = ngx_time();
    n = 0;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (digest) {
        an = ngx_http_gpugate_auth_cache_find(cache, digest);
        if (an) {
            n = ngx_http_gpugate_auth_cache_expire_node(cache, an, now);
        }

    } else if (tenant_id) {
        /*
         * A tenant's limits changed: every key of it is due.  A walk of
         * the whole zone under the lock, as rare as such changes are.
         */

        n = ngx_http_gpugate_auth_cache_expire_tenant(cache, &cache->sh->lru,
                                                      tenant_id, now)
            + ngx_http_gpugate_auth_cache_expire_tenant(cache,
                                                      &cache->sh->neg_lru,
                                                      tenant_id, now);

    } else {
        while (!ngx_queue_empty(&cache->sh->neg_lru)) {
            q = ngx_queue_head(&cache->sh->neg_lru);
            ngx_http_gpugate_auth_cache_free(cache,
                ngx_queue_data(q, ngx_http_gpugate_auth_node_t, lru));
            n++;
        }

        for (q = ngx_queue_head(&cache->sh->lru);
             q != ngx_queue_sentinel(&cache->sh->lru);
             q = next)
        {
            next = ngx_queue_next(q);
            n += ngx_http_gpugate_auth_cache_expire_node(cache,
                     ngx_queue_data(q, ngx_http_gpugate_auth_node_t, lru),
                     now);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return n;
}


ngx_http_gpugate_auth_stats_t *
ngx_http_gpugate_auth_cache_stats(ngx_shm_zone_t *zone)
{
    ngx_http_gpugate_auth_cache_t  *cache;

    cache = zone->data;

    return &cache->sh->stats;
}


static void
ngx_http_gpugate_auth_cache_free(ngx_http_gpugate_auth_cache_t *cache,
    ngx_http_gpugate_auth_node_t *an)
{
    if (an->refusal) {
        cache->sh->negatives--;
    }

    ngx_queue_remove(&an->lru);
    ngx_rbtree_delete(&cache->sh->rbtree, &an->node);
    ngx_slab_free_locked(cache->shpool, an);
}
