
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target for the stripper: any bytes as a stream give the same
 * output whole, split in two anywhere, or byte by byte; the output is
 * never longer than the input, and equal to it when no event mentions
 * "usage"; stripping one event twice changes nothing the second time.
 */


#define _GNU_SOURCE                     /* memmem() */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_oai_chunk.h"


#define HOLD_MIN  16
#define HOLD_MAX  1024


static size_t
strip(const uint8_t *data, size_t size, size_t step, unsigned char *out)
{
    int                   what, n;
    size_t                off, piece, used, out_len;
    unsigned char        *hold[8], buf[256];
    gpugate_oai_chunk_t   c;
    gpugate_oai_strip_t   st;

    n = 0;
    hold[n] = malloc(HOLD_MIN);
    gpugate_oai_strip_init(&st, buf, sizeof(buf), hold[n++], HOLD_MIN);

    off = 0;
    out_len = 0;

    while (off < size) {
        piece = (step && step < size - off) ? step : size - off;

        while (piece) {
            used = gpugate_oai_strip_feed(&st, data + off, piece, out,
                                          &out_len, &c, &what);
            off += used;
            piece -= used;

            if (what != GPUGATE_OAI_STRIP_FULL) {
                continue;
            }

            if (st.hold_cap < HOLD_MAX) {
                hold[n] = malloc(st.hold_cap * 2);
                gpugate_oai_strip_grow(&st, hold[n++], st.hold_cap * 2);

            } else {
                gpugate_oai_strip_pass(&st, out, &out_len);
            }
        }
    }

    gpugate_oai_strip_pass(&st, out, &out_len);

    while (n) {
        free(hold[--n]);
    }

    return out_len;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          n, m, la, lb, lc;
    unsigned char  *a, *b, *c;

    if (size == 0) {
        return 0;
    }

    /* one event */

    a = malloc(size);
    memcpy(a, data, size);

    n = gpugate_oai_event_strip(a, size);

    if (n > size) {
        __builtin_trap();
    }

    if (n) {
        m = gpugate_oai_event_strip(a, n);

        if (m != n) {
            __builtin_trap();           /* nothing left to strip */
        }
    }

    free(a);

    /* a stream */

    a = malloc(size);
    b = malloc(size);
    c = malloc(size);

    la = strip(data, size, 0, a);
    lb = strip(data, size, data[0] % size + 1, b);
    lc = strip(data, size, 1, c);

    if (la > size || la != lb || la != lc || memcmp(a, b, la) != 0
        || memcmp(a, c, la) != 0)
    {
        __builtin_trap();
    }

    if (memmem(data, size, "\"usage\"", 7) == NULL
        && (la != size || memcmp(a, data, size) != 0))
    {
        __builtin_trap();               /* only usage is ever touched */
    }

    free(a);
    free(b);
    free(c);

    return 0;
}
