
/*
 * Copyright (C) gpugate authors
 *
 * Limits and budgets inside the limits module: the shared-memory state
 * of each limited key and tenant (a red-black tree plus an LRU queue in
 * one slab zone, the shape of ngx_http_limit_req_module), the
 * configuration, and the request's reservation.
 */


#ifndef _NGX_HTTP_GPUGATE_LIMITS_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_LIMITS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_auth_api.h"
#include "ngx_http_gpugate_limits_api.h"
#include "ngx_http_gpugate_redis.h"
#include "gpugate_ratelimit.h"


#define NGX_HTTP_GPUGATE_LIMITS_KEY     0
#define NGX_HTTP_GPUGATE_LIMITS_TENANT  1

#define NGX_HTTP_GPUGATE_LIMITS_NAME    64

/* why a request was refused: the reasons of the metrics' label */
#define NGX_HTTP_GPUGATE_LR_NONE        0
#define NGX_HTTP_GPUGATE_LR_TOO_LARGE   1
#define NGX_HTTP_GPUGATE_LR_PARALLEL    2
#define NGX_HTTP_GPUGATE_LR_REQUESTS    3
#define NGX_HTTP_GPUGATE_LR_TOKENS      4
#define NGX_HTTP_GPUGATE_LR_DAY         5
#define NGX_HTTP_GPUGATE_LR_BUDGET      6
#define NGX_HTTP_GPUGATE_LR_N           7


/* the shared counts' dimensions synced through Redis */
#define NGX_HTTP_GPUGATE_LS_REQ         0
#define NGX_HTTP_GPUGATE_LS_TOK         1
#define NGX_HTTP_GPUGATE_LS_DAY         2
#define NGX_HTTP_GPUGATE_LS_SPEND       3
#define NGX_HTTP_GPUGATE_LS_N           4

/* subjects one sync sends at most (one EVAL) */
#define NGX_HTTP_GPUGATE_LIMITS_BATCH   128


/* this host's part of one shared count (gpugate_limits_redis) */
typedef struct {
    int64_t              unsynced;    /* added here since the last sync
                                         (bucket units, tokens, micros;
                                         refunds negative) */
    int64_t              sending;     /* claimed by the sync in flight */
    int64_t              global;      /* the gateway's count at the last
                                         sync: until the next, this host
                                         may add 1/nodes of what it left */
} ngx_http_gpugate_limits_sync_t;


/* the state of one key or tenant, shared by the host's workers */
typedef struct {
    ngx_rbtree_node_t    node;        /* key: kind and id */
    ngx_queue_t          lru;         /* head: most recently used */
    int64_t              id;          /* api_keys.id or tenants.id */
    ngx_uint_t           kind;        /* NGX_HTTP_GPUGATE_LIMITS_KEY... */
    gpugate_rl_bucket_t  req;         /* requests per minute */
    gpugate_rl_bucket_t  tok;         /* tokens per minute, reservations
                                         included */
    int64_t              inflight;    /* admitted and not yet settled; a
                                         node with any is never evicted */
    int64_t              day;         /* UTC day "day_tokens" counts */
    int64_t              day_tokens;  /* tokens of that day */
    ngx_uint_t           period_kind; /* GPUGATE_RL_PERIOD_* of "spent" */
    int64_t              period;      /* the period "spent" counts */
    int64_t              spent;       /* micro-units of that period */
    ngx_uint_t           limited[NGX_HTTP_GPUGATE_LR_N];
                                      /* refusals by reason (tenant
                                         nodes: the metrics' counters) */
    ngx_http_gpugate_limits_sync_t  sync[NGX_HTTP_GPUGATE_LS_N];
                                      /* with Redis: what the buckets and
                                         counters above (then the whole
                                         gateway's) owe Redis */
    gpugate_rl_bucket_t  own_req;     /* this host's requests alone, */
    gpugate_rl_bucket_t  own_tok;     /*   its tokens, its day's tokens */
    int64_t              own_day;     /*   and spend: the fallback's */
    int64_t              own_spent;   /*   per-host share is checked on
                                         them while Redis is down */
    int64_t              others;      /* requests in flight on other
                                         gateway nodes, at the last sync */
    ngx_msec_t           used_at;     /* last admission: recently used
                                         subjects are synced */
    ngx_msec_t           sync_at;     /* when "syncing" was set: a worker
                                         that died with a sync in flight
                                         leaves it, taken back after 10 s */
    ngx_http_gpugate_limit_set_t  set; /* the limits last seen, for the
                                         sync (Redis drains at their
                                         rates) */
    unsigned             syncing:1;   /* a worker's sync holds "sending";
                                         the node is not evicted */
    unsigned             set_known:1; /* "set" came from a request (a
                                         node pulled from Redis's active
                                         set has none yet) */
    size_t               name_len;    /* tenant name or key prefix, */
    u_char               name[NGX_HTTP_GPUGATE_LIMITS_NAME];
                                      /*   cut, for the pages */
} ngx_http_gpugate_limits_node_t;


typedef struct {
    ngx_rbtree_t         rbtree;      /* (kind, id) -> node */
    ngx_rbtree_node_t    sentinel;    /* rbtree's sentinel */
    ngx_queue_t          lru;         /* every node, LRU order */
    ngx_uint_t           nodes;       /* nodes in the tree */
    ngx_uint_t           evicted;     /* nodes dropped for room */
    ngx_uint_t           full;        /* admissions refused for want of
                                         room (every node in use) */
    ngx_uint_t           admitted;    /* requests admitted */
    ngx_uint_t           refused[NGX_HTTP_GPUGATE_LR_N];
                                      /* refusals by reason, all tenants */
    ngx_msec_t           synced_at;   /* last sync Redis answered */
    ngx_uint_t           down;        /* 1: Redis unreachable, each host
                                         enforces its share */
    ngx_uint_t           fallbacks;   /* times the fallback began */
    ngx_uint_t           syncs;       /* syncs Redis answered */
    ngx_uint_t           sync_errors; /* syncs that failed */
    ngx_uint_t           commands;    /* Redis commands sent (EVALs) */
} ngx_http_gpugate_limits_shctx_t;


