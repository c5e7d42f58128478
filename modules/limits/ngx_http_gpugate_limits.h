
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
} ngx_http_gpugate_limits_shctx_t;


typedef struct {
    ngx_http_gpugate_limits_shctx_t  *sh;      /* in shared memory */
    ngx_slab_pool_t                  *shpool;  /* the zone's allocator */
} ngx_http_gpugate_limits_zone_t;


typedef struct {
    ngx_shm_zone_t      *zone;        /* gpugate_limits_zone; NULL: none */
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
ngx_int_t ngx_http_gpugate_limits_reserve(ngx_http_request_t *r,
    ngx_http_gpugate_limits_zone_t *z, ngx_http_gpugate_limits_t *lim,
    ngx_http_gpugate_limits_ctx_t *ctx);
void ngx_http_gpugate_limits_settle(ngx_http_gpugate_limits_zone_t *z,
    ngx_http_gpugate_limits_ctx_t *ctx, int64_t tokens, int64_t cost,
    ngx_log_t *log);
const char *ngx_http_gpugate_limits_reason_name(ngx_uint_t reason);


#endif /* _NGX_HTTP_GPUGATE_LIMITS_H_INCLUDED_ */
