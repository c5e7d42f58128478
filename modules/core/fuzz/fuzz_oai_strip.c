
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target for the stripper: any bytes as a stream give the same
 * output whole, split in two anywhere, or byte by byte; the output is
 * never longer than the input, and equal to it when no event mentions
 * "usage"; stripping one event twice changes nothing the second time;
 * the first event's one walk (gpugate_oai_event_classify_strip) gives the
 * bytes and the chunk of the stripper and the classifier apart.
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


static int
same_chunk(const gpugate_oai_chunk_t *a, const gpugate_oai_chunk_t *b)
{
    unsigned  i;

    if (a->done != b->done || a->parsed != b->parsed
        || a->content != b->content || a->usage_only != b->usage_only
        || a->usage != b->usage || a->usage_out != b->usage_out
        || a->final != b->final || a->error != b->error
        || a->prompt_tokens != b->prompt_tokens
        || a->completion_tokens != b->completion_tokens
        || a->cache_read_tokens != b->cache_read_tokens
        || a->cache_write_tokens != b->cache_write_tokens
        || a->reasons.n != b->reasons.n)
    {
        return 0;
    }

    for (i = 0; i < a->reasons.n; i++) {
        if (a->reasons.len[i] != b->reasons.len[i]
            || memcmp(a->reasons.s[i], b->reasons.s[i], a->reasons.len[i])
               != 0)
        {
            return 0;
        }
    }

    return 1;
}


/* the first event of data: one walk against the two */

static void
one_walk(const uint8_t *data, size_t size)
{
    int                   done;
    size_t                n, ref, one;
    unsigned char        *a, *b, buf[256];
    gpugate_sse_t         sse;
    gpugate_oai_chunk_t   ca, cb;

    gpugate_sse_init(&sse, buf, sizeof(buf));
    n = gpugate_sse_feed(&sse, data, size, &done);

    if (!done || !sse.has_data || sse.overflow) {
        return;
    }

    a = malloc(n);
    b = malloc(n);
    memcpy(a, data, n);
    memcpy(b, data, n);

    gpugate_oai_chunk_classify(sse.data, sse.data_len, &ca);
    ref = gpugate_oai_event_strip(a, n);
    one = gpugate_oai_event_classify_strip(b, n, sse.data, sse.data_len,
                                           &cb);

    if (one != ref || memcmp(a, b, ref) != 0 || !same_chunk(&ca, &cb)) {
        __builtin_trap();
    }

    free(a);
    free(b);
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

    one_walk(data, size);

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
