
/*
 * Copyright (C) gpugate authors
 *
 * The limits' shared state: one node per limited key and per tenant of a
 * limited key, in a red-black tree with an LRU queue (the shape of
 * ngx_http_limit_req_module), and the two operations on it, both under
 * the zone's lock so that workers never admit past a limit together:
 * reserve (every check of both sides, then every count, or nothing) and
 * settle (the reservation replaced by the real usage).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_limits.h"
#include "gpugate_utf8.h"


static void ngx_http_gpugate_limits_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_gpugate_limits_check(ngx_http_gpugate_limits_ctx_t *ctx,
    ngx_uint_t i, uint64_t now, time_t sec, ngx_uint_t down);
static void ngx_http_gpugate_limits_count(ngx_http_gpugate_limits_node_t *ln,
    int64_t req, int64_t tok, int64_t day, int64_t spend);
static void ngx_http_gpugate_limits_refuse(ngx_http_gpugate_limits_ctx_t *ctx,
    ngx_uint_t reason, int64_t wait);
static void ngx_http_gpugate_limits_headers(
    ngx_http_gpugate_limits_ctx_t *ctx);
static void ngx_http_gpugate_limits_headroom(
    ngx_http_gpugate_limits_ctx_t *ctx);


static const char  *ngx_http_gpugate_limits_reasons[] = {
    "none", "too_large", "parallel", "requests", "tokens",
    "tokens_per_day", "budget"
};


const char *
ngx_http_gpugate_limits_reason_name(ngx_uint_t reason)
{
    return reason < NGX_HTTP_GPUGATE_LR_N
           ? ngx_http_gpugate_limits_reasons[reason] : "none";
}


ngx_int_t
ngx_http_gpugate_limits_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_gpugate_limits_zone_t  *ozone = data;

    size_t                           len;
    ngx_http_gpugate_limits_zone_t  *z;

    z = zone->data;

    if (ozone) {
        /* a reload keeps every count and every reservation in flight */
        z->sh = ozone->sh;
        z->shpool = ozone->shpool;
        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
    }

    z->sh = ngx_slab_calloc(z->shpool,
                            sizeof(ngx_http_gpugate_limits_shctx_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;

    ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel,
                    ngx_http_gpugate_limits_insert);
    ngx_queue_init(&z->sh->lru);

    len = sizeof(" in gpugate limits zone \"\"") + zone->shm.name.len;

    z->shpool->log_ctx = ngx_slab_alloc(z->shpool, len);
    if (z->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(z->shpool->log_ctx, " in gpugate limits zone \"%V\"%Z",
                &zone->shm.name);

    /* eviction is how room is made: not worth an alert each time */
    z->shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_rbtree_key_t
ngx_http_gpugate_limits_hash(ngx_uint_t kind, int64_t id)
{
    uint64_t  h;

    h = ((uint64_t) id << 1) | kind;

    return (ngx_rbtree_key_t) (h ^ (h >> 32));
}


static ngx_int_t
ngx_http_gpugate_limits_cmp(ngx_http_gpugate_limits_node_t *a,
    ngx_http_gpugate_limits_node_t *b)
{
    if (a->kind != b->kind) {
        return a->kind < b->kind ? -1 : 1;
    }

    if (a->id != b->id) {
        return a->id < b->id ? -1 : 1;
    }

    return 0;
}


static void
ngx_http_gpugate_limits_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (ngx_http_gpugate_limits_cmp(
                     (ngx_http_gpugate_limits_node_t *) node,
                     (ngx_http_gpugate_limits_node_t *) temp) < 0)
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


/*
 * The node of a key or tenant, made when missing; the LRU tail gives room
 * when the zone is full, but never a node with reservations in flight
 * (their settlement needs it).  NULL: every node is in use.  Under the
 * lock.
 */

ngx_http_gpugate_limits_node_t *
ngx_http_gpugate_limits_node(ngx_http_gpugate_limits_zone_t *z,
    ngx_uint_t kind, int64_t id, ngx_str_t *name, ngx_log_t *log)
{
    ngx_uint_t                       tries;
    ngx_queue_t                     *q;
    ngx_rbtree_key_t                 hash;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_http_gpugate_limits_node_t   look, *ln;

    hash = ngx_http_gpugate_limits_hash(kind, id);
    look.kind = kind;
    look.id = id;

    node = z->sh->rbtree.root;
    sentinel = z->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        ln = (ngx_http_gpugate_limits_node_t *) node;

        switch (ngx_http_gpugate_limits_cmp(&look, ln)) {
        case 0:
            ngx_queue_remove(&ln->lru);
            ngx_queue_insert_head(&z->sh->lru, &ln->lru);
            return ln;
        case -1:
            node = node->left;
            break;
        default:
            node = node->right;
        }
    }

    ln = ngx_slab_calloc_locked(z->shpool,
                                sizeof(ngx_http_gpugate_limits_node_t));

    for (tries = 0; ln == NULL && tries < 16; tries++) {

        /* the oldest node without reservations makes room */

        for (q = ngx_queue_last(&z->sh->lru);
             q != ngx_queue_sentinel(&z->sh->lru);
             q = ngx_queue_prev(q))
        {
            ln = ngx_queue_data(q, ngx_http_gpugate_limits_node_t, lru);

            if (ln->inflight == 0 && !ln->syncing) {
                break;
            }
        }

        if (q == ngx_queue_sentinel(&z->sh->lru)) {
            break;
        }

        ln = ngx_queue_data(q, ngx_http_gpugate_limits_node_t, lru);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                       "gpugate limits: node kind %ui id %L evicted",
                       ln->kind, ln->id);

        ngx_queue_remove(q);
        ngx_rbtree_delete(&z->sh->rbtree, &ln->node);
        ngx_slab_free_locked(z->shpool, ln);
        z->sh->nodes--;
        z->sh->evicted++;

        ln = ngx_slab_calloc_locked(z->shpool,
                                    sizeof(ngx_http_gpugate_limits_node_t));
    }

    if (ln == NULL) {
        return NULL;
    }

    ln->node.key = hash;
    ln->kind = kind;
    ln->id = id;
    ln->name_len = gpugate_utf8_cut(ln->name, sizeof(ln->name), name->data,
                                    name->len);

    ngx_rbtree_insert(&z->sh->rbtree, &ln->node);
    ngx_queue_insert_head(&z->sh->lru, &ln->lru);
    z->sh->nodes++;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "gpugate limits: node kind %ui id %L created", kind, id);

    return ln;
}


