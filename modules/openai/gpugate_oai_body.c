
/*
 * Copyright (C) gpugate authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_oai_body.h"


static int
gpugate_oai_fail(gpugate_oai_body_t *b, const char *error, const char *param,
    const char *code)
{
    b->error = error;
    b->param = param;
    b->code = code;

    return -1;
}


int
gpugate_oai_body_parse(gpugate_oai_body_t *b, const char *data, size_t len,
    gpugate_oai_kind_e kind)
{
    size_t        i;
    json_t       *v, *opts, *item;
    json_error_t  err;

    memset(b, 0, sizeof(gpugate_oai_body_t));

    /* JSON_REJECT_DUPLICATES: {"model":"a","model":"b"} is ambiguous and
       a runtime might pick the other one than the router */

    b->root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);

    if (b->root == NULL) {
        snprintf(b->msg, sizeof(b->msg), "We could not parse the JSON body "
                 "of your request: %s (at character %d).", err.text,
                 err.position);
        return gpugate_oai_fail(b, b->msg, NULL, "invalid_json");
    }

    if (!json_is_object(b->root)) {
        return gpugate_oai_fail(b, "The request body must be a JSON object.",
                                NULL, "invalid_json");
    }

    v = json_object_get(b->root, "model");

    if (v == NULL || json_is_null(v)) {
        return gpugate_oai_fail(b, "You must provide a model parameter.",
                                "model", "missing_required_parameter");
    }

    if (!json_is_string(v)) {
        return gpugate_oai_fail(b, "'model' must be a string.", "model",
                                "invalid_type");
    }

    b->model = json_string_value(v);
    b->model_len = json_string_length(v);

    if (b->model_len == 0 || b->model_len > GPUGATE_OAI_MODEL_MAX
        || strlen(b->model) != b->model_len)
    {
        return gpugate_oai_fail(b, "'model' must be 1 to 256 characters "
                                "without NUL.", "model", "invalid_value");
    }

    v = json_object_get(b->root, "stream");

    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            return gpugate_oai_fail(b, "'stream' must be a boolean.",
                                    "stream", "invalid_type");
        }

        b->stream = json_is_true(v);
    }

    opts = json_object_get(b->root, "stream_options");

    if (opts && !json_is_null(opts)) {
        if (!json_is_object(opts)) {
            return gpugate_oai_fail(b, "'stream_options' must be an object.",
                                    "stream_options", "invalid_type");
        }

        v = json_object_get(opts, "include_usage");

        if (v && !json_is_null(v) && !json_is_boolean(v)) {
            return gpugate_oai_fail(b, "'stream_options.include_usage' must "
                                    "be a boolean.",
                                    "stream_options.include_usage",
                                    "invalid_type");
        }

        b->include_usage = json_is_true(v);
    }

    switch (kind) {

    case GPUGATE_OAI_CHAT:
        v = json_object_get(b->root, "messages");

        if (!json_is_array(v) || json_array_size(v) == 0) {
            return gpugate_oai_fail(b, "'messages' must be a non-empty "
                                    "array.", "messages",
                                    v ? "invalid_type"
                                      : "missing_required_parameter");
        }

        json_array_foreach(v, i, item) {
            if (!json_is_object(item)) {
                return gpugate_oai_fail(b, "Each message must be an object.",
                                        "messages", "invalid_type");
            }
        }

        break;

    case GPUGATE_OAI_COMPLETIONS:
        v = json_object_get(b->root, "prompt");

        if (v == NULL) {
            return gpugate_oai_fail(b, "You must provide a prompt "
                                    "parameter.", "prompt",
                                    "missing_required_parameter");
        }

        if (!json_is_string(v) && !json_is_array(v)) {
            return gpugate_oai_fail(b, "'prompt' must be a string or an "
                                    "array.", "prompt", "invalid_type");
        }

        break;

    default: /* GPUGATE_OAI_EMBEDDINGS */
        v = json_object_get(b->root, "input");

        if (v == NULL) {
            return gpugate_oai_fail(b, "You must provide an input "
                                    "parameter.", "input",
                                    "missing_required_parameter");
        }

        if (!json_is_string(v) && !json_is_array(v)) {
            return gpugate_oai_fail(b, "'input' must be a string or an "
                                    "array.", "input", "invalid_type");
        }

        if (b->stream) {
            return gpugate_oai_fail(b, "Embeddings cannot be streamed.",
                                    "stream", "invalid_value");
        }
    }

    return 0;
}


char *
gpugate_oai_body_with_model(gpugate_oai_body_t *b, const char *model,
    size_t *len)
{
    char  *s;

    /* set_new replaces the value in place: the key keeps its position */

    if (json_object_set_new(b->root, "model", json_string(model)) != 0) {
        return NULL;
    }

    b->model = json_string_value(json_object_get(b->root, "model"));
    b->model_len = strlen(b->model);

    s = json_dumps(b->root, JSON_COMPACT | JSON_PRESERVE_ORDER);

    if (s) {
        *len = strlen(s);
    }

    return s;
}


void
gpugate_oai_body_free(gpugate_oai_body_t *b)
{
    if (b->root) {
        json_decref(b->root);
        b->root = NULL;
    }

    b->model = NULL;
}


int
gpugate_oai_model_allowed(const char *list, size_t list_len,
    const char *model, size_t model_len)
{
    const char  *p, *end, *comma;

    if (list_len == 1 && list[0] == '*') {
        return 1;
    }

    p = list;
    end = list + list_len;

    while (p < end) {
        comma = memchr(p, ',', end - p);
        if (comma == NULL) {
            comma = end;
        }

        if ((size_t) (comma - p) == model_len
            && memcmp(p, model, model_len) == 0)
        {
            return 1;
        }

        p = comma + 1;
    }

    return 0;
}
