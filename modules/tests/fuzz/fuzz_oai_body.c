
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: any bytes as a request body for every endpoint; a
 * successful parse must also survive a rewrite.
 */


#include <stdint.h>
#include <stdlib.h>

#include "gpugate_oai_body.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 kind;
    char               *out;
    size_t              len;
    gpugate_oai_body_t  b;

    for (kind = 0; kind < 3; kind++) {
        if (gpugate_oai_body_parse(&b, (const char *) data, size,
                                   (gpugate_oai_kind_e) kind) == 0)
        {
            out = gpugate_oai_body_with_model(&b, "fuzz-target", &len);
            free(out);
        }

        gpugate_oai_body_free(&b);
    }

    return 0;
}
