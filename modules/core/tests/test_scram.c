
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests for gpugate_scram.c, TAP output.  From the repository root:
 *
 *   make -C modules/core BUILDDIR=$PWD/build check
 *
 * (build/tests/test_scram also runs under valgrind).
 */


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


/* client_final on a fresh client that sent the RFC's client-first */

static gpugate_scram_rc_t
test_client_final(const char *sfirst, const char *token)
{
    char                    cf[GPUGATE_SCRAM_CLIENT_FIRST_SIZE];
    char                    out[GPUGATE_SCRAM_CLIENT_FINAL_SIZE];
    size_t                  n;
    gpugate_scram_client_t  cli;

    if (gpugate_scram_client_first_nonce(&cli, "user", RFC_CNONCE,
                                         strlen(RFC_CNONCE), cf, sizeof(cf),
                                         &n)
        != GPUGATE_SCRAM_OK)
    {
        return GPUGATE_SCRAM_ERR_INTERNAL;
    }

    return gpugate_scram_client_final(&cli, sfirst, strlen(sfirst),
                                      (const unsigned char *) token,
                                      strlen(token), out, sizeof(out), &n);
}


/* server_parse_first on a string */

static gpugate_scram_rc_t
test_parse_first(const char *msg, char *user, size_t *user_len)
{
    gpugate_scram_server_t  srv;

    return gpugate_scram_server_parse_first(&srv, msg, strlen(msg), user,
                                            user_len);
}


/*
 * An independent computation of the client proof with other libcrypto
 * calls (EVP_Q_mac, EVP_Q_digest), for exchanges the client cannot make.
 */

static int
test_ref_proof(const char *token, const unsigned char *salt,
    size_t salt_len, unsigned iter, const char *auth_message,
    unsigned char proof[32], unsigned char server_sig[32])
{
    size_t         n, i;
    unsigned char  salted[32], ck[32], stored[32], sig[32], sk[32];

    if (PKCS5_PBKDF2_HMAC(token, (int) strlen(token), salt, (int) salt_len,
                          (int) iter, EVP_sha256(), 32, salted) != 1
        || EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, salted, 32,
                     (const unsigned char *) "Client Key", 10, ck, 32, &n)
           == NULL
        || EVP_Q_digest(NULL, "SHA256", NULL, ck, 32, stored, &n) != 1
        || EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, stored, 32,
                     (const unsigned char *) auth_message,
                     strlen(auth_message), sig, 32, &n) == NULL
        || EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, salted, 32,
                     (const unsigned char *) "Server Key", 10, sk, 32, &n)
           == NULL
        || EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, sk, 32,
                     (const unsigned char *) auth_message,
                     strlen(auth_message), server_sig, 32, &n) == NULL)
    {
        return -1;
    }

    for (i = 0; i < 32; i++) {
        proof[i] = ck[i] ^ sig[i];
    }

    return 0;
}


static void
test_rfc7677(void)
{
    size_t                  n;
    unsigned char           stored[32], server[32];
    test_exchange_t         x;
    gpugate_scram_client_t  cli;

    memset(&x, 0, sizeof(x));

    test_rc(gpugate_scram_client_first_nonce(&x.cli, "user", RFC_CNONCE,
                                             strlen(RFC_CNONCE), x.cfirst,
                                             sizeof(x.cfirst),
                                             &x.cfirst_len),
            GPUGATE_SCRAM_OK, "rfc7677: client_first");
    test_str(x.cfirst, x.cfirst_len, "n,,n=user,r=" RFC_CNONCE,
             "rfc7677: client-first-message");

    test_rc(gpugate_scram_server_parse_first(&x.srv, x.cfirst, x.cfirst_len,
                                             x.user, &x.user_len),
            GPUGATE_SCRAM_OK, "rfc7677: server_parse_first");
    test_str(x.user, x.user_len, "user", "rfc7677: user name");

    test_rc(gpugate_scram_server_first_nonce(&x.srv, test_salt,
                                             sizeof(test_salt), 4096,
                                             RFC_SNONCE, strlen(RFC_SNONCE),
                                             x.sfirst, sizeof(x.sfirst),
                                             &x.sfirst_len),
            GPUGATE_SCRAM_OK, "rfc7677: server_first");
    test_str(x.sfirst, x.sfirst_len, RFC_SFIRST,
             "rfc7677: server-first-message");

    test_rc(gpugate_scram_client_final(&x.cli, x.sfirst, x.sfirst_len,
                                       (const unsigned char *) "pencil", 6,
                                       x.cfinal, sizeof(x.cfinal),
                                       &x.cfinal_len),
            GPUGATE_SCRAM_OK, "rfc7677: client_final");
    test_str(x.cfinal, x.cfinal_len, RFC_CFINAL,
             "rfc7677: client-final-message (proof)");

    test_rc(gpugate_scram_make_verifier((const unsigned char *) "pencil", 6,
                                        test_salt, sizeof(test_salt), 4096,
                                        stored, server),
            GPUGATE_SCRAM_OK, "rfc7677: make_verifier");

    test_rc(gpugate_scram_server_final(&x.srv, x.cfinal, x.cfinal_len,
                                       stored, server, x.sfinal,
                                       sizeof(x.sfinal), &x.sfinal_len),
            GPUGATE_SCRAM_OK, "rfc7677: server_final accepts the proof");
    test_str(x.sfinal, x.sfinal_len, RFC_SFINAL,
             "rfc7677: server-final-message (signature)");

    test_rc(gpugate_scram_client_verify(&x.cli, x.sfinal, x.sfinal_len),
            GPUGATE_SCRAM_OK, "rfc7677: client_verify");

    /* the client alone, fed the RFC's literal server-first */

    test_rc(gpugate_scram_client_first_nonce(&cli, "user", RFC_CNONCE,
                                             strlen(RFC_CNONCE), x.cfirst,
                                             sizeof(x.cfirst), &n),
            GPUGATE_SCRAM_OK, "rfc7677: fresh client");
    test_rc(gpugate_scram_client_final(&cli, RFC_SFIRST,
                                       strlen(RFC_SFIRST),
                                       (const unsigned char *) "pencil", 6,
                                       x.cfinal, sizeof(x.cfinal), &n),
            GPUGATE_SCRAM_OK, "rfc7677: client_final on the literal text");
    test_str(x.cfinal, n, RFC_CFINAL, "rfc7677: same proof");
    test_rc(gpugate_scram_client_verify(&cli, RFC_SFINAL,
                                        strlen(RFC_SFINAL)),
            GPUGATE_SCRAM_OK, "rfc7677: literal server-final verifies");
}


/* the agent's key cache: same proofs, PBKDF2 skipped on a hit */

