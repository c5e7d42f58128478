
/*
 * Copyright (C) gpugate authors
 *
 * The agent handshake's exchange, shared by the handshake's location
 * handler (ngx_http_gpugate_tunnel_module.c), its two steps
 * (ngx_http_gpugate_tunnel_handshake.c, ..._step2.c) and the verifier
 * cache (ngx_http_gpugate_tunnel_verifier.c); private to them.
 */


#ifndef _NGX_HTTP_GPUGATE_TUNNEL_HANDSHAKE_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_TUNNEL_HANDSHAKE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_tunnel.h"


/* one exchange between step 1 and step 2 */
typedef struct {
    ngx_queue_t                 queue;     /* in the pending list */
    ngx_http_request_t         *request;   /* step 1 waiting for the
                                              query; NULL once answered or
                                              when the client left */
    ngx_pool_cleanup_t         *rcln;      /* in the step 1 request's
                                              pool while the query is out */
    ngx_pool_cleanup_t         *cln;       /* in the connection's pool:
                                              its data is this exchange */
    ngx_http_gpugate_pg_query_t query;     /* the verifier lookup */
    ngx_event_t                 expire;    /* end of the step_timeout */
    u_char                      sid[GPUGATE_TUNNEL_SID_LEN];
                                           /* hex id sent to the agent */
    unsigned                    known:1;   /* the agent exists */
    unsigned                    listed:1;  /* in the pending list */
    unsigned                    querying:1; /* the query is out: its
                                              handler frees the exchange */
    unsigned                    cached:1;  /* the verifier cache has the
                                              agent: used if PostgreSQL
                                              cannot answer */
    unsigned                    any_model:1; /* allowed_models is NULL */
    unsigned                    drained:1; /* agents.drained_at is set */
    int64_t                     agent_id;  /* agents.id */
    ngx_atomic_uint_t           bus_msgs;  /* the zone's bus_msgs before
                                              the verifier was read */
    size_t                      user_len;  /* length of user */
    char                        user[GPUGATE_SCRAM_USER_SIZE];
                                           /* agent name, NUL-ended */
    u_char                      salt[GPUGATE_SCRAM_SALT_MAX];
                                           /* from the verifier */
    size_t                      salt_len;  /* its length */
    ngx_uint_t                  iterations; /* from the verifier */
    unsigned char               stored_key[GPUGATE_SCRAM_KEY_LEN];
                                           /* from the verifier */
    unsigned char               server_key[GPUGATE_SCRAM_KEY_LEN];
                                           /* from the verifier */
    size_t                      allowed_len; /* length of allowed */
    u_char                      allowed[GPUGATE_TUNNEL_MODELS_MAX];
                                           /* allowed_models, comma-joined;
                                              empty: none (any_model
                                              unset) */
    gpugate_scram_server_t      scram;     /* the exchange */
} ngx_http_gpugate_tunnel_step_t;


/* step 1 and the exchange's life (ngx_http_gpugate_tunnel_handshake.c) */

/* 0 while the worker has no handshake state (not set up, or exiting) */
ngx_uint_t ngx_http_gpugate_tunnel_hs_ready(void);

/* step 1: the verifier looked up, then the challenge (401) */
ngx_int_t ngx_http_gpugate_tunnel_step1(ngx_http_request_t *r,
    gpugate_tunnel_auth_t *auth);

/*
 * The connection's exchange, if "auth" names it, taken out of the
 * pending list: a sid is used once.  NULL: unknown, expired or replayed.
 */
ngx_http_gpugate_tunnel_step_t *ngx_http_gpugate_tunnel_step_take(
    ngx_http_request_t *r, gpugate_tunnel_auth_t *auth);
void ngx_http_gpugate_tunnel_step_free(ngx_http_gpugate_tunnel_step_t *st);

/* an error answer to the agent, with WWW-Authenticate on a 401 */
ngx_int_t ngx_cdecl ngx_http_gpugate_tunnel_hs_refuse(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *fmt, ...);

/* a base64 SCRAM message into r->pool; NGX_ERROR if malformed */
ngx_int_t ngx_http_gpugate_tunnel_decode(ngx_http_request_t *r,
    const char *data, size_t len, ngx_str_t *out);

/* the request header "name" (lowercase, "len" bytes), NULL if absent */
ngx_table_elt_t *ngx_http_gpugate_tunnel_header(ngx_http_request_t *r,
    const char *name, size_t len);


/* step 2: proof, hello headers, 101 (ngx_http_gpugate_tunnel_step2.c) */
ngx_int_t ngx_http_gpugate_tunnel_step2(ngx_http_request_t *r,
    gpugate_tunnel_auth_t *auth);


/*
 * The verifier cache in the zone (verifiers PostgreSQL gave, used while
 * it is down) and the periodic re-check of held agents.
 */
ngx_int_t ngx_http_gpugate_tunnel_verifier_init(ngx_cycle_t *cycle);
void ngx_http_gpugate_tunnel_verifier_exit(void);

/* the cached verifier of st->user into "st" (st->cached set); 0: none */
ngx_uint_t ngx_http_gpugate_tunnel_cache_get(
    ngx_http_gpugate_tunnel_step_t *st);

/* what PostgreSQL answered for st->user, kept */
void ngx_http_gpugate_tunnel_cache_put(ngx_http_gpugate_tunnel_step_t *st);

/* drops the entry of "name" (or, name NULL, of "agent_id") */
void ngx_http_gpugate_tunnel_cache_drop(ngx_str_t *name, int64_t agent_id);


#endif /* _NGX_HTTP_GPUGATE_TUNNEL_HANDSHAKE_H_INCLUDED_ */
