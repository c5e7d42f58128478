
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target for what the limits read from clients and operators
 * (seeds in seeds/ratelimit): the body estimate never reads past the
 * body and keeps every count within bounds; a price that parses prints
 * back to itself; any duration fits its buffer.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_ratelimit.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                   *copy, dur[GPUGATE_RL_DURATION_LEN];
    int64_t                 in, out, ms;
    gpugate_rl_estimate_t   e;

    /* an exact-size copy: ASan sees any read past the end */

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    if (gpugate_rl_estimate(copy, size, size & 1, 256, 4, &e) == 0) {
        if (e.prompt < 0 || e.prompt > GPUGATE_RL_COUNT_MAX
            || e.completion < 0 || e.completion > GPUGATE_RL_COUNT_MAX)
        {
            abort();
        }
    }

    if (gpugate_rl_price(copy, size, &in, &out) == 0) {
        if (in < 0 || out < 0 || gpugate_rl_cost(1000000, 1000000, in, out)
                                 != in + out)
        {
            abort();
        }
    }

    ms = 0;
    memcpy(&ms, data, size < sizeof(ms) ? size : sizeof(ms));

    if (gpugate_rl_duration(dur, ms) >= sizeof(dur)) {
        abort();
    }

    free(copy);

    return 0;
}
