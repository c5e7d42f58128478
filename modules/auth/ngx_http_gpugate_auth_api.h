
/*
 * Copyright (C) gpugate authors
 *
 * What the auth module offers the other gpugate modules: its counters for
 * the metrics and status pages, and its PostgreSQL pool, which the tunnel
 * shares to read agent verifiers (one set of connections per worker).
 * Nothing else of the auth module is meant to be used outside
 * modules/auth/.
 */


#ifndef _NGX_HTTP_GPUGATE_AUTH_API_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_AUTH_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_pg.h"
#include "ngx_http_gpugate_redis.h"


/* the auth cache's counters, for the metrics and status pages */
typedef struct {
    ngx_atomic_uint_t  shm_hits;     /* answered from shared memory */
    ngx_atomic_uint_t  redis_hits;   /* answered by Redis */
    ngx_atomic_uint_t  pg_hits;      /* answered by PostgreSQL */
    ngx_atomic_uint_t  stale;        /* stale entries served */
    ngx_atomic_uint_t  unavailable;  /* 503: no layer could answer */
    ngx_atomic_uint_t  invalidated;  /* entries dropped by messages */
    ngx_atomic_uint_t  evicted;      /* entries dropped for space */
} ngx_http_gpugate_auth_counts_t;

/* NGX_DECLINED when no gpugate_auth_zone is configured */
ngx_int_t ngx_http_gpugate_auth_counts(ngx_http_gpugate_auth_counts_t *out);

/*
 * Another module's prepared statements join the pool that
 * "gpugate_auth_postgres" configures; the pool then starts in every
 * worker even where no location has "gpugate_auth on".  For a
 * postconfiguration handler.  NGX_DECLINED: no gpugate_auth_postgres.
 */
ngx_int_t ngx_http_gpugate_auth_pg_share(ngx_conf_t *cf,
    ngx_http_gpugate_pg_stmt_t *stmts, ngx_uint_t n);

/*
 * "agent <name>" on the invalidation channel goes to the handler another
 * module (the tunnel) set from its postconfiguration, which returns how
 * many of the agent's connections it closed; without one it is ignored.
 * The auth module knows nothing of agents: it only carries the message.
 */
typedef ngx_uint_t (*ngx_http_gpugate_auth_agent_pt)(ngx_str_t *name);

void ngx_http_gpugate_auth_on_agent(ngx_http_gpugate_auth_agent_pt handler);

/* "drain <name>" likewise: the agent's drain state changed (006) */
void ngx_http_gpugate_auth_on_drain(ngx_http_gpugate_auth_agent_pt handler);

/*
 * A request that another module (the batch runner) vouches for: the
 * handler, set from that module's postconfiguration, fills the digest
 * of the key the request runs as and answers NGX_OK; NGX_DECLINED: not
 * such a request, the API key is read as usual; NGX_ERROR: it claimed to
 * be one and is refused (401).  The key record is then looked up, and
 * checked (revoked, expired, models, limits), as for a presented key.
 */
typedef ngx_int_t (*ngx_http_gpugate_auth_trusted_pt)(ngx_http_request_t *r,
    u_char *digest);

void ngx_http_gpugate_auth_on_trusted(
    ngx_http_gpugate_auth_trusted_pt handler);

/* this worker's PostgreSQL pool, NULL if none */
ngx_http_gpugate_pg_t *ngx_http_gpugate_auth_pg(void);

/*
 * This worker's Redis command connection and the invalidation channel,
 * for the admin API, which invalidates what it changes the way
 * gpugate-keys does (DEL of "gpugate:key:<digest>", then a message on
 * the channel); NULL without "gpugate_auth_redis".
 */
ngx_http_gpugate_redis_t *ngx_http_gpugate_auth_redis_cmd(ngx_str_t *channel);

/*
 * How long an answer that PostgreSQL gave may be used, in seconds:
 * fresh (ttl=) plus stale while PostgreSQL is down (stale=) of
 * "gpugate_auth_zone", so that the tunnel's cached verifiers last as
 * long as cached keys.
 */
time_t ngx_http_gpugate_auth_lifetime(ngx_cycle_t *cycle);


/*
 * The limits that apply to the request's key, for the limits module: the
 * key's own and its tenant's (both apply, the stricter wins).  0 means
 * "no limit" for every limit; the priorities and the region pin
 * (sql/007_priority.sql) say "none" with -1 and "".  Spend is in
 * micro-units of the currency the operator prices models in (1 unit =
 * 1000000).
 */
typedef enum {
    NGX_HTTP_GPUGATE_PERIOD_NONE = 0,
    NGX_HTTP_GPUGATE_PERIOD_DAY,
    NGX_HTTP_GPUGATE_PERIOD_MONTH
} ngx_http_gpugate_period_e;


/* a region's name as the tunnel spells it (gpugate_tunnel_check_region) */
#define NGX_HTTP_GPUGATE_KEY_REGION_MAX  31


typedef struct {
    int64_t     rpm;            /* requests per minute */
    int64_t     tpm;            /* tokens (prompt + completion)/minute */
    int64_t     parallel;       /* requests in flight, streams included */
    int64_t     tpd;            /* tokens per UTC day */
    int64_t     budget;         /* spend per period, micro-units */
    ngx_uint_t  budget_period;  /* ngx_http_gpugate_period_e */
    int64_t     priority;       /* default priority 0..9 (tunnel wait
                                   queue); -1: none set */
    int64_t     priority_max;   /* the most X-Gpugate-Priority may ask;
                                   -1: none set */
    u_char      region[NGX_HTTP_GPUGATE_KEY_REGION_MAX];
                                /* the region requests are pinned to */
    size_t      region_len;     /* its length; 0: not pinned */
} ngx_http_gpugate_limit_set_t;


typedef struct {
    int64_t                       key_id;     /* api_keys.id */
    int64_t                       tenant_id;  /* tenants.id */
    ngx_str_t                     tenant;     /* tenant name (r->pool) */
    ngx_str_t                     prefix;     /* key prefix (r->pool) */
    ngx_http_gpugate_limit_set_t  key;        /* the key's own limits */
    ngx_http_gpugate_limit_set_t  tenant_set; /* the tenant's limits */
} ngx_http_gpugate_limits_t;

/*
 * Fills "out" from the key record auth granted this request (no lookup:
 * the limits travel with the cached record).  NGX_DECLINED when auth did
 * not run or did not grant access here.
 */
ngx_int_t ngx_http_gpugate_auth_limits(ngx_http_request_t *r,
    ngx_http_gpugate_limits_t *out);


#endif /* _NGX_HTTP_GPUGATE_AUTH_API_H_INCLUDED_ */
