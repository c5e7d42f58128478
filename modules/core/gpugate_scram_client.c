
/*
 * Copyright (C) gpugate authors
 *
 * SCRAM-SHA-256, the client's steps (the agent): client-first, the proof
 * in client-final, and the check of the server's signature.
 */


#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "gpugate_base64.h"
#include "gpugate_scram.h"
#include "gpugate_scram_common.h"


/* the client's nonce part as base64 */
#define GPUGATE_SCRAM_CNONCE_B64                                             \
    GPUGATE_BASE64_LEN(GPUGATE_SCRAM_CNONCE_RAND)


/* what server-first-message gives the client */
typedef struct {
    const char     *nonce;             /* "r=": ours and the server's */
    size_t          nonce_len;         /* its length */
    unsigned char   salt[GPUGATE_SCRAM_SALT_MAX];  /* "s=", decoded */
    size_t          salt_len;          /* its length */
    unsigned        iterations;        /* "i=" */
} gpugate_scram_server_first_t;


gpugate_scram_rc_t
gpugate_scram_client_first(gpugate_scram_client_t *st, const char *user,
    char *out, size_t size, size_t *out_len)
{
    char                raw_b64[GPUGATE_SCRAM_CNONCE_B64];
    size_t              n;
    unsigned char       raw[GPUGATE_SCRAM_CNONCE_RAND];
    gpugate_scram_rc_t  rc;

    if (st == NULL) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    st->step = GPUGATE_SCRAM_STEP_DONE;

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return GPUGATE_SCRAM_ERR_INTERNAL;
    }

    /* base64 is printable and has no ',' */

    n = gpugate_base64_encode(raw, sizeof(raw), raw_b64);

    rc = gpugate_scram_client_first_nonce(st, user, raw_b64, n, out, size,
                                          out_len);

    OPENSSL_cleanse(raw, sizeof(raw));

    return rc;
}


gpugate_scram_rc_t
gpugate_scram_client_first_nonce(gpugate_scram_client_t *st,
    const char *user, const char *nonce, size_t nonce_len, char *out,
    size_t size, size_t *out_len)
{
    char    *p;
    size_t   ulen, i;

    if (st == NULL || out == NULL || out_len == NULL) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    memset(st, 0, sizeof(gpugate_scram_client_t));
    st->step = GPUGATE_SCRAM_STEP_DONE;

    if (user == NULL) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    for (ulen = 0; ulen <= GPUGATE_SCRAM_USER_MAX && user[ulen]; ulen++) {
        /* void */
    }

    if (ulen == 0 || ulen > GPUGATE_SCRAM_USER_MAX
        || !gpugate_scram_utf8(user, ulen))
    {
        return GPUGATE_SCRAM_ERR_USERNAME;
    }

    if (nonce == NULL || nonce_len < GPUGATE_SCRAM_CNONCE_MIN
        || nonce_len > GPUGATE_SCRAM_CNONCE_MAX
        || !gpugate_scram_printable(nonce, nonce_len))
    {
        return GPUGATE_SCRAM_ERR_NONCE;
    }

    /* "n=" name ",r=" nonce; RFC 5802 writes ',' and '=' as =2C and =3D */

    p = st->first_bare;
    *p++ = 'n';
    *p++ = '=';

    for (i = 0; i < ulen; i++) {
        if (user[i] == ',') {
            memcpy(p, "=2C", 3);
            p += 3;

        } else if (user[i] == '=') {
            memcpy(p, "=3D", 3);
            p += 3;

        } else {
            *p++ = user[i];
        }
    }

    memcpy(p, ",r=", 3);
    p += 3;
    memcpy(p, nonce, nonce_len);
    p += nonce_len;

    st->first_bare_len = (uint16_t) (p - st->first_bare);
    st->nonce_len = (uint16_t) nonce_len;

    if (size < 3 + (size_t) st->first_bare_len + 1) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    memcpy(out, "n,,", 3);
    memcpy(out + 3, st->first_bare, st->first_bare_len);
    out[3 + st->first_bare_len] = '\0';
    *out_len = 3 + st->first_bare_len;

    st->step = GPUGATE_SCRAM_STEP_FIRST;

    return GPUGATE_SCRAM_OK;
}


gpugate_scram_rc_t
gpugate_scram_client_final(gpugate_scram_client_t *st,
    const char *server_first, size_t server_first_len,
    const unsigned char *token, size_t token_len, char *out, size_t size,
    size_t *out_len)
{
    return gpugate_scram_client_final_keys(st, server_first,
                                           server_first_len, token,
                                           token_len, NULL, out, size,
                                           out_len);
}


/*
 * Reads server-first-message: "r=" our nonce extended by the server, "s="
 * the salt, "i=" the iteration count (a positive number without leading
 * zeroes), optional extensions.
 */

