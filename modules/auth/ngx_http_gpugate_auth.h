
/*
 * Copyright (C) gpugate authors
 *
 * API-key auth: what the access handler, the shared-memory cache and the
 * lookup chain (Redis, PostgreSQL) exchange.
 */


#ifndef _NGX_HTTP_GPUGATE_AUTH_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_AUTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_pg.h"
#include "ngx_http_gpugate_redis.h"
#include "ngx_http_gpugate_auth_api.h"


#define NGX_HTTP_GPUGATE_DIGEST_LEN   32


/* why a key is refused; 0 means it is valid */
typedef enum {
    NGX_HTTP_GPUGATE_KEY_OK = 0,
    NGX_HTTP_GPUGATE_KEY_UNKNOWN,
    NGX_HTTP_GPUGATE_KEY_REVOKED,
    NGX_HTTP_GPUGATE_KEY_EXPIRED,
    NGX_HTTP_GPUGATE_KEY_DISABLED
} ngx_http_gpugate_key_refusal_e;


/* which layer answered, exposed as $gpugate_auth_source */
typedef enum {
    NGX_HTTP_GPUGATE_SRC_NONE = 0,
    NGX_HTTP_GPUGATE_SRC_SHM,
    NGX_HTTP_GPUGATE_SRC_REDIS,
    NGX_HTTP_GPUGATE_SRC_POSTGRES,
    NGX_HTTP_GPUGATE_SRC_STALE
} ngx_http_gpugate_auth_source_e;


typedef struct {
    ngx_uint_t                    refusal;       /* ..._key_refusal_e */
    int64_t                       key_id;        /* api_keys.id */
    int64_t                       tenant_id;     /* tenants.id */
    ngx_http_gpugate_limit_set_t  key_limits;    /* the key's own limits,
                                                    0: none */
    ngx_http_gpugate_limit_set_t  tenant_limits; /* its tenant's, same */
    time_t                        expires;       /* key expiry (epoch),
                                                    0: never */
    ngx_str_t                     name;          /* key's display name */
    ngx_str_t                     prefix;        /* first characters of
                                                    the key */
    ngx_str_t                     tenant;        /* tenant name */
    ngx_str_t                     models;        /* allowed models,
                                                    comma-separated, "*"
                                                    for every model */
} ngx_http_gpugate_key_info_t;


/* counters kept in shared memory, for logs now and metrics later */
typedef struct {
    ngx_atomic_t     shm_hits;     /* answered from shared memory */
    ngx_atomic_t     redis_hits;   /* answered by Redis */
    ngx_atomic_t     pg_hits;      /* answered by PostgreSQL */
    ngx_atomic_t     stale;        /* stale entries served in an outage */
    ngx_atomic_t     unavailable;  /* 503: no layer could answer */
    ngx_atomic_t     invalidated;  /* entries expired by messages */
    ngx_atomic_t     evicted;      /* entries dropped for space */
    ngx_atomic_t     not_cached;   /* refusals not cached: the negative
                                      budget is spent on newer ones */
    ngx_atomic_t     rejected;     /* Redis entries that failed the
                                      HMAC check */
} ngx_http_gpugate_auth_stats_t;


typedef struct ngx_http_gpugate_auth_cache_s  ngx_http_gpugate_auth_cache_t;


typedef struct {
    ngx_shm_zone_t                *zone;      /* "gpugate_auth_zone" */
    time_t                         ttl;       /* fresh lifetime in shm */
    time_t                         negative_ttl; /* same, refused keys */
    time_t                         stale;     /* grace while PG is down */
    time_t                         redis_ttl; /* lifetime in Redis,
                                                 capped at ttl */
    ngx_str_t                      secret;    /* HMAC key of Redis entries,
                                                 empty: not signed */
    ngx_http_gpugate_pg_conf_t     pg;        /* conninfo.len 0: none */
    ngx_http_gpugate_redis_conf_t  redis;     /* addr NULL: none */
    ngx_flag_t                     used;      /* auth is on somewhere, or
                                                 another module shares
                                                 the pool */
} ngx_http_gpugate_auth_main_conf_t;


typedef struct {
    ngx_flag_t                     enable;    /* "gpugate_auth" */
    ngx_array_t                   *headers;   /* of ngx_str_t, lowercase,
                                                 where keys are read */
} ngx_http_gpugate_auth_loc_conf_t;