/*
 * Counts "req" requests, "tok" tokens and "spend" micro-units (negative:
 * a refund) in the node's view, in this host's own counts and, with
 * Redis, in what the next sync owes it.  Nothing goes below zero.  Under
 * the lock.
 */

static void
ngx_http_gpugate_limits_count(ngx_http_gpugate_limits_node_t *ln,
    int64_t req, int64_t tok, int64_t day, int64_t spend)
{
    ngx_http_gpugate_limits_sync_t  *sy;

    gpugate_rl_add(&ln->req, req);
    gpugate_rl_add(&ln->tok, tok);
    gpugate_rl_add(&ln->own_req, req);
    gpugate_rl_add(&ln->own_tok, tok);

    ln->day_tokens = ngx_max(ln->day_tokens + day, 0);
    ln->own_day = ngx_max(ln->own_day + day, 0);
    ln->spent = ngx_max(ln->spent + spend, 0);
    ln->own_spent = ngx_max(ln->own_spent + spend, 0);

    if (ngx_http_gpugate_limits_nodes) {
        sy = ln->sync;
        sy[NGX_HTTP_GPUGATE_LS_REQ].unsynced += req * GPUGATE_RL_SCALE;
        sy[NGX_HTTP_GPUGATE_LS_TOK].unsynced += tok * GPUGATE_RL_SCALE;
        sy[NGX_HTTP_GPUGATE_LS_DAY].unsynced += day;
        sy[NGX_HTTP_GPUGATE_LS_SPEND].unsynced += spend;
    }
}


