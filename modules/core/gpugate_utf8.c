
/*
 * Copyright (C) gpugate authors
 *
 * UTF-8 as RFC 3629 has it: no overlong forms, no surrogates, nothing
 * above U+10FFFF.  NUL counts as invalid too: PostgreSQL's text cannot
 * hold it ("\u0000 cannot be converted to text" refuses a whole batch).
 */


#include <string.h>

#include "gpugate_utf8.h"


/*
 * The length of the valid character at "s" (at most "len" bytes
 * available), or 0 when "s" does not start one.
 */

static size_t
gpugate_utf8_char(const unsigned char *s, size_t len)
{
    size_t         n, i;
    unsigned char  c, lo, hi;

    c = s[0];

    if (c < 0x80) {
        return c ? 1 : 0;
    }

    /* the second byte's range depends on the first: it rules out
       overlong forms (E0, F0), surrogates (ED) and > U+10FFFF (F4) */

    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if (len < n || s[1] < lo || s[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


/*
 * Copies "src" into "dst" (at most "size" bytes) as valid UTF-8: each
 * byte that does not start a valid character becomes U+FFFD, and the
 * copy stops before the first character that would not fit whole.
 * Returns the bytes written.
 */

size_t
gpugate_utf8_cut(unsigned char *dst, size_t size, const unsigned char *src,
    size_t len)
{
    size_t  i, o, n;

    i = 0;
    o = 0;

    while (i < len) {
        n = gpugate_utf8_char(src + i, len - i);

        if (n) {
            if (size - o < n) {
                break;
            }

            memcpy(dst + o, src + i, n);
            o += n;
            i += n;
            continue;
        }

        if (size - o < GPUGATE_UTF8_REPLACEMENT_LEN) {
            break;
        }

        memcpy(dst + o, GPUGATE_UTF8_REPLACEMENT,
               GPUGATE_UTF8_REPLACEMENT_LEN);
        o += GPUGATE_UTF8_REPLACEMENT_LEN;
        i++;
    }

    return o;
}


/* 1 when "s" is valid UTF-8 without NUL */

int
gpugate_utf8_valid(const unsigned char *s, size_t len)
{
    size_t  i, n;

    for (i = 0; i < len; i += n) {
        n = gpugate_utf8_char(s + i, len - i);

        if (n == 0) {
            return 0;
        }
    }

    return 1;
}
