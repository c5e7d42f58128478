
/*
 * Copyright (C) gpugate authors
 *
 * What the trace module offers the others: its families on /metrics
 * (the GenAI histograms, the exporter's counts).
 */


#ifndef _NGX_HTTP_GPUGATE_TRACE_API_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_TRACE_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"


/* NGX_DECLINED when the module is not configured, NGX_ERROR, NGX_OK */
ngx_int_t ngx_http_gpugate_trace_prometheus(ngx_http_gpugate_out_t *out);


#endif /* _NGX_HTTP_GPUGATE_TRACE_API_H_INCLUDED_ */
