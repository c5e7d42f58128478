
/*
 * Copyright (C) gpugate authors
 *
 * What the tunnel module offers the other gpugate modules: the router's
 * view of connected agents and the metrics and status pages' lines.
 * Nothing else of the tunnel is meant to be used outside modules/tunnel/;
 * the auth module reaches the tunnel only through the handler the tunnel
 * gives it (ngx_http_gpugate_auth_on_agent()).
 */


#ifndef _NGX_HTTP_GPUGATE_TUNNEL_API_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_TUNNEL_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"


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
 * What cache-aware routing keys a request by (gpugate_prefix_affinity):
 * the router fills it when it reads the body, the pool's balancer reads
 * it.
 */
typedef struct {
    uint64_t    *prefix;       /* cumulative hashes of the prompt's
                                  leading blocks (gpugate_prefix.h), in
                                  the request's pool; NULL: none */
    ngx_uint_t   nprefix;      /* their number */
    uint64_t     session;      /* X-Gpugate-Session or "user", hashed;
                                  0: none */
} ngx_http_gpugate_tunnel_keys_t;

/*
 * The keys of a request to pool "pool" whose JSON body is "body", for
 * endpoint "kind" (gpugate_oai_kind_e) and runtime model "model":
 * nothing (NGX_OK, keys zeroed) when the pool has no prefix affinity;
 * NGX_ERROR, without prefix keys, when out of memory.
 */
ngx_int_t ngx_http_gpugate_tunnel_affinity_keys(ngx_http_request_t *r,
    ngx_str_t *pool, ngx_str_t *model, ngx_int_t kind, ngx_str_t *body,
    ngx_http_gpugate_tunnel_keys_t *keys);

/*
 * The tunnel's Prometheus lines (agents' connections, load and
 * telemetry), a family at a time, appended to "out"; NGX_DECLINED when
 * no tunnel zone is configured.
 */
ngx_int_t ngx_http_gpugate_tunnel_prometheus(ngx_http_gpugate_out_t *out);

/* the connected agents as a JSON array; NGX_DECLINED (and *out NULL)
   without a tunnel zone */
ngx_int_t ngx_http_gpugate_tunnel_status_json(ngx_pool_t *pool,
    ngx_buf_t **out);

/*
 * Requests the connected agents could take now, all workers: the sum of
 * each live agent's capacity left, less the requests waiting in the
 * workers' queues.  For the batch runner, which only sends a line when
 * interactive traffic leaves room: 0 when requests wait beyond that.  -1
 * when no tunnel zone is configured.
 */
ngx_int_t ngx_http_gpugate_tunnel_free_slots(void);

/* the request's priority, 0..9, as the wait queue orders it (the key's
   default, X-Gpugate-Priority up to its maximum); NGX_DECLINED: the
   header is bad, *bad says why */
ngx_int_t ngx_http_gpugate_tunnel_request_priority(ngx_http_request_t *r,
    ngx_int_t *priority, ngx_str_t *bad);


#endif /* _NGX_HTTP_GPUGATE_TUNNEL_API_H_INCLUDED_ */
