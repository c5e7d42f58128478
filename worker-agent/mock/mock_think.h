
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: the inline reasoning an answer starts with
 * (X-Mock-Think), token by token; mock_gen.c puts it before the words.
 */


#ifndef _MOCK_THINK_H_INCLUDED_
#define _MOCK_THINK_H_INCLUDED_


#include "mock_req.h"


/* token i of the reasoning, NULL past it */
const char *mock_think_token(const mock_req_t *req, long i);

/* its tokens */
long mock_think_tokens(const mock_req_t *req);


#endif /* _MOCK_THINK_H_INCLUDED_ */
