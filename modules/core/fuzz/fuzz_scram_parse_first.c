
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: the server reading client-first-message, then
 * answering it.  From the repository root:
 *
 *   make -C modules/core BUILDDIR=$PWD/build fuzz
 *   build/fuzz/fuzz_scram_parse_first -max_total_time=60 \
 *       build/fuzz/corpus_parse_first modules/core/fuzz/seeds/parse_first
 */


#include <stdlib.h>
#include <string.h>

#include "gpugate_scram.h"


int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char                    user[GPUGATE_SCRAM_USER_SIZE];
    char                    out[GPUGATE_SCRAM_SERVER_FIRST_SIZE];
    size_t                  user_len, out_len, i;
    gpugate_scram_rc_t      rc;
    gpugate_scram_server_t  srv;
    static const unsigned char  salt[GPUGATE_SCRAM_SALT_MAX];

    rc = gpugate_scram_server_parse_first(&srv, (const char *) data, size,
                                          user, &user_len);

    if (rc != GPUGATE_SCRAM_OK) {
        if (user_len != 0 || user[0] != '\0') {
            abort();                    /* nothing leaks from a refusal */
        }

        return 0;
    }

    /* what was accepted: a terminated, escape-free, control-free name */

    if (user_len == 0 || user_len > GPUGATE_SCRAM_USER_MAX
        || user[user_len] != '\0' || strlen(user) != user_len)
    {
        abort();
    }

    for (i = 0; i < user_len; i++) {
        if ((unsigned char) user[i] < 0x20) {
            abort();
        }
    }

    /* the largest answer must fit the documented size */

    rc = gpugate_scram_server_first_nonce(&srv, salt, sizeof(salt),
                                          GPUGATE_SCRAM_MAX_ITER,
                                          "0123456789abcdef0123456789abcdef",
                                          GPUGATE_SCRAM_SNONCE_MAX, out,
                                          sizeof(out), &out_len);

    if (rc != GPUGATE_SCRAM_OK || out_len >= sizeof(out)
        || out[out_len] != '\0' || memcmp(out, "r=", 2) != 0)
    {
        abort();
    }

    return 0;
}
