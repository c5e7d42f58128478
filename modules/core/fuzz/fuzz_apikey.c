
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: the key format check and the digest hex decoder.
 */


#include <stdint.h>
#include <string.h>

#include "gpugate_apikey.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char  digest[32], hex[64];

    (void) gpugate_apikey_valid(data, size);

    if (gpugate_hex_digest(data, size, digest)) {
        gpugate_digest_hex(digest, hex);

        /* decoding then encoding gives the input back, lowercased */
        if (strncasecmp((const char *) hex, (const char *) data, 64) != 0) {
            __builtin_trap();
        }
    }

    return 0;
}
