
/*
 * Copyright (C) gpugate authors
 *
 * Accounting: what every request of a "gpugate_accounting on" location
 * did, taken in the log phase from the other modules' variables (model,
 * tenant, key, tokens, TTFT, agent) and kept twice: as counters and
 * histograms in shared memory for the Prometheus page (all workers of
 * the host summed), and as one row per request in PostgreSQL's
 * usage_events, written in batches by each worker (the ledger).
 */


#ifndef _NGX_HTTP_GPUGATE_METRICS_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_pg.h"
#include "ngx_http_gpugate_ledger_api.h"


/* label sets (model, tenant, status) and models kept; the rest fold */
#define NGX_HTTP_GPUGATE_METRICS_SERIES     2048
#define NGX_HTTP_GPUGATE_METRICS_MODELS     256
#define NGX_HTTP_GPUGATE_METRICS_LABEL      64
#define NGX_HTTP_GPUGATE_METRICS_BUCKETS    14
#define NGX_HTTP_GPUGATE_METRICS_PROCS      64

/* auth sources (none, shm, redis, postgres, stale) x results */
#define NGX_HTTP_GPUGATE_METRICS_SOURCES    5
#define NGX_HTTP_GPUGATE_METRICS_RESULTS    3


/* requests of one (model, tenant, status) */
typedef struct {
    ngx_atomic_t      ready;       /* 1 once the labels are written; set
                                      under the slab lock, read without */
    uint32_t          hash;        /* of the labels */
    ngx_uint_t        status;      /* HTTP status; 0: the overflow set */
    u_char            model[NGX_HTTP_GPUGATE_METRICS_LABEL];
    size_t            model_len;   /* model label, cut to the array */
    u_char            tenant[NGX_HTTP_GPUGATE_METRICS_LABEL];
    size_t            tenant_len;  /* tenant label, "" without auth */
    ngx_atomic_t      requests;    /* gpugate_requests_total */
    ngx_atomic_t      prompt;      /* prompt tokens */
    ngx_atomic_t      completion;  /* completion tokens */
} ngx_http_gpugate_metrics_series_t;


/* histograms and gauges of one model */
typedef struct {
    ngx_atomic_t      ready;       /* as above */
    uint32_t          hash;        /* of the model */
    u_char            model[NGX_HTTP_GPUGATE_METRICS_LABEL];
    size_t            model_len;   /* model label */
    ngx_atomic_t      duration[NGX_HTTP_GPUGATE_METRICS_BUCKETS + 1];
                                   /* request duration, per bucket (not
                                      cumulative; +Inf last) */
    ngx_atomic_t      duration_us; /* sum, microseconds */
    ngx_atomic_t      ttft[NGX_HTTP_GPUGATE_METRICS_BUCKETS + 1];
                                   /* time to first token, per bucket */
    ngx_atomic_t      ttft_us;     /* sum, microseconds */
    ngx_atomic_t      active[NGX_HTTP_GPUGATE_METRICS_PROCS + 1];
                                   /* streams being answered now, by
                                      worker slot (the last one shared by
                                      workers beyond the slots): a dead
                                      worker's column is cleared */
    ngx_atomic_t      upstream_errors; /* failed upstream attempts */
    ngx_atomic_t      partial;     /* answers that did not reach their
                                      end (client gone, upstream cut) */
} ngx_http_gpugate_metrics_model_t;


/* room for the router's endpoints (gpugate_oai_kind_e) and "other" */
#define NGX_HTTP_GPUGATE_METRICS_ENDPOINTS  16


/* the counts of one endpoint (its kind + 1; 0: any other path) */
typedef struct {
    ngx_atomic_t      requests[5]; /* by status class, 1xx .. 5xx */
    ngx_atomic_t      prompt;      /* prompt tokens (or the endpoint's
                                      input units: seconds, characters) */
    ngx_atomic_t      completion;  /* completion tokens (or images) */
    ngx_atomic_t      images;      /* images made (the ledger's images) */
} ngx_http_gpugate_metrics_endpoint_t;


/* a worker's share of the counts, reclaimed when it dies */
typedef struct {
    ngx_pid_t         pid;         /* 0: slot free */
    ngx_atomic_t      pending;     /* ledger rows held in its memory */
    ngx_atomic_t      inflight;    /* its requests that will make ledger
                                      rows, not yet at their log phase */
} ngx_http_gpugate_metrics_proc_t;


typedef struct {
    ngx_atomic_t      auth[NGX_HTTP_GPUGATE_METRICS_SOURCES]
                          [NGX_HTTP_GPUGATE_METRICS_RESULTS];
                                   /* auth results by answering layer */
    ngx_atomic_t      overflow;    /* requests folded into "_other" */
    ngx_atomic_t      ledger_written; /* rows PostgreSQL took */
    ngx_atomic_t      ledger_dropped; /* rows over a worker's buffer */
    ngx_atomic_t      ledger_lost; /* rows of workers that died */
    ngx_atomic_t      ledger_spilled; /* rows written to spill files */
    ngx_atomic_t      ledger_failures; /* batches PostgreSQL refused or
                                         did not answer */
    ngx_atomic_t      reasoning[2]; /* reasoning tokens of answers:
                                      reported by the runtime, counted
                                      by the gateway (estimated) */
    ngx_atomic_t      ledger_rejected; /* rows PostgreSQL refused for their
                                         data (a bad row of a batch, the
                                         rows of a spill file set aside) */
    ngx_http_gpugate_metrics_proc_t  procs[NGX_HTTP_GPUGATE_METRICS_PROCS];
                                   /* by worker slot */
    ngx_http_gpugate_metrics_series_t  series[NGX_HTTP_GPUGATE_METRICS_SERIES];
                                   /* slot 0 is the overflow set */
    ngx_http_gpugate_metrics_model_t   models[NGX_HTTP_GPUGATE_METRICS_MODELS];
                                   /* slot 0 is the overflow model */
    ngx_http_gpugate_metrics_endpoint_t
                  endpoints[NGX_HTTP_GPUGATE_METRICS_ENDPOINTS];
                                   /* by endpoint: a fixed set, whatever
                                      paths clients send */
} ngx_http_gpugate_metrics_shm_t;


