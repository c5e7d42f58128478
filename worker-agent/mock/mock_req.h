
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: a digested inference request, the input of the
 * deterministic "model" (mock_gen.c) and of its inline reasoning
 * (mock_think.c).  Types only, below both.
 */


#ifndef _MOCK_REQ_H_INCLUDED_
#define _MOCK_REQ_H_INCLUDED_


#include <stdint.h>


typedef enum {
    MOCK_CHAT = 0,
    MOCK_COMPLETION,
    MOCK_EMBEDDING
} mock_kind_e;


typedef struct {
    mock_kind_e   kind;          /* endpoint */
    const char   *model;         /* request's model, owned by the JSON */
    int           stream;        /* "stream": true */
    int           include_usage; /* stream_options.include_usage */
    long          max_tokens;    /* -1 when absent */
    uint64_t      hash;          /* of model and prompt: seeds the output */
    long          prompt_tokens; /* words in the prompt, at least 1 */
    long          cache_read;    /* X-Mock-Cache-Read: prompt tokens
                                    the usage says came from the
                                    prompt cache, besides the words */
    long          cache_write;   /* X-Mock-Cache-Write: prompt tokens
                                    written to it (Anthropic only) */
    char          id[40];        /* response id derived from the hash */
    long          think;         /* X-Mock-Think: reasoning words the
                                    answer starts with, inline in
                                    <think>...</think>; 0: none */
    long          think_bytes;   /* X-Mock-Think-Bytes: that part sent one
                                    byte per token */
    long          think_report;  /* X-Mock-Think-Report: usage reports
                                    completion_tokens_details */
} mock_req_t;


#endif /* _MOCK_REQ_H_INCLUDED_ */
