
/*
 * Copyright (C) gpugate authors
 *
 * The OpenAI router's configuration, shared by the router module and its
 * response filter (both part of the router concern).
 */


#ifndef _NGX_HTTP_GPUGATE_OPENAI_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_OPENAI_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "gpugate_sse.h"
#include "gpugate_oai_chunk.h"
#include "gpugate_oai_body.h"
#include "gpugate_multipart.h"
#include "ngx_http_gpugate_tunnel_api.h"


#define NGX_HTTP_GPUGATE_MODEL_MAX_LEN  256

/* data of one stream event kept for inspection; longer data is framed
   but not inspected (a token chunk is a few hundred bytes) */
#define NGX_HTTP_GPUGATE_EVENT_DATA_MAX  16384

/* a non-streaming answer is copied up to this size to read its usage */
#define NGX_HTTP_GPUGATE_JSON_MAX        (1024 * 1024)

/* an event of a stream whose usage the gateway asked for is held until it
   is complete in a buffer that starts small and doubles up to the max;
   an event longer than that passes unchanged */
#define NGX_HTTP_GPUGATE_HOLD_MIN        1024
#define NGX_HTTP_GPUGATE_HOLD_MAX        (32 * 1024)


typedef struct {
    ngx_str_t           name;      /* model id as clients send it, without
                                      the "*" of a prefix entry */
    ngx_str_t           pool;      /* upstream block serving it, empty:
                                      the location's own proxy_pass */
    ngx_str_t           target;    /* model name the runtime knows it by,
                                      empty: the same */
    int64_t             price_in;  /* price=: micro-units per 1M prompt
                                      tokens, for the limits' budgets */
    int64_t             price_out; /* and per 1M completion tokens */
    gpugate_oai_prio_e  priority;  /* priority=: how the pool's runtime
                                      reads the request's priority, put
                                      in the body; OFF: the body keeps
                                      the client's */
    unsigned            prefix:1;  /* "NAME*": every model starting so */
} ngx_http_gpugate_model_t;


typedef struct {
    ngx_str_t     path;            /* request path passed through as is,
                                      without the "*" of a prefix */
    unsigned      prefix:1;        /* "PATH*": every path starting so */
} ngx_http_gpugate_path_t;


typedef struct {
    ngx_array_t  *models;          /* of ngx_http_gpugate_model_t; NULL if
                                      no gpugate_model at this level and
                                      none inherited */
    ngx_flag_t    enable;          /* "gpugate_openai": responses proxied
                                      here are OpenAI-aware (SSE streams
                                      unbuffered) */
    ngx_flag_t    stream_usage;    /* "gpugate_stream_usage": streams are
                                      asked for usage the client did not
                                      ask for, and it is hidden from it */
    ngx_str_t     models_body;     /* "gpugate_models": /v1/models answer,
                                      serialised once at configuration
                                      time; empty len if not a models
                                      location */
    time_t        created;         /* configuration load time, reported
                                      as each model's "created" */
    ngx_str_t     default_pool;    /* "gpugate_default_pool": $gpugate_pool
                                      of requests not routed by model */
    ngx_array_t  *passthrough;     /* "gpugate_passthrough": of
                                      ngx_http_gpugate_path_t, paths
                                      proxied without the router; NULL:
                                      none here or inherited */
    ngx_int_t     allowed_index;   /* $gpugate_allowed_models, set by the
                                      auth module: the key's models */
    unsigned      models_handler:1; /* "gpugate_models" is set here */
} ngx_http_gpugate_openai_loc_conf_t;


