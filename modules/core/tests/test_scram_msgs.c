
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests for SCRAM (each message's parser and builder), TAP output.
 * From the repository root:
 *
 *   make -C modules/core BUILDDIR=$PWD/build check
 *
 * (build/tests/test_scram* also run under valgrind).
 */


#include "scram_test.h"


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
    test_first_message();
    test_server_first_message();
    test_client_side_misc();
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