typedef struct {
    ngx_http_gpugate_limits_shctx_t  *sh;      /* in shared memory */
    ngx_slab_pool_t                  *shpool;  /* the zone's allocator */
} ngx_http_gpugate_limits_zone_t;


typedef struct {
    ngx_shm_zone_t      *zone;        /* gpugate_limits_zone; NULL: none */
    ngx_http_gpugate_redis_conf_t  redis;  /* gpugate_limits_redis; addr
                                              NULL: this host alone */
    ngx_msec_t           sync;        /* between syncs */
    ngx_uint_t           nodes;       /* gateway nodes sharing Redis: the
                                         share of a lease and of the
                                         fallback */
} ngx_http_gpugate_limits_main_conf_t;


typedef struct {
    ngx_flag_t           enable;      /* "gpugate_limits" */
    ngx_flag_t           stream_cut;  /* "gpugate_limits_stream_cut": a
                                         stream crossing a day's tokens or
                                         a budget is ended */
    ngx_int_t            max_tokens;  /* estimate of an uncapped answer */
    ngx_int_t            bytes_per_token; /* prompt estimate's divisor */
} ngx_http_gpugate_limits_loc_conf_t;


/* one side (key or tenant) of a request's reservation */
typedef struct {
    ngx_http_gpugate_limits_node_t  *node;    /* pinned by inflight */
    ngx_http_gpugate_limit_set_t     set;     /* its limits at admission */
} ngx_http_gpugate_limits_side_t;


/* the values of the x-ratelimit-* headers, -1: not limited */
typedef struct {
    int64_t              limit;       /* the stricter side's limit */
    int64_t              remaining;   /* what is left of it */
    int64_t              reset_ms;    /* until the bucket is empty */
} ngx_http_gpugate_limits_hdr_t;


typedef struct {
    ngx_http_request_t      *request;     /* the main request: the pool
                                             cleanup has the ctx even
                                             after an internal redirect
                                             cleared r->ctx */
    ngx_http_gpugate_limits_side_t  side[2];  /* key, tenant */
    gpugate_rl_estimate_t    est;         /* the reservation's tokens */
    int64_t                  reserved;    /* est.prompt + est.completion */
    int64_t                  cost;        /* its spend, micro-units */
    int64_t                  price_in;    /* the model's prices */
    int64_t                  price_out;
    int64_t                  day;         /* UTC day of the admission */
    int64_t                  period[2];   /* each side's budget period */
    ngx_http_gpugate_limits_hdr_t  requests; /* header values */
    ngx_http_gpugate_limits_hdr_t  tokens;
    ngx_uint_t               reason;      /* NGX_HTTP_GPUGATE_LR_*: why
                                             refused, NONE: admitted */
    int64_t                  wait_ms;     /* until it would fit, -1:
                                             never */
    int64_t                  cut_after;   /* token events a stream may
                                             send before it crosses a
                                             day's tokens or a budget,
                                             -1: no cut */
    int64_t                  cut_events;  /* token events when it was cut */
    unsigned                 admitted:1;  /* a reservation is held */
    unsigned                 settled:1;   /* and was given back */
    unsigned                 priced:1;    /* the model has prices */
    unsigned                 stream_cut:1; /* cut_after is to be set */
    unsigned                 cut:1;       /* the stream was ended */
} ngx_http_gpugate_limits_ctx_t;


extern ngx_module_t  ngx_http_gpugate_limits_module;


/* ngx_http_gpugate_limits_shm.c */
ngx_int_t ngx_http_gpugate_limits_init_zone(ngx_shm_zone_t *zone,
    void *data);
ngx_http_gpugate_limits_node_t *ngx_http_gpugate_limits_node(
    ngx_http_gpugate_limits_zone_t *z, ngx_uint_t kind, int64_t id,
    ngx_str_t *name, ngx_log_t *log);
ngx_int_t ngx_http_gpugate_limits_reserve(ngx_http_request_t *r,
    ngx_http_gpugate_limits_zone_t *z, ngx_http_gpugate_limits_t *lim,
    ngx_http_gpugate_limits_ctx_t *ctx);
void ngx_http_gpugate_limits_settle(ngx_http_gpugate_limits_zone_t *z,
    ngx_http_gpugate_limits_ctx_t *ctx, int64_t tokens, int64_t cost,
    ngx_log_t *log);
const char *ngx_http_gpugate_limits_reason_name(ngx_uint_t reason);

/* ngx_http_gpugate_limits_sync.c */
ngx_int_t ngx_http_gpugate_limits_sync_start(ngx_cycle_t *cycle);
void ngx_http_gpugate_limits_sync_stop(ngx_cycle_t *cycle);
void ngx_http_gpugate_limits_sync_add(ngx_http_gpugate_limits_node_t *ln,
    ngx_http_gpugate_limits_ctx_t *ctx, ngx_uint_t i, int64_t req,
    int64_t tok, int64_t spend);

/* with gpugate_limits_redis, the nodes sharing it; 0: this host alone */
extern ngx_uint_t  ngx_http_gpugate_limits_nodes;

/* the zone of the running configuration, for the pages; NULL: none */
extern ngx_shm_zone_t  *ngx_http_gpugate_limits_shm;


#endif /* _NGX_HTTP_GPUGATE_LIMITS_H_INCLUDED_ */
