
/*
 * Copyright (C) gpugate authors
 *
 * SCRAM-SHA-256: what both sides use (error texts, HMAC, the AuthMessage
 * signature, attribute reading, the verifier).  The client's steps are in
 * gpugate_scram_client.c, the server's in gpugate_scram_server.c.
 */


#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "gpugate_scram.h"
#include "gpugate_scram_common.h"


const char *
gpugate_scram_strerror(gpugate_scram_rc_t rc)
{
    switch (rc) {

    case GPUGATE_SCRAM_OK:
        return "success";

    case GPUGATE_SCRAM_ERR_INTERNAL:
        return "libcrypto or random number generator failure";

    case GPUGATE_SCRAM_ERR_ARG:
        return "invalid argument or output buffer too small";

    case GPUGATE_SCRAM_ERR_STATE:
        return "SCRAM step called out of order";

    case GPUGATE_SCRAM_ERR_TOO_LONG:
        return "SCRAM message too long";

    case GPUGATE_SCRAM_ERR_SYNTAX:
        return "malformed SCRAM message";

    case GPUGATE_SCRAM_ERR_CHANNEL_BINDING:
        return "channel binding requested but not supported";

    case GPUGATE_SCRAM_ERR_AUTHZID:
        return "authorization identity differs from user name";

    case GPUGATE_SCRAM_ERR_EXTENSION:
        return "mandatory SCRAM extension not supported";

    case GPUGATE_SCRAM_ERR_USERNAME:
        return "invalid user name (escaping, length or UTF-8)";

    case GPUGATE_SCRAM_ERR_NONCE:
        return "invalid nonce (characters or length)";

    case GPUGATE_SCRAM_ERR_NONCE_MISMATCH:
        return "nonce does not match this exchange";

    case GPUGATE_SCRAM_ERR_SALT:
        return "invalid salt (base64 or length)";

    case GPUGATE_SCRAM_ERR_ITERATIONS:
        return "iteration count out of bounds";

    case GPUGATE_SCRAM_ERR_CBIND_DATA:
        return "channel binding data does not match the gs2 header";

    case GPUGATE_SCRAM_ERR_PROOF_FORMAT:
        return "client proof is not 32 bytes of base64";

    case GPUGATE_SCRAM_ERR_INVALID_PROOF:
        return "invalid client proof (wrong token)";

    case GPUGATE_SCRAM_ERR_UNKNOWN_USER:
        return "unknown user (fake exchange)";

    case GPUGATE_SCRAM_ERR_SERVER_ERROR:
        return "server refused the authentication";

    case GPUGATE_SCRAM_ERR_SERVER_SIGNATURE:
        return "invalid server signature (server does not hold our "
               "verifier)";
    }

    return "unknown SCRAM error";
}


const char *
gpugate_scram_error_value(gpugate_scram_rc_t rc)
{
    switch (rc) {

    case GPUGATE_SCRAM_ERR_TOO_LONG:
    case GPUGATE_SCRAM_ERR_SYNTAX:
    case GPUGATE_SCRAM_ERR_NONCE:
    case GPUGATE_SCRAM_ERR_PROOF_FORMAT:
        return "invalid-encoding";

    case GPUGATE_SCRAM_ERR_USERNAME:
        return "invalid-username-encoding";

    case GPUGATE_SCRAM_ERR_EXTENSION:
        return "extensions-not-supported";

    case GPUGATE_SCRAM_ERR_CHANNEL_BINDING:
        return "channel-binding-not-supported";

    case GPUGATE_SCRAM_ERR_CBIND_DATA:
        return "channel-bindings-dont-match";

    /*
     * A wrong nonce, a wrong token and an unknown user all read the same,
     * so that the answer tells a prober nothing about the user.
     */

    case GPUGATE_SCRAM_ERR_NONCE_MISMATCH:
    case GPUGATE_SCRAM_ERR_INVALID_PROOF:
    case GPUGATE_SCRAM_ERR_UNKNOWN_USER:
        return "invalid-proof";

    default:
        return "other-error";
    }
}