/* a host's share of a limit while Redis is down: at least 1 */

static int64_t
ngx_http_gpugate_limits_share(int64_t limit)
{
    int64_t  share;

    if (limit <= 0) {
        return 0;
    }

    share = limit / (int64_t) ngx_http_gpugate_limits_nodes;

    return share > 0 ? share : 1;
}


/* with Redis up: this host may add "n" more of dimension "d" before its
   next sync only within its lease */

static ngx_uint_t
ngx_http_gpugate_limits_leased(ngx_http_gpugate_limits_node_t *ln,
    ngx_uint_t d, int64_t n, int64_t limit)
{
    int64_t                          left;
    ngx_http_gpugate_limits_sync_t  *sy;

    sy = &ln->sync[d];
    left = limit - sy->global;

    /* before the first sync "global" is 0: a share of the whole limit */

    return sy->unsynced + sy->sending + n
           <= ngx_max(left, 0) / (int64_t) ngx_http_gpugate_limits_nodes;
}


/*
 * With gpugate_limits_redis, the checks beyond the node's view: up, the
 * leases of this host (its share of what was left at the last sync) and
 * the requests in flight on every node; down, this host's own counts
 * against its share of each limit.
 */

static void
ngx_http_gpugate_limits_check_shared(ngx_http_gpugate_limits_ctx_t *ctx,
    ngx_uint_t i, uint64_t now, ngx_uint_t down, int64_t day_left,
    int64_t period_left)
{
    int64_t                          w;
    ngx_http_gpugate_limit_set_t    *set;
    ngx_http_gpugate_limits_node_t  *ln;

    ln = ctx->side[i].node;
    set = &ctx->side[i].set;

    if (!down) {
        if (set->parallel && ln->inflight + ln->others >= set->parallel) {
            ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_PARALLEL,
                                           1000);
        }

        /* a lease grows at the next sync: retry then */

        if (set->rpm && !ngx_http_gpugate_limits_leased(ln,
                            NGX_HTTP_GPUGATE_LS_REQ, GPUGATE_RL_SCALE,
                            set->rpm * GPUGATE_RL_SCALE))
        {
            ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_REQUESTS,
                                           1000);
        }

        if (set->tpm && !ngx_http_gpugate_limits_leased(ln,
                            NGX_HTTP_GPUGATE_LS_TOK,
                            ctx->reserved * GPUGATE_RL_SCALE,
                            set->tpm * GPUGATE_RL_SCALE))
        {
            ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_TOKENS,
                                           1000);
        }

        if (set->tpd && !ngx_http_gpugate_limits_leased(ln,
                            NGX_HTTP_GPUGATE_LS_DAY, ctx->reserved,
                            set->tpd))
        {
            ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_DAY,
                                           day_left * 1000);
        }

        if (set->budget && !ngx_http_gpugate_limits_leased(ln,
                               NGX_HTTP_GPUGATE_LS_SPEND, ctx->cost,
                               set->budget))
        {
            ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_BUDGET,
                                           period_left * 1000);
        }

        return;
    }

    if (set->parallel
        && ln->inflight >= ngx_http_gpugate_limits_share(set->parallel))
    {
        ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_PARALLEL,
                                       1000);
    }

    w = gpugate_rl_wait(&ln->own_req,
                        ngx_http_gpugate_limits_share(set->rpm), 1);

    if (w) {
        ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_REQUESTS, w);
    }

    w = gpugate_rl_wait(&ln->own_tok,
                        ngx_http_gpugate_limits_share(set->tpm),
                        ctx->reserved);

    if (w) {
        ngx_http_gpugate_limits_refuse(ctx,
            w < 0 ? NGX_HTTP_GPUGATE_LR_TOO_LARGE : NGX_HTTP_GPUGATE_LR_TOKENS,
            w);
    }

    if (set->tpd && ln->own_day + ctx->reserved
                    > ngx_http_gpugate_limits_share(set->tpd))
    {
        ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_DAY,
                                       day_left * 1000);
    }

    if (set->budget && ln->own_spent + ctx->cost
                       > ngx_http_gpugate_limits_share(set->budget))
    {
        ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_BUDGET,
                                       period_left * 1000);
    }

    (void) now;
}


