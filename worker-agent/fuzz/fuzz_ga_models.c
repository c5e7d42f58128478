
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: ga_models_parse() in every dialect on arbitrary bytes,
 * copied into a buffer of exactly their size (ASan catches a read past
 * "len"), into a full-size list and a small one.  Whatever the input, the
 * list must be NUL-terminated, pass the gateway's own check with as many
 * ids as were counted, and be empty with a reason when refused.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_tunnel_proto.h"
#include "ga_models.h"


static void
fuzz_check(int t, const char *copy, size_t size, size_t outsize)
{
    int     rc;
    char    out[GPUGATE_TUNNEL_MODELS_MAX + 1], err[128];
    size_t  len;

    memset(out, 'X', sizeof(out));
    memset(err, 'X', sizeof(err));

    rc = ga_models_parse((ga_runtime_e) t, copy, size, out, outsize, err,
                         sizeof(err));

    len = strnlen(out, outsize);

    if (len == outsize || strnlen(err, sizeof(err)) == sizeof(err)) {
        abort();
    }

    if (rc == -1) {
        if (len != 0 || err[0] == '\0') {
            abort();
        }

        return;
    }

    if (rc < 0 || len > GPUGATE_TUNNEL_MODELS_MAX
        || gpugate_tunnel_check_models(out, len) != rc
        || (rc == 0 && len != 0))
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int    t;
    char  *copy;

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    for (t = GA_RUNTIME_OPENAI; t <= GA_RUNTIME_OLLAMA; t++) {
        fuzz_check(t, copy, size, GPUGATE_TUNNEL_MODELS_MAX + 1);
        fuzz_check(t, copy, size, 16);
    }

    free(copy);

    return 0;
}
