
/*
 * Copyright (C) gpugate authors
 */


#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "gpugate_scram.h"


/* where an exchange stands; 0 is "not started", anything else is over */
#define GPUGATE_SCRAM_STEP_FIRST  1
#define GPUGATE_SCRAM_STEP_FINAL  2
#define GPUGATE_SCRAM_STEP_DONE   3

/* nonce parts as base64 */
#define GPUGATE_SCRAM_CNONCE_B64                                             \
    GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_CNONCE_RAND)
#define GPUGATE_SCRAM_SNONCE_B64                                             \
    GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_SNONCE_RAND)

/* longest gs2 header: "n,a=" escaped name "," */
#define GPUGATE_SCRAM_GS2_MAX     (sizeof("n,a=,") + 3 * GPUGATE_SCRAM_USER_MAX)


/* a piece of a message that is fed to HMAC */
typedef struct {
    const void  *data;                 /* its bytes */
    size_t       len;                  /* their count */
} gpugate_scram_part_t;


/* reads "x=value" attributes one after the other */
typedef struct {
    const char  *pos;                  /* next unread character */
    const char  *end;                  /* end of the message */
} gpugate_scram_cursor_t;


static const char  gpugate_scram_b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


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


static size_t
gpugate_scram_b64_encode(const unsigned char *in, size_t len, char *out)
{
    char          *p;
    size_t         i;
    unsigned long  v;

    p = out;

    for (i = 0; i + 2 < len; i += 3) {
        v = (unsigned long) in[i] << 16 | (unsigned long) in[i + 1] << 8
            | in[i + 2];
        *p++ = gpugate_scram_b64_chars[(v >> 18) & 63];
        *p++ = gpugate_scram_b64_chars[(v >> 12) & 63];
        *p++ = gpugate_scram_b64_chars[(v >> 6) & 63];
        *p++ = gpugate_scram_b64_chars[v & 63];
    }

    if (i < len) {
        v = (unsigned long) in[i] << 16;

        if (i + 1 < len) {
            v |= (unsigned long) in[i + 1] << 8;
        }

        *p++ = gpugate_scram_b64_chars[(v >> 18) & 63];
        *p++ = gpugate_scram_b64_chars[(v >> 12) & 63];
        *p++ = (i + 1 < len) ? gpugate_scram_b64_chars[(v >> 6) & 63] : '=';
        *p++ = '=';
    }

    return p - out;
}


static int
gpugate_scram_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}


/*
 * Strict base64: padded, no white space, and canonical (the unused low
 * bits of the last character are zero), so that each value has exactly
 * one spelling.  Returns the decoded length, or -1.
 */

static int
gpugate_scram_b64_decode(const char *in, size_t len, unsigned char *out,
    size_t size)
{
    int            v[4], k;
    size_t         i, o, pad, n;
    unsigned long  bits;

    if (len == 0 || len % 4 != 0 || len > GPUGATE_SCRAM_MSG_MAX) {
        return -1;
    }

    pad = 0;

    if (in[len - 1] == '=') {
        pad = (in[len - 2] == '=') ? 2 : 1;
    }

    if (len / 4 * 3 - pad > size) {
        return -1;
    }

    o = 0;

    for (i = 0; i < len; i += 4) {

        for (k = 0; k < 4; k++) {
            if (i + k >= len - pad) {
                v[k] = 0;
                continue;
            }

            v[k] = gpugate_scram_b64_value((unsigned char) in[i + k]);
            if (v[k] < 0) {
                return -1;              /* also a '=' inside the text */
            }
        }

        bits = (unsigned long) v[0] << 18 | (unsigned long) v[1] << 12
               | (unsigned long) v[2] << 6 | (unsigned long) v[3];

        n = (i + 4 == len) ? 3 - pad : 3;

        out[o++] = (unsigned char) (bits >> 16);

        if (n > 1) {
            out[o++] = (unsigned char) (bits >> 8);
        }

        if (n > 2) {
            out[o++] = (unsigned char) bits;
        }
    }

    if ((pad == 1 && (v[2] & 3) != 0) || (pad == 2 && (v[1] & 15) != 0)) {
        return -1;
    }

    return (int) o;
}


