
/*
 * Copyright (C) gpugate authors
 *
 * The finish reasons of an answer as a bounded set: a runtime chooses
 * the strings, so at most GPUGATE_OAI_REASONS of them, each cut to
 * GPUGATE_OAI_REASON_MAX bytes, whatever it sends.
 */


#include <string.h>

#include "gpugate_oai_reasons.h"


/* a hex digit's value, -1 for any other byte */

static int
gpugate_oai_hex(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }

    ch |= 0x20;

    return (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
}


/*
 * Decodes the JSON string body s[0..len) into out, at most cap bytes;
 * returns the bytes written.  \uXXXX becomes UTF-8 (a surrogate, which
 * needs its pair, becomes '?'); a ',' becomes '_', the list's separator.
 * Never splits an escape; may split a multibyte character at "cap", which
 * the span's writer shows as U+FFFD.
 */

static size_t
gpugate_oai_unescape(const unsigned char *s, size_t len, char *out,
    size_t cap)
{
    int            d;
    size_t         i, j, k;
    unsigned       u;
    unsigned char  ch;

    j = 0;

    for (i = 0; i < len && j < cap; i++) {
        ch = s[i];

        if (ch == ',') {
            out[j++] = '_';
            continue;
        }

        if (ch != '\\' || i + 1 >= len) {
            out[j++] = (char) ch;
            continue;
        }

        ch = s[++i];

        switch (ch) {
        case 'b': out[j++] = '\b'; continue;
        case 'f': out[j++] = '\f'; continue;
        case 'n': out[j++] = '\n'; continue;
        case 'r': out[j++] = '\r'; continue;
        case 't': out[j++] = '\t'; continue;
        case 'u': break;
        default: out[j++] = (ch == ',') ? '_' : (char) ch; continue;
        }

        u = 0;

        for (k = 1; k <= 4; k++) {
            d = (i + k < len) ? gpugate_oai_hex(s[i + k]) : -1;

            if (d < 0) {
                break;
            }

            u = u << 4 | (unsigned) d;
        }

        if (k <= 4) {
            /* not four hex digits: the bytes as they are */
            out[j++] = 'u';
            continue;
        }

        i += 4;

        if (u == ',') {
            u = '_';
        }

        if (u < 0x80) {
            out[j++] = (char) u;

        } else if (u >= 0xd800 && u <= 0xdfff) {
            out[j++] = '?';

        } else if (u < 0x800) {
            if (cap - j < 2) {
                break;
            }

            out[j++] = (char) (0xc0 | u >> 6);
            out[j++] = (char) (0x80 | (u & 0x3f));

        } else {
            if (cap - j < 3) {
                break;
            }

            out[j++] = (char) (0xe0 | u >> 12);
            out[j++] = (char) (0x80 | ((u >> 6) & 0x3f));
            out[j++] = (char) (0x80 | (u & 0x3f));
        }
    }

    return j;
}


void
gpugate_oai_reasons_add(gpugate_oai_reasons_t *set, const unsigned char *s,
    size_t len)
{
    char      buf[GPUGATE_OAI_REASON_MAX];
    size_t    n;
    unsigned  i;

    if (set->n == GPUGATE_OAI_REASONS) {
        return;
    }

    n = gpugate_oai_unescape(s, len, buf, sizeof(buf));

    for (i = 0; i < set->n; i++) {
        if (set->len[i] == n && memcmp(set->s[i], buf, n) == 0) {
            return;
        }
    }

    memcpy(set->s[set->n], buf, n);
    set->len[set->n++] = (unsigned) n;
}


void
gpugate_oai_reasons_merge(gpugate_oai_reasons_t *to,
    const gpugate_oai_reasons_t *from)
{
    unsigned  i, j;

    for (i = 0; i < from->n && to->n < GPUGATE_OAI_REASONS; i++) {

        for (j = 0; j < to->n; j++) {
            if (to->len[j] == from->len[i]
                && memcmp(to->s[j], from->s[i], from->len[i]) == 0)
            {
                break;
            }
        }

        if (j == to->n) {
            memcpy(to->s[to->n], from->s[i], from->len[i]);
            to->len[to->n++] = from->len[i];
        }
    }
}


size_t
gpugate_oai_reasons_join(const gpugate_oai_reasons_t *set, char *out,
    size_t size)
{
    size_t    n;
    unsigned  i;

    n = 0;

    for (i = 0; i < set->n; i++) {
        if (n + (i > 0) + set->len[i] > size) {
            break;
        }

        if (i > 0) {
            out[n++] = ',';
        }

        memcpy(out + n, set->s[i], set->len[i]);
        n += set->len[i];
    }

    return n;
}