int
gpugate_scram_hmac(const unsigned char *key, size_t key_len,
    const gpugate_scram_part_t *parts, size_t nparts, unsigned char *out)
{
    int           rc;
    char          digest[] = "SHA256";
    size_t        i, len;
    EVP_MAC      *mac;
    OSSL_PARAM    params[2];
    EVP_MAC_CTX  *ctx;

    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        return -1;
    }

    /* the context keeps its own reference to the algorithm */

    ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);

    if (ctx == NULL) {
        return -1;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 digest, 0);
    params[1] = OSSL_PARAM_construct_end();

    rc = -1;

    if (EVP_MAC_init(ctx, key, key_len, params) != 1) {
        goto done;
    }

    for (i = 0; i < nparts; i++) {
        if (EVP_MAC_update(ctx, parts[i].data, parts[i].len) != 1) {
            goto done;
        }
    }

    if (EVP_MAC_final(ctx, out, &len, GPUGATE_SCRAM_KEY_LEN) == 1
        && len == GPUGATE_SCRAM_KEY_LEN)
    {
        rc = 0;
    }

done:

    EVP_MAC_CTX_free(ctx);

    return rc;
}


int
gpugate_scram_hmac1(const unsigned char *key, size_t key_len,
    const void *data, size_t len, unsigned char *out)
{
    gpugate_scram_part_t  part;

    part.data = data;
    part.len = len;

    return gpugate_scram_hmac(key, key_len, &part, 1, out);
}


int
gpugate_scram_sha256(const unsigned char *in, size_t len, unsigned char *out)
{
    unsigned int  n;

    if (EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) != 1
        || n != GPUGATE_SCRAM_KEY_LEN)
    {
        return -1;
    }

    return 0;
}


/* HMAC over AuthMessage = client-first-bare "," server-first "," final */

int
gpugate_scram_sign(const unsigned char *key, const char *first_bare,
    size_t first_bare_len, const char *server_first, size_t server_first_len,
    const char *final, size_t final_len, unsigned char *out)
{
    gpugate_scram_part_t  parts[5];

    parts[0].data = first_bare;
    parts[0].len = first_bare_len;
    parts[1].data = ",";
    parts[1].len = 1;
    parts[2].data = server_first;
    parts[2].len = server_first_len;
    parts[3].data = ",";
    parts[3].len = 1;
    parts[4].data = final;
    parts[4].len = final_len;

    return gpugate_scram_hmac(key, GPUGATE_SCRAM_KEY_LEN, parts, 5, out);
}


/* RFC 5802 printable, less ',': what a nonce may hold */

int
gpugate_scram_printable(const char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',') {
            return 0;
        }
    }

    return 1;
}


/* well-formed UTF-8 without control characters */

int
gpugate_scram_utf8(const char *s, size_t len)
{
    size_t                i, n, k;
    unsigned char         c, lo, hi;
    const unsigned char  *p;

    p = (const unsigned char *) s;

    for (i = 0; i < len; i += n + 1) {
        c = p[i];

        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                return 0;
            }

            n = 0;
            continue;
        }

        lo = 0x80;
        hi = 0xbf;

        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            lo = (c == 0xe0) ? 0xa0 : 0x80;     /* no overlong forms */
            hi = (c == 0xed) ? 0x9f : 0xbf;     /* no surrogates */

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            lo = (c == 0xf0) ? 0x90 : 0x80;     /* no overlong forms */
            hi = (c == 0xf4) ? 0x8f : 0xbf;     /* nothing past U+10FFFF */

        } else {
            return 0;
        }

        if (len - i <= n) {
            return 0;
        }

        if (p[i + 1] < lo || p[i + 1] > hi) {
            return 0;
        }

        for (k = 2; k <= n; k++) {
            if (p[i + k] < 0x80 || p[i + k] > 0xbf) {
                return 0;
            }
        }
    }

    return 1;
}


/*
 * Reads one "x=value" attribute at the cursor; the value runs to the next
 * ',' or the end, and the cursor stops on that ','.  0 or -1.
 */

