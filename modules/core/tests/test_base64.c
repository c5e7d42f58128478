
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of gpugate_base64: RFC 4648's vectors both ways, every byte
 * value round trip, and the strict decoder's refusals (padding, white
 * space, non-canonical last characters, output too small).
 */


#include <string.h>

#include "gpugate_base64.h"
#include "tap.h"


static int
decodes_to(const char *in, const char *want)
{
    ssize_t        n;
    unsigned char  out[64];

    n = gpugate_base64_decode(in, strlen(in), out, sizeof(out));

    return n == (ssize_t) strlen(want) && memcmp(out, want, n) == 0;
}


static int
refused(const char *in, size_t size)
{
    unsigned char  out[64];

    return gpugate_base64_decode(in, strlen(in), out, size) == -1;
}


int
main(void)
{
    int            i, ok;
    char           enc[GPUGATE_BASE64_LEN(256)];
    size_t         n;
    ssize_t        m;
    unsigned char  raw[256], back[256];

    static const char  *rfc[][2] = {
        { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" }
    };

    for (i = 0; i < 6; i++) {
        n = gpugate_base64_encode((const unsigned char *) rfc[i][0],
                                  strlen(rfc[i][0]), enc);
        tap_ok(n == strlen(rfc[i][1]) && memcmp(enc, rfc[i][1], n) == 0
               && n == GPUGATE_BASE64_LEN(strlen(rfc[i][0])),
               "encodes \"%s\" as %s", rfc[i][0], rfc[i][1]);
        tap_ok(decodes_to(rfc[i][1], rfc[i][0]), "decodes %s", rfc[i][1]);
    }

    tap_ok(gpugate_base64_encode(raw, 0, enc) == 0, "nothing encodes empty");

    for (i = 0; i < 256; i++) {
        raw[i] = (unsigned char) (255 - i);
    }

    ok = 1;

    for (i = 0; i <= 256; i++) {
        n = gpugate_base64_encode(raw, i, enc);
        m = gpugate_base64_decode(enc, n, back, sizeof(back));
        ok = ok && (i == 0 ? m == -1 : m == i && memcmp(raw, back, i) == 0);
    }

    tap_ok(ok, "every byte value, lengths 1 to 256, round trip");

    tap_ok(refused("", 64), "empty input refused");
    tap_ok(refused("Zg=", 64), "length not a multiple of 4 refused");
    tap_ok(refused("Zg", 64), "missing padding refused");
    tap_ok(refused("Z g=", 64) && refused("Zm9v\n", 64),
           "white space refused");
    tap_ok(refused("Zh==", 64) && refused("Zm9=", 64),
           "non-canonical last character refused");
    tap_ok(refused("Z===", 64) && refused("Zg==Zg==", 64)
           && refused("=Zg=", 64), "padding inside or too much refused");
    tap_ok(refused("Zm9v-_8=", 64), "URL alphabet refused");
    tap_ok(refused("Zm9vYmFy", 5) && decodes_to("Zm9vYmE=", "fooba"),
           "output one byte short refused");

    return tap_done();
}
