
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: the prefix cache model (mock_cache.c,
 * --prefix-cache): its flags, a request's prefill time, its metrics.
 */


#ifndef _MOCK_CACHE_H_INCLUDED_
#define _MOCK_CACHE_H_INCLUDED_


#include <stdio.h>

#include "gg_buf.h"
#include "mock_conn.h"


void mock_cache_usage(FILE *f);
int mock_cache_option(const char *a, const char *v);
void mock_cache_request(mock_conn_t *c);
int mock_cache_metrics(gg_buf_t *b);


#endif /* _MOCK_CACHE_H_INCLUDED_ */
