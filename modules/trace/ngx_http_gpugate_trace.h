
/*
 * Copyright (C) gpugate authors
 *
 * Tracing: each request of a "gpugate_trace on" location belongs to a
 * W3C trace (the client's traceparent, or one started here) and gets a
 * span of its own, whose id goes upstream as the parent in
 * $gpugate_traceparent; the trace id goes into the ledger row, the
 * response's traceresponse header and $gpugate_trace_id.  With
 * gpugate_otlp, the span is exported over OTLP/HTTP (JSON) by each
 * worker in batches, off the request path.  The GenAI histograms
 * (gen_ai_client_token_usage, time to first token, time per output
 * token) are kept in a shared zone for /metrics.
 */


#ifndef _NGX_HTTP_GPUGATE_TRACE_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_TRACE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "gpugate_trace.h"


/* models with GenAI histograms of their own; the rest fold in _other */
#define NGX_HTTP_GPUGATE_TRACE_MODELS     256
#define NGX_HTTP_GPUGATE_TRACE_LABEL      64

/* the conventions' bucket counts (without +Inf) */
#define NGX_HTTP_GPUGATE_TRACE_TOKEN_LE   14
#define NGX_HTTP_GPUGATE_TRACE_TTFT_LE    16
#define NGX_HTTP_GPUGATE_TRACE_TPOT_LE    13

/* the longest span kept: names and attributes are bounded long before */
#define NGX_HTTP_GPUGATE_TRACE_SPAN_MAX   16384


/* one request's trace context */
typedef struct {
    gpugate_trace_ctx_t   tc;          /* trace id; span_id is OUR span */
    u_char                parent[GPUGATE_SPAN_ID_SIZE];
                                       /* the client's span, if any */
    ngx_str_t             tracestate;  /* the client's, checked; "" */
    u_char                trace_hex[2 * GPUGATE_TRACE_ID_SIZE];
                                       /* $gpugate_trace_id */
    u_char                span_hex[2 * GPUGATE_SPAN_ID_SIZE];
                                       /* $gpugate_span_id */
    u_char                traceparent[GPUGATE_TRACEPARENT_LEN];
                                       /* what goes upstream */
    unsigned              has_parent:1; /* the client sent a valid one */
    unsigned              sampled:1;   /* exported whatever its end */
    unsigned              logged:1;    /* its span is made (the log
                                          phase runs once per request) */
} ngx_http_gpugate_trace_req_t;


/* the GenAI histograms of one model (buckets not cumulative, +Inf last) */
typedef struct {
    ngx_atomic_t      ready;       /* 1 once the label is written */
    uint32_t          hash;        /* of the label */
    u_char            model[NGX_HTTP_GPUGATE_TRACE_LABEL];
    size_t            model_len;   /* the label, valid UTF-8 */
    ngx_atomic_t      input[NGX_HTTP_GPUGATE_TRACE_TOKEN_LE + 1];
                                   /* input tokens per request */
    ngx_atomic_t      input_sum;   /* their sum */
    ngx_atomic_t      output[NGX_HTTP_GPUGATE_TRACE_TOKEN_LE + 1];
                                   /* output tokens per request */
    ngx_atomic_t      output_sum;  /* their sum */
    ngx_atomic_t      ttft[NGX_HTTP_GPUGATE_TRACE_TTFT_LE + 1];
                                   /* time to first token */
    ngx_atomic_t      ttft_us;     /* sum, microseconds */
    ngx_atomic_t      tpot[NGX_HTTP_GPUGATE_TRACE_TPOT_LE + 1];
                                   /* time per output token after the
                                      first */
    ngx_atomic_t      tpot_us;     /* sum, microseconds */
} ngx_http_gpugate_trace_model_t;


typedef struct {
    ngx_atomic_t      exported;    /* spans the collector took */
    ngx_atomic_t      dropped;     /* spans over a worker's buffer */
    ngx_atomic_t      failed;      /* spans of batches the collector
                                      refused, or did not answer */
    ngx_atomic_t      batches;     /* POSTs answered 2xx */
    ngx_atomic_t      batch_errors; /* POSTs that failed */
    ngx_atomic_t      traces_started; /* requests without a usable
                                         client traceparent */
    ngx_atomic_t      traces_joined;  /* requests that joined the
                                         client's trace */
    ngx_atomic_t      bad_traceparent; /* client traceparents refused */
    ngx_http_gpugate_trace_model_t  models[NGX_HTTP_GPUGATE_TRACE_MODELS];
                                   /* slot 0: _other */
} ngx_http_gpugate_trace_shm_t;


typedef struct {
    ngx_shm_zone_t   *zone;        /* the counters above */
    ngx_flag_t        otlp;        /* gpugate_otlp set */
    ngx_addr_t        addr;        /* the collector, resolved at start */
    ngx_str_t         host;        /* its Host header (host:port) */
    ngx_str_t         uri;         /* its path, /v1/traces */
    ngx_str_t         service;     /* service.name of the resource */
    ngx_uint_t        sample;      /* ratio in millionths */
    ngx_uint_t        batch;       /* spans per POST */
    ngx_uint_t        buffer;      /* spans a worker holds */
    ngx_msec_t        interval;    /* between POSTs of a partial batch */
    ngx_msec_t        timeout;     /* a POST's connect + answer */
    ngx_int_t         vars[10];    /* variable indexes */
} ngx_http_gpugate_trace_main_conf_t;


typedef struct {
    ngx_flag_t        enable;      /* gpugate_trace on */
} ngx_http_gpugate_trace_loc_conf_t;


extern ngx_module_t  ngx_http_gpugate_trace_module;


/* one request as the span and the histograms see it */
typedef struct {
    ngx_str_t         model;       /* $gpugate_model */
    ngx_uint_t        status;
    ngx_int_t         prompt;      /* -1: not known */
    ngx_int_t         completion;  /* -1: not known */
    ngx_int_t         ttft_ms;     /* -1: no first token */
    ngx_msec_t        duration_ms;
    unsigned          stream:1;
    unsigned          partial:1;
} ngx_http_gpugate_trace_obs_t;


/* the zone and the histograms (ngx_http_gpugate_trace_metrics.c) */
ngx_int_t ngx_http_gpugate_trace_init_zone(ngx_shm_zone_t *zone,
    void *data);
void ngx_http_gpugate_trace_record(ngx_http_gpugate_trace_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_http_gpugate_trace_obs_t *obs);

/* the exporter (ngx_http_gpugate_trace_otlp.c) */
ngx_int_t ngx_http_gpugate_trace_otlp_init(ngx_cycle_t *cycle,
    ngx_http_gpugate_trace_main_conf_t *tmcf);
void ngx_http_gpugate_trace_otlp_exit(ngx_cycle_t *cycle);
/* a span's JSON to send; copied.  Never blocks: dropped and counted
   when the worker's buffer is full */
void ngx_http_gpugate_trace_otlp_add(u_char *span, size_t len);


#endif /* _NGX_HTTP_GPUGATE_TRACE_H_INCLUDED_ */