/*
 * Every check of both sides, then (only if all pass) every count: a
 * request is admitted whole or not at all.  NGX_OK admitted or refused
 * (ctx->reason says), NGX_ERROR: no room in the zone.
 */

ngx_int_t
ngx_http_gpugate_limits_reserve(ngx_http_request_t *r,
    ngx_http_gpugate_limits_zone_t *z, ngx_http_gpugate_limits_t *lim,
    ngx_http_gpugate_limits_ctx_t *ctx)
{
    time_t                           sec;
    int64_t                          left;
    uint64_t                         now;
    ngx_uint_t                       i;
    ngx_time_t                      *tp;
    ngx_http_gpugate_limits_node_t  *ln;

    tp = ngx_timeofday();
    sec = tp->sec;
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    ctx->side[NGX_HTTP_GPUGATE_LIMITS_KEY].set = lim->key;
    ctx->side[NGX_HTTP_GPUGATE_LIMITS_TENANT].set = lim->tenant_set;
    ctx->day = gpugate_rl_period(GPUGATE_RL_PERIOD_DAY, sec, &left);
    ctx->wait_ms = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    ctx->side[0].node = ngx_http_gpugate_limits_node(z,
                            NGX_HTTP_GPUGATE_LIMITS_KEY, lim->key_id,
                            &lim->prefix, r->connection->log);

    ctx->side[1].node = ngx_http_gpugate_limits_node(z,
                            NGX_HTTP_GPUGATE_LIMITS_TENANT, lim->tenant_id,
                            &lim->tenant, r->connection->log);

    if (ctx->side[0].node == NULL || ctx->side[1].node == NULL) {
        /* nothing counted: no headers either */
        ctx->side[0].node = NULL;
        ctx->side[1].node = NULL;
        z->sh->full++;
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_ERROR;
    }

    for (i = 0; i < 2; i++) {
        ngx_http_gpugate_limits_check(ctx, i, now, sec, z->sh->down);
    }

    if (ctx->reason == NGX_HTTP_GPUGATE_LR_NONE) {

        for (i = 0; i < 2; i++) {
            ln = ctx->side[i].node;

            ngx_http_gpugate_limits_count(ln, 1, ctx->reserved,
                                          ctx->reserved, ctx->cost);
            ln->inflight++;
            ln->used_at = ngx_current_msec;
        }

        ctx->admitted = 1;
        z->sh->admitted++;

        if (ctx->stream_cut) {
            ngx_http_gpugate_limits_headroom(ctx);
        }

    } else {
        z->sh->refused[ctx->reason]++;
        ctx->side[NGX_HTTP_GPUGATE_LIMITS_TENANT].node
            ->limited[ctx->reason]++;
    }

    ngx_http_gpugate_limits_headers(ctx);

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;
}


/* one side's checks: the first reason refused is kept, and the longest
   wait of every check that failed (capacity returns when all pass) */

