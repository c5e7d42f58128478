
/*
 * Copyright (C) gpugate authors
 *
 * Cache-aware routing of a tunnel pool (..._tunnel_affinity.c): which
 * agents served which prompt prefixes and sessions lately, in a zone of
 * the pool's own, and the balancer's preference for them.
 */


#ifndef _NGX_HTTP_GPUGATE_TUNNEL_AFFINITY_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_TUNNEL_AFFINITY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* agents remembered per prefix, most recent first */
#define NGX_HTTP_GPUGATE_AFFINITY_HOLDERS  4


/* the zone's head: the entries, and what the choices found */
typedef struct {
    ngx_rbtree_t          rbtree;   /* entries by hash */
    ngx_rbtree_node_t     sentinel; /* the tree's leaf */
    ngx_queue_t           lru;      /* entries, most recently used first:
                                       the tail is evicted when the zone
                                       is full */
    ngx_atomic_t          hits;     /* requests sent to a prefix holder */
    ngx_atomic_t          misses;   /* requests with a prefix no usable
                                       holder had */
    ngx_atomic_t          skipped;  /* of those, a holder was there but
                                       too loaded or its cache too full */
    ngx_atomic_t          sessions; /* requests sent to their session's
                                       agent */
    ngx_atomic_t          entries;  /* entries in the zone */
    ngx_atomic_t          evicted;  /* entries dropped for room */
} ngx_http_gpugate_affinity_sh_t;


/* "gpugate_prefix_affinity" of an upstream block */
typedef struct {
    ngx_shm_zone_t                  *zone;   /* the pool's entries */
    ngx_http_gpugate_affinity_sh_t  *sh;     /* its head, in this process */
    ngx_slab_pool_t                 *shpool; /* its allocator and lock */
    size_t                           block;  /* "block=": bytes per block */
    ngx_uint_t                       depth;  /* "depth=": blocks hashed */
    ngx_uint_t                       margin; /* "margin=": requests in
                                                flight a holder may have
                                                above the least loaded */
    ngx_uint_t                       kv_max; /* "kv_max=": a holder whose
                                                KV cache is fuller (per
                                                cent) is passed over */
    ngx_flag_t                       session; /* "session=on" */
    ngx_flag_t                       random; /* "mode=random": any suitable
                                                agent (for comparisons) */
} ngx_http_gpugate_affinity_conf_t;


/* the directive, in an upstream block after "gpugate_tunnel" */
char *ngx_http_gpugate_tunnel_affinity(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_GPUGATE_TUNNEL_AFFINITY_H_INCLUDED_ */
