
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target for the prompt prefix hashes (seeds in seeds/prefix):
 * for any body, either kind and a block size from the first byte, the
 * count stays within the depth, a cut body's hashes are a prefix of the
 * whole body's, and the user field never reads out of bounds.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_prefix.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char      *copy;
    size_t     block, n, m, i, cut;
    uint64_t   a[GPUGATE_PREFIX_DEPTH_MAX], b[GPUGATE_PREFIX_DEPTH_MAX];
    uint64_t   h;
    int        kind;

    if (size < 2) {
        return 0;
    }

    block = GPUGATE_PREFIX_BLOCK_MIN + data[0] % 32;
    kind = data[1] & 1;
    data += 2;
    size -= 2;

    /* an exact-size copy, so that the sanitizer sees any overread */

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    n = gpugate_prefix_hashes(kind, copy, size, block, 8, 1, a);

    if (n > 8) {
        abort();
    }

    cut = size / 2;
    m = gpugate_prefix_hashes(kind, copy, cut, block, 8, 1, b);

    /* a cut body reads the same bytes first: its blocks are shared */

    if (m > n) {
        abort();
    }

    for (i = 0; i < m; i++) {
        if (a[i] != b[i]) {
            abort();
        }
    }

    (void) gpugate_prefix_user(copy, size, 1, &h);

    free(copy);

    return 0;
}
