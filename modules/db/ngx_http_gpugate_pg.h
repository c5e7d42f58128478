
/*
 * Copyright (C) gpugate authors
 *
 * Non-blocking PostgreSQL for nginx workers: a small per-worker pool of
 * libpq connections driven by nginx events and timers.  Nothing here ever
 * waits on the database: connects use PQconnectStartParams/PQconnectPoll,
 * queries PQsendQueryPrepared, and every operation has a deadline.
 */


#ifndef _NGX_HTTP_GPUGATE_PG_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <libpq-fe.h>


#define NGX_HTTP_GPUGATE_PG_MAX_PARAMS  4


typedef struct ngx_http_gpugate_pg_s        ngx_http_gpugate_pg_t;
typedef struct ngx_http_gpugate_pg_query_s  ngx_http_gpugate_pg_query_t;


/*
 * Called once per query, never from inside ngx_http_gpugate_pg_run():
 * "res" is the query's result on success (owned by the driver, valid only
 * during the call), NULL on failure with "error" saying why.
 */
typedef void (*ngx_http_gpugate_pg_handler_pt)(
    ngx_http_gpugate_pg_query_t *q, PGresult *res, const char *error);


typedef struct {
    const char                    *name;      /* prepared statement name */
    const char                    *sql;       /* its text */
    int                            nparams;   /* number of $n parameters */
} ngx_http_gpugate_pg_stmt_t;


typedef struct {
    ngx_str_t                      conninfo;  /* libpq connection string,
                                                 null-terminated */
    ngx_uint_t                     connections; /* per worker */
    ngx_msec_t                     timeout;   /* connect, and each query
                                                 from queueing to result */
    ngx_msec_t                     backoff_max; /* reconnect delay cap */
    ngx_array_t                    statements; /* of ..._pg_stmt_t, prepared
                                                  on every new connection */
} ngx_http_gpugate_pg_conf_t;


struct ngx_http_gpugate_pg_query_s {
    ngx_queue_t                    queue;     /* in the pool's wait queue */
    const char                    *stmt;      /* prepared statement name */
    int                            nparams;   /* parameters used */
    const char                    *values[NGX_HTTP_GPUGATE_PG_MAX_PARAMS];
                                              /* parameter values; must stay
                                                 valid until the handler */
    int                            lengths[NGX_HTTP_GPUGATE_PG_MAX_PARAMS];
                                              /* binary parameter lengths */
    int                            formats[NGX_HTTP_GPUGATE_PG_MAX_PARAMS];
                                              /* 1: binary, 0: text */
    ngx_msec_t                     deadline;  /* absolute ngx_current_msec
                                                 after which it fails */
    ngx_http_gpugate_pg_handler_pt handler;   /* completion callback */
    void                          *data;      /* for the handler */
    char                           sqlstate[6]; /* the server's error code
                                                 when it refused the query,
                                                 "" otherwise: a data error
                                                 is not a dead server */
};


/*
 * Creates this worker's pool and starts connecting (init_process).  The
 * configuration must outlive the worker.
 */
ngx_http_gpugate_pg_t *ngx_http_gpugate_pg_create(ngx_cycle_t *cycle,
    ngx_http_gpugate_pg_conf_t *conf);

/*
 * Queues a query.  NGX_OK: the handler will be called later.
 * NGX_DECLINED: PostgreSQL is known to be unreachable right now (every
 * connection is waiting out a reconnect delay); the handler is not called,
 * so the caller can fail fast instead of queueing behind a dead server.
 */
ngx_int_t ngx_http_gpugate_pg_run(ngx_http_gpugate_pg_t *pg,
    ngx_http_gpugate_pg_query_t *q);

/* Closes every connection at worker exit; pending queries are dropped. */
void ngx_http_gpugate_pg_destroy(ngx_http_gpugate_pg_t *pg);

/* The pool's state for logs and status: "up", "connecting", "down". */
const char *ngx_http_gpugate_pg_state(ngx_http_gpugate_pg_t *pg);


#endif /* _NGX_HTTP_GPUGATE_PG_H_INCLUDED_ */
