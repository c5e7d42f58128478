
/*
 * Copyright (C) gpugate authors
 *
 * What the limits module offers the other gpugate modules: the router's
 * admission call (after the body is parsed and the model resolved), the
 * ledger's spend of a request, and the pages' sections.
 */


#ifndef _NGX_HTTP_GPUGATE_LIMITS_API_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_LIMITS_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"


/* what the router knows of a request when it admits it */
typedef struct {
    ngx_str_t   body;        /* the client's JSON body, as checked */
    ngx_uint_t  answers;     /* 0: embeddings (no completion tokens) */
    ngx_uint_t  stream;      /* "stream": true */
    int64_t     price_in;    /* micro-units per 1M prompt tokens */
    int64_t     price_out;   /* micro-units per 1M completion tokens */
} ngx_http_gpugate_limits_req_t;


/*
 * Reserves the request's estimate against its key's and tenant's limits
 * (nothing to do where "gpugate_limits" is off or auth granted no key).
 * NGX_OK: admitted, the reservation is settled when the request ends;
 * NGX_DONE: refused, the 429 was sent and *rc is what to finalize with.
 */
ngx_int_t ngx_http_gpugate_limits_admit(ngx_http_request_t *r,
    ngx_http_gpugate_limits_req_t *lr, ngx_int_t *rc);

/* the request's spend in micro-units from its real usage; -1: not a
   request the limits admitted with a price */
int64_t ngx_http_gpugate_limits_cost(ngx_http_request_t *r);

/* the limits' Prometheus families; NGX_DECLINED: no gpugate_limits_zone */
ngx_int_t ngx_http_gpugate_limits_prometheus(ngx_http_gpugate_out_t *out);

/* the limits' status object ("null" without a zone) */
void ngx_http_gpugate_limits_status(ngx_http_gpugate_out_t *out);


#endif /* _NGX_HTTP_GPUGATE_LIMITS_API_H_INCLUDED_ */
