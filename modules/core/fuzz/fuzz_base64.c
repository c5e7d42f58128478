
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: the input as base64 text and as raw bytes.  What
 * decodes must stay inside the output and encode back to the very same
 * text (strict decoding: one spelling per value); raw bytes must encode
 * to GPUGATE_BASE64_LEN characters and decode back.  Seeds in
 * modules/core/fuzz/seeds/base64.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_base64.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           *text;
    size_t          n;
    ssize_t         m;
    unsigned char  *raw;

    raw = malloc(size + 1);
    text = malloc(GPUGATE_BASE64_LEN(size) + 1);

    if (raw == NULL || text == NULL) {
        __builtin_trap();
    }

    /* the input as text, into an output of exactly the room it needs */

    m = gpugate_base64_decode((const char *) data, size, raw, size / 4 * 3);

    if (m >= 0) {
        n = gpugate_base64_encode(raw, (size_t) m, text);

        if (n != size || memcmp(text, data, size) != 0) {
            __builtin_trap();
        }
    }

    /* the input as bytes */

    n = gpugate_base64_encode(data, size, text);

    if (n != GPUGATE_BASE64_LEN(size)) {
        __builtin_trap();
    }

    m = gpugate_base64_decode(text, n, raw, size);

    if (size > 0 && (m != (ssize_t) size || memcmp(raw, data, size) != 0)) {
        __builtin_trap();
    }

    free(raw);
    free(text);

    return 0;
}
