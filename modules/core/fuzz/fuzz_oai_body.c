
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: any bytes as a request body for every endpoint; a
 * successful parse must also survive a rewrite, and a body rewritten to
 * ask for usage and carry a priority must parse again, asking for it,
 * with the new model and one priority member.
 * The same bytes as a request path: a model id lies inside it.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_oai_body.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 kind;
    char               *out;
    size_t              len;
    size_t              id_len;
    const char         *id;
    gpugate_oai_body_t  b, again;

    for (kind = 0; kind <= GPUGATE_OAI_SPEECH; kind++) {
        if (gpugate_oai_body_parse(&b, (const char *) data, size,
                                   (gpugate_oai_kind_e) kind) == 0)
        {
            len = gpugate_oai_body_rewrite_len(&b, "fuzz-target", 0, -1);
            out = malloc(len);

            if (len == 0 || out == NULL
                || gpugate_oai_body_rewrite(&b, "fuzz-target", 0, -1, out)
                   != len)
            {
                __builtin_trap();
            }

            free(out);

            /* with a priority: exactly one member, of that value */

            len = gpugate_oai_body_rewrite_len(&b, "fuzz-target", 1, 7);
            out = malloc(len);

            if (len == 0 || out == NULL
                || gpugate_oai_body_rewrite(&b, "fuzz-target", 1, 7, out)
                   != len
                || gpugate_oai_body_parse(&again, out, len,
                                          (gpugate_oai_kind_e) kind) != 0
                || !again.include_usage || again.stream != b.stream
                || strcmp(again.model, "fuzz-target") != 0
                || again.prio_count != 1
                || again.prio_end[-1] != '7'
                || memcmp(again.prio_start, "\"priority\":7", 12) != 0)
            {
                __builtin_trap();
            }

            gpugate_oai_body_free(&again);
            free(out);
        }

        gpugate_oai_body_free(&b);
    }

    id = NULL;

    if (gpugate_oai_path((const char *) data, size, &id, &id_len)
        == GPUGATE_OAI_PATH_MODEL
        && (id == NULL || id_len == 0 || id < (const char *) data
            || id + id_len != (const char *) data + size))
    {
        __builtin_trap();
    }

    return 0;
}
