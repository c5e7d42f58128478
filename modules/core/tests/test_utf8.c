
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the UTF-8 cut used for ledger rows and metrics labels:
 * whatever the input and the size, the output is valid UTF-8 without
 * NUL, fits the size, keeps every valid character that fits whole, and
 * a valid input comes out as its own longest character-aligned prefix.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_utf8.h"
#include "tap.h"


#define R  GPUGATE_UTF8_REPLACEMENT


static int
cut_is(const char *in, size_t len, size_t size, const char *want)
{
    size_t         n;
    unsigned char  out[256];

    n = gpugate_utf8_cut(out, size, (const unsigned char *) in, len);

    return n == strlen(want) && memcmp(out, want, n) == 0;
}


static uint32_t
rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}


int
main(void)
{
    int            bad;
    size_t         size, n, m, i;
    uint32_t       seed;
    unsigned char  in[128], out[512], again[512];

    /* every single byte: valid alone only from 0x01 to 0x7f */

    bad = 0;

    for (i = 0; i < 256; i++) {
        in[0] = (unsigned char) i;
        n = gpugate_utf8_cut(out, sizeof(out), in, 1);

        if (i >= 1 && i <= 0x7f) {
            bad += !(n == 1 && out[0] == i);

        } else {
            bad += !(n == 3 && memcmp(out, R, 3) == 0);
        }
    }

    tap_ok(bad == 0, "each of the 256 bytes alone: ASCII kept, NUL and "
           "0x80-0xff replaced (%d wrong)", bad);

    tap_ok(cut_is("caf\xc3\xa9", 5, 64, "caf\xc3\xa9"), "2-byte kept");
    tap_ok(cut_is("\xe2\x82\xac", 3, 64, "\xe2\x82\xac"), "3-byte kept");
    tap_ok(cut_is("\xf0\x9f\x98\x80", 4, 64, "\xf0\x9f\x98\x80"),
           "4-byte kept");
    tap_ok(cut_is("\xf4\x8f\xbf\xbf", 4, 64, "\xf4\x8f\xbf\xbf"),
           "U+10FFFF kept");
    tap_ok(cut_is("\xed\x9f\xbf", 3, 64, "\xed\x9f\xbf"), "U+D7FF kept");

    tap_ok(cut_is("\xc0\xaf", 2, 64, R R), "overlong 2-byte replaced");
    tap_ok(cut_is("\xe0\x80\xaf", 3, 64, R R R), "overlong 3-byte replaced");
    tap_ok(cut_is("\xf0\x80\x80\xaf", 4, 64, R R R R),
           "overlong 4-byte replaced");
    tap_ok(cut_is("\xed\xa0\x80", 3, 64, R R R), "surrogate replaced");
    tap_ok(cut_is("\xf4\x90\x80\x80", 4, 64, R R R R),
           "above U+10FFFF replaced");
    tap_ok(cut_is("/v1/\xff", 5, 64, "/v1/" R), "/v1/%%ff");
    tap_ok(cut_is("a\xe2\x82", 3, 64, "a" R R),
           "a sequence cut by the input's end replaced");
    tap_ok(cut_is("a\xe2(b", 4, 64, "a" R "(b"),
           "a lead byte before ASCII: only the lead byte replaced");
    tap_ok(cut_is("a\0b", 3, 64, "a" R "b"), "NUL replaced");

    /* cuts: a character that does not fit whole is left out */

    tap_ok(cut_is("ab\xe2\x82\xac", 5, 4, "ab"), "cut before a 3-byte");
    tap_ok(cut_is("ab\xe2\x82\xac", 5, 5, "ab\xe2\x82\xac"),
           "a 3-byte that fits exactly");
    tap_ok(cut_is("a\xf0\x9f\x98\x80", 5, 4, "a"), "cut before a 4-byte");
    tap_ok(cut_is("a\xff", 2, 3, "a"), "a replacement that does not fit");
    tap_ok(cut_is("abc", 3, 0, ""), "size 0");

    /* 3-byte characters after two ASCII bytes: the 21st would end at
       byte 65, so 62 bytes are kept */

    in[0] = 'x';
    in[1] = 'y';

    for (i = 0; i < 30; i++) {
        memcpy(in + 2 + 3 * i, "\xe2\x82\xac", 3);
    }

    n = gpugate_utf8_cut(out, 64, in, 92);
    tap_ok(n == 62 && gpugate_utf8_valid(out, n),
           "a model name of 92 bytes cut at 64: 62 bytes, valid (%zu)", n);

    /* random inputs, every size: valid, fits, idempotent, and a valid
       input gives its longest prefix on a character boundary */

    seed = 0x9e3779b9;
    bad = 0;

    for (i = 0; i < 20000; i++) {
        m = rnd(&seed) % sizeof(in);

        for (n = 0; n < m; n++) {
            switch (rnd(&seed) % 4) {
            case 0:
                in[n] = (unsigned char) rnd(&seed);
                break;
            case 1:
                in[n] = 0x80 + rnd(&seed) % 0x40;
                break;
            case 2:
                in[n] = 0xc2 + rnd(&seed) % 0x33;
                break;
            default:
                in[n] = 0x20 + rnd(&seed) % 0x5f;
            }
        }

        size = rnd(&seed) % 140;
        n = gpugate_utf8_cut(out, size, in, m);

        if (n > size || !gpugate_utf8_valid(out, n)) {
            bad++;
            continue;
        }

        if (gpugate_utf8_cut(again, sizeof(again), out, n) != n
            || memcmp(again, out, n) != 0)
        {
            bad++;
            continue;
        }

        if (gpugate_utf8_valid(in, m)) {
            if (memcmp(out, in, n) != 0
                || (n < m && n + 4 <= size))
            {
                bad++;
            }
        }
    }

    tap_ok(bad == 0, "20000 random inputs and sizes: output valid, within "
           "the size, idempotent, a valid input's prefix (%d wrong)", bad);

    tap_ok(gpugate_utf8_valid((const unsigned char *) "", 0)
           && !gpugate_utf8_valid((const unsigned char *) "\xc3", 1)
           && gpugate_utf8_valid((const unsigned char *) "\xc3\xa9", 2),
           "gpugate_utf8_valid");

    return tap_done();
}
