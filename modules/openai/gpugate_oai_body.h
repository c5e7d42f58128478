
/*
 * Copyright (C) gpugate authors
 *
 * OpenAI request bodies, independent of nginx (unit-tested and fuzzed on
 * their own): what the router needs from a body (model, stream flags), the
 * precise error OpenAI clients expect when it is wrong, and the rewritten
 * body when the runtime must see another model name.
 */


#ifndef _GPUGATE_OAI_BODY_H_INCLUDED_
#define _GPUGATE_OAI_BODY_H_INCLUDED_


#include <stddef.h>

#include <jansson.h>


#define GPUGATE_OAI_MODEL_MAX  256


typedef enum {
    GPUGATE_OAI_CHAT = 0,
    GPUGATE_OAI_COMPLETIONS,
    GPUGATE_OAI_EMBEDDINGS
} gpugate_oai_kind_e;


typedef struct {
    json_t       *root;          /* parsed body; owns "model" */
    const char   *model;         /* "model", NUL-terminated */
    size_t        model_len;     /* its length */
    int           stream;        /* "stream": true */
    int           include_usage; /* stream_options.include_usage: true */
    const char   *error;         /* on failure: message for the client */
    const char   *param;         /* on failure: offending field or NULL */
    const char   *code;          /* on failure: OpenAI error code or NULL */
    char          msg[256];      /* storage for a formatted "error" */
} gpugate_oai_body_t;


/*
 * Parses and checks a body for the endpoint.  0 on success; -1 with
 * error/param/code set.  gpugate_oai_body_free() in both cases.
 */
int gpugate_oai_body_parse(gpugate_oai_body_t *b, const char *data,
    size_t len, gpugate_oai_kind_e kind);

/*
 * The body with "model" replaced, serialised compactly with the key order
 * kept; malloc()ed (free() it), NULL when out of memory.
 */
char *gpugate_oai_body_with_model(gpugate_oai_body_t *b, const char *model,
    size_t *len);

void gpugate_oai_body_free(gpugate_oai_body_t *b);

/*
 * 1 if "model" is in the comma-separated "list" ("*" allows all), as
 * $gpugate_allowed_models gives it.
 */
int gpugate_oai_model_allowed(const char *list, size_t list_len,
    const char *model, size_t model_len);


#endif /* _GPUGATE_OAI_BODY_H_INCLUDED_ */
