
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime and W3C trace context (mock_trace.c): the trace
 * headers a request came with, logged as they are read.
 */


#ifndef _MOCK_TRACE_H_INCLUDED_
#define _MOCK_TRACE_H_INCLUDED_


#include "gg_http_parse.h"


/* logs the traceparent and tracestate of a parsed head, if it has any */
void mock_trace_headers(const gg_http_head_t *head, const char *buf,
    const char *method, const char *path);


#endif /* _MOCK_TRACE_H_INCLUDED_ */
