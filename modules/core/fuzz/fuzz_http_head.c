
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: gg_http_parse_head() on arbitrary bytes, as a request
 * and as a response, whole and split in two at a byte chosen by the input;
 * both must agree, and every offset must stay inside the input.  A head
 * that parsed OK is walked with gg_http_header_next(): every field, inside
 * the head, as many as were counted.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gg_http_parse.h"


static void
check(const gg_http_head_t *h, const char *buf, size_t len)
{
    size_t            i, pos, n;
    gg_http_header_t  hd;

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

    pos = 0;
    n = 0;

    while (gg_http_header_next(h, buf, &pos, &hd)) {
        if (hd.name + hd.name_len > h->head_len
            || hd.value + hd.value_len > h->head_len
            || (n < h->nheaders
                && memcmp(&hd, &h->headers[n], sizeof(hd)) != 0))
        {
            abort();
        }

        n++;
    }

    if (n != h->nfields) {
        abort();
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
        check(&a, buf, size);
    }

    if (rc1 == GG_HTTP_OK || rc1 == GG_HTTP_INVALID) {
        if (a.head_len != b.head_len || a.nheaders != b.nheaders
            || a.nfields != b.nfields || a.invalid_at != b.invalid_at
            || a.content_length != b.content_length || a.head_len > size)
        {
            abort();
        }
    }

    return 0;
}
