
/*
 * Copyright (C) gpugate authors
 */


#include <string.h>

#include "gpugate_sse.h"


enum {
    GPUGATE_SSE_LINE_START = 0,    /* nothing of this line seen yet */
    GPUGATE_SSE_NAME,              /* in the field name */
    GPUGATE_SSE_VALUE_START,       /* just after ':' (one space skipped) */
    GPUGATE_SSE_VALUE              /* in the value, or in a comment */
};


void
gpugate_sse_init(gpugate_sse_t *s, unsigned char *data, size_t cap)
{
    *s = (gpugate_sse_t) { 0 };

    s->data = data;
    s->data_cap = cap;
}


void
gpugate_sse_next(gpugate_sse_t *s)
{
    s->data_len = 0;
    s->event_bytes = 0;
    s->has_field = 0;
    s->has_data = 0;
    s->overflow = 0;
}


static void
gpugate_sse_data_byte(gpugate_sse_t *s, unsigned char c)
{
    if (s->data_len < s->data_cap) {
        s->data[s->data_len++] = c;

    } else {
        s->overflow = 1;
    }
}


/* bytes of a value: as many as fit, the rest only marks the overflow */

static void
gpugate_sse_data_run(gpugate_sse_t *s, const unsigned char *p, size_t n)
{
    size_t  k;

    k = s->data_cap - s->data_len;

    if (k > n) {
        k = n;
    }

    memcpy(s->data + s->data_len, p, k);
    s->data_len += k;

    if (k < n) {
        s->overflow = 1;
    }
}


/* a name ended (by ':' or a line end): was it "data"? */

static void
gpugate_sse_name_end(gpugate_sse_t *s)
{
    s->has_field = 1;
    s->data_line = (s->name_data && s->name_len == 4);

    if (s->data_line) {
        /* every data line after the first starts with a newline */
        if (s->has_data) {
            gpugate_sse_data_byte(s, '\n');
        }

        s->has_data = 1;
    }
}


size_t
gpugate_sse_feed(gpugate_sse_t *s, const unsigned char *p, size_t len,
    int *done)
{
    size_t         i, j;
    unsigned char  c;

    static const char  data_name[] = "data";

    *done = 0;

    for (i = 0; i < len; i++) {
        c = p[i];
        s->event_bytes++;

        if (s->skip_lf) {
            s->skip_lf = 0;

            if (c == '\n') {
                /* the LF of a CRLF whose CR already ended a line */
                continue;
            }
        }

        if (c == '\r' || c == '\n') {
            s->skip_lf = (c == '\r');

            switch (s->state) {

            case GPUGATE_SSE_LINE_START:
                /* an empty line: the event is complete */
                *done = 1;
                return i + 1;

            case GPUGATE_SSE_NAME:
                /* a line with a name and no colon: a field, empty value */
                gpugate_sse_name_end(s);
                break;

            default:
                break;
            }

            s->state = GPUGATE_SSE_LINE_START;
            s->data_line = 0;
            continue;
        }

        switch (s->state) {

        case GPUGATE_SSE_LINE_START:
            if (c == ':') {
                /* a comment such as ": ping": not a field */
                s->state = GPUGATE_SSE_VALUE;
                s->data_line = 0;
                break;
            }

            s->state = GPUGATE_SSE_NAME;
            s->name_len = 0;
            s->name_data = 1;

            /* fall through */

        case GPUGATE_SSE_NAME:
            if (c == ':') {
                gpugate_sse_name_end(s);
                s->state = GPUGATE_SSE_VALUE_START;
                break;
            }

            if (s->name_len < 4 && s->name_data
                && c == (unsigned char) data_name[s->name_len])
            {
                s->name_len++;

            } else {
                s->name_data = 0;
            }

            break;

        case GPUGATE_SSE_VALUE_START:
            s->state = GPUGATE_SSE_VALUE;

            if (c == ' ') {
                break;
            }

            /* fall through */

        default: /* GPUGATE_SSE_VALUE */
            /*
             * The rest of the line at once (a chunk's JSON is one line):
             * nothing in it changes the state, and byte by byte through
             * the switch was 32 instructions a byte
             */
            for (j = i + 1; j < len && p[j] != '\r' && p[j] != '\n'; j++) {
                /* void */
            }

            s->event_bytes += j - i - 1;

            if (s->data_line) {
                gpugate_sse_data_run(s, p + i, j - i);
            }

            i = j - 1;
        }
    }

    return len;
}
