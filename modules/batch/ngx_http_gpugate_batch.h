
/*
 * Copyright (C) gpugate authors
 *
 * Asynchronous jobs: OpenAI's Batch API (/v1/files, /v1/batches) and the
 * platform's /v1/jobs, with their state in PostgreSQL (sql/008_batch.sql)
 * and a runner in one worker per node that sends each line to the node's
 * own listener, so that it passes auth, router, limits, tunnel and
 * ledger like any request.  Design: docs/batch.md.
 */


#ifndef _NGX_HTTP_GPUGATE_BATCH_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_BATCH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_pg.h"


/* the node's runner secret, random, kept across reloads in shared memory */
#define NGX_HTTP_GPUGATE_BATCH_SECRET_LEN  32

/* the request header the runner vouches for a line with */
#define NGX_HTTP_GPUGATE_BATCH_HEADER      "X-Gpugate-Batch"

/* lines a file may hold (OpenAI's limit) */
#define NGX_HTTP_GPUGATE_BATCH_LINES_MAX   50000


typedef struct {
    ngx_flag_t                  api;         /* a location has
                                                "gpugate_batch_api" */
    ngx_addr_t                 *runner;      /* "gpugate_batch ADDR": the
                                                node's own listener the
                                                runner sends lines to;
                                                NULL: no runner here */
    ngx_str_t                   runner_text; /* ADDR as written, for the
                                                Host header and logs */
    ngx_uint_t                  concurrency; /* lines in flight per node */
    ngx_msec_t                  interval;    /* between claims when idle */
    ngx_msec_t                  lease;       /* how long a node holds a
                                                line; the line's request
                                                may take 90% of it */
    size_t                      max_answer;  /* largest answer stored */
    ngx_shm_zone_t             *zone;        /* holds the secret */
} ngx_http_gpugate_batch_main_conf_t;


extern ngx_module_t  ngx_http_gpugate_batch_module;


/* the secret of this node's runner (shared memory), NULL before init */
u_char *ngx_http_gpugate_batch_secret(void);

/*
 * POST /v1/files, once the body is read: the multipart form's "purpose"
 * must be "batch" and its "file" a JSONL file of good lines.  NGX_OK: the
 * file's text (malloc, NUL-terminated), name (r->pool) and expires_after
 * in seconds (0: none).  NGX_DECLINED: an error answer was sent and "rc"
 * is what to finalize with.
 */
ngx_int_t ngx_http_gpugate_batch_upload(ngx_http_request_t *r,
    char **content, ngx_str_t *filename, ngx_uint_t *expires,
    ngx_int_t *rc);

/* the runner's statements, joined to the auth module's pool */
extern ngx_http_gpugate_pg_stmt_t  ngx_http_gpugate_batch_runner_stmts[];
extern ngx_uint_t                  ngx_http_gpugate_batch_runner_nstmts;

/* starts the runner in worker 0 (init_process), stops it (exit) */
/* worker 0's runner, from the module's configuration and the node's
   secret (the module owns both: the runner calls nothing of it) */
ngx_int_t ngx_http_gpugate_batch_runner_init(ngx_cycle_t *cycle,
    ngx_http_gpugate_batch_main_conf_t *bmcf, u_char *secret);
void ngx_http_gpugate_batch_runner_exit(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_GPUGATE_BATCH_H_INCLUDED_ */