static void
test_client_keys(void)
{
    char                    out[GPUGATE_SCRAM_CLIENT_FINAL_SIZE];
    char                    first[GPUGATE_SCRAM_CLIENT_FIRST_SIZE];
    char                    other[sizeof(RFC_SFIRST)];
    size_t                  n, i;
    gpugate_scram_keys_t    keys, copy;
    gpugate_scram_client_t  cli;

    memset(&keys, 0, sizeof(keys));

    for (i = 0; i < 2; i++) {
        gpugate_scram_client_first_nonce(&cli, "user", RFC_CNONCE,
                                         strlen(RFC_CNONCE), first,
                                         sizeof(first), &n);
        test_rc(gpugate_scram_client_final_keys(&cli, RFC_SFIRST,
                                                strlen(RFC_SFIRST),
                                                (const unsigned char *)
                                                "pencil", 6, &keys, out,
                                                sizeof(out), &n),
                GPUGATE_SCRAM_OK, "keys: client_final, %s",
                i ? "cache hit" : "cache filled");
        test_str(out, n, RFC_CFINAL, "keys: RFC proof (%s)",
                 i ? "from the cache" : "computed");
        test_rc(gpugate_scram_client_verify(&cli, RFC_SFINAL,
                                            strlen(RFC_SFINAL)),
                GPUGATE_SCRAM_OK, "keys: server signature verifies (%zu)",
                i);
    }

    test_ok(keys.salt_len == 16 && keys.iterations == 4096,
           "keys: salt and iteration count remembered");

    /*
     * A hit must not run PBKDF2: a wrong token with the cached keys still
     * gives the right proof, which shows the keys, not the token, were
     * used (the agent's token never changes while it runs).
     */

    gpugate_scram_client_first_nonce(&cli, "user", RFC_CNONCE,
                                     strlen(RFC_CNONCE), first,
                                     sizeof(first), &n);
    test_rc(gpugate_scram_client_final_keys(&cli, RFC_SFIRST,
                                            strlen(RFC_SFIRST),
                                            (const unsigned char *) "x", 1,
                                            &keys, out, sizeof(out), &n),
            GPUGATE_SCRAM_OK, "keys: hit with another token");
    test_str(out, n, RFC_CFINAL, "keys: hit uses the cached keys");

    /* another salt: computed again, and the cache replaced */

    memcpy(other, RFC_SFIRST, sizeof(other));
    other[strlen("r=" RFC_CNONCE RFC_SNONCE ",s=")] = 'X';
    copy = keys;

    gpugate_scram_client_first_nonce(&cli, "user", RFC_CNONCE,
                                     strlen(RFC_CNONCE), first,
                                     sizeof(first), &n);
    test_rc(gpugate_scram_client_final_keys(&cli, other, strlen(other),
                                            (const unsigned char *) "pencil",
                                            6, &keys, out, sizeof(out), &n),
            GPUGATE_SCRAM_OK, "keys: other salt");
    test_ok(n != strlen(RFC_CFINAL) || memcmp(out, RFC_CFINAL, n) != 0,
           "keys: other salt, other proof");
    test_ok(memcmp(keys.salt, copy.salt, 16) != 0
           && memcmp(keys.client_key, copy.client_key, 32) != 0,
           "keys: cache replaced for the new salt");
}


static void
test_round_trips(void)
{
    int              i, differ;
    char             nonce1[64];
    size_t           k;
    unsigned char    salt[40], stored[32], server[32];
    test_exchange_t  x, y;
    static const char  *users[] = {
        "agent-1", "a,b", "x=y", "=2C,,==", "gr\303\274\303\237e",
        "\xe2\x82\xac\xf0\x9f\x98\x80", ","
    };

    for (k = 0; k < sizeof(salt); k++) {
        salt[k] = (unsigned char) (k * 7 + 1);
    }

    /* salt lengths 16, 17, 18 exercise each base64 padding */

    for (i = 0; i < (int) (sizeof(users) / sizeof(users[0])); i++) {
        size_t  slen = 16 + (size_t) i % 3;

        gpugate_scram_make_verifier((const unsigned char *) "tok-123", 7,
                                    salt, slen, 4096, stored, server);

        test_ok(test_start(&x, users[i], "tok-123", salt, slen, 4096) == 0,
                "round trip %d: first three steps", i);
        test_str(x.user, x.user_len, users[i],
                 "round trip %d: server sees the name unescaped", i);
        test_rc(gpugate_scram_server_final(&x.srv, x.cfinal, x.cfinal_len,
                                           stored, server, x.sfinal,
                                           sizeof(x.sfinal), &x.sfinal_len),
                GPUGATE_SCRAM_OK, "round trip %d: server accepts", i);
        test_rc(gpugate_scram_client_verify(&x.cli, x.sfinal, x.sfinal_len),
                GPUGATE_SCRAM_OK, "round trip %d: client accepts", i);
    }

    /* nonces: 24 random bytes from the client, 18 more from the server */

    test_start(&x, "agent", "tok", salt, 16, 4096);
    test_start(&y, "agent", "tok", salt, 16, 4096);

    test_ok(x.cfirst_len == strlen("n,,n=agent,r=") + 32,
            "client nonce is 32 base64 characters");
    memcpy(nonce1, x.cfirst + 13, 32);
    differ = memcmp(nonce1, y.cfirst + 13, 32) != 0;
    test_ok(differ, "client nonces differ between exchanges");
    test_ok(memcmp(x.sfirst + 2, nonce1, 32) == 0
            && x.sfirst[2 + 32 + 24] == ',',
            "server extends the client nonce by 24 characters");
    test_ok(memcmp(x.sfirst + 34, y.sfirst + 34, 24) != 0,
            "server nonces differ between exchanges");

    /* the same exchange, sides in separate processes' worth of copies */

    {
        gpugate_scram_server_t  parked;

        gpugate_scram_make_verifier((const unsigned char *) "tok", 3, salt,
                                    16, 4096, stored, server);
        memcpy(&parked, &x.srv, sizeof(parked));
        memset(&x.srv, 0xa5, sizeof(x.srv));

        test_rc(gpugate_scram_server_final(&parked, x.cfinal, x.cfinal_len,
                                           stored, server, x.sfinal,
                                           sizeof(x.sfinal), &x.sfinal_len),
                GPUGATE_SCRAM_OK, "server state works after a memcpy");
        test_rc(gpugate_scram_client_verify(&x.cli, x.sfinal, x.sfinal_len),
                GPUGATE_SCRAM_OK, "and the client accepts it");
    }

    test_ok(sizeof(gpugate_scram_server_t) <= 640,
            "server state is small (%zu bytes)",
            sizeof(gpugate_scram_server_t));
    test_ok(sizeof(gpugate_scram_client_t) <= 320,
            "client state is small (%zu bytes)",
            sizeof(gpugate_scram_client_t));
}