static gpugate_scram_rc_t
gpugate_scram_client_read_first(gpugate_scram_client_t *st,
    const char *server_first, size_t server_first_len,
    gpugate_scram_server_first_t *sf)
{
    int                     slen;
    char                    name;
    size_t                  b64len, ilen, i;
    const char             *s, *it, *cnonce;
    gpugate_scram_rc_t      rc;
    gpugate_scram_cursor_t  c;

    rc = gpugate_scram_check_msg(server_first, server_first_len);
    if (rc != GPUGATE_SCRAM_OK) {
        return rc;
    }

    c.pos = server_first;
    c.end = server_first + server_first_len;

    /* "r=" nonce: ours, extended by the server */

    if (gpugate_scram_attr(&c, &name, &sf->nonce, &sf->nonce_len) != 0) {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    if (name == 'm') {
        return GPUGATE_SCRAM_ERR_EXTENSION;
    }

    if (name != 'r') {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    if (sf->nonce_len > GPUGATE_SCRAM_NONCE_MAX
        || !gpugate_scram_printable(sf->nonce, sf->nonce_len))
    {
        return GPUGATE_SCRAM_ERR_NONCE;
    }

    cnonce = st->first_bare + st->first_bare_len - st->nonce_len;

    if (sf->nonce_len <= st->nonce_len
        || memcmp(sf->nonce, cnonce, st->nonce_len) != 0)
    {
        return GPUGATE_SCRAM_ERR_NONCE_MISMATCH;
    }

    /* "s=" salt */

    if (gpugate_scram_next(&c) != 1
        || gpugate_scram_attr(&c, &name, &s, &b64len) != 0 || name != 's')
    {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    slen = (int) gpugate_base64_decode(s, b64len, sf->salt,
                                       sizeof(sf->salt));
    if (slen < GPUGATE_SCRAM_SALT_MIN) {
        return GPUGATE_SCRAM_ERR_SALT;
    }

    sf->salt_len = (size_t) slen;

    /* "i=" iteration count: a positive number without leading zeroes */

    if (gpugate_scram_next(&c) != 1
        || gpugate_scram_attr(&c, &name, &it, &ilen) != 0 || name != 'i')
    {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    if (ilen == 0 || ilen > 7 || it[0] == '0') {
        return GPUGATE_SCRAM_ERR_ITERATIONS;
    }

    sf->iterations = 0;

    for (i = 0; i < ilen; i++) {
        if (it[i] < '0' || it[i] > '9') {
            return GPUGATE_SCRAM_ERR_ITERATIONS;
        }

        sf->iterations = sf->iterations * 10 + (unsigned) (it[i] - '0');
    }

    if (sf->iterations < GPUGATE_SCRAM_MIN_ITER
        || sf->iterations > GPUGATE_SCRAM_MAX_ITER)
    {
        return GPUGATE_SCRAM_ERR_ITERATIONS;
    }

    return gpugate_scram_extensions(&c);
}


/*
 * ClientKey and ServerKey for the server's salt and iteration count: from
 * the caller's cache when it holds them for the same salt and count,
 * otherwise SaltedPassword = Hi(token, salt, i), ClientKey =
 * HMAC(SaltedPassword, "Client Key"), ServerKey = HMAC(SaltedPassword,
 * "Server Key"), kept in the cache.  1 or 0.
 */

static int
gpugate_scram_client_derive(const unsigned char *token, size_t token_len,
    const gpugate_scram_server_first_t *sf, gpugate_scram_keys_t *keys,
    unsigned char *client_key, unsigned char *server_key)
{
    int            ok;
    unsigned char  salted[GPUGATE_SCRAM_KEY_LEN];

    if (keys != NULL && keys->salt_len == sf->salt_len
        && keys->iterations == sf->iterations
        && memcmp(keys->salt, sf->salt, sf->salt_len) == 0)
    {
        memcpy(client_key, keys->client_key, GPUGATE_SCRAM_KEY_LEN);
        memcpy(server_key, keys->server_key, GPUGATE_SCRAM_KEY_LEN);
        return 1;
    }

    ok = PKCS5_PBKDF2_HMAC((const char *) token, (int) token_len, sf->salt,
                           (int) sf->salt_len, (int) sf->iterations,
                           EVP_sha256(), GPUGATE_SCRAM_KEY_LEN, salted) == 1
         && gpugate_scram_hmac1(salted, sizeof(salted), "Client Key", 10,
                                client_key) == 0
         && gpugate_scram_hmac1(salted, sizeof(salted), "Server Key", 10,
                                server_key) == 0;

    if (ok && keys != NULL) {
        memcpy(keys->salt, sf->salt, sf->salt_len);
        keys->salt_len = sf->salt_len;
        keys->iterations = sf->iterations;
        memcpy(keys->client_key, client_key, GPUGATE_SCRAM_KEY_LEN);
        memcpy(keys->server_key, server_key, GPUGATE_SCRAM_KEY_LEN);
    }

    /* SaltedPassword yields ClientKey, which logs in by itself */

    OPENSSL_cleanse(salted, sizeof(salted));

    return ok;
}


gpugate_scram_rc_t
gpugate_scram_client_final_keys(gpugate_scram_client_t *st,
    const char *server_first, size_t server_first_len,
    const unsigned char *token, size_t token_len, gpugate_scram_keys_t *keys,
    char *out, size_t size, size_t *out_len)
{
    int                           ok;
    char                         *p;
    size_t                        wo_len, i;
    unsigned char                 client_key[GPUGATE_SCRAM_KEY_LEN];
    unsigned char                 stored_key[GPUGATE_SCRAM_KEY_LEN];
    unsigned char                 server_key[GPUGATE_SCRAM_KEY_LEN];
    unsigned char                 sig[GPUGATE_SCRAM_KEY_LEN];
    unsigned char                 proof[GPUGATE_SCRAM_KEY_LEN];
    gpugate_scram_rc_t            rc;
    gpugate_scram_server_first_t  sf;

    if (st == NULL || out == NULL || out_len == NULL) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    if (st->step != GPUGATE_SCRAM_STEP_FIRST) {
        return GPUGATE_SCRAM_ERR_STATE;
    }

    /* whatever happens below, this exchange cannot be resumed */

    st->step = GPUGATE_SCRAM_STEP_DONE;

    if (token == NULL || token_len == 0
        || token_len > GPUGATE_SCRAM_TOKEN_MAX)
    {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    rc = gpugate_scram_client_read_first(st, server_first, server_first_len,
                                         &sf);
    if (rc != GPUGATE_SCRAM_OK) {
        return rc;
    }

    /* client-final-message-without-proof: "c=biws,r=" nonce */

    wo_len = sizeof("c=biws,r=") - 1 + sf.nonce_len;

    if (size < wo_len + sizeof(",p=") - 1
               + GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_KEY_LEN) + 1)
    {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    p = out;
    memcpy(p, "c=biws,r=", sizeof("c=biws,r=") - 1);
    p += sizeof("c=biws,r=") - 1;
    memcpy(p, sf.nonce, sf.nonce_len);
    p += sf.nonce_len;

    /*
     * StoredKey = H(ClientKey); ClientProof = ClientKey XOR
     * HMAC(StoredKey, AuthMessage); ServerSignature = HMAC(ServerKey,
     * AuthMessage).
     */

    ok = gpugate_scram_client_derive(token, token_len, &sf, keys,
                                     client_key, server_key)
         && gpugate_scram_sha256(client_key, sizeof(client_key), stored_key)
            == 0
         && gpugate_scram_sign(stored_key, st->first_bare,
                               st->first_bare_len, server_first,
                               server_first_len, out, wo_len, sig) == 0
         && gpugate_scram_sign(server_key, st->first_bare,
                               st->first_bare_len, server_first,
                               server_first_len, out, wo_len,
                               st->server_signature) == 0;

    if (ok) {
        for (i = 0; i < GPUGATE_SCRAM_KEY_LEN; i++) {
            proof[i] = client_key[i] ^ sig[i];
        }

        memcpy(p, ",p=", 3);
        p += 3;
        p += gpugate_base64_encode(proof, sizeof(proof), p);
        *p = '\0';

        *out_len = p - out;
        st->step = GPUGATE_SCRAM_STEP_FINAL;
        rc = GPUGATE_SCRAM_OK;

    } else {
        out[0] = '\0';
        rc = GPUGATE_SCRAM_ERR_INTERNAL;
    }

    /* ClientKey logs in by itself */

    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored_key, sizeof(stored_key));
    OPENSSL_cleanse(server_key, sizeof(server_key));
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(proof, sizeof(proof));

    return rc;
}


gpugate_scram_rc_t
gpugate_scram_client_verify(gpugate_scram_client_t *st,
    const char *server_final, size_t len)
{
    int                     n;
    char                    name;
    size_t                  vlen;
    const char             *v;
    unsigned char           sig[GPUGATE_SCRAM_KEY_LEN];
    gpugate_scram_rc_t      rc;
    gpugate_scram_cursor_t  c;

    if (st == NULL) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    if (st->step != GPUGATE_SCRAM_STEP_FINAL) {
        return GPUGATE_SCRAM_ERR_STATE;
    }

    st->step = GPUGATE_SCRAM_STEP_DONE;

    rc = gpugate_scram_check_msg(server_final, len);

    if (rc == GPUGATE_SCRAM_OK) {
        c.pos = server_final;
        c.end = server_final + len;

        if (gpugate_scram_attr(&c, &name, &v, &vlen) != 0) {
            rc = GPUGATE_SCRAM_ERR_SYNTAX;

        } else if (name == 'e') {
            rc = GPUGATE_SCRAM_ERR_SERVER_ERROR;

        } else if (name != 'v') {
            rc = GPUGATE_SCRAM_ERR_SYNTAX;

        } else {
            n = gpugate_base64_decode(v, vlen, sig, sizeof(sig));

            if (n != GPUGATE_SCRAM_KEY_LEN) {
                rc = GPUGATE_SCRAM_ERR_SYNTAX;

            } else {
                rc = gpugate_scram_extensions(&c);
            }

            if (rc == GPUGATE_SCRAM_OK
                && CRYPTO_memcmp(sig, st->server_signature,
                                 GPUGATE_SCRAM_KEY_LEN) != 0)
            {
                rc = GPUGATE_SCRAM_ERR_SERVER_SIGNATURE;
            }
        }
    }

    OPENSSL_cleanse(st->server_signature, sizeof(st->server_signature));

    return rc;
}
