
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target for the reasoning split: any bytes as an answer's
 * content give the same reasoning and content whole, byte by byte, and
 * cut at the places the input's last bytes choose; the two parts are
 * never longer than the input together, and an input that does not
 * start (after whitespace) with the opening tag's first character comes
 * out unchanged as content.  The JSON walk is run over the input too.
 *
 *   build/fuzz/fuzz_think corpus/    (a copy of fuzz/seeds/think)
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_think.h"


typedef struct {
    unsigned char  *reason;
    size_t          rlen;
    unsigned char  *content;
    size_t          clen;
} parts_t;


static void
run(const uint8_t *data, size_t size, const uint8_t *cuts, size_t ncuts,
    size_t step, parts_t *o)
{
    size_t           off, n, i;
    gpugate_think_t  t;

    gpugate_think_init(&t, "<think>", 7, "</think>", 8);

    o->rlen = 0;
    o->clen = 0;
    i = 0;

    for (off = 0; off < size; off += n) {
        if (ncuts) {
            n = cuts[i++ % ncuts] % 9 + 1;
        } else {
            n = step ? step : size;
        }

        if (n > size - off) {
            n = size - off;
        }

        gpugate_think_feed(&t, data + off, n, o->reason, &o->rlen,
                           o->content, &o->clen);
    }

    gpugate_think_end(&t, o->reason, &o->rlen, o->content, &o->clen);
}


static int
same(parts_t *a, parts_t *b)
{
    return a->rlen == b->rlen && a->clen == b->clen
           && memcmp(a->reason, b->reason, a->rlen) == 0
           && memcmp(a->content, b->content, a->clen) == 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   i;
    size_t                k, ncuts;
    parts_t               p[3];
    gpugate_think_loc_t   loc[8];

    gpugate_think_locate(data, size, "delta", loc, 8);
    gpugate_think_locate(data, size, "message", loc, 8);
    gpugate_think_reported(data, size);

    for (i = 0; i < 3; i++) {
        p[i].reason = malloc(size + 1);
        p[i].content = malloc(size + 1);
    }

    ncuts = size > 4 ? 4 : size;

    run(data, size, NULL, 0, 0, &p[0]);
    run(data, size, NULL, 0, 1, &p[1]);
    run(data, size, data + size - ncuts, ncuts, 0, &p[2]);

    if (!same(&p[0], &p[1]) || !same(&p[0], &p[2])
        || p[0].rlen + p[0].clen > size)
    {
        __builtin_trap();
    }

    for (k = 0; k < size; k++) {
        if (data[k] != ' ' && data[k] != '\n' && data[k] != '\t'
            && data[k] != '\r')
        {
            break;
        }
    }

    if (k < size && data[k] != '<' && data[k] != '\\'
        && (p[0].rlen != 0 || p[0].clen != size
            || memcmp(p[0].content, data, size) != 0))
    {
        __builtin_trap();               /* no tag: content unchanged */
    }

    for (i = 0; i < 3; i++) {
        free(p[i].reason);
        free(p[i].content);
    }

    return 0;
}
