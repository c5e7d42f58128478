
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: the deterministic "model".  Pure functions, so the
 * same request always yields the same bytes and the unit tests can check
 * that without a socket.
 */


#ifndef _MOCK_GEN_H_INCLUDED_
#define _MOCK_GEN_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mock_req.h"


#define MOCK_CREATED  1700000000


/*
 * Validates and digests a request body.  Returns 0, or the HTTP status of
 * the error with "msg"/"param" (static strings) describing it.
 */
int mock_parse_request(json_t *body, mock_kind_e kind, mock_req_t *req,
    const char **msg, const char **param);

/* The text of completion token i (" word"). */
const char *mock_token(const mock_req_t *req, long i);

/* Writes a compact JSON chunk for token i, or for the role/finish/usage
   chunks (i = -1 role, i = -2 finish, i = -3 usage).  malloc()ed. */
char *mock_chunk(const mock_req_t *req, long i, long n, const char *finish);

/* The whole non-streaming answer.  malloc()ed. */
char *mock_full(const mock_req_t *req, long n, const char *finish);

/* Embeddings answer for the request body.  malloc()ed, NULL on bad input
   (with *msg set). */
char *mock_embeddings(json_t *body, const char *model, int dim,
    const char **msg);

/* An OpenAI error body.  malloc()ed. */
char *mock_error(const char *message, const char *type, const char *param,
    const char *code);

uint64_t mock_fnv1a(uint64_t h, const void *p, size_t len);

/*
 * X-Mock-Cache-Read in an OpenAI usage object: the cached
 * tokens added to "count" (prompt_tokens, input_tokens) and the total,
 * and said in "details" (prompt_tokens_details, input_tokens_details).
 */
void mock_cached(json_t *usage, const mock_req_t *req,
    const char *count, const char *details);


#endif /* _MOCK_GEN_H_INCLUDED_ */
