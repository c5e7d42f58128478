/*
 * Copyright (C) gpugate authors
 *
 * What the two SCRAM unit test programs (test_scram.c: exchanges,
 * refusals, truncation; test_scram_msgs.c: each message's parser and
 * builder) share: TAP reporting and one complete exchange, both sides.
 * Included once per program, so its functions are static.
 */


#ifndef _GPUGATE_SCRAM_TEST_H_INCLUDED_
#define _GPUGATE_SCRAM_TEST_H_INCLUDED_



#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "gpugate_scram.h"


static int  test_n;
static int  test_failed;


#define test_ok(cond, ...)                                                    \
    test_report((cond) ? 1 : 0, __LINE__, __VA_ARGS__)


#define test_rc(got, expect, ...)                                             \
    test_rc_report(got, expect, __LINE__, __VA_ARGS__)


#define test_str(got, got_len, expect, ...)                                   \
    test_str_report(got, got_len, expect, __LINE__, __VA_ARGS__)


static int test_report(int ok, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int test_rc_report(gpugate_scram_rc_t got, gpugate_scram_rc_t expect,
    int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int test_str_report(const char *got, size_t got_len,
    const char *expect, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));



static void
test_line(int ok, int line, const char *fmt, va_list ap)
{
    test_n++;
    printf("%sok %d - ", ok ? "" : "not ", test_n);
    vprintf(fmt, ap);
    printf("\n");

    if (!ok) {
        test_failed++;
        printf("#   Failed test at %s line %d.\n", __FILE__, line);
    }
}


static int
test_report(int ok, int line, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    test_line(ok, line, fmt, ap);
    va_end(ap);

    return ok;
}


static int
test_rc_report(gpugate_scram_rc_t got, gpugate_scram_rc_t expect, int line,
    const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    test_line(got == expect, line, fmt, ap);
    va_end(ap);

    if (got != expect) {
        printf("#          got: %d (%s)\n", (int) got,
               gpugate_scram_strerror(got));
        printf("#     expected: %d (%s)\n", (int) expect,
               gpugate_scram_strerror(expect));
    }

    return got == expect;
}


static int
test_str_report(const char *got, size_t got_len, const char *expect,
    int line, const char *fmt, ...)
{
    int      ok;
    va_list  ap;

    ok = got != NULL && got_len == strlen(expect)
         && memcmp(got, expect, got_len) == 0 && got[got_len] == '\0';

    va_start(ap, fmt);
    test_line(ok, line, fmt, ap);
    va_end(ap);

    if (!ok) {
        printf("#          got: '%.*s' (%zu)\n", got ? (int) got_len : 0,
               got ? got : "", got_len);
        printf("#     expected: '%s' (%zu)\n", expect, strlen(expect));
    }

    return ok;
}


/* one complete exchange, both sides, with buffers at their documented size */

typedef struct {
    gpugate_scram_client_t  cli;
    gpugate_scram_server_t  srv;
    char                    cfirst[GPUGATE_SCRAM_CLIENT_FIRST_SIZE];
    char                    sfirst[GPUGATE_SCRAM_SERVER_FIRST_SIZE];
    char                    cfinal[GPUGATE_SCRAM_CLIENT_FINAL_SIZE];
    char                    sfinal[GPUGATE_SCRAM_SERVER_FINAL_SIZE];
    char                    user[GPUGATE_SCRAM_USER_SIZE];
    size_t                  cfirst_len;
    size_t                  sfirst_len;
    size_t                  cfinal_len;
    size_t                  sfinal_len;
    size_t                  user_len;
} test_exchange_t;


static unsigned char  test_salt[16] = {
    0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
    0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81
};                                      /* W22ZaJ0SNY7soEsUEjb6gQ== */

#define RFC_CNONCE  "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE  "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SFIRST  "r=" RFC_CNONCE RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==," \
                    "i=4096"
#define RFC_CFINAL  "c=biws,r=" RFC_CNONCE RFC_SNONCE                      \
                    ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SFINAL  "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


/* runs the exchange up to client-final; 0 if every step succeeded */

static int
test_start(test_exchange_t *x, const char *user, const char *token,
    const unsigned char *salt, size_t salt_len, unsigned iter)
{
    memset(x, 0, sizeof(test_exchange_t));

    if (gpugate_scram_client_first(&x->cli, user, x->cfirst,
                                   sizeof(x->cfirst), &x->cfirst_len)
        != GPUGATE_SCRAM_OK)
    {
        return -1;
    }

    if (gpugate_scram_server_parse_first(&x->srv, x->cfirst, x->cfirst_len,
                                         x->user, &x->user_len)
        != GPUGATE_SCRAM_OK)
    {
        return -1;
    }

    if (gpugate_scram_server_first(&x->srv, salt, salt_len, iter, x->sfirst,
                                   sizeof(x->sfirst), &x->sfirst_len)
        != GPUGATE_SCRAM_OK)
    {
        return -1;
    }

    if (gpugate_scram_client_final(&x->cli, x->sfirst, x->sfirst_len,
                                   (const unsigned char *) token,
                                   strlen(token), x->cfinal,
                                   sizeof(x->cfinal), &x->cfinal_len)
        != GPUGATE_SCRAM_OK)
    {
        return -1;
    }

    return 0;
}


/* server_final on a copy of the server state, so that it can be re-run */

static gpugate_scram_rc_t
test_final(const test_exchange_t *x, const char *msg, size_t len,
    const unsigned char *stored, const unsigned char *server, char *out,
    size_t *out_len)
{
    gpugate_scram_server_t  copy;

    copy = x->srv;

    return gpugate_scram_server_final(&copy, msg, len, stored, server, out,
                                      GPUGATE_SCRAM_SERVER_FINAL_SIZE,
                                      out_len);
}


#endif /* _GPUGATE_SCRAM_TEST_H_INCLUDED_ */