typedef struct {
    ngx_http_request_t            *request;   /* owner */
    u_char                         digest[NGX_HTTP_GPUGATE_DIGEST_LEN];
                                              /* SHA-256 of the key */
    ngx_http_gpugate_key_info_t    info;      /* the answer, in r->pool */
    ngx_uint_t                     source;    /* ..._auth_source_e */
    ngx_queue_t                    wait;      /* in a lookup's waiters */
    unsigned                       waiting:1; /* a lookup is pending */
    unsigned                       answered:1; /* "info" is set */
    unsigned                       granted:1; /* access allowed */
    unsigned                       refused:1; /* 401 sent */
    unsigned                       unavailable:1; /* 503 sent: no layer
                                                     could answer */
} ngx_http_gpugate_auth_ctx_t;


extern ngx_module_t  ngx_http_gpugate_auth_module;


/* the variables, for the preconfiguration (ngx_http_gpugate_auth_vars.c) */

ngx_int_t ngx_http_gpugate_auth_add_variables(ngx_conf_t *cf);


/* the access phase handler and the per-worker lookup machinery */

ngx_int_t ngx_http_gpugate_auth_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_gpugate_auth_init_worker(ngx_cycle_t *cycle,
    ngx_http_gpugate_auth_main_conf_t *amcf);
void ngx_http_gpugate_auth_exit_worker(void);


/* the key in a request, and its removal (ngx_http_gpugate_auth_key.c) */

/* NGX_OK and the first key found in "key", NGX_DECLINED: none */
ngx_int_t ngx_http_gpugate_auth_read_key(ngx_http_request_t *r,
    ngx_http_gpugate_auth_loc_conf_t *alcf, ngx_str_t *key);

/* every header a key can come in leaves the request */
ngx_int_t ngx_http_gpugate_auth_strip(ngx_http_request_t *r,
    ngx_http_gpugate_auth_loc_conf_t *alcf);


/* a cache entry from PostgreSQL, and as JSON (..._auth_entry.c) */

/*
 * PostgreSQL's row (or none: an unknown key, named by "prefix") into
 * "info", strings in "pool".  NGX_ERROR: not a usable row (logged).
 */
ngx_int_t ngx_http_gpugate_auth_from_row(ngx_pool_t *pool, PGresult *res,
    u_char *prefix, ngx_http_gpugate_key_info_t *info);

/* "s" into "info" (strings in "pool") and when it was written */
ngx_int_t ngx_http_gpugate_auth_from_json(ngx_pool_t *pool, const char *s,
    size_t len, ngx_http_gpugate_key_info_t *info, time_t *written);

/* the entry's JSON, written now; malloc()ed, the caller frees it */
char *ngx_http_gpugate_auth_to_json(ngx_http_gpugate_key_info_t *info);


/* shared-memory cache: one zone per host, shared by every worker */

ngx_shm_zone_t *ngx_http_gpugate_auth_cache_zone(ngx_conf_t *cf,
    ngx_str_t *name, size_t size, ngx_uint_t negative_max, void *tag);

/*
 * Looks a digest up and copies the entry into "info" (strings in pool).
 * NGX_OK: fresh entry.  NGX_AGAIN: expired but inside the stale grace
 * period (only when "stale" is set).  NGX_DECLINED: nothing usable.
 */
ngx_int_t ngx_http_gpugate_auth_cache_get(ngx_shm_zone_t *zone,
    u_char *digest, ngx_uint_t stale, ngx_http_gpugate_key_info_t *info,
    ngx_pool_t *pool);

/* Stores an entry: fresh for "ttl" seconds, then stale for "grace". */
void ngx_http_gpugate_auth_cache_put(ngx_shm_zone_t *zone, u_char *digest,
    ngx_http_gpugate_key_info_t *info, time_t ttl, time_t grace);

/*
 * Makes one entry (digest), every entry of a tenant (digest == NULL,
 * tenant_id > 0) or every entry (digest == NULL, tenant_id 0) due for a new
 * lookup.  Valid keys keep their stale grace: an invalidation message,
 * which anyone able to publish on Redis can send, costs a lookup and never
 * availability while PostgreSQL is down.  Refused keys are dropped.
 */
ngx_uint_t ngx_http_gpugate_auth_cache_expire(ngx_shm_zone_t *zone,
    u_char *digest, int64_t tenant_id);

ngx_http_gpugate_auth_stats_t *ngx_http_gpugate_auth_cache_stats(
    ngx_shm_zone_t *zone);


/* an invalidation message from the Redis channel (_auth_bus.c) */
void ngx_http_gpugate_auth_invalidate(ngx_shm_zone_t *zone, ngx_str_t *msg);


#endif /* _NGX_HTTP_GPUGATE_AUTH_H_INCLUDED_ */