static void
test_refusals(void)
{
    char             buf[GPUGATE_SCRAM_MSG_MAX + 16], out[80];
    char             wrong_out[80];
    size_t           n, i, wrong_len, plen;
    unsigned char    stored[32], server[32], proof[32], enc[64];
    test_exchange_t  x;
    gpugate_scram_rc_t  rc;
    int              all;

    gpugate_scram_make_verifier((const unsigned char *) "right", 5,
                                test_salt, 16, 4096, stored, server);

    /* wrong token */

    test_start(&x, "agent", "wrong", test_salt, 16, 4096);
    test_rc(test_final(&x, x.cfinal, x.cfinal_len, stored, server, wrong_out,
                       &wrong_len),
            GPUGATE_SCRAM_ERR_INVALID_PROOF, "wrong token is refused");
    test_str(wrong_out, wrong_len, "e=invalid-proof",
             "wrong token: server-final is e=invalid-proof");
    test_rc(gpugate_scram_client_verify(&x.cli, wrong_out, wrong_len),
            GPUGATE_SCRAM_ERR_SERVER_ERROR,
            "client reports the server's e= distinctly");

    /* the client refuses a server that lacks the verifier */

    test_start(&x, "agent", "right", test_salt, 16, 4096);
    test_rc(test_final(&x, x.cfinal, x.cfinal_len, stored, server, out, &n),
            GPUGATE_SCRAM_OK, "right token accepted (control)");
    out[5] = (out[5] == 'A') ? 'B' : 'A';
    test_rc(gpugate_scram_client_verify(&x.cli, out, n),
            GPUGATE_SCRAM_ERR_SERVER_SIGNATURE,
            "client refuses a wrong server signature");

    test_start(&x, "agent", "right", test_salt, 16, 4096);
    test_rc(gpugate_scram_client_verify(&x.cli, RFC_SFINAL,
                                        strlen(RFC_SFINAL)),
            GPUGATE_SCRAM_ERR_SERVER_SIGNATURE,
            "client refuses another exchange's signature");

    /* every bit of the proof matters */

    test_start(&x, "agent", "right", test_salt, 16, 4096);
    plen = x.cfinal_len - 44;
    all = 1;

    for (i = 0; i < 256; i++) {
        EVP_DecodeBlock(proof, (unsigned char *) x.cfinal + plen, 44);
        proof[i / 8] ^= (unsigned char) (1 << (i % 8));
        EVP_EncodeBlock(enc, proof, 32);
        memcpy(buf, x.cfinal, plen);
        memcpy(buf + plen, enc, 44);

        rc = test_final(&x, buf, x.cfinal_len, stored, server, out, &n);
        if (rc != GPUGATE_SCRAM_ERR_INVALID_PROOF
            || strcmp(out, "e=invalid-proof") != 0)
        {
            all = 0;
            printf("# bit %zu: %s\n", i, gpugate_scram_strerror(rc));
        }
    }

    test_ok(all, "each of the 256 flipped proof bits is refused");

    /* the last character of a 32-byte base64 value has 2 unused bits */

    memcpy(buf, x.cfinal, x.cfinal_len);
    buf[x.cfinal_len - 2] = (char) (buf[x.cfinal_len - 2] ^ 1);
    test_rc(test_final(&x, buf, x.cfinal_len, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_PROOF_FORMAT,
            "non-canonical proof base64 is refused");
    test_str(out, n, "e=invalid-encoding", "and answered invalid-encoding");

    /* the proof must be last, whole, and 32 bytes */

    n = (size_t) snprintf(buf, sizeof(buf), "%.*s,p=AAAA",
                          (int) plen - 3, x.cfinal);
    test_rc(test_final(&x, buf, n, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_PROOF_FORMAT, "3-byte proof is refused");

    n = (size_t) snprintf(buf, sizeof(buf), "%s,x=1", x.cfinal);
    test_rc(test_final(&x, buf, n, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "attribute after the proof refused");

    n = (size_t) snprintf(buf, sizeof(buf), "%.*s,x=ext%s",
                          (int) plen - 3, x.cfinal, x.cfinal + plen - 3);
    test_rc(test_final(&x, buf, n, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_INVALID_PROOF,
            "extension before the proof is signed too (proof no longer "
            "fits)");

    /* nonce */

    memcpy(buf, x.cfinal, x.cfinal_len);
    buf[12] = (buf[12] == 'A') ? 'B' : 'A';
    test_rc(test_final(&x, buf, x.cfinal_len, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_NONCE_MISMATCH, "changed nonce is refused");
    test_str(out, n, "e=invalid-proof", "and answered invalid-proof");

    n = (size_t) snprintf(buf, sizeof(buf), "c=biws,r=%.*s%s",
                          (int) (plen - 3 - 9 - 1), x.cfinal + 9,
                          x.cfinal + plen - 3);
    test_rc(test_final(&x, buf, n, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_NONCE_MISMATCH, "shortened nonce is refused");

    n = (size_t) snprintf(buf, sizeof(buf), "c=biws,r=%.*sX%s",
                          (int) (plen - 3 - 9), x.cfinal + 9,
                          x.cfinal + plen - 3);
    test_rc(test_final(&x, buf, n, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_NONCE_MISMATCH, "lengthened nonce is refused");

    /* c= must be base64 of the gs2 header the client sent */

    n = (size_t) snprintf(buf, sizeof(buf), "c=eSws%s", x.cfinal + 6);
    test_rc(test_final(&x, buf, n, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_CBIND_DATA, "c=eSws (\"y,,\") is refused");
    test_str(out, n, "e=channel-bindings-dont-match",
             "and answered channel-bindings-dont-match");

    n = (size_t) snprintf(buf, sizeof(buf), "c=biwsAAAA%s", x.cfinal + 6);
    test_rc(test_final(&x, buf, n, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_CBIND_DATA, "longer c= is refused");

    n = (size_t) snprintf(buf, sizeof(buf), "%s", x.cfinal + 7);
    test_rc(test_final(&x, buf, n, stored, server, out, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "missing c= is refused");

    /* one try per exchange */

    {
        gpugate_scram_server_t  srv = x.srv;

        gpugate_scram_server_final(&srv, x.cfinal, x.cfinal_len, stored,
                                   server, out, sizeof(out), &n);
        test_rc(gpugate_scram_server_final(&srv, x.cfinal, x.cfinal_len,
                                           stored, server, out, sizeof(out),
                                           &n),
                GPUGATE_SCRAM_ERR_STATE, "a second server_final is refused");
        test_str(out, n, "e=other-error", "and answered other-error");
    }

    /* unknown user: same answer as a wrong token */

    test_start(&x, "agent", "right", test_salt, 16, 4096);
    test_rc(test_final(&x, x.cfinal, x.cfinal_len, NULL, NULL, out, &n),
            GPUGATE_SCRAM_ERR_UNKNOWN_USER,
            "NULL keys: refused as unknown user");
    test_ok(n == wrong_len && memcmp(out, wrong_out, n) == 0,
            "unknown user's answer equals a wrong token's");
}


static void
test_truncation(void)
{
    int                     all, must;
    char                    out[GPUGATE_SCRAM_CLIENT_FINAL_SIZE];
    char                    user[GPUGATE_SCRAM_USER_SIZE];
    char                   *copy;
    size_t                  i, n, nonce_at;
    unsigned char           stored[32], server[32];
    test_exchange_t         x;
    gpugate_scram_rc_t      rc;
    gpugate_scram_client_t  cli;
    gpugate_scram_server_t  srv;

    gpugate_scram_make_verifier((const unsigned char *) "tok", 3, test_salt,
                                16, 4096, stored, server);
    test_start(&x, "a=b,c", "tok", test_salt, 16, 4096);

    /*
     * client-first: a prefix is valid only once it holds 16 nonce
     * characters; each prefix is copied so ASan sees reads past it.
     */

    nonce_at = strstr(x.cfirst, ",r=") - x.cfirst + 3;
    all = 1;

    for (i = 0; i <= x.cfirst_len; i++) {
        copy = malloc(i + 1);
        memcpy(copy, x.cfirst, i);
        must = i >= nonce_at + GPUGATE_SCRAM_CNONCE_MIN;

        rc = gpugate_scram_server_parse_first(&srv, copy, i, user, &n);
        if ((rc == GPUGATE_SCRAM_OK) != must) {
            all = 0;
            printf("# client-first prefix %zu: %s\n", i,
                   gpugate_scram_strerror(rc));
        }

        free(copy);
    }

    test_ok(all, "client-first: every prefix handled (%zu)", x.cfirst_len);

    /* server-first: no prefix but the whole is acceptable */

    all = 1;

    for (i = 0; i < x.sfirst_len; i++) {
        copy = malloc(i + 1);
        memcpy(copy, x.sfirst, i);

        /* a fresh client with the same first message */

        {
            gpugate_scram_client_t  c2;
            char                    cf[GPUGATE_SCRAM_CLIENT_FIRST_SIZE];
            size_t                  m;

            gpugate_scram_client_first_nonce(&c2, "a=b,c", x.sfirst + 2, 32,
                                             cf, sizeof(cf), &m);
            rc = gpugate_scram_client_final(&c2, copy, i,
                                            (const unsigned char *) "tok",
                                            3, out, sizeof(out), &n);
        }

        if (rc == GPUGATE_SCRAM_OK) {
            all = 0;
            printf("# server-first prefix %zu accepted\n", i);
        }

        free(copy);
    }

    test_ok(all, "server-first: every proper prefix refused (%zu)",
            x.sfirst_len);

    /* client-final */

    all = 1;

    for (i = 0; i < x.cfinal_len; i++) {
        char  sf[GPUGATE_SCRAM_SERVER_FINAL_SIZE];

        copy = malloc(i + 1);
        memcpy(copy, x.cfinal, i);

        rc = test_final(&x, copy, i, stored, server, sf, &n);
        if (rc == GPUGATE_SCRAM_OK || sf[0] != 'e' || sf[1] != '=') {
            all = 0;
            printf("# client-final prefix %zu: %s\n", i,
                   gpugate_scram_strerror(rc));
        }

        free(copy);
    }

    test_ok(all, "client-final: every proper prefix refused with e= (%zu)",
            x.cfinal_len);

    test_rc(test_final(&x, x.cfinal, x.cfinal_len, stored, server, out, &n),
            GPUGATE_SCRAM_OK, "client-final: the whole is accepted");

    /* server-final */

    all = 1;

    for (i = 0; i < n; i++) {
        gpugate_scram_client_t  c3;

        c3 = x.cli;
        copy = malloc(i + 1);
        memcpy(copy, out, i);

        rc = gpugate_scram_client_verify(&c3, copy, i);
        if (rc == GPUGATE_SCRAM_OK) {
            all = 0;
            printf("# server-final prefix %zu accepted\n", i);
        }

        free(copy);
    }

    test_ok(all, "server-final: every proper prefix refused (%zu)", n);

    cli = x.cli;
    test_rc(gpugate_scram_client_verify(&cli, out, n), GPUGATE_SCRAM_OK,
            "server-final: the whole is accepted");
}


static void
test_garbage(void)
{
    int                     all;
    char                    buf[300], out[GPUGATE_SCRAM_CLIENT_FINAL_SIZE];
    char                    user[GPUGATE_SCRAM_USER_SIZE];
    size_t                  i, len, n, k;
    unsigned                seed;
    unsigned char           stored[32], server[32];
    test_exchange_t         x;
    gpugate_scram_client_t  cli, fresh;
    gpugate_scram_server_t  srv;
    static const char       alphabet[] = "nyp,=acrsivepmx2CD3Ab0+/ \x80\xff";

    gpugate_scram_make_verifier((const unsigned char *) "tok", 3, test_salt,
                                16, 4096, stored, server);
    test_start(&x, "agent", "tok", test_salt, 16, 4096);
    gpugate_scram_client_first_nonce(&fresh, "agent", RFC_CNONCE,
                                     strlen(RFC_CNONCE), out, sizeof(out),
                                     &n);

    /* a small deterministic generator: the same garbage every run */

    seed = 12345;
    all = 1;

    for (i = 0; i < 20000; i++) {
        len = (i * 7) % sizeof(buf);

        for (k = 0; k < len; k++) {
            seed = (unsigned) ((seed * 1103515245ULL + 12345) & 0x7fffffff);
            buf[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }

        gpugate_scram_server_parse_first(&srv, buf, len, user, &n);

        cli = fresh;
        gpugate_scram_client_final(&cli, buf, len,
                                   (const unsigned char *) "tok", 3, out,
                                   sizeof(out), &n);

        if (test_final(&x, buf, len, stored, server, out, &n)
            == GPUGATE_SCRAM_OK)
        {
            all = 0;
        }

        cli = x.cli;
        if (gpugate_scram_client_verify(&cli, buf, len) == GPUGATE_SCRAM_OK) {
            all = 0;
        }
    }

    test_ok(all, "20000 garbage messages: nothing authenticates");
}


static void
test_first_message(void)
{
    char                    user[GPUGATE_SCRAM_USER_SIZE];
    char                    buf[GPUGATE_SCRAM_MSG_MAX + 16];
    char                    out[GPUGATE_SCRAM_SERVER_FIRST_SIZE];
    size_t                  n, i;
    unsigned char           stored[32], server[32];
    test_exchange_t         x;
    gpugate_scram_server_t  srv;

#define N16  "0123456789abcdef"

    test_rc(test_parse_first("n,,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_OK, "16-character nonce accepted");
    test_rc(test_parse_first("n,,n=user,r=0123456789abcde", user, &n),
            GPUGATE_SCRAM_ERR_NONCE, "15-character nonce refused");
    test_ok(n == 0 && user[0] == '\0',
            "  and no user name comes out of a refused message");
    test_rc(test_parse_first("n,,n=user,r=" N16 N16 N16 N16, user, &n),
            GPUGATE_SCRAM_OK, "64-character nonce accepted");
    test_rc(test_parse_first("n,,n=user,r=" N16 N16 N16 N16 "x", user, &n),
            GPUGATE_SCRAM_ERR_NONCE, "65-character nonce refused");
    test_rc(test_parse_first("n,,n=user,r=0123456789 abcdef", user, &n),
            GPUGATE_SCRAM_ERR_NONCE, "nonce with a space refused");
    test_rc(test_parse_first("n,,n=user,r=0123456789\x80" "abcdef", user,
                             &n),
            GPUGATE_SCRAM_ERR_NONCE, "nonce with a high byte refused");

    test_rc(test_parse_first("y,,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_CHANNEL_BINDING, "gs2 flag y refused");
    test_rc(test_parse_first("p=tls-unique,,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_CHANNEL_BINDING, "gs2 flag p= refused");
    test_rc(test_parse_first("x,,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "gs2 flag x refused");
    test_rc(test_parse_first("n,x=1,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "gs2 attribute other than a= refused");
    test_rc(test_parse_first("n,a=other,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_AUTHZID, "differing authzid refused");
    test_rc(test_parse_first("n,a=use,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_AUTHZID, "authzid prefix of the name refused");
    test_rc(test_parse_first("n,a=,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "empty authzid refused");
    test_rc(test_parse_first("n,a=a=2Cb,n=a=2Cb,r=" N16, user, &n),
            GPUGATE_SCRAM_OK, "authzid equal to the name accepted");
    test_str(user, n, "a,b", "  and the name unescaped");
    test_rc(test_parse_first("m=x,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "no gs2 header refused");
    test_rc(test_parse_first("n,,m=ext,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_EXTENSION, "mandatory extension refused");
    test_rc(test_parse_first("n,,n=user,r=" N16 ",x=opt", user, &n),
            GPUGATE_SCRAM_OK, "optional extension accepted");
    test_rc(test_parse_first("n,,n=user,r=" N16 ",x=", user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "empty extension value refused");
    test_rc(test_parse_first("n,,n=user,r=" N16 ",", user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "trailing comma refused");
    test_rc(test_parse_first("n,,n=user,r=" N16 ",1=x", user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "non-letter attribute refused");
    test_rc(test_parse_first("n,,r=" N16 ",n=user", user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "attributes out of order refused");
    test_rc(test_parse_first("n,,n=user", user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "missing nonce refused");
    test_rc(test_parse_first("n,,n=user,,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "double comma refused");

    /* user names */

    test_rc(test_parse_first("n,,n=,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "empty name refused");
    test_rc(test_parse_first("n,,n=a=2C=3Db,r=" N16, user, &n),
            GPUGATE_SCRAM_OK, "escaped name accepted");
    test_str(user, n, "a,=b", "  unescaped to a,=b");
    test_rc(test_parse_first("n,,n=a=2cb,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "lower-case escape refused");
    test_rc(test_parse_first("n,,n=a=4Fb,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "unknown escape refused");
    test_rc(test_parse_first("n,,n=a=2,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "cut escape refused");
    test_rc(test_parse_first("n,,n=a=,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "bare = refused");
    test_rc(test_parse_first("n,,n=a\x01" "b,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "control character refused");
    test_rc(test_parse_first("n,,n=a\xc3\x28,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "invalid UTF-8 refused");
    test_rc(test_parse_first("n,,n=\xc0\xaf,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "overlong UTF-8 refused");
    test_rc(test_parse_first("n,,n=\xed\xa0\x80,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "UTF-8 surrogate refused");
    test_rc(test_parse_first("n,,n=\xf4\x90\x80\x80,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "UTF-8 past U+10FFFF refused");
    test_rc(test_parse_first("n,,n=\xe2\x82,r=" N16, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "cut UTF-8 refused");

    n = (size_t) snprintf(buf, sizeof(buf), "n,,n=%.64s,r=" N16,
                          N16 N16 N16 N16);
    test_rc(gpugate_scram_server_parse_first(&srv, buf, n, user, &n),
            GPUGATE_SCRAM_OK, "64-byte name accepted");
    n = (size_t) snprintf(buf, sizeof(buf), "n,,n=%.64sx,r=" N16,
                          N16 N16 N16 N16);
    test_rc(gpugate_scram_server_parse_first(&srv, buf, n, user, &n),
            GPUGATE_SCRAM_ERR_USERNAME, "65-byte name refused");

    /* the longest name the client can send, all escapes, fits */

    memset(buf, ',', 64);
    buf[64] = '\0';
    test_ok(test_start(&x, buf, "tok", test_salt, 16, 4096) == 0
            && x.user_len == 64 && x.cfirst_len == 3 + 2 + 192 + 3 + 32,
            "64 commas: escaped to 192 characters, buffers suffice");
    gpugate_scram_make_verifier((const unsigned char *) "tok", 3, test_salt,
                                16, 4096, stored, server);
    test_rc(gpugate_scram_server_final(&x.srv, x.cfinal, x.cfinal_len,
                                       stored, server, x.sfinal,
                                       sizeof(x.sfinal), &x.sfinal_len),
            GPUGATE_SCRAM_OK, "  and authenticates");

    buf[64] = ',';
    buf[65] = '\0';
    test_rc(gpugate_scram_client_first(&x.cli, buf, x.cfirst,
                                       sizeof(x.cfirst), &n),
            GPUGATE_SCRAM_ERR_USERNAME, "client refuses a 65-byte name");
    test_rc(gpugate_scram_client_first(&x.cli, "", x.cfirst,
                                       sizeof(x.cfirst), &n),
            GPUGATE_SCRAM_ERR_USERNAME, "client refuses an empty name");
    test_rc(gpugate_scram_client_first(&x.cli, "a\xff", x.cfirst,
                                       sizeof(x.cfirst), &n),
            GPUGATE_SCRAM_ERR_USERNAME, "client refuses invalid UTF-8");
    test_rc(gpugate_scram_client_first(&x.cli, "a\n", x.cfirst,
                                       sizeof(x.cfirst), &n),
            GPUGATE_SCRAM_ERR_USERNAME, "client refuses a newline");
    test_rc(gpugate_scram_client_first_nonce(&x.cli, "a", "short", 5,
                                             x.cfirst, sizeof(x.cfirst), &n),
            GPUGATE_SCRAM_ERR_NONCE, "client refuses a short test nonce");
    test_rc(gpugate_scram_client_first_nonce(&x.cli, "a", N16 ",", 17,
                                             x.cfirst, sizeof(x.cfirst), &n),
            GPUGATE_SCRAM_ERR_NONCE, "client refuses a nonce with ','");
    test_rc(gpugate_scram_client_first(&x.cli, "agent", x.cfirst, 10, &n),
            GPUGATE_SCRAM_ERR_ARG, "client_first: small buffer refused");

    /* lengths and NUL */

    test_rc(gpugate_scram_server_parse_first(&srv, "n,,n=u\0r,r=" N16,
                                             sizeof("n,,n=u\0r,r=" N16) - 1,
                                             user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "NUL byte refused");
    test_rc(gpugate_scram_server_parse_first(&srv, "", 0, user, &n),
            GPUGATE_SCRAM_ERR_SYNTAX, "empty message refused");

    memset(buf, 'x', sizeof(buf));
    memcpy(buf, "n,,n=user,r=" N16 ",x=", 31);
    test_rc(gpugate_scram_server_parse_first(&srv, buf,
                                             GPUGATE_SCRAM_MSG_MAX + 1, user,
                                             &n),
            GPUGATE_SCRAM_ERR_TOO_LONG, "message over MSG_MAX refused");
    test_rc(gpugate_scram_server_parse_first(&srv, buf,
                                             3 + GPUGATE_SCRAM_FIRST_BARE_MAX
                                             + 1, user, &n),
            GPUGATE_SCRAM_ERR_TOO_LONG, "bare message over FIRST_BARE_MAX");
    test_rc(gpugate_scram_server_parse_first(&srv, buf,
                                             3 + GPUGATE_SCRAM_FIRST_BARE_MAX,
                                             user, &n),
            GPUGATE_SCRAM_OK, "bare message at FIRST_BARE_MAX accepted");

    /* server_first arguments */

    test_rc(test_parse_first("n,,n=user,r=" N16, user, &n),
            GPUGATE_SCRAM_OK, "parse (for server_first)");

    for (i = 0; i < 8; i++) {
        static const struct {
            size_t              salt_len;
            unsigned            iter;
            gpugate_scram_rc_t  rc;
        }  cases[] = {
            { 16, 4095, GPUGATE_SCRAM_ERR_ITERATIONS },
            { 16, 4096, GPUGATE_SCRAM_OK },
            { 16, 1000000, GPUGATE_SCRAM_OK },
            { 16, 1000001, GPUGATE_SCRAM_ERR_ITERATIONS },
            { 15, 4096, GPUGATE_SCRAM_ERR_SALT },
            { 64, 4096, GPUGATE_SCRAM_OK },
            { 65, 4096, GPUGATE_SCRAM_ERR_SALT },
            { 0, 0, GPUGATE_SCRAM_ERR_SALT },
        };
        unsigned char  salt[65];

        memset(salt, 0x11, sizeof(salt));
        gpugate_scram_server_parse_first(&srv, "n,,n=user,r=" N16, 28, user,
                                         &n);
        test_rc(gpugate_scram_server_first(&srv, salt, cases[i].salt_len,
                                           cases[i].iter, out, sizeof(out),
                                           &n),
                cases[i].rc, "server_first: salt %zu, iterations %u",
                cases[i].salt_len, cases[i].iter);
    }

    gpugate_scram_server_parse_first(&srv, "n,,n=user,r=" N16 N16 N16 N16,
                                     76, user, &n);
    test_rc(gpugate_scram_server_first_nonce(&srv, (unsigned char *) buf, 64,
                                             1000000,
                                             N16 N16, 32, out, sizeof(out),
                                             &n),
            GPUGATE_SCRAM_OK, "longest server-first fits SERVER_FIRST_SIZE");
    test_ok(n == sizeof(out) - 1, "  exactly (%zu)", n);

    gpugate_scram_server_parse_first(&srv, "n,,n=user,r=" N16, 28, user, &n);
    test_rc(gpugate_scram_server_first(&srv, test_salt, 16, 4096, out, 20,
                                       &n),
            GPUGATE_SCRAM_ERR_ARG, "server_first: small buffer refused");
    test_rc(gpugate_scram_server_first(&srv, test_salt, 16, 4096, out,
                                       sizeof(out), &n),
            GPUGATE_SCRAM_ERR_STATE, "  and the exchange is over");

    memset(&srv, 0, sizeof(srv));
    test_rc(gpugate_scram_server_first(&srv, test_salt, 16, 4096, out,
                                       sizeof(out), &n),
            GPUGATE_SCRAM_ERR_STATE, "server_first before parse refused");
}


static void
test_server_first_message(void)
{
    size_t  i;
    static const struct {
        const char          *msg;
        gpugate_scram_rc_t   rc;
        const char          *name;
    }  cases[] = {
        { RFC_SFIRST, GPUGATE_SCRAM_OK, "control" },
        { RFC_SFIRST ",x=ext", GPUGATE_SCRAM_OK, "optional extension" },
        { "m=x," RFC_SFIRST, GPUGATE_SCRAM_ERR_EXTENSION,
          "mandatory extension" },
        { RFC_SFIRST ",", GPUGATE_SCRAM_ERR_SYNTAX, "trailing comma" },
        { RFC_SFIRST ",x=", GPUGATE_SCRAM_ERR_SYNTAX, "empty extension" },
        { "r=" RFC_CNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
          GPUGATE_SCRAM_ERR_NONCE_MISMATCH, "nonce not extended" },
        { "r=" "x" RFC_CNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
          GPUGATE_SCRAM_ERR_NONCE_MISMATCH, "nonce not ours" },
        { "r=" RFC_CNONCE "a b,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
          GPUGATE_SCRAM_ERR_NONCE, "space in the nonce" },
        { "r=" RFC_CNONCE "0123456789012345678901234567890123456789"
          "01234567890123456789012345678901234567890,"
          "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
          GPUGATE_SCRAM_ERR_NONCE, "nonce over NONCE_MAX" },
        { "r=" RFC_CNONCE "x,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
          GPUGATE_SCRAM_ERR_SYNTAX, "i before s" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==",
          GPUGATE_SCRAM_ERR_SYNTAX, "no i" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
          GPUGATE_SCRAM_ERR_ITERATIONS, "i=4095" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001",
          GPUGATE_SCRAM_ERR_ITERATIONS, "i=1000001" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096",
          GPUGATE_SCRAM_ERR_ITERATIONS, "i with a leading zero" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-4096",
          GPUGATE_SCRAM_ERR_ITERATIONS, "negative i" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x",
          GPUGATE_SCRAM_ERR_ITERATIONS, "i with a suffix" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
          GPUGATE_SCRAM_ERR_ITERATIONS, "huge i" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
          GPUGATE_SCRAM_ERR_ITERATIONS, "empty i" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",
          GPUGATE_SCRAM_ERR_SALT, "salt without padding" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gR==,i=4096",
          GPUGATE_SCRAM_ERR_SALT, "salt with non-zero unused bits" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6g===,i=4096",
          GPUGATE_SCRAM_ERR_SALT, "salt with three '='" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7s=EsUEjb6gQ==,i=4096",
          GPUGATE_SCRAM_ERR_SALT, "salt with '=' inside" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7s EsUEjb6gQ==,i=4096",
          GPUGATE_SCRAM_ERR_SALT, "salt with a space" },
        { "r=" RFC_CNONCE "x,s=W22ZaJ0SNY7s-EsUEjb6gQ==,i=4096",
          GPUGATE_SCRAM_ERR_SALT, "salt in base64url" },
        { "r=" RFC_CNONCE "x,s=,i=4096",
          GPUGATE_SCRAM_ERR_SALT, "empty salt" },
        { "r=" RFC_CNONCE "x,s=AAAAAAAAAAAAAAAAAAAA,i=4096",
          GPUGATE_SCRAM_ERR_SALT, "15-byte salt" },
        { "r=" RFC_CNONCE "x,s=AAAAAAAAAAAAAAAAAAAAAA==,i=4096",
          GPUGATE_SCRAM_OK, "16-byte salt, two '='" },
        { "r=" RFC_CNONCE "x,s=AAAAAAAAAAAAAAAAAAAAAAA=,i=4096",
          GPUGATE_SCRAM_OK, "17-byte salt, one '='" },
        { "r=" RFC_CNONCE "x,s=AAAAAAAAAAAAAAAAAAAAAAAA,i=4096",
          GPUGATE_SCRAM_OK, "18-byte salt, no '='" },
        { "r=" RFC_CNONCE "x,s=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,i=4096",
          GPUGATE_SCRAM_ERR_SALT, "114-byte salt" },
        { "R=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
          GPUGATE_SCRAM_ERR_SYNTAX, "upper-case attribute" },
        { "e=other-error", GPUGATE_SCRAM_ERR_SYNTAX, "an e= instead" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_rc(test_client_final(cases[i].msg, "pencil"), cases[i].rc,
                "client_final: %s", cases[i].name);
    }
}


static void
test_client_side_misc(void)
{
    char                    out[GPUGATE_SCRAM_CLIENT_FINAL_SIZE], tok[1100];
    size_t                  n;
    gpugate_scram_client_t  cli;

    memset(&cli, 0, sizeof(cli));
    test_rc(gpugate_scram_client_final(&cli, RFC_SFIRST, strlen(RFC_SFIRST),
                                       (const unsigned char *) "pencil", 6,
                                       out, sizeof(out), &n),
            GPUGATE_SCRAM_ERR_STATE, "client_final before client_first");
    test_rc(gpugate_scram_client_verify(&cli, RFC_SFINAL,
                                        strlen(RFC_SFINAL)),
            GPUGATE_SCRAM_ERR_STATE, "client_verify before client_final");

    gpugate_scram_client_first_nonce(&cli, "user", RFC_CNONCE, 20, out,
                                     sizeof(out), &n);
    test_rc(gpugate_scram_client_final(&cli, RFC_SFIRST, strlen(RFC_SFIRST),
                                       (const unsigned char *) "pencil", 0,
                                       out, sizeof(out), &n),
            GPUGATE_SCRAM_ERR_ARG, "empty token refused");

    memset(tok, 'k', sizeof(tok));
    gpugate_scram_client_first_nonce(&cli, "user", RFC_CNONCE, 20, out,
                                     sizeof(out), &n);
    test_rc(gpugate_scram_client_final(&cli, RFC_SFIRST, strlen(RFC_SFIRST),
                                       (const unsigned char *) tok,
                                       GPUGATE_SCRAM_TOKEN_MAX + 1, out,
                                       sizeof(out), &n),
            GPUGATE_SCRAM_ERR_ARG, "token over TOKEN_MAX refused");

    gpugate_scram_client_first_nonce(&cli, "user", RFC_CNONCE, 20, out,
                                     sizeof(out), &n);
    test_rc(gpugate_scram_client_final(&cli, RFC_SFIRST, strlen(RFC_SFIRST),
                                       (const unsigned char *) "pencil", 6,
                                       out, 100, &n),
            GPUGATE_SCRAM_ERR_ARG, "client_final: small buffer refused");

    /* server-final forms */

    {
        static const struct {
            const char          *msg;
            gpugate_scram_rc_t   rc;
            const char          *name;
        }  cases[] = {
            { RFC_SFINAL, GPUGATE_SCRAM_OK, "control" },
            { RFC_SFINAL ",x=ext", GPUGATE_SCRAM_OK, "with an extension" },
            { RFC_SFINAL ",", GPUGATE_SCRAM_ERR_SYNTAX, "trailing comma" },
            { RFC_SFINAL "AAAA", GPUGATE_SCRAM_ERR_SYNTAX, "longer" },
            { "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=",
              GPUGATE_SCRAM_ERR_SYNTAX, "non-canonical base64" },
            { "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8=",
              GPUGATE_SCRAM_ERR_SERVER_SIGNATURE, "one bit off" },
            { "e=invalid-proof", GPUGATE_SCRAM_ERR_SERVER_ERROR,
              "e=invalid-proof" },
            { "e=", GPUGATE_SCRAM_ERR_SERVER_ERROR, "empty e=" },
            { "x=1", GPUGATE_SCRAM_ERR_SYNTAX, "neither v= nor e=" },
            { "v", GPUGATE_SCRAM_ERR_SYNTAX, "v alone" },
        };
        size_t  i;

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            gpugate_scram_client_first_nonce(&cli, "user", RFC_CNONCE, 20,
                                             out, sizeof(out), &n);
            gpugate_scram_client_final(&cli, RFC_SFIRST, strlen(RFC_SFIRST),
                                       (const unsigned char *) "pencil", 6,
                                       out, sizeof(out), &n);
            test_rc(gpugate_scram_client_verify(&cli, cases[i].msg,
                                                strlen(cases[i].msg)),
                    cases[i].rc, "client_verify: %s", cases[i].name);
            test_rc(gpugate_scram_client_verify(&cli, RFC_SFINAL,
                                                strlen(RFC_SFINAL)),
                    GPUGATE_SCRAM_ERR_STATE, "  and only once");
        }
    }

}


static void
test_authzid(void)
{
    char                    cf[128], am[512], cfinal[256], sf[64];
    char                    sfirst[GPUGATE_SCRAM_SERVER_FIRST_SIZE];
    char                    user[GPUGATE_SCRAM_USER_SIZE];
    size_t                  n, sfirst_len, len;
    unsigned char           proof[32], ssig[32], stored[32], server[32];
    unsigned char           enc[64];
    gpugate_scram_server_t  srv, copy;

    /*
     * "n,a=a=2Cb,": the client signs c=base64 of that header, and the
     * server must expect it; our client never does this, so the proof is
     * computed by the independent reference.
     */

    gpugate_scram_make_verifier((const unsigned char *) "tok", 3, test_salt,
                                16, 4096, stored, server);

    len = (size_t) snprintf(cf, sizeof(cf), "n,a=a=2Cb,n=a=2Cb,r=" N16);
    test_rc(gpugate_scram_server_parse_first(&srv, cf, len, user, &n),
            GPUGATE_SCRAM_OK, "authzid: parse");
    test_rc(gpugate_scram_server_first_nonce(&srv, test_salt, 16, 4096,
                                             "SRV", 3, sfirst,
                                             sizeof(sfirst), &sfirst_len),
            GPUGATE_SCRAM_OK, "authzid: server_first");

    EVP_EncodeBlock(enc, (const unsigned char *) "n,a=a=2Cb,", 10);

    snprintf(am, sizeof(am), "n=a=2Cb,r=" N16 ",%s,c=%s,r=" N16 "SRV",
             sfirst, enc);
    test_ok(test_ref_proof("tok", test_salt, 16, 4096, am, proof, ssig)
            == 0, "authzid: reference proof");

    len = (size_t) snprintf(cfinal, sizeof(cfinal), "c=%s,r=" N16 "SRV,p=",
                            enc);
    EVP_EncodeBlock((unsigned char *) cfinal + len, proof, 32);
    len += 44;

    copy = srv;
    test_rc(gpugate_scram_server_final(&copy, cfinal, len, stored, server,
                                       sf, sizeof(sf), &n),
            GPUGATE_SCRAM_OK, "authzid: server accepts c=base64(gs2)");
    EVP_EncodeBlock(enc, ssig, 32);
    test_ok(n == 46 && memcmp(sf + 2, enc, 44) == 0,
            "authzid: server signature matches the reference");

    len = (size_t) snprintf(cfinal, sizeof(cfinal), "c=biws,r=" N16 "SRV,p=");
    EVP_EncodeBlock((unsigned char *) cfinal + len, proof, 32);
    len += 44;

    copy = srv;
    test_rc(gpugate_scram_server_final(&copy, cfinal, len, stored, server,
                                       sf, sizeof(sf), &n),
            GPUGATE_SCRAM_ERR_CBIND_DATA,
            "authzid: c=biws refused after an a= header");
}


static void
test_fake_salt(void)
{
    char                    out[64], wrong[64];
    size_t                  n, wn;
    unsigned char           s1[16], s2[16], s3[16], s4[16], s5[32];
    unsigned char           stored[32], server[32];
    test_exchange_t         x;
    static const unsigned char  secret[] = "0123456789abcdef-secret";
    static const unsigned char  other[] = "0123456789abcdef-other";

    test_rc(gpugate_scram_fake_salt(secret, sizeof(secret) - 1, "ghost", 5,
                                    s1, 16),
            GPUGATE_SCRAM_OK, "fake salt");
    gpugate_scram_fake_salt(secret, sizeof(secret) - 1, "ghost", 5, s2, 16);
    gpugate_scram_fake_salt(secret, sizeof(secret) - 1, "ghost2", 6, s3,
                            16);
    gpugate_scram_fake_salt(other, sizeof(other) - 1, "ghost", 5, s4, 16);
    gpugate_scram_fake_salt(secret, sizeof(secret) - 1, "ghost", 5, s5, 32);

    test_ok(memcmp(s1, s2, 16) == 0, "fake salt is stable");
    test_ok(memcmp(s1, s3, 16) != 0, "fake salt differs per user");
    test_ok(memcmp(s1, s4, 16) != 0, "fake salt differs per secret");
    test_ok(memcmp(s1, s5, 16) == 0, "a 32-byte fake salt extends it");

    test_rc(gpugate_scram_fake_salt(secret, 15, "ghost", 5, s1, 16),
            GPUGATE_SCRAM_ERR_ARG, "secret under 16 bytes refused");
    test_rc(gpugate_scram_fake_salt(secret, 16, "ghost", 5, s1, 15),
            GPUGATE_SCRAM_ERR_ARG, "fake salt under 16 bytes refused");
    test_rc(gpugate_scram_fake_salt(secret, 16, "ghost", 5, s5, 33),
            GPUGATE_SCRAM_ERR_ARG, "fake salt over 32 bytes refused");

    /* the whole unknown-user path next to a known user's wrong token */

    gpugate_scram_make_verifier((const unsigned char *) "real", 4, s1, 16,
                                4096, stored, server);
    test_start(&x, "known", "guess", s1, 16, 4096);
    test_rc(test_final(&x, x.cfinal, x.cfinal_len, stored, server, wrong,
                       &wn),
            GPUGATE_SCRAM_ERR_INVALID_PROOF, "known user, wrong token");

    test_ok(test_start(&x, "ghost", "guess", s1, 16, 4096) == 0,
            "unknown user: the client cannot tell up to client-final");
    test_rc(test_final(&x, x.cfinal, x.cfinal_len, NULL, NULL, out, &n),
            GPUGATE_SCRAM_ERR_UNKNOWN_USER, "unknown user: refused");
    test_ok(n == wn && memcmp(out, wrong, n) == 0,
            "unknown user: same e= as a wrong token (%.*s)", (int) n, out);
}


static void
test_errors(void)
{
    int  all, rc, other;

    all = 1;

    for (rc = GPUGATE_SCRAM_OK; rc <= GPUGATE_SCRAM_ERR_SERVER_SIGNATURE;
         rc++)
    {
        for (other = rc + 1; other <= GPUGATE_SCRAM_ERR_SERVER_SIGNATURE;
             other++)
        {
            if (strcmp(gpugate_scram_strerror(rc),
                       gpugate_scram_strerror(other)) == 0)
            {
                all = 0;
            }
        }

        if (strcmp(gpugate_scram_strerror(rc), "unknown SCRAM error") == 0) {
            all = 0;
        }
    }

    test_ok(all, "every error code has its own message");
    test_ok(strcmp(gpugate_scram_strerror((gpugate_scram_rc_t) 999),
                   "unknown SCRAM error") == 0, "out-of-range code");
    test_ok(strcmp(gpugate_scram_error_value(
                       GPUGATE_SCRAM_ERR_UNKNOWN_USER),
                   gpugate_scram_error_value(
                       GPUGATE_SCRAM_ERR_INVALID_PROOF)) == 0,
            "unknown user and wrong token share the e= value");
}


static void
test_verifier(void)
{
    unsigned char  stored[32], server[32];

    test_rc(gpugate_scram_make_verifier((const unsigned char *) "t", 1,
                                        test_salt, 16, 4095, stored, server),
            GPUGATE_SCRAM_ERR_ITERATIONS, "make_verifier: 4095 refused");
    test_rc(gpugate_scram_make_verifier((const unsigned char *) "t", 1,
                                        test_salt, 15, 4096, stored, server),
            GPUGATE_SCRAM_ERR_SALT, "make_verifier: 15-byte salt refused");
    test_rc(gpugate_scram_make_verifier((const unsigned char *) "t", 0,
                                        test_salt, 16, 4096, stored, server),
            GPUGATE_SCRAM_ERR_ARG, "make_verifier: empty token refused");
}


int
main(void)
{
    test_rfc7677();
    test_round_trips();
    test_refusals();
    test_truncation();
    test_garbage();
    test_first_message();
    test_server_first_message();
    test_client_side_misc();
    test_client_keys();
    test_authzid();
    test_fake_salt();
    test_errors();
    test_verifier();

    printf("1..%d\n", test_n);

    if (test_failed) {
        printf("# Looks like you failed %d test%s of %d.\n", test_failed,
               test_failed == 1 ? "" : "s", test_n);
        return 1;
    }

    return 0;
}
