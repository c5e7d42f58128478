
/*
 * Copyright (C) gpugate authors
 *
 * A usage ledger row as a worker holds it until written (fixed size, no
 * pointers: rows are copied into a ring and spilled to files), shared by
 * the ledger (ngx_http_gpugate_ledger.c) and the extras' code
 * (ngx_http_gpugate_ledger_row.c).
 */


#ifndef _NGX_HTTP_GPUGATE_LEDGER_ROW_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_LEDGER_ROW_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_ledger_api.h"
#include "gpugate_utf8.h"


/* the row's strings, each cut on a character boundary to its array */
typedef struct {
    u_char            request_id[32]; /* $request_id, hex */
    u_char            model[128];  /* $gpugate_model */
    u_char            agent[64];   /* the peer that answered */
    u_char            endpoint[64]; /* the URI */
    u_char            trace_id[32]; /* the extras' (ledger_api.h) */
    u_char            batch_id[64];
    u_char            region[32];
    u_char            image_size[16];
} ngx_http_gpugate_ledger_strings_t;


/* a row as kept until written: fixed size, no pointers */
typedef struct {
    ngx_http_gpugate_ledger_strings_t  strings; /* and their lengths: */
    int64_t           key_id;      /* -1: none */
    int64_t           tenant_id;   /* -1: none */
    int64_t           cost;        /* micro-units, -1: not priced (the
                                      column's 0) */
    uint32_t          prompt;      /* tokens */
    uint32_t          completion;
    uint32_t          duration_ms;
    int32_t           ttft_ms;     /* -1: no first token */
    time_t            sec;         /* request start */
    uint16_t          msec;
    uint16_t          status;
    uint8_t           request_id_len;
    uint8_t           model_len;
    uint8_t           agent_len;
    uint8_t           endpoint_len;
    uint8_t           trace_id_len;
    uint8_t           batch_id_len;
    uint8_t           region_len;
    uint8_t           image_size_len;
    int32_t           reasoning;   /* reasoning tokens, -1: none */
    int32_t           cache_read;  /* prompt tokens from the runtime's
                                      cache, -1: none */
    int32_t           cache_write; /* prompt tokens written to it, -1 */
    int32_t           images;      /* -1: none */
    int16_t           priority;    /* -1: none */
    uint8_t           reasoning_estimated; /* counted by the gateway */
    uint8_t           stream;
    uint8_t           partial;
} ngx_http_gpugate_ledger_row_t;


/*
 * One row as JSON, at most: every string byte escaped as \u00XX (six
 * bytes; the row's strings are cut to their arrays), plus the keys,
 * quotes and numbers.  The gateway name is added apart (it is not in
 * the row).
 */
#define NGX_HTTP_GPUGATE_LEDGER_ROW_JSON                                      \
    (6 * (sizeof(((ngx_http_gpugate_ledger_row_t *) 0)->strings)) + 640)


/* a string into the row, cut on a character boundary */
#define ngx_http_gpugate_ledger_cut(row, field, s)                            \
    row->field##_len = (uint8_t) gpugate_utf8_cut(row->strings.field,        \
                                        sizeof(row->strings.field),          \
                                        (s).data, (s).len)


#define ngx_http_gpugate_ledger_str(p, name, s, len)                          \
    p = ngx_cpymem(p, name "\"", sizeof(name));                               \
    p = (u_char *) ngx_escape_json(p, s, len);                                \
    *p++ = '"'


void ngx_http_gpugate_ledger_take_extra(ngx_http_gpugate_ledger_row_t *row,
    ngx_http_gpugate_ledger_extra_t *x);
u_char *ngx_http_gpugate_ledger_json_extra(u_char *p,
    ngx_http_gpugate_ledger_row_t *row);


#endif /* _NGX_HTTP_GPUGATE_LEDGER_ROW_H_INCLUDED_ */