/* one request, as the log phase saw it */
typedef struct {
    ngx_str_t         model;       /* $gpugate_model, "" if none */
    ngx_str_t         tenant;      /* $gpugate_tenant */
    ngx_str_t         agent;       /* the last $upstream_addr */
    ngx_str_t         endpoint;    /* r->uri, whole */
    ngx_str_t         request_id;  /* $request_id */
    int64_t           key_id;      /* $gpugate_key_id, -1 */
    int64_t           tenant_id;   /* $gpugate_tenant_id, -1 */
    ngx_uint_t        status;      /* response status */
    ngx_uint_t        prompt;      /* prompt tokens */
    ngx_uint_t        completion;  /* completion tokens */
    ngx_int_t         ttft_ms;     /* -1: no first token */
    ngx_msec_t        duration_ms; /* request start to log phase */
    ngx_uint_t        upstream_errors; /* failed upstream attempts */
    ngx_uint_t        auth_source; /* 0 none .. 4 stale */
    ngx_int_t         auth_result; /* -1 no auth, 0 ok, 1 refused,
                                      2 unavailable */
    time_t            sec;         /* when the request started */
    ngx_msec_t        msec;
    int64_t           cost;        /* spend in micro-units by the model's
                                      price=, -1: not priced */
    ngx_http_gpugate_ledger_extra_t  *extra; /* what other modules add to
                                               the row; NULL: nothing */
    unsigned          stream:1;    /* $gpugate_stream */
    unsigned          partial:1;   /* $gpugate_usage_partial */
} ngx_http_gpugate_metrics_req_t;


typedef struct {
    ngx_shm_zone_t               *zone;      /* counters; NULL: none */
    ngx_flag_t                    ledger;    /* gpugate_usage_ledger set */
    ngx_http_gpugate_pg_conf_t    pg;        /* its PostgreSQL */
    ngx_str_t                     gateway;   /* usage_events.gateway */
    ngx_uint_t                    batch;     /* rows per INSERT */
    ngx_msec_t                    interval;  /* between flushes */
    ngx_uint_t                    buffer;    /* rows a worker holds */
    ngx_str_t                     spill;     /* directory, "" none */
    ngx_msec_t                    exit_timeout; /* a quitting worker
                                                   tries this long */
    ngx_int_t                     vars[12];  /* variable indexes */
} ngx_http_gpugate_metrics_main_conf_t;


typedef struct {
    ngx_flag_t                    accounting; /* record requests here */
    ngx_uint_t                    page;      /* 0, 1 metrics, 2 status */
    ngx_str_t                     admin_key; /* Bearer key, "" none */
} ngx_http_gpugate_metrics_loc_conf_t;


extern ngx_module_t  ngx_http_gpugate_metrics_module;


/* the model label of requests refused for their model (403, 404):
   client strings must not make series */
#define NGX_HTTP_GPUGATE_METRICS_REFUSED  "_refused"


/* this worker's slot in procs[] and active[]; PROCS: the shared one */
extern ngx_uint_t  ngx_http_gpugate_metrics_slot;


/* shared counters (ngx_http_gpugate_metrics_shm.c) */
ngx_int_t ngx_http_gpugate_metrics_init_zone(ngx_shm_zone_t *zone,
    void *data);
void ngx_http_gpugate_metrics_reap(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_log_t *log);
void ngx_http_gpugate_metrics_attach(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_log_t *log);
void ngx_http_gpugate_metrics_detach(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_log_t *log);
void ngx_http_gpugate_metrics_record(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_http_gpugate_metrics_req_t *req);
ngx_http_gpugate_metrics_model_t *ngx_http_gpugate_metrics_model(
    ngx_http_gpugate_metrics_shm_t *shm, ngx_slab_pool_t *shpool,
    ngx_str_t *model);
ngx_int_t ngx_http_gpugate_metrics_render(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_metrics_shm_t *shm);

/* an answer's reasoning tokens (the router's reasoning split) */
void ngx_http_gpugate_metrics_reasoning(ngx_http_request_t *r, ngx_int_t n,
    ngx_uint_t estimated);

/* the ledger (ngx_http_gpugate_ledger.c) */
ngx_int_t ngx_http_gpugate_ledger_init(ngx_cycle_t *cycle,
    ngx_http_gpugate_metrics_main_conf_t *mmcf);
void ngx_http_gpugate_ledger_exit(ngx_cycle_t *cycle);
ngx_int_t ngx_http_gpugate_ledger_check_spill(ngx_cycle_t *cycle,
    ngx_http_gpugate_metrics_main_conf_t *mmcf);
void ngx_http_gpugate_ledger_add(ngx_http_gpugate_metrics_req_t *req);
const char *ngx_http_gpugate_ledger_state(void);


#endif /* _NGX_HTTP_GPUGATE_METRICS_H_INCLUDED_ */