typedef struct {
    ngx_str_t                  model;    /* the client's model */
    ngx_str_t                  pool;     /* upstream chosen for it */
    ngx_str_t                  target;   /* model name the runtime gets:
                                            the alias target or "model" */
    gpugate_oai_kind_e         kind;     /* the endpoint routed */
    ngx_int_t                  status;   /* NGX_DONE while the body is
                                            read, then what the phase
                                            handler returns */
    gpugate_mp_t              *mp;       /* the scan of a multipart upload
                                            as it is read, NULL: JSON */
    int64_t                    images_asked; /* "n" of an images
                                                request, the count when
                                                the answer does not list
                                                them; 0: not one */
    ngx_http_gpugate_tunnel_keys_t  affinity; /* the prompt's prefix
                                            and session keys, for a pool
                                            with prefix affinity */
    ngx_int_t                  priority; /* the request's priority,
                                            0..9, set once as it is
                                            routed (any pool: the
                                            tunnel's wait queue, the
                                            runtime's body, the log and
                                            the ledger read it); -1:
                                            not routed yet */
    unsigned                   stream:1; /* "stream": true */
    unsigned                   routed:1; /* model, pool and stream set */
    unsigned                   ask_usage:1; /* the gateway added
                                               include_usage to the
                                               body: its traces are
                                               stripped from the stream */

    /* response side, filled by the filter as the answer passes */

    gpugate_sse_t              sse;      /* framer of an event stream */
    u_char                    *data;     /* its event data buffer */
    gpugate_oai_strip_t        strip;    /* framer and stripper of a
                                            stream with ask_usage */
    ngx_chain_t               *free;     /* stripped output buffers to
                                            reuse */
    ngx_chain_t               *busy;     /* stripped output not yet
                                            sent */
    ngx_chain_t               *taken;    /* runtime buffers copied into
                                            the output, kept unconsumed
                                            until "busy" is sent: the
                                            runtime's flow control */
    ngx_buf_t                 *json;     /* copy of a non-streaming answer */
    ngx_msec_t                 ttft;     /* ms to the first token event */
    int64_t                    prompt_tokens;     /* from usage */
    int64_t                    completion_tokens; /* from usage */
    ngx_uint_t                 token_events;      /* content events seen:
                                                     the count when no
                                                     usage arrives */
    gpugate_oai_reasons_t      reasons;  /* finish reasons seen, for
                                            $gpugate_finish_reasons */
    unsigned                   observe:1;    /* watching this response */
    unsigned                   event_stream:1; /* text/event-stream */
    unsigned                   first_token:1;  /* ttft is set */
    unsigned                   usage:1;      /* usage counts were seen */
    unsigned                   complete:1;   /* [DONE] / whole JSON seen */
    unsigned                   stripping:1;  /* the stream is rewritten
                                                (ask_usage, an event
                                                stream) */
} ngx_http_gpugate_openai_ctx_t;


extern ngx_module_t  ngx_http_gpugate_openai_module;


/* the request side of the router: body phase and its variables */

ngx_int_t ngx_http_gpugate_openai_route_init(ngx_conf_t *cf);
ngx_int_t ngx_http_gpugate_openai_add_variables(ngx_conf_t *cf);
ngx_http_gpugate_model_t *ngx_http_gpugate_openai_find(
    ngx_http_gpugate_openai_loc_conf_t *olcf, ngx_str_t *model);
ngx_int_t ngx_http_gpugate_openai_check(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, ngx_http_gpugate_model_t **m);

/* multipart uploads (ngx_http_gpugate_openai_multipart.c) */

ngx_int_t ngx_http_gpugate_openai_multipart_init(ngx_conf_t *cf);
ngx_int_t ngx_http_gpugate_openai_multipart_start(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx);
ngx_int_t ngx_http_gpugate_openai_multipart_route(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx);

/* usage the ledger keeps beyond tokens (ngx_http_gpugate_openai_usage.c) */

void ngx_http_gpugate_openai_images_ask(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, long long n, const char *size);
void ngx_http_gpugate_openai_images_upload(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx);
void ngx_http_gpugate_openai_images_made(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, long long made);
void ngx_http_gpugate_openai_cache_usage(ngx_http_request_t *r,
    gpugate_oai_chunk_t *c);

/* the response's Content-Type is text/event-stream (_filter.c) */

ngx_uint_t ngx_http_gpugate_is_event_stream(ngx_http_request_t *r);

/* the model list (ngx_http_gpugate_openai_models.c) */

ngx_int_t ngx_http_gpugate_models_answer(ngx_http_request_t *r,
    ngx_http_gpugate_openai_loc_conf_t *olcf, ngx_str_t *id);


#endif /* _NGX_HTTP_GPUGATE_OPENAI_H_INCLUDED_ */
