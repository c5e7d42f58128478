
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: what an unauthenticated peer controls in the tunnel
 * handshake (client-first, client-final) against the server side.
 */


#include <stdint.h>
#include <string.h>

#include "gpugate_scram.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char             user[80], out[512];
    size_t           split;
    gpugate_scram_t  st;
    unsigned char    key[32], salt[16];

    memset(key, 1, sizeof(key));
    memset(salt, 2, sizeof(salt));

    split = size ? data[0] % size : 0;

    if (gpugate_scram_server_parse_first(&st, (const char *) data, split,
                                         user, sizeof(user)) == 0
        && gpugate_scram_server_first(&st, salt, sizeof(salt), 4096,
                                      "fuzzfuzzfuzz", out, sizeof(out)) > 0)
    {
        /* a random proof must never pass */
        if (gpugate_scram_server_final(&st, (const char *) data + split,
                                       size - split, key, key, out,
                                       sizeof(out)) == 0)
        {
            __builtin_trap();
        }
    }

    return 0;
}