static void
ngx_http_gpugate_limits_check(ngx_http_gpugate_limits_ctx_t *ctx,
    ngx_uint_t i, uint64_t now, time_t sec, ngx_uint_t down)
{
    int64_t                          w, period, left, day_left, period_left;
    ngx_http_gpugate_limit_set_t    *set;
    ngx_http_gpugate_limits_node_t  *ln;

    ln = ctx->side[i].node;
    set = &ctx->side[i].set;
    ln->set = *set;
    ln->set_known = 1;

    gpugate_rl_drain(&ln->req, set->rpm, now);
    gpugate_rl_drain(&ln->tok, set->tpm, now);

    if (ngx_http_gpugate_limits_nodes) {
        gpugate_rl_drain(&ln->own_req,
                         ngx_http_gpugate_limits_share(set->rpm), now);
        gpugate_rl_drain(&ln->own_tok,
                         ngx_http_gpugate_limits_share(set->tpm), now);
    }

    period = gpugate_rl_period(GPUGATE_RL_PERIOD_DAY, sec, &left);
    day_left = left;
    period_left = left;

    if (ln->day != period) {
        ln->day = period;
        ln->day_tokens = 0;
        ln->own_day = 0;
        ln->sync[NGX_HTTP_GPUGATE_LS_DAY].unsynced = 0;
        ln->sync[NGX_HTTP_GPUGATE_LS_DAY].global = 0;
    }

    if (set->tpd && ln->day_tokens + ctx->reserved > set->tpd) {
        ngx_http_gpugate_limits_refuse(ctx,
            ctx->reserved > set->tpd ? NGX_HTTP_GPUGATE_LR_TOO_LARGE
                                     : NGX_HTTP_GPUGATE_LR_DAY,
            ctx->reserved > set->tpd ? -1 : left * 1000);
    }

    if (set->budget_period != NGX_HTTP_GPUGATE_PERIOD_NONE) {
        period = gpugate_rl_period(
                     set->budget_period == NGX_HTTP_GPUGATE_PERIOD_MONTH
                     ? GPUGATE_RL_PERIOD_MONTH : GPUGATE_RL_PERIOD_DAY,
                     sec, &left);

        period_left = left;

        if (ln->period_kind != set->budget_period || ln->period != period) {
            ln->period_kind = set->budget_period;
            ln->period = period;
            ln->spent = 0;
            ln->own_spent = 0;
            ln->sync[NGX_HTTP_GPUGATE_LS_SPEND].unsynced = 0;
            ln->sync[NGX_HTTP_GPUGATE_LS_SPEND].global = 0;
        }

        ctx->period[i] = period;

        if (set->budget
            && (ln->spent >= set->budget
                || ln->spent + ctx->cost > set->budget))
        {
            ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_BUDGET,
                                           left * 1000);
        }
    }

    if (set->parallel && ln->inflight >= set->parallel) {
        /* a slot frees when some answer ends: no date to give */
        ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_PARALLEL,
                                       1000);
    }

    w = gpugate_rl_wait(&ln->req, set->rpm, 1);

    if (w) {
        ngx_http_gpugate_limits_refuse(ctx, NGX_HTTP_GPUGATE_LR_REQUESTS, w);
    }

    w = gpugate_rl_wait(&ln->tok, set->tpm, ctx->reserved);

    if (w) {
        ngx_http_gpugate_limits_refuse(ctx,
            w < 0 ? NGX_HTTP_GPUGATE_LR_TOO_LARGE : NGX_HTTP_GPUGATE_LR_TOKENS,
            w);
    }

    if (ngx_http_gpugate_limits_nodes) {
        ngx_http_gpugate_limits_check_shared(ctx, i, now, down, day_left,
                                             period_left);
    }
}


static void
ngx_http_gpugate_limits_refuse(ngx_http_gpugate_limits_ctx_t *ctx,
    ngx_uint_t reason, int64_t wait)
{
    /* what can never fit outranks what is only busy now */

    if (ctx->reason == NGX_HTTP_GPUGATE_LR_NONE
        || reason == NGX_HTTP_GPUGATE_LR_TOO_LARGE)
    {
        ctx->reason = reason;
    }

    if (ctx->wait_ms >= 0 && (wait < 0 || wait > ctx->wait_ms)) {
        ctx->wait_ms = wait;
    }
}


/*
 * How far a stream may run past its reservation before it crosses a
 * day's tokens or a budget, with what is left of them once it is
 * counted: its completion tokens beyond that are cut.
 */

