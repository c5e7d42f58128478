
/*
 * Copyright (C) gpugate authors
 */


#include <string.h>

#include "gpugate_apikey.h"


/* 1 for the 62 characters a key body may contain; checked on every request */

static const unsigned char  gpugate_base62[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1
};


int
gpugate_apikey_valid(const unsigned char *p, size_t len)
{
    size_t        i;
    unsigned int  ok;

    if (len < GPUGATE_APIKEY_TAG_LEN + GPUGATE_APIKEY_MIN_BODY
        || len > GPUGATE_APIKEY_MAX_LEN
        || memcmp(p, GPUGATE_APIKEY_TAG, GPUGATE_APIKEY_TAG_LEN) != 0)
    {
        return 0;
    }

    /* no early exit: one pass, one branch at the end */

    ok = 1;

    for (i = GPUGATE_APIKEY_TAG_LEN; i < len; i++) {
        ok &= gpugate_base62[p[i]];
    }

    return (int) ok;
}


static int
gpugate_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


int
gpugate_hex_digest(const unsigned char *hex, size_t len,
    unsigned char *digest)
{
    int     hi, lo;
    size_t  i;

    if (len != 64) {
        return 0;
    }

    for (i = 0; i < 32; i++) {
        hi = gpugate_hex_value(hex[2 * i]);
        lo = gpugate_hex_value(hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return 0;
        }

        digest[i] = (unsigned char) (hi << 4 | lo);
    }

    return 1;
}


void
gpugate_digest_hex(const unsigned char *digest, unsigned char *hex)
{
    size_t                      i;
    static const unsigned char  xd[] = "0123456789abcdef";

    for (i = 0; i < 32; i++) {
        hex[2 * i] = xd[digest[i] >> 4];
        hex[2 * i + 1] = xd[digest[i] & 0xf];
    }
}
