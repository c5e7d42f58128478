
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target for the UTF-8 cut (seeds in seeds/utf8): for any
 * input and any size (the first byte, times 4), the output fits, is
 * valid UTF-8 without NUL, comes out the same when cut again, and a
 * valid input keeps its prefix.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_utf8.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t         cap, n, m;
    unsigned char  out[1024], again[1024];

    if (size == 0) {
        return 0;
    }

    cap = data[0] * 4;
    data++;
    size--;

    if (size > 1024) {
        size = 1024;
    }

    n = gpugate_utf8_cut(out, cap, data, size);

    if (n > cap || !gpugate_utf8_valid(out, n)) {
        abort();
    }

    m = gpugate_utf8_cut(again, sizeof(again), out, n);

    if (m != n || memcmp(again, out, n) != 0) {
        abort();
    }

    if (gpugate_utf8_valid(data, size)
        && (memcmp(out, data, n) != 0 || (n < size && n + 4 <= cap)))
    {
        abort();
    }

    return 0;
}