static void
ngx_http_gpugate_limits_headroom(ngx_http_gpugate_limits_ctx_t *ctx)
{
    int64_t                          left, room;
    ngx_uint_t                       i;
    ngx_http_gpugate_limit_set_t    *set;
    ngx_http_gpugate_limits_node_t  *ln;

    room = -1;

    for (i = 0; i < 2; i++) {
        ln = ctx->side[i].node;
        set = &ctx->side[i].set;

        if (set->tpd) {
            left = ngx_max(set->tpd - ln->day_tokens, 0);
            room = (room < 0) ? left : ngx_min(room, left);
        }

        if (set->budget && ctx->price_out > 0) {
            left = ngx_max(set->budget - ln->spent, 0);

            /* micro-units left at price_out micro-units per 1M tokens */
            left = (left > GPUGATE_RL_COUNT_MAX / 1000000)
                   ? GPUGATE_RL_COUNT_MAX
                   : left * 1000000 / ctx->price_out;

            room = (room < 0) ? left : ngx_min(room, left);
        }
    }

    ctx->cut_after = (room < 0) ? -1 : ctx->est.completion + room;
}


/* the x-ratelimit-* values: of the side with less left, for each kind */

static void
ngx_http_gpugate_limits_headers(ngx_http_gpugate_limits_ctx_t *ctx)
{
    int64_t                          rem;
    ngx_uint_t                       i;
    ngx_http_gpugate_limit_set_t    *set;
    ngx_http_gpugate_limits_node_t  *ln;

    ctx->requests.limit = -1;
    ctx->tokens.limit = -1;

    for (i = 0; i < 2; i++) {
        ln = ctx->side[i].node;
        set = &ctx->side[i].set;

        if (set->rpm) {
            rem = gpugate_rl_remaining(&ln->req, set->rpm);

            if (ctx->requests.limit < 0 || rem < ctx->requests.remaining) {
                ctx->requests.limit = set->rpm;
                ctx->requests.remaining = rem;
                ctx->requests.reset_ms = gpugate_rl_reset_ms(&ln->req,
                                                             set->rpm);
            }
        }

        if (set->tpm) {
            rem = gpugate_rl_remaining(&ln->tok, set->tpm);

            if (ctx->tokens.limit < 0 || rem < ctx->tokens.remaining) {
                ctx->tokens.limit = set->tpm;
                ctx->tokens.remaining = rem;
                ctx->tokens.reset_ms = gpugate_rl_reset_ms(&ln->tok,
                                                           set->tpm);
            }
        }
    }
}


/*
 * The reservation replaced by what the request used: the token buckets,
 * today's tokens and the period's spend get the difference (a refund
 * when the answer was shorter, a debt when longer), and the request
 * leaves the in-flight counts.  Counts of a day or period that has
 * ended since are left alone.
 */

void
ngx_http_gpugate_limits_settle(ngx_http_gpugate_limits_zone_t *z,
    ngx_http_gpugate_limits_ctx_t *ctx, int64_t tokens, int64_t cost,
    ngx_log_t *log)
{
    time_t                           sec;
    uint64_t                         now;
    ngx_uint_t                       i;
    ngx_time_t                      *tp;
    ngx_http_gpugate_limits_node_t  *ln;

    if (!ctx->admitted || ctx->settled) {
        return;
    }

    ctx->settled = 1;

    tp = ngx_timeofday();
    sec = tp->sec;
    now = (uint64_t) sec * 1000 + tp->msec;

    ngx_shmtx_lock(&z->shpool->mutex);

    for (i = 0; i < 2; i++) {
        ln = ctx->side[i].node;

        gpugate_rl_drain(&ln->tok, ctx->side[i].set.tpm, now);

        /* a day or period that began since owes nothing to this
           request */

        ngx_http_gpugate_limits_count(ln, 0, tokens - ctx->reserved,
            (ln->day == ctx->day) ? tokens - ctx->reserved : 0,
            (ctx->side[i].set.budget_period != NGX_HTTP_GPUGATE_PERIOD_NONE
             && ln->period == ctx->period[i]
             && ln->period_kind == ctx->side[i].set.budget_period)
            ? cost - ctx->cost : 0);

        if (ln->inflight > 0) {
            ln->inflight--;
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, log, 0,
                   "gpugate limits: settled %L tokens (reserved %L), "
                   "cost %L (reserved %L)", tokens, ctx->reserved, cost,
                   ctx->cost);
}
