
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: gg_http_parse_head() on arbitrary bytes, as a request
 * and as a response, whole and split in two at a byte chosen by the input;
 * both must agree, and every offset must stay inside the input.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gg_http_parse.h"


static void
check(const gg_http_head_t *h, size_t len)
{
    size_t  i;

    if (h->head_len > len || h->method + h->method_len > len
        || h->uri + h->uri_len > len || h->reason + h->reason_len > len)
    {
        abort();
    }

    for (i = 0; i < h->nheaders; i++) {
        if (h->headers[i].name + h->headers[i].name_len > len
            || h->headers[i].value + h->headers[i].value_len > len)
        {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              response, rc1, rc2;
    size_t           split;
    gg_http_head_t   a, b;
    const char      *buf;

    if (size < 2) {
        return 0;
    }

    response = data[0] & 1;
    split = data[1];
    buf = (const char *) data + 2;
    size -= 2;

    if (split > size) {
        split = size;
    }

    gg_http_head_init(&a, response, 4096);
    rc1 = gg_http_parse_head(&a, buf, size);

    gg_http_head_init(&b, response, 4096);
    rc2 = gg_http_parse_head(&b, buf, split);

    if (rc2 == GG_HTTP_AGAIN) {
        rc2 = gg_http_parse_head(&b, buf, size);
    }

    if (rc1 != rc2) {
        abort();
    }

    if (rc1 == GG_HTTP_OK) {
        check(&a, size);

        if (a.head_len != b.head_len || a.nheaders != b.nheaders) {
            abort();
        }
    }

    return 0;
}
