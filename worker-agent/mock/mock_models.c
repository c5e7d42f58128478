
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: the served models.  The check every endpoint
 * makes of a request's model and the 404 it answers, and the endpoints
 * that list them (GET /v1/models; Ollama's /api/tags and /api/ps, TGI's
 * /info in those dialects) or replace them (POST /mock/models).  The
 * list itself is mock_conf.models (mock_state.c).
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_gen.h"
#include "mock_models.h"
#include "mock_state.h"


int
mock_served(const char *model)
{
    int  i;

    for (i = 0; i < mock_conf.nmodels; i++) {
        if (strcmp(mock_conf.models[i], model) == 0) {
            return 1;
        }
    }

    return 0;
}


void
mock_not_found_model(mock_conn_t *c, const char *model)
{
    char  msg[512];

    snprintf(msg, sizeof(msg), "The model `%.400s` does not exist.", model);
    mock_respond_error(c, 404, msg, "invalid_request_error", "model",
                       "model_not_found", NULL);
}


static void
mock_models_json(mock_conn_t *c, json_t *root)
{
    char  *s;

    s = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);

    if (s == NULL) {
        mock_conn_fail(c);
        return;
    }

    mock_respond(c, 200, "application/json", s, NULL);
    free(s);
}


void
mock_models_list(mock_conn_t *c)
{
    int      i;
    char    *s;
    json_t  *data, *root;

    data = json_array();

    for (i = 0; i < mock_conf.nmodels; i++) {
        json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}",
                              "id", mock_conf.models[i], "object", "model",
                              "created", MOCK_CREATED,
                              "owned_by", "gpugate-mock"));
    }

    root = json_pack("{s:s, s:o}", "object", "list", "data", data);
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);

    if (s == NULL) {
        mock_conn_fail(c);
        return;
    }

    mock_respond(c, 200, "application/json", s, NULL);
    free(s);
}


/*
 * Ollama's /api/tags (the models pulled) and /api/ps (those in memory):
 * every --models name, with the fields Ollama gives and fixed values, as
 * a real one's would be.
 */

#define MOCK_OLLAMA_DIGEST                                                    \
    "8934d96d3f08982e95922b2b7a2c626a1fe873d7c3b06e8e56d7bc0a1fef9246"
#define MOCK_OLLAMA_SIZE       4661224676LL
#define MOCK_OLLAMA_VRAM       5137025024LL

void
mock_models_ollama(mock_conn_t *c, int ps)
{
    int      i;
    json_t  *models, *m, *details;

    models = json_array();

    for (i = 0; models && i < mock_conf.nmodels; i++) {
        details = json_pack("{s:s, s:s, s:s, s:[s], s:s, s:s}",
                            "parent_model", "", "format", "gguf",
                            "family", "llama", "families", "llama",
                            "parameter_size", "8.0B",
                            "quantization_level", "Q4_0");

        if (ps) {
            m = json_pack("{s:s, s:s, s:I, s:s, s:o, s:s, s:I}",
                          "name", mock_conf.models[i],
                          "model", mock_conf.models[i],
                          "size", (json_int_t) MOCK_OLLAMA_VRAM,
                          "digest", MOCK_OLLAMA_DIGEST, "details", details,
                          "expires_at", "2030-01-01T00:00:00Z",
                          "size_vram", (json_int_t) MOCK_OLLAMA_VRAM);

        } else {
            m = json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}",
                          "name", mock_conf.models[i],
                          "model", mock_conf.models[i],
                          "modified_at", "2024-05-01T10:00:00Z",
                          "size", (json_int_t) MOCK_OLLAMA_SIZE,
                          "digest", MOCK_OLLAMA_DIGEST, "details", details);
        }

        if (json_array_append_new(models, m) != 0) {
            json_decref(models);
            models = NULL;
        }
    }

    mock_models_json(c, models ? json_pack("{s:o}", "models", models)
                                : NULL);
}


/* TGI serves one model: /info names it, with a few of its other fields */

void
mock_models_tgi_info(mock_conn_t *c)
{
    mock_models_json(c, json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, "
                                   "s:s}",
                      "model_id", mock_conf.nmodels ? mock_conf.models[0]
                                                    : "",
                      "model_sha", "0000000000000000000000000000000000000000",
                      "model_dtype", "torch.float16",
                      "model_device_type", "cuda",
                      "max_concurrent_requests",
                      (json_int_t) (mock_conf.max_concurrency
                                    ? mock_conf.max_concurrency : 128),
                      "max_input_tokens", 4095, "max_total_tokens", 4096,
                      "version", "2.4.1-gpugate-mock"));
}


/* test control: the served models change, as when a runtime loads one */

void
mock_models_post(mock_conn_t *c)
{
    size_t       len;
    const char  *p, *err;

    p = c->body.data ? gg_buf_pos(&c->body) : "";
    len = gg_buf_len(&c->body);

    /* "curl --data-binary @file" keeps the file's last newline */
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r')) {
        len--;
    }

    if (mock_models_set(p, len, &err) != 0) {
        mock_respond_error(c, 400, err, "invalid_request_error", NULL, NULL,
                           NULL);
        return;
    }

    mock_log(0, "models replaced: %d served", mock_conf.nmodels);
    mock_models_list(c);
}
