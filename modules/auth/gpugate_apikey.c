
/*
 * Copyright (C) gpugate authors
 */


#include <string.h>

#include "gpugate_apikey.h"


int
gpugate_apikey_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len < GPUGATE_APIKEY_TAG_LEN + GPUGATE_APIKEY_MIN_BODY
        || len > GPUGATE_APIKEY_MAX_LEN
        || memcmp(p, GPUGATE_APIKEY_TAG, GPUGATE_APIKEY_TAG_LEN) != 0)
    {
        return 0;
    }

    for (i = GPUGATE_APIKEY_TAG_LEN; i < len; i++) {
        if (!((p[i] >= '0' && p[i] <= '9')
              || (p[i] >= 'a' && p[i] <= 'z')
              || (p[i] >= 'A' && p[i] <= 'Z')))
        {
            return 0;
        }
    }

    return 1;
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
