
/*
 * Copyright (C) gpugate authors
 *
 * The stripper of a stream whose usage the gateway asked for and the
 * client did not (see gpugate_oai_chunk.h): frames the stream's events as
 * they come, in buffers split anywhere, and hands each whole event to
 * gpugate_oai_event_classify_strip(), holding back at most the incomplete
 * tail of the current event.
 */


#include <stddef.h>
#include <string.h>

#include "gpugate_oai_chunk.h"


void
gpugate_oai_strip_init(gpugate_oai_strip_t *st, unsigned char *data,
    size_t data_cap, unsigned char *hold, size_t hold_cap)
{
    *st = (gpugate_oai_strip_t) { 0 };

    gpugate_sse_init(&st->sse, data, data_cap);
    st->hold = hold;
    st->hold_cap = hold_cap;
}


size_t
gpugate_oai_strip_feed(gpugate_oai_strip_t *st, const unsigned char *p,
    size_t len, unsigned char *out, size_t *out_len, gpugate_oai_chunk_t *c,
    int *what)
{
    int     done;
    size_t  i, n, m;

    *what = GPUGATE_OAI_STRIP_MORE;
    i = 0;

    if (st->cr_end && len) {
        st->cr_end = 0;

        if (p[0] == '\n') {
            /*
             * The LF of the CRLF whose CR ended the last event: it belongs
             * to that event, so it goes (or is dropped) with it now rather
             * than wait as the first byte of the next one.
             */

            (void) gpugate_sse_feed(&st->sse, p, 1, &done);

            if (!st->cr_drop) {
                out[(*out_len)++] = '\n';
            }

            i = 1;
        }
    }

    while (i < len) {
        m = len - i;

        if (!st->passing) {
            if (st->held == st->hold_cap) {
                *what = GPUGATE_OAI_STRIP_FULL;
                return i;
            }

            if (m > st->hold_cap - st->held) {
                m = st->hold_cap - st->held;
            }
        }

        n = gpugate_sse_feed(&st->sse, p + i, m, &done);

        if (st->passing) {
            memcpy(out + *out_len, p + i, n);
            *out_len += n;

        } else {
            memcpy(st->hold + st->held, p + i, n);
            st->held += n;
        }

        i += n;

        if (!done) {
            continue;
        }

        st->cr_drop = 0;

        if (!st->passing && st->sse.has_data && !st->sse.overflow) {
            /* one walk of the event classifies and strips it */
            n = gpugate_oai_event_classify_strip(st->hold, st->held,
                                                 st->sse.data,
                                                 st->sse.data_len, c);

        } else if (st->sse.has_data && !st->sse.overflow) {
            gpugate_oai_chunk_classify(st->sse.data, st->sse.data_len, c);

        } else {
            memset(c, 0, sizeof(gpugate_oai_chunk_t));

            if (!st->passing) {
                n = gpugate_oai_event_strip(st->hold, st->held);
            }
        }

        if (!st->passing) {
            memcpy(out + *out_len, st->hold, n);
            *out_len += n;
            st->cr_drop = (n == 0);
        }

        st->held = 0;
        st->passing = 0;
        st->cr_end = st->sse.skip_lf;
        gpugate_sse_next(&st->sse);

        *what = GPUGATE_OAI_STRIP_EVENT;
        return i;
    }

    return i;
}


void
gpugate_oai_strip_grow(gpugate_oai_strip_t *st, unsigned char *hold,
    size_t hold_cap)
{
    memcpy(hold, st->hold, st->held);

    st->hold = hold;
    st->hold_cap = hold_cap;
}


void
gpugate_oai_strip_pass(gpugate_oai_strip_t *st, unsigned char *out,
    size_t *out_len)
{
    memcpy(out + *out_len, st->hold, st->held);
    *out_len += st->held;

    st->held = 0;
    st->passing = 1;
}
