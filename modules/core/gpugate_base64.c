
/*
 * Copyright (C) gpugate authors
 */


#include "gpugate_base64.h"


static const char  gpugate_base64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


size_t
gpugate_base64_encode(const unsigned char *in, size_t len, char *out)
{
    char          *p;
    size_t         i;
    unsigned long  v;

    p = out;

    for (i = 0; i + 2 < len; i += 3) {
        v = (unsigned long) in[i] << 16 | (unsigned long) in[i + 1] << 8
            | in[i + 2];
        *p++ = gpugate_base64_chars[(v >> 18) & 63];
        *p++ = gpugate_base64_chars[(v >> 12) & 63];
        *p++ = gpugate_base64_chars[(v >> 6) & 63];
        *p++ = gpugate_base64_chars[v & 63];
    }

    if (i < len) {
        v = (unsigned long) in[i] << 16;

        if (i + 1 < len) {
            v |= (unsigned long) in[i + 1] << 8;
        }

        *p++ = gpugate_base64_chars[(v >> 18) & 63];
        *p++ = gpugate_base64_chars[(v >> 12) & 63];
        *p++ = (i + 1 < len) ? gpugate_base64_chars[(v >> 6) & 63] : '=';
        *p++ = '=';
    }

    return p - out;
}


static int
gpugate_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}


/*
 * Strict base64: padded, no white space, and canonical (the unused low
 * bits of the last character are zero), so that each value has exactly
 * one spelling.  The output size bounds the input, so a long input costs
 * nothing.
 */

ssize_t
gpugate_base64_decode(const char *in, size_t len, unsigned char *out,
    size_t size)
{
    int            v[4], k;
    size_t         i, o, pad, n;
    unsigned long  bits;

    if (len == 0 || len % 4 != 0) {
        return -1;
    }

    pad = 0;

    if (in[len - 1] == '=') {
        pad = (in[len - 2] == '=') ? 2 : 1;
    }

    if (len / 4 * 3 - pad > size) {
        return -1;
    }

    o = 0;

    for (i = 0; i < len; i += 4) {

        for (k = 0; k < 4; k++) {
            if (i + k >= len - pad) {
                v[k] = 0;
                continue;
            }

            v[k] = gpugate_base64_value((unsigned char) in[i + k]);
            if (v[k] < 0) {
                return -1;              /* also a '=' inside the text */
            }
        }

        bits = (unsigned long) v[0] << 18 | (unsigned long) v[1] << 12
               | (unsigned long) v[2] << 6 | (unsigned long) v[3];

        n = (i + 4 == len) ? 3 - pad : 3;

        out[o++] = (unsigned char) (bits >> 16);

        if (n > 1) {
            out[o++] = (unsigned char) (bits >> 8);
        }

        if (n > 2) {
            out[o++] = (unsigned char) bits;
        }
    }

    if ((pad == 1 && (v[2] & 3) != 0) || (pad == 2 && (v[1] & 15) != 0)) {
        return -1;
    }

    return (ssize_t) o;
}
