
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the API-key format and digest hex helpers.
 */


#include <string.h>

#include "gpugate_apikey.h"
#include "tap.h"


static int
valid(const char *s)
{
    return gpugate_apikey_valid((const unsigned char *) s, strlen(s));
}


int
main(void)
{
    int            i;
    unsigned char  digest[32], back[32], hex[65];
    char           key[80];

    tap_ok(valid("sk-gg-0123456789abcdefghijABCDEFGHIJklmnopqrst"),
           "40 base62 characters after the tag");
    tap_ok(valid("sk-gg-0123456789abcdefghijABCDEFGHIJkl"),
           "32 characters: the minimum");
    tap_ok(!valid("sk-gg-0123456789abcdefghijABCDEFGHIJk"),
           "31 characters: too short");

    memcpy(key, "sk-gg-", 6);
    memset(key + 6, 'a', 64);
    key[70] = '\0';
    tap_ok(valid(key), "64 characters: the maximum");
    key[70] = 'a';
    key[71] = '\0';
    tap_ok(!valid(key), "65 characters: too long");

    tap_ok(!valid("sk-GG-0123456789abcdefghijABCDEFGHIJklmnopqrst"),
           "the tag is case-sensitive");
    tap_ok(!valid("sk-gg-0123456789abcdefghij-BCDEFGHIJklmnopqrst"),
           "a dash in the body");
    tap_ok(!valid("sk-gg-' OR '1'='1'; DROP TABLE api_keys; --aaaaaa"),
           "SQL-shaped garbage");
    tap_ok(!valid(""), "empty");
    tap_ok(!valid("sk-gg-"), "the tag alone");

    memcpy(key, "sk-gg-0123456789abcdefghijABCDEFGHIJklmnopqrst", 47);
    for (i = 6; i < 46; i++) {
        char  saved = key[i];

        key[i] = (char) 0xc3;
        if (valid(key)) {
            break;
        }
        key[i] = saved;
    }
    tap_ok(i == 46, "a non-ASCII byte anywhere in the body is refused");

    for (i = 0; i < 32; i++) {
        digest[i] = (unsigned char) (i * 37 + 11);
    }

    gpugate_digest_hex(digest, hex);
    hex[64] = '\0';
    tap_ok(strlen((char *) hex) == 64 && strspn((char *) hex,
           "0123456789abcdef") == 64, "hex is 64 lowercase characters");
    tap_ok(gpugate_hex_digest(hex, 64, back) && memcmp(back, digest, 32) == 0,
           "hex round-trips");

    hex[10] = 'A';
    tap_ok(gpugate_hex_digest(hex, 64, back), "uppercase hex accepted");
    hex[10] = 'g';
    tap_ok(!gpugate_hex_digest(hex, 64, back), "non-hex refused");
    tap_ok(!gpugate_hex_digest(hex, 63, back), "wrong length refused");

    return tap_done();
}
