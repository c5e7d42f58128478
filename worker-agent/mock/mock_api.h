
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: the other inference APIs (mock_api.c): messages,
 * responses, rerank, score, images, speech, transcriptions.
 */


#ifndef _MOCK_API_H_INCLUDED_
#define _MOCK_API_H_INCLUDED_


#include "mock_conn.h"


/* 1: the path is one of these APIs and was answered; 0: not one */
int mock_api(mock_conn_t *c);


#endif /* _MOCK_API_H_INCLUDED_ */
