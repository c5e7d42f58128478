
/*
 * Copyright (C) gpugate authors
 */


#include <string.h>

#include <jansson.h>

#include "gpugate_oai_chunk.h"


static int
gpugate_oai_nonempty(json_t *v)
{
    if (json_is_string(v)) {
        return json_string_length(v) > 0;
    }

    if (json_is_array(v)) {
        return json_array_size(v) > 0;
    }

    return 0;
}


static int
gpugate_oai_count(json_t *usage, const char *name, long long *out)
{
    json_t  *v;

    v = json_object_get(usage, name);

    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return 0;
    }

    *out = (long long) json_integer_value(v);

    return 1;
}


void
gpugate_oai_chunk_classify(const unsigned char *data, size_t len,
    gpugate_oai_chunk_t *c)
{
    size_t   i;
    json_t  *root, *choices, *choice, *delta, *usage;

    memset(c, 0, sizeof(gpugate_oai_chunk_t));

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        c->done = 1;
        return;
    }

    root = json_loadb((const char *) data, len, 0, NULL);

    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }

    c->parsed = 1;
    c->error = json_is_object(json_object_get(root, "error"));

    choices = json_object_get(root, "choices");

    json_array_foreach(choices, i, choice) {
        /* chat: delta.*, full answers: message.*; completions: text */
        delta = json_object_get(choice, "delta");
        if (!json_is_object(delta)) {
            delta = json_object_get(choice, "message");
        }

        if (gpugate_oai_nonempty(json_object_get(choice, "text"))
            || (json_is_object(delta)
                && (gpugate_oai_nonempty(json_object_get(delta, "content"))
                    || gpugate_oai_nonempty(json_object_get(delta,
                                                   "reasoning_content"))
                    || gpugate_oai_nonempty(json_object_get(delta,
                                                            "tool_calls")))))
        {
            c->content = 1;
        }
    }

    usage = json_object_get(root, "usage");

    if (json_is_object(usage)
        && gpugate_oai_count(usage, "prompt_tokens", &c->prompt_tokens))
    {
        c->usage = 1;

        /* embeddings have no completion tokens */
        (void) gpugate_oai_count(usage, "completion_tokens",
                                 &c->completion_tokens);

        c->usage_only = json_is_array(choices)
                        && json_array_size(choices) == 0;
    }

    json_decref(root);
}
