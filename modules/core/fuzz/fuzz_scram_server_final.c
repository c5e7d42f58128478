
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: the server reading client-final-message for a fixed,
 * genuine exchange.  Only the one genuine message may authenticate; an
 * unknown user (NULL keys) never does.  From the repository root:
 *
 *   make -C modules/core BUILDDIR=$PWD/build fuzz
 *   build/fuzz/fuzz_scram_server_final -max_total_time=60 \
 *       build/fuzz/corpus_server_final modules/core/fuzz/seeds/server_final
 */


#include <stdlib.h>
#include <string.h>

#include "gpugate_scram.h"


#define FUZZ_CFIRST  "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define FUZZ_SNONCE  "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"


int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);


/* the exchange up to server-first, the same for every input */

typedef struct {
    gpugate_scram_server_t  srv;       /* after server-first */
    unsigned char           stored[GPUGATE_SCRAM_KEY_LEN];
                                       /* verifier for "pencil" */
    unsigned char           server[GPUGATE_SCRAM_KEY_LEN];
                                       /* likewise */
    char                    genuine[GPUGATE_SCRAM_CLIENT_FINAL_SIZE];
                                       /* the one acceptable message */
    size_t                  genuine_len;
                                       /* its length */
} fuzz_exchange_t;


static fuzz_exchange_t *
fuzz_exchange(void)
{
    char                    buf[GPUGATE_SCRAM_SERVER_FIRST_SIZE];
    char                    user[GPUGATE_SCRAM_USER_SIZE];
    size_t                  n, len;
    gpugate_scram_client_t  cli;
    static int              ready;
    static fuzz_exchange_t  x;
    static const unsigned char  salt[16] = "0123456789abcdef";

    if (ready) {
        return &x;
    }

    if (gpugate_scram_make_verifier((const unsigned char *) "pencil", 6,
                                    salt, sizeof(salt), 4096, x.stored,
                                    x.server) != GPUGATE_SCRAM_OK
        || gpugate_scram_client_first_nonce(&cli, "user",
                                            "rOprNGfwEbeRWgbNEkqO", 20, buf,
                                            sizeof(buf), &n)
           != GPUGATE_SCRAM_OK
        || gpugate_scram_server_parse_first(&x.srv, buf, n, user, &n)
           != GPUGATE_SCRAM_OK
        || gpugate_scram_server_first_nonce(&x.srv, salt, sizeof(salt), 4096,
                                            FUZZ_SNONCE, strlen(FUZZ_SNONCE),
                                            buf, sizeof(buf), &len)
           != GPUGATE_SCRAM_OK
        || gpugate_scram_client_final(&cli, buf, len,
                                      (const unsigned char *) "pencil", 6,
                                      x.genuine, sizeof(x.genuine),
                                      &x.genuine_len)
           != GPUGATE_SCRAM_OK)
    {
        abort();
    }

    ready = 1;

    return &x;
}


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char                    out[GPUGATE_SCRAM_SERVER_FINAL_SIZE];
    size_t                  out_len;
    fuzz_exchange_t        *x;
    gpugate_scram_rc_t      rc;
    gpugate_scram_server_t  srv;

    x = fuzz_exchange();

    srv = x->srv;
    rc = gpugate_scram_server_final(&srv, (const char *) data, size,
                                    x->stored, x->server, out, sizeof(out),
                                    &out_len);

    if (out_len == 0 || out_len >= sizeof(out) || out[out_len] != '\0'
        || out[1] != '=' || out[0] != (rc == GPUGATE_SCRAM_OK ? 'v' : 'e'))
    {
        abort();
    }

    if (rc == GPUGATE_SCRAM_OK
        && (size != x->genuine_len || memcmp(data, x->genuine, size) != 0))
    {
        abort();                        /* a forged proof got through */
    }

    srv = x->srv;
    rc = gpugate_scram_server_final(&srv, (const char *) data, size, NULL,
                                    NULL, out, sizeof(out), &out_len);

    if (rc == GPUGATE_SCRAM_OK || out[0] != 'e') {
        abort();                        /* an unknown user got in */
    }

    return 0;
}
