
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: any bytes as a multipart body (boundary "XyZ"), fed
 * whole and split at a point the first byte picks: both scans must agree,
 * and a model found must lie in the body where the scanner says.  The
 * same bytes as a Content-Type value: a boundary found lies inside it.
 */


#include <stdint.h>
#include <string.h>

#include "gpugate_multipart.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int           r1, r2;
    size_t        cut, len;
    const char   *b;
    gpugate_mp_t  one, two;

    if (gpugate_mp_boundary((const char *) data, size, &b, &len) == 0
        && (b < (const char *) data || b + len > (const char *) data + size
            || len == 0 || len > GPUGATE_MP_BOUNDARY_MAX))
    {
        __builtin_trap();
    }

    if (size == 0) {
        return 0;
    }

    cut = data[0] % size;

    gpugate_mp_init(&one, "XyZ", 3);
    r1 = gpugate_mp_feed(&one, data, size);
    r1 = (r1 == 0) ? gpugate_mp_finish(&one) : -1;

    gpugate_mp_init(&two, "XyZ", 3);
    r2 = gpugate_mp_feed(&two, data, cut);
    r2 = (r2 == 0) ? gpugate_mp_feed(&two, data + cut, size - cut) : -1;
    r2 = (r2 == 0) ? gpugate_mp_finish(&two) : -1;

    if (r1 != r2) {
        __builtin_trap();
    }

    if (r1 == 0
        && (one.model_start != two.model_start
            || one.model_end != two.model_end
            || strcmp(one.model, two.model) != 0
            || one.model_end - one.model_start != (long long) one.model_len
            || one.model_end > (long long) size
            || memcmp(data + one.model_start, one.model, one.model_len)
               != 0))
    {
        __builtin_trap();
    }

    return 0;
}
