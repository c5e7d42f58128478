
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: the agent reading server-first-message and then
 * server-final-message.  The input is server-first, '\n', server-final.
 * From the repository root:
 *
 *   make -C modules/core BUILDDIR=$PWD/build fuzz
 *   build/fuzz/fuzz_scram_client_final -max_total_time=60 \
 *       build/fuzz/corpus_client_final modules/core/fuzz/seeds/client_final
 */


#include <stdlib.h>
#include <string.h>

#include "gpugate_scram.h"


int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);


/*
 * Iteration counts up to a million are legal, but a million PBKDF2 rounds
 * per input would stall the fuzzer: such inputs are skipped here (the
 * count's parsing is still fuzzed below the limit and by the unit tests).
 */

static int
fuzz_too_slow(const char *p, size_t len)
{
    size_t    i, k;
    unsigned  v;

    for (i = 0; i + 2 < len; i++) {
        if (p[i] != 'i' || p[i + 1] != '=') {
            continue;
        }

        for (v = 0, k = i + 2; k < len && k < i + 12; k++) {
            if (p[k] < '0' || p[k] > '9') {
                break;
            }

            v = v * 10 + (unsigned) (p[k] - '0');
        }

        if (v > 2 * GPUGATE_SCRAM_MIN_ITER) {
            return 1;
        }
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char                    out[GPUGATE_SCRAM_CLIENT_FINAL_SIZE];
    size_t                  n, first_len;
    const char             *msg, *nl;
    gpugate_scram_rc_t      rc;
    gpugate_scram_client_t  cli;

    msg = (const char *) data;
    nl = memchr(msg, '\n', size);
    first_len = nl ? (size_t) (nl - msg) : size;

    if (fuzz_too_slow(msg, first_len)) {
        return 0;
    }

    if (gpugate_scram_client_first_nonce(&cli, "user",
                                         "rOprNGfwEbeRWgbNEkqO", 20, out,
                                         sizeof(out), &n)
        != GPUGATE_SCRAM_OK)
    {
        abort();
    }

    rc = gpugate_scram_client_final(&cli, msg, first_len,
                                    (const unsigned char *) "pencil", 6, out,
                                    sizeof(out), &n);

    if (rc != GPUGATE_SCRAM_OK) {
        return 0;
    }

    /* what was written fits and says what the RFC says it should */

    if (n >= sizeof(out) || out[n] != '\0'
        || memcmp(out, "c=biws,r=rOprNGfwEbeRWgbNEkqO", 29) != 0
        || memcmp(out + n - 47, ",p=", 3) != 0)
    {
        abort();
    }

    if (nl == NULL) {
        return 0;
    }

    rc = gpugate_scram_client_verify(&cli, nl + 1, size - first_len - 1);

    (void) rc;

    return 0;
}
