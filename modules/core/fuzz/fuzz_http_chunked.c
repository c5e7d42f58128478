
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: gg_http_parse_chunked() in place on arbitrary bytes,
 * whole and fed one byte at a time; both must decode the same body.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gg_http_parse.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 rc1, rc2;
    char               *whole, *out2, c;
    size_t              i, used, n1, n2, n, o2;
    gg_http_chunked_t   ck;

    whole = malloc(size + 1);
    out2 = malloc(size + 1);
    if (whole == NULL || out2 == NULL) {
        free(whole);
        free(out2);
        return 0;
    }

    memcpy(whole, data, size);

    gg_http_chunked_init(&ck, 1 << 20);
    rc1 = gg_http_parse_chunked(&ck, whole, size, whole, &used, &n1);

    if (used > size || n1 > used) {
        abort();
    }

    gg_http_chunked_init(&ck, 1 << 20);
    rc2 = GG_HTTP_AGAIN;
    o2 = 0;

    for (i = 0; i < size && rc2 == GG_HTTP_AGAIN; i++) {
        c = (char) data[i];
        rc2 = gg_http_parse_chunked(&ck, &c, 1, out2 + o2, &n, &n2);
        o2 += n2;
    }

    if (rc1 != rc2 || n1 != o2 || memcmp(whole, out2, n1) != 0) {
        abort();
    }

    free(whole);
    free(out2);

    return 0;
}
