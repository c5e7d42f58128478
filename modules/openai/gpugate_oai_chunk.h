
/*
 * Copyright (C) gpugate authors
 *
 * What one OpenAI response chunk (the data of one SSE event) or one whole
 * non-streaming answer says, independent of nginx: whether it carries a
 * token (time to first token), whether it is the usage-only chunk that
 * stream_options.include_usage adds, and the token counts.  Reads bytes,
 * builds no JSON tree (see gpugate_oai_chunk.c for why that is exact
 * enough).
 */


#ifndef _GPUGATE_OAI_CHUNK_H_INCLUDED_
#define _GPUGATE_OAI_CHUNK_H_INCLUDED_


#include <stddef.h>


typedef struct {
    int         done;              /* the "[DONE]" sentinel */
    int         parsed;            /* a JSON object */
    int         content;           /* carries output: text, content,
                                      reasoning or tool calls */
    int         usage_only;        /* "choices": [] with a usage object */
    int         usage;             /* has a usage object with counts */
    int         error;             /* an "error" object mid-stream */
    long long   prompt_tokens;     /* usage.prompt_tokens */
    long long   completion_tokens; /* usage.completion_tokens */
} gpugate_oai_chunk_t;


/* Classifies the data of one stream event. */
void gpugate_oai_chunk_classify(const unsigned char *data, size_t len,
    gpugate_oai_chunk_t *c);


#endif /* _GPUGATE_OAI_CHUNK_H_INCLUDED_ */
