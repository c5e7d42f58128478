
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime (mock_ext.c): streamed transcriptions and GET
 * /openapi.json (--openapi).
 */


#ifndef _MOCK_EXT_H_INCLUDED_
#define _MOCK_EXT_H_INCLUDED_


#include "mock_conn.h"


/* --openapi: the paths GET /openapi.json lists; NULL: no such route */
extern const char  *mock_openapi_paths;

int mock_ext_transcribe_stream(mock_conn_t *c, mock_req_t *req, long n,
    long input);

/* 1: the request was for one of its routes and is answered; 0: not */
int mock_ext_dispatch(mock_conn_t *c);


#endif /* _MOCK_EXT_H_INCLUDED_ */
