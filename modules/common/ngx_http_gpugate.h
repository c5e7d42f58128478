
/*
 * Copyright (C) gpugate authors
 *
 * Shared declarations of the gpugate modules.  Everything here lives in the
 * one ngx_http_gpugate_module.so; modules exchange per-request data through
 * nginx variables and request ctx, and share only helpers declared here.
 */


#ifndef _NGX_HTTP_GPUGATE_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* OpenAI error "type" values used by the gateway */
#define NGX_HTTP_GPUGATE_ERR_INVALID      "invalid_request_error"
#define NGX_HTTP_GPUGATE_ERR_PERMISSION   "permission_error"
#define NGX_HTTP_GPUGATE_ERR_NOT_FOUND    "not_found_error"
#define NGX_HTTP_GPUGATE_ERR_RATE_LIMIT   "rate_limit_error"
#define NGX_HTTP_GPUGATE_ERR_SERVER       "server_error"


typedef struct {
    ngx_uint_t   status;     /* HTTP status of the error response */
    const char  *type;       /* OpenAI error type, one of the above */
    const char  *code;       /* OpenAI error code, NULL gives JSON null */
    const char  *param;      /* offending request field, NULL: null */
    ngx_str_t    message;    /* human-readable message, JSON-escaped here */
} ngx_http_gpugate_error_t;


/*
 * Sends a complete OpenAI-style error response:
 *     {"error":{"message":...,"type":...,"param":null,"code":...}}
 * The request body is discarded first so that keepalive stays usable.
 * Returns what a content handler should return.
 */
ngx_int_t ngx_http_gpugate_send_error(ngx_http_request_t *r,
    ngx_http_gpugate_error_t *err);

/* The error the gateway reports for a bare HTTP status. */
void ngx_http_gpugate_status_error(ngx_uint_t status,
    ngx_http_gpugate_error_t *err);

/*
 * A Prometheus label value into "p": backslash, quote and newline
 * escaped (at most 2 * len bytes).  Returns the end.
 */
u_char *ngx_http_gpugate_prom_label(u_char *p, u_char *s, size_t len);

/* Sends a JSON body (already serialised) with the given status. */
ngx_int_t ngx_http_gpugate_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *body);

/*
 * The tunnel's view for the router's /v1/models: every model a connected
 * agent advertises, once each, as ngx_str_t copied into "pool" (agents
 * that take any model add nothing; nothing when no tunnel zone is
 * configured); and whether an upstream block is a "gpugate_tunnel" one.
 */
ngx_int_t ngx_http_gpugate_tunnel_live_models(ngx_pool_t *pool,
    ngx_array_t *out);
ngx_uint_t ngx_http_gpugate_tunnel_is_pool(ngx_str_t *name);

/*
 * The tunnel's Prometheus lines (agents' connections, load and
 * telemetry) in a buffer from "pool"; NGX_DECLINED when no tunnel zone
 * is configured.
 */
ngx_int_t ngx_http_gpugate_tunnel_prometheus(ngx_pool_t *pool,
    ngx_buf_t **out);

/*
 * "agent <name>" was published on the invalidation channel (revoked, or
 * its allowed models changed): its tunnel connections in this worker are
 * closed, so that it handshakes again and PostgreSQL decides.  Returns
 * the number of connections closed.
 */
ngx_uint_t ngx_http_gpugate_tunnel_invalidate(ngx_str_t *name);

/* the connected agents as a JSON array; NGX_DECLINED (and *out NULL)
   without a tunnel zone */
ngx_int_t ngx_http_gpugate_tunnel_status_json(ngx_pool_t *pool,
    ngx_buf_t **out);


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


#endif /* _NGX_HTTP_GPUGATE_H_INCLUDED_ */