int
gpugate_scram_attr(gpugate_scram_cursor_t *c, char *name, const char **val,
    size_t *len)
{
    const char  *p, *comma;

    p = c->pos;

    if (c->end - p < 2 || p[1] != '='
        || !((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z')))
    {
        return -1;
    }

    comma = memchr(p + 2, ',', c->end - (p + 2));
    if (comma == NULL) {
        comma = c->end;
    }

    *name = p[0];
    *val = p + 2;
    *len = comma - (p + 2);
    c->pos = comma;

    return 0;
}


/* steps over the ',' before the next attribute: 1, 0 at the end, -1 */

int
gpugate_scram_next(gpugate_scram_cursor_t *c)
{
    if (c->pos == c->end) {
        return 0;
    }

    if (*c->pos != ',') {
        return -1;
    }

    c->pos++;

    return 1;
}


/*
 * Optional extensions after the mandatory attributes: "x=value" with a
 * non-empty value; they are signed as part of the AuthMessage, and
 * otherwise ignored.
 */

gpugate_scram_rc_t
gpugate_scram_extensions(gpugate_scram_cursor_t *c)
{
    int          rc;
    char         name;
    size_t       len;
    const char  *val;

    for ( ;; ) {
        rc = gpugate_scram_next(c);

        if (rc == 0) {
            return GPUGATE_SCRAM_OK;
        }

        if (rc < 0 || gpugate_scram_attr(c, &name, &val, &len) != 0
            || len == 0)
        {
            return GPUGATE_SCRAM_ERR_SYNTAX;
        }
    }
}


/* first checks on any message read: length and no NUL bytes */

gpugate_scram_rc_t
gpugate_scram_check_msg(const char *msg, size_t len)
{
    if (len > GPUGATE_SCRAM_MSG_MAX) {
        return GPUGATE_SCRAM_ERR_TOO_LONG;
    }

    if (msg == NULL || len == 0 || memchr(msg, '\0', len) != NULL) {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    return GPUGATE_SCRAM_OK;
}


gpugate_scram_rc_t
gpugate_scram_make_verifier(const unsigned char *token, size_t token_len,
    const unsigned char *salt, size_t salt_len, unsigned iterations,
    unsigned char stored_key[GPUGATE_SCRAM_KEY_LEN],
    unsigned char server_key[GPUGATE_SCRAM_KEY_LEN])
{
    int                 ok;
    unsigned char       salted[GPUGATE_SCRAM_KEY_LEN];
    unsigned char       client_key[GPUGATE_SCRAM_KEY_LEN];
    gpugate_scram_rc_t  rc;

    if (token == NULL || token_len == 0
        || token_len > GPUGATE_SCRAM_TOKEN_MAX || stored_key == NULL
        || server_key == NULL)
    {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    if (salt == NULL || salt_len < GPUGATE_SCRAM_SALT_MIN
        || salt_len > GPUGATE_SCRAM_SALT_MAX)
    {
        return GPUGATE_SCRAM_ERR_SALT;
    }

    if (iterations < GPUGATE_SCRAM_MIN_ITER
        || iterations > GPUGATE_SCRAM_MAX_ITER)
    {
        return GPUGATE_SCRAM_ERR_ITERATIONS;
    }

    /* Hi() with a 32-byte output is PBKDF2's first block */

    ok = PKCS5_PBKDF2_HMAC((const char *) token, (int) token_len, salt,
                           (int) salt_len, (int) iterations, EVP_sha256(),
                           GPUGATE_SCRAM_KEY_LEN, salted) == 1
         && gpugate_scram_hmac1(salted, sizeof(salted), "Client Key", 10,
                                client_key) == 0
         && gpugate_scram_hmac1(salted, sizeof(salted), "Server Key", 10,
                                server_key) == 0
         && gpugate_scram_sha256(client_key, sizeof(client_key), stored_key)
            == 0;

    rc = ok ? GPUGATE_SCRAM_OK : GPUGATE_SCRAM_ERR_INTERNAL;

    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));

    return rc;
}