static int
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


static int
gpugate_scram_hmac1(const unsigned char *key, size_t key_len,
    const void *data, size_t len, unsigned char *out)
{
    gpugate_scram_part_t  part;

    part.data = data;
    part.len = len;

    return gpugate_scram_hmac(key, key_len, &part, 1, out);
}


static int
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

static int
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

static int
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

static int
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

static int
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

static int
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

static gpugate_scram_rc_t
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

static gpugate_scram_rc_t
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


static size_t
gpugate_scram_put_uint(char *p, unsigned v)
{
    char    tmp[16];
    size_t  n, i;

    n = 0;

    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    for (i = 0; i < n; i++) {
        p[i] = tmp[n - 1 - i];
    }

    return n;
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


gpugate_scram_rc_t
gpugate_scram_fake_salt(const unsigned char *secret, size_t secret_len,
    const char *user, size_t user_len, unsigned char *salt, size_t salt_len)
{
    unsigned char         mac[GPUGATE_SCRAM_KEY_LEN];
    gpugate_scram_part_t  parts[2];

    /* a short secret could be guessed, and with it the real users */

    if (secret == NULL || secret_len < 16 || (user == NULL && user_len)
        || salt == NULL || salt_len < GPUGATE_SCRAM_SALT_MIN
        || salt_len > sizeof(mac))
    {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    /* the label keeps this HMAC apart from any other use of the secret */

    parts[0].data = "gpugate scram fake salt";
    parts[0].len = sizeof("gpugate scram fake salt");
    parts[1].data = user;
    parts[1].len = user_len;

    if (gpugate_scram_hmac(secret, secret_len, parts, 2, mac) != 0) {
        return GPUGATE_SCRAM_ERR_INTERNAL;
    }

    memcpy(salt, mac, salt_len);

    return GPUGATE_SCRAM_OK;
}


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

    n = gpugate_scram_b64_encode(raw, sizeof(raw), raw_b64);

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


gpugate_scram_rc_t
gpugate_scram_client_final_keys(gpugate_scram_client_t *st,
    const char *server_first, size_t server_first_len,
    const unsigned char *token, size_t token_len, gpugate_scram_keys_t *keys,
    char *out, size_t size, size_t *out_len)
{
    int                     slen, ok;
    char                    name, *p;
    size_t                  rlen, b64len, ilen, wo_len, i;
    unsigned                iter;
    const char             *r, *s, *it, *cnonce;
    unsigned char           salt[GPUGATE_SCRAM_SALT_MAX];
    unsigned char           salted[GPUGATE_SCRAM_KEY_LEN];
    unsigned char           client_key[GPUGATE_SCRAM_KEY_LEN];
    unsigned char           stored_key[GPUGATE_SCRAM_KEY_LEN];
    unsigned char           server_key[GPUGATE_SCRAM_KEY_LEN];
    unsigned char           sig[GPUGATE_SCRAM_KEY_LEN];
    unsigned char           proof[GPUGATE_SCRAM_KEY_LEN];
    gpugate_scram_rc_t      rc;
    gpugate_scram_cursor_t  c;

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

    rc = gpugate_scram_check_msg(server_first, server_first_len);
    if (rc != GPUGATE_SCRAM_OK) {
        return rc;
    }

    c.pos = server_first;
    c.end = server_first + server_first_len;

    /* "r=" nonce: ours, extended by the server */

    if (gpugate_scram_attr(&c, &name, &r, &rlen) != 0) {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    if (name == 'm') {
        return GPUGATE_SCRAM_ERR_EXTENSION;
    }

    if (name != 'r') {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    if (rlen > GPUGATE_SCRAM_NONCE_MAX || !gpugate_scram_printable(r, rlen)) {
        return GPUGATE_SCRAM_ERR_NONCE;
    }

    cnonce = st->first_bare + st->first_bare_len - st->nonce_len;

    if (rlen <= st->nonce_len || memcmp(r, cnonce, st->nonce_len) != 0) {
        return GPUGATE_SCRAM_ERR_NONCE_MISMATCH;
    }

    /* "s=" salt */

    if (gpugate_scram_next(&c) != 1
        || gpugate_scram_attr(&c, &name, &s, &b64len) != 0 || name != 's')
    {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    slen = gpugate_scram_b64_decode(s, b64len, salt, sizeof(salt));
    if (slen < GPUGATE_SCRAM_SALT_MIN) {
        return GPUGATE_SCRAM_ERR_SALT;
    }

    /* "i=" iteration count: a positive number without leading zeroes */

    if (gpugate_scram_next(&c) != 1
        || gpugate_scram_attr(&c, &name, &it, &ilen) != 0 || name != 'i')
    {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    if (ilen == 0 || ilen > 7 || it[0] == '0') {
        return GPUGATE_SCRAM_ERR_ITERATIONS;
    }

    iter = 0;

    for (i = 0; i < ilen; i++) {
        if (it[i] < '0' || it[i] > '9') {
            return GPUGATE_SCRAM_ERR_ITERATIONS;
        }

        iter = iter * 10 + (unsigned) (it[i] - '0');
    }

    if (iter < GPUGATE_SCRAM_MIN_ITER || iter > GPUGATE_SCRAM_MAX_ITER) {
        return GPUGATE_SCRAM_ERR_ITERATIONS;
    }

    rc = gpugate_scram_extensions(&c);
    if (rc != GPUGATE_SCRAM_OK) {
        return rc;
    }

    /* client-final-message-without-proof: "c=biws,r=" nonce */

    wo_len = sizeof("c=biws,r=") - 1 + rlen;

    if (size < wo_len + sizeof(",p=") - 1
               + GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_KEY_LEN) + 1)
    {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    p = out;
    memcpy(p, "c=biws,r=", sizeof("c=biws,r=") - 1);
    p += sizeof("c=biws,r=") - 1;
    memcpy(p, r, rlen);
    p += rlen;

    /*
     * SaltedPassword = Hi(token, salt, i); ClientKey = HMAC(SaltedPassword,
     * "Client Key"); StoredKey = H(ClientKey); ClientProof = ClientKey XOR
     * HMAC(StoredKey, AuthMessage); ServerSignature = HMAC(ServerKey,
     * AuthMessage) with ServerKey = HMAC(SaltedPassword, "Server Key").
     */

    if (keys != NULL && keys->salt_len == (size_t) slen
        && keys->iterations == iter && memcmp(keys->salt, salt, slen) == 0)
    {
        memcpy(client_key, keys->client_key, sizeof(client_key));
        memcpy(server_key, keys->server_key, sizeof(server_key));
        ok = 1;

    } else {
        ok = PKCS5_PBKDF2_HMAC((const char *) token, (int) token_len, salt,
                               slen, (int) iter, EVP_sha256(),
                               GPUGATE_SCRAM_KEY_LEN, salted) == 1
             && gpugate_scram_hmac1(salted, sizeof(salted), "Client Key", 10,
                                    client_key) == 0
             && gpugate_scram_hmac1(salted, sizeof(salted), "Server Key", 10,
                                    server_key) == 0;

        if (ok && keys != NULL) {
            memcpy(keys->salt, salt, slen);
            keys->salt_len = slen;
            keys->iterations = iter;
            memcpy(keys->client_key, client_key, sizeof(client_key));
            memcpy(keys->server_key, server_key, sizeof(server_key));
        }
    }

    ok = ok
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
        p += gpugate_scram_b64_encode(proof, sizeof(proof), p);
        *p = '\0';

        *out_len = p - out;
        st->step = GPUGATE_SCRAM_STEP_FINAL;
        rc = GPUGATE_SCRAM_OK;

    } else {
        out[0] = '\0';
        rc = GPUGATE_SCRAM_ERR_INTERNAL;
    }

    /* ClientKey logs in by itself, and SaltedPassword yields it */

    OPENSSL_cleanse(salted, sizeof(salted));
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
            n = gpugate_scram_b64_decode(v, vlen, sig, sizeof(sig));

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


/* undoes =2C and =3D, and checks the result; USER_SIZE bytes of output */

static gpugate_scram_rc_t
gpugate_scram_unescape(const char *in, size_t len, char *out,
    size_t *out_len)
{
    char    ch;
    size_t  i, o;

    o = 0;

    for (i = 0; i < len; i++) {
        ch = in[i];

        if (ch == '=') {
            if (len - i < 3) {
                return GPUGATE_SCRAM_ERR_USERNAME;
            }

            if (in[i + 1] == '2' && in[i + 2] == 'C') {
                ch = ',';

            } else if (in[i + 1] == '3' && in[i + 2] == 'D') {
                ch = '=';

            } else {
                return GPUGATE_SCRAM_ERR_USERNAME;
            }

            i += 2;
        }

        if (o == GPUGATE_SCRAM_USER_MAX) {
            return GPUGATE_SCRAM_ERR_USERNAME;
        }

        out[o++] = ch;
    }

    if (o == 0 || !gpugate_scram_utf8(out, o)) {
        return GPUGATE_SCRAM_ERR_USERNAME;
    }

    out[o] = '\0';
    *out_len = o;

    return GPUGATE_SCRAM_OK;
}


gpugate_scram_rc_t
gpugate_scram_server_parse_first(gpugate_scram_server_t *st,
    const char *msg, size_t len, char *user, size_t *user_len)
{
    char                    name;
    size_t                  alen, nlen, rlen, blen;
    const char             *a, *n, *r, *bare, *comma;
    gpugate_scram_rc_t      rc;
    gpugate_scram_cursor_t  c;

    if (st == NULL || user == NULL || user_len == NULL) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    memset(st, 0, sizeof(gpugate_scram_server_t));
    st->step = GPUGATE_SCRAM_STEP_DONE;
    user[0] = '\0';
    *user_len = 0;

    rc = gpugate_scram_check_msg(msg, len);
    if (rc != GPUGATE_SCRAM_OK) {
        return rc;
    }

    /*
     * gs2-header: "n" (no channel binding) "," [ "a=" authzid ] ",".
     * "y" and "p=" are refused: this server offers no channel binding.
     */

    if (msg[0] == 'y' || (msg[0] == 'p' && len > 1 && msg[1] == '=')) {
        return GPUGATE_SCRAM_ERR_CHANNEL_BINDING;
    }

    if (len < 3 || msg[0] != 'n' || msg[1] != ',') {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    a = NULL;
    alen = 0;

    if (msg[2] == ',') {
        bare = msg + 3;

    } else if (msg[2] == 'a' && len > 3 && msg[3] == '=') {
        a = msg + 4;
        comma = memchr(a, ',', len - 4);

        if (comma == NULL || comma == a) {
            return GPUGATE_SCRAM_ERR_SYNTAX;
        }

        alen = comma - a;
        bare = comma + 1;

    } else {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    blen = msg + len - bare;

    if (blen > GPUGATE_SCRAM_FIRST_BARE_MAX) {
        return GPUGATE_SCRAM_ERR_TOO_LONG;
    }

    c.pos = bare;
    c.end = msg + len;

    /* "n=" user name */

    if (gpugate_scram_attr(&c, &name, &n, &nlen) != 0) {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    if (name == 'm') {
        return GPUGATE_SCRAM_ERR_EXTENSION;
    }

    if (name != 'n') {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    rc = gpugate_scram_unescape(n, nlen, user, user_len);
    if (rc != GPUGATE_SCRAM_OK) {
        goto refused;
    }

    /*
     * The escaped form is canonical (only =2C and =3D, no bare ',' or
     * '='), so comparing escaped names compares the names.
     */

    if (a != NULL && (alen != nlen || memcmp(a, n, nlen) != 0)) {
        rc = GPUGATE_SCRAM_ERR_AUTHZID;
        goto refused;
    }

    /* "r=" client nonce */

    if (gpugate_scram_next(&c) != 1
        || gpugate_scram_attr(&c, &name, &r, &rlen) != 0 || name != 'r')
    {
        rc = GPUGATE_SCRAM_ERR_SYNTAX;
        goto refused;
    }

    if (rlen < GPUGATE_SCRAM_CNONCE_MIN || rlen > GPUGATE_SCRAM_CNONCE_MAX
        || !gpugate_scram_printable(r, rlen))
    {
        rc = GPUGATE_SCRAM_ERR_NONCE;
        goto refused;
    }

    rc = gpugate_scram_extensions(&c);
    if (rc != GPUGATE_SCRAM_OK) {
        goto refused;
    }

    memcpy(st->first_bare, bare, blen);
    st->first_bare_len = (uint16_t) blen;
    st->user_len = (uint16_t) nlen;
    st->cnonce_off = (uint16_t) (r - bare);
    st->cnonce_len = (uint8_t) rlen;
    st->authzid = (a != NULL);
    st->step = GPUGATE_SCRAM_STEP_FIRST;

    return GPUGATE_SCRAM_OK;

refused:

    /* a name from a refused message is not to be trusted, even in logs */

    user[0] = '\0';
    *user_len = 0;

    return rc;
}


gpugate_scram_rc_t
gpugate_scram_server_first(gpugate_scram_server_t *st,
    const unsigned char *salt, size_t salt_len, unsigned iterations,
    char *out, size_t size, size_t *out_len)
{
    char           raw_b64[GPUGATE_SCRAM_SNONCE_B64];
    size_t         n;
    unsigned char  raw[GPUGATE_SCRAM_SNONCE_RAND];

    if (st == NULL) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        st->step = GPUGATE_SCRAM_STEP_DONE;
        return GPUGATE_SCRAM_ERR_INTERNAL;
    }

    n = gpugate_scram_b64_encode(raw, sizeof(raw), raw_b64);

    return gpugate_scram_server_first_nonce(st, salt, salt_len, iterations,
                                            raw_b64, n, out, size, out_len);
}


gpugate_scram_rc_t
gpugate_scram_server_first_nonce(gpugate_scram_server_t *st,
    const unsigned char *salt, size_t salt_len, unsigned iterations,
    const char *snonce, size_t snonce_len, char *out, size_t size,
    size_t *out_len)
{
    char  *p;

    if (st == NULL || out == NULL || out_len == NULL) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    if (st->step != GPUGATE_SCRAM_STEP_FIRST) {
        return GPUGATE_SCRAM_ERR_STATE;
    }

    st->step = GPUGATE_SCRAM_STEP_DONE;

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

    if (snonce == NULL || snonce_len == 0
        || snonce_len > GPUGATE_SCRAM_SNONCE_MAX
        || !gpugate_scram_printable(snonce, snonce_len))
    {
        return GPUGATE_SCRAM_ERR_NONCE;
    }

    /* "r=" client nonce + ours ",s=" salt ",i=" iterations */

    p = st->server_first;
    *p++ = 'r';
    *p++ = '=';
    memcpy(p, st->first_bare + st->cnonce_off, st->cnonce_len);
    p += st->cnonce_len;
    memcpy(p, snonce, snonce_len);
    p += snonce_len;
    memcpy(p, ",s=", 3);
    p += 3;
    p += gpugate_scram_b64_encode(salt, salt_len, p);
    memcpy(p, ",i=", 3);
    p += 3;
    p += gpugate_scram_put_uint(p, iterations);

    st->server_first_len = (uint16_t) (p - st->server_first);
    st->nonce_len = (uint8_t) (st->cnonce_len + snonce_len);

    if (size < (size_t) st->server_first_len + 1) {
        return GPUGATE_SCRAM_ERR_ARG;
    }

    memcpy(out, st->server_first, st->server_first_len);
    out[st->server_first_len] = '\0';
    *out_len = st->server_first_len;

    st->step = GPUGATE_SCRAM_STEP_FINAL;

    return GPUGATE_SCRAM_OK;
}


/* "e=..." for a refusal, as far as it fits */

static gpugate_scram_rc_t
gpugate_scram_server_refuse(gpugate_scram_rc_t rc, char *out, size_t size,
    size_t *out_len)
{
    size_t       n;
    const char  *value;

    value = gpugate_scram_error_value(rc);
    n = strlen(value);

    if (out != NULL && size >= 2 + n + 1) {
        memcpy(out, "e=", 2);
        memcpy(out + 2, value, n);
        out[2 + n] = '\0';

        if (out_len) {
            *out_len = 2 + n;
        }

    } else if (out_len) {
        *out_len = 0;
    }

    return rc;
}


/* expected "c=": base64 of the gs2 header the client sent */

static size_t
gpugate_scram_cbind(gpugate_scram_server_t *st, char *out)
{
    char  header[GPUGATE_SCRAM_GS2_MAX], *p;

    if (!st->authzid) {
        memcpy(out, "biws", 4);         /* base64("n,,") */
        return 4;
    }

    p = header;
    memcpy(p, "n,a=", 4);
    p += 4;
    memcpy(p, st->first_bare + 2, st->user_len);
    p += st->user_len;
    *p++ = ',';

    return gpugate_scram_b64_encode((unsigned char *) header, p - header,
                                    out);
}


gpugate_scram_rc_t
gpugate_scram_server_final(gpugate_scram_server_t *st, const char *msg,
    size_t len, const unsigned char stored_key[GPUGATE_SCRAM_KEY_LEN],
    const unsigned char server_key[GPUGATE_SCRAM_KEY_LEN], char *out,
    size_t size, size_t *out_len)
{
    int                     fake, ok;
    char                    name, *o;
    char                    cbind[GPUGATE_SCRAM_B64_LEN(
                                      GPUGATE_SCRAM_GS2_MAX)];
    size_t                  clen, rlen, plen, cblen, wo_len, i;
    const char             *cv, *r, *pv;
    unsigned char           proof[GPUGATE_SCRAM_KEY_LEN];
    unsigned char           sig[GPUGATE_SCRAM_KEY_LEN];
    unsigned char           client_key[GPUGATE_SCRAM_KEY_LEN];
    unsigned char           h[GPUGATE_SCRAM_KEY_LEN];
    unsigned char           dummy[GPUGATE_SCRAM_KEY_LEN];
    gpugate_scram_rc_t      rc;
    gpugate_scram_cursor_t  c;

    if (st == NULL || out == NULL || out_len == NULL
        || size < GPUGATE_SCRAM_SERVER_FINAL_SIZE)
    {
        return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_ARG, out, size,
                                           out_len);
    }

    if (st->step != GPUGATE_SCRAM_STEP_FINAL) {
        return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_STATE, out,
                                           size, out_len);
    }

    /* one try per exchange: a refused proof cannot be retried */

    st->step = GPUGATE_SCRAM_STEP_DONE;

    rc = gpugate_scram_check_msg(msg, len);
    if (rc != GPUGATE_SCRAM_OK) {
        return gpugate_scram_server_refuse(rc, out, size, out_len);
    }

    c.pos = msg;
    c.end = msg + len;

    /* "c=" channel binding: the gs2 header, base64 */

    if (gpugate_scram_attr(&c, &name, &cv, &clen) != 0 || name != 'c') {
        return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_SYNTAX, out,
                                           size, out_len);
    }

    cblen = gpugate_scram_cbind(st, cbind);

    if (clen != cblen || memcmp(cv, cbind, cblen) != 0) {
        return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_CBIND_DATA,
                                           out, size, out_len);
    }

    /* "r=" the combined nonce, exactly */

    if (gpugate_scram_next(&c) != 1
        || gpugate_scram_attr(&c, &name, &r, &rlen) != 0 || name != 'r')
    {
        return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_SYNTAX, out,
                                           size, out_len);
    }

    if (rlen != st->nonce_len
        || CRYPTO_memcmp(r, st->server_first + 2, rlen) != 0)
    {
        return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_NONCE_MISMATCH,
                                           out, size, out_len);
    }

    /* extensions, then "p=" proof last */

    for ( ;; ) {
        if (gpugate_scram_next(&c) != 1
            || gpugate_scram_attr(&c, &name, &pv, &plen) != 0)
        {
            return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_SYNTAX,
                                               out, size, out_len);
        }

        if (name == 'p') {
            break;
        }

        if (plen == 0) {
            return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_SYNTAX,
                                               out, size, out_len);
        }
    }

    if (c.pos != c.end) {
        return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_SYNTAX, out,
                                           size, out_len);
    }

    if (gpugate_scram_b64_decode(pv, plen, proof, sizeof(proof))
        != GPUGATE_SCRAM_KEY_LEN)
    {
        return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_PROOF_FORMAT,
                                           out, size, out_len);
    }

    wo_len = (pv - 3) - msg;            /* up to ",p=" */

    /*
     * An unknown user goes through the same work with a dummy key, so
     * that neither the answer nor its timing tells it apart.
     */

    fake = (stored_key == NULL || server_key == NULL);

    if (fake) {
        memset(dummy, 0, sizeof(dummy));
        stored_key = dummy;
        server_key = dummy;
    }

    /* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); H(it) = StoredKey */

    if (gpugate_scram_sign(stored_key, st->first_bare, st->first_bare_len,
                           st->server_first, st->server_first_len, msg,
                           wo_len, sig) != 0)
    {
        return gpugate_scram_server_refuse(GPUGATE_SCRAM_ERR_INTERNAL, out,
                                           size, out_len);
    }

    for (i = 0; i < GPUGATE_SCRAM_KEY_LEN; i++) {
        client_key[i] = proof[i] ^ sig[i];
    }

    if (gpugate_scram_sha256(client_key, sizeof(client_key), h) != 0) {
        rc = GPUGATE_SCRAM_ERR_INTERNAL;

    } else {
        ok = CRYPTO_memcmp(h, stored_key, GPUGATE_SCRAM_KEY_LEN) == 0;

        if (fake) {
            rc = GPUGATE_SCRAM_ERR_UNKNOWN_USER;

        } else if (!ok) {
            rc = GPUGATE_SCRAM_ERR_INVALID_PROOF;

        } else if (gpugate_scram_sign(server_key, st->first_bare,
                                      st->first_bare_len, st->server_first,
                                      st->server_first_len, msg, wo_len,
                                      sig)
                   != 0)
        {
            rc = GPUGATE_SCRAM_ERR_INTERNAL;

        } else {
            rc = GPUGATE_SCRAM_OK;
        }
    }

    OPENSSL_cleanse(client_key, sizeof(client_key));

    if (rc != GPUGATE_SCRAM_OK) {
        return gpugate_scram_server_refuse(rc, out, size, out_len);
    }

    o = out;
    *o++ = 'v';
    *o++ = '=';
    o += gpugate_scram_b64_encode(sig, sizeof(sig), o);
    *o = '\0';
    *out_len = o - out;

    return GPUGATE_SCRAM_OK;
}
