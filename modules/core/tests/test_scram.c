
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests for SCRAM (exchanges, client keys, refusals, truncation), TAP
 * output.  From the repository root:
 *
 *   make -C modules/core BUILDDIR=$PWD/build check
 *
 * (build/tests/test_scram* also run under valgrind).
 */


#include "scram_test.h"


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


int
main(void)
{
    test_rfc7677();
    test_round_trips();
    test_refusals();
    test_truncation();
    test_garbage();
    test_client_keys();

    printf("1..%d\n", test_n);

    if (test_failed) {
        printf("# Looks like you failed %d test%s of %d.\n", test_failed,
               test_failed == 1 ? "" : "s", test_n);
        return 1;
    }

    return 0;
}
