
/*
 * Copyright (C) gpugate authors
 */


#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "gpugate_scram.h"


static int
gpugate_scram_hmac(const unsigned char *key, size_t key_len,
    const void *data, size_t len, unsigned char *out)
{
    unsigned int  n;

    return HMAC(EVP_sha256(), key, (int) key_len, data, len, out, &n)
           ? 0 : -1;
}


static int
gpugate_scram_b64(const unsigned char *in, size_t len, char *out,
    size_t size)
{
    if (4 * ((len + 2) / 3) + 1 > size) {
        return -1;
    }

    return EVP_EncodeBlock((unsigned char *) out, in, (int) len);
}


/* strict base64 decode; returns the length or -1 */

static int
gpugate_scram_unb64(const char *in, size_t len, unsigned char *out,
    size_t size)
{
    int            n, pad;
    unsigned char  check[256];

    if (len == 0 || len % 4 || len / 4 * 3 > size || len >= sizeof(check)) {
        return -1;
    }

    n = EVP_DecodeBlock(out, (const unsigned char *) in, (int) len);
    if (n < 0) {
        return -1;
    }

    /* EVP_DecodeBlock counts padding as zero bytes */
    pad = (in[len - 1] == '=') + (in[len - 2] == '=');
    n -= pad;

    /*
     * Only the canonical encoding is accepted: unused low bits of the last
     * character must be zero, so one value has one spelling.
     */

    if (n < 0 || (size_t) n > sizeof(check) / 4 * 3
        || EVP_EncodeBlock(check, out, n) != (int) len
        || memcmp(check, in, len) != 0)
    {
        return -1;
    }

    return n;
}


static int
gpugate_scram_nonce(size_t nbytes, char *out, size_t size)
{
    unsigned char  raw[32];

    if (nbytes > sizeof(raw) || RAND_bytes(raw, (int) nbytes) != 1) {
        return -1;
    }

    /* base64 is printable and has no ',' */
    return gpugate_scram_b64(raw, nbytes, out, size);
}


int
gpugate_scram_verifier(const unsigned char *token, size_t token_len,
    const unsigned char *salt, size_t salt_len, unsigned iterations,
    unsigned char *stored_key, unsigned char *server_key)
{
    unsigned char  salted[GPUGATE_SCRAM_KEY_LEN], client_key[32];

    if (PKCS5_PBKDF2_HMAC((const char *) token, (int) token_len, salt,
                          (int) salt_len, (int) iterations, EVP_sha256(),
                          sizeof(salted), salted) != 1
        || gpugate_scram_hmac(salted, sizeof(salted), "Client Key", 10,
                              client_key) != 0
        || gpugate_scram_hmac(salted, sizeof(salted), "Server Key", 10,
                              server_key) != 0
        || SHA256(client_key, sizeof(client_key), stored_key) == NULL)
    {
        return -1;
    }

    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));

    return 0;
}


/* value of attribute "a=" at the start of p[0..len): up to the next ',' */

static const char *
gpugate_scram_attr(const char *p, size_t len, char name, size_t *vlen)
{
    const char  *comma;

    if (len < 2 || p[0] != name || p[1] != '=') {
        return NULL;
    }

    comma = memchr(p + 2, ',', len - 2);
    *vlen = (comma ? (size_t) (comma - p) : len) - 2;

    return p + 2;
}


int
gpugate_scram_client_first(gpugate_scram_t *st, const char *user,
    const char *nonce, char *out, size_t size)
{
    int     n;
    char    esc[3 * GPUGATE_SCRAM_USER_MAX + 1], *e;
    size_t  i, ulen;

    memset(st, 0, sizeof(gpugate_scram_t));

    ulen = strlen(user);
    if (ulen == 0 || ulen > GPUGATE_SCRAM_USER_MAX) {
        return -1;
    }

    /* RFC 5802: ',' and '=' in a name are written =2C and =3D */

    for (e = esc, i = 0; i < ulen; i++) {
        if (user[i] == ',') {
            memcpy(e, "=2C", 3);
            e += 3;
        } else if (user[i] == '=') {
            memcpy(e, "=3D", 3);
            e += 3;
        } else {
            *e++ = user[i];
        }
    }
    *e = '\0';

    if (nonce) {
        n = snprintf(st->nonce, sizeof(st->nonce), "%s", nonce);
    } else {
        n = gpugate_scram_nonce(24, st->nonce, sizeof(st->nonce));
    }

    if (n <= 0 || (size_t) n >= sizeof(st->nonce)) {
        return -1;
    }

    st->nonce_len = n;

    n = snprintf(st->first_bare, sizeof(st->first_bare), "n=%s,r=%s", esc,
                 st->nonce);
    if (n <= 0 || (size_t) n >= sizeof(st->first_bare)) {
        return -1;
    }

    st->first_bare_len = n;

    n = snprintf(out, size, "n,,%s", st->first_bare);

    return (n > 0 && (size_t) n < size) ? n : -1;
}


/* the AuthMessage both sides sign */

static int
gpugate_scram_auth_message(gpugate_scram_t *st, const char *final_wo_proof,
    size_t len, char *am, size_t size)
{
    int  n;

    n = snprintf(am, size, "%.*s,%.*s,%.*s", (int) st->first_bare_len,
                 st->first_bare, (int) st->server_first_len,
                 st->server_first, (int) len, final_wo_proof);

    return (n > 0 && (size_t) n < size) ? n : -1;
}


int
gpugate_scram_client_final(gpugate_scram_t *st, const char *sf,
    size_t sf_len, const unsigned char *token, size_t token_len, char *out,
    size_t size)
{
    int            n, am_len, salt_len;
    char           am[3 * GPUGATE_SCRAM_MSG_MAX], wo[GPUGATE_SCRAM_MSG_MAX];
    char           num[16], proof_b64[64];
    size_t         rlen, slen, ilen, i;
    long           iter;
    const char    *r, *s, *it, *p, *end;
    unsigned char  salt[128], salted[32], ck[32], sk[32], stored[32];
    unsigned char  sig[32], proof[32], server_key[32];

    if (sf_len == 0 || sf_len >= sizeof(st->server_first)) {
        return -1;
    }

    p = sf;
    end = sf + sf_len;

    r = gpugate_scram_attr(p, end - p, 'r', &rlen);
    if (r == NULL || rlen <= st->nonce_len
        || memcmp(r, st->nonce, st->nonce_len) != 0
        || rlen >= sizeof(st->nonce))
    {
        return -1;                      /* the server must extend our nonce */
    }

    p = r + rlen + 1;
    s = (p < end) ? gpugate_scram_attr(p, end - p, 's', &slen) : NULL;
    if (s == NULL) {
        return -1;
    }

    p = s + slen + 1;
    it = (p < end) ? gpugate_scram_attr(p, end - p, 'i', &ilen) : NULL;
    if (it == NULL || ilen == 0 || ilen >= sizeof(num)) {
        return -1;
    }

    for (i = 0; i < ilen; i++) {
        if (it[i] < '0' || it[i] > '9') {
            return -1;
        }
    }

    memcpy(num, it, ilen);
    num[ilen] = '\0';
    iter = strtol(num, NULL, 10);

    if (iter < GPUGATE_SCRAM_MIN_ITER || iter > GPUGATE_SCRAM_MAX_ITER) {
        return -1;
    }

    salt_len = gpugate_scram_unb64(s, slen, salt, sizeof(salt));
    if (salt_len < 8) {
        return -1;
    }

    memcpy(st->server_first, sf, sf_len);
    st->server_first_len = sf_len;
    memcpy(st->nonce, r, rlen);
    st->nonce_len = rlen;

    n = snprintf(wo, sizeof(wo), "c=biws,r=%.*s", (int) rlen, r);
    if (n <= 0 || (size_t) n >= sizeof(wo)) {
        return -1;
    }

    am_len = gpugate_scram_auth_message(st, wo, n, am, sizeof(am));
    if (am_len < 0) {
        return -1;
    }

    if (PKCS5_PBKDF2_HMAC((const char *) token, (int) token_len, salt,
                          salt_len, (int) iter, EVP_sha256(), 32, salted)
        != 1
        || gpugate_scram_hmac(salted, 32, "Client Key", 10, ck) != 0
        || SHA256(ck, 32, stored) == NULL
        || gpugate_scram_hmac(stored, 32, am, am_len, sig) != 0
        || gpugate_scram_hmac(salted, 32, "Server Key", 10, server_key) != 0
        || gpugate_scram_hmac(server_key, 32, am, am_len,
                              st->server_signature) != 0)
    {
        return -1;
    }

    for (i = 0; i < 32; i++) {
        proof[i] = ck[i] ^ sig[i];
    }

    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(ck, sizeof(ck));
    OPENSSL_cleanse(sk, sizeof(sk));

    if (gpugate_scram_b64(proof, 32, proof_b64, sizeof(proof_b64)) < 0) {
        return -1;
    }

    n = snprintf(out, size, "%s,p=%s", wo, proof_b64);

    return (n > 0 && (size_t) n < size) ? n : -1;
}


int
gpugate_scram_client_verify(gpugate_scram_t *st, const char *msg, size_t len)
{
    int            n;
    size_t         vlen;
    const char    *v;
    unsigned char  sig[48];

    v = gpugate_scram_attr(msg, len, 'v', &vlen);
    if (v == NULL || v + vlen != msg + len) {
        return -1;                      /* "e=..." or garbage */
    }

    n = gpugate_scram_unb64(v, vlen, sig, sizeof(sig));

    if (n != GPUGATE_SCRAM_KEY_LEN
        || CRYPTO_memcmp(sig, st->server_signature, 32) != 0)
    {
        return -1;
    }

    return 0;
}


int
gpugate_scram_server_parse_first(gpugate_scram_t *st, const char *msg,
    size_t len, char *user, size_t user_size)
{
    size_t       nlen, rlen, i, o;
    const char  *bare, *n, *r, *end;

    memset(st, 0, sizeof(gpugate_scram_t));

    /* gs2 header: "n,," only (no channel binding, no authzid) */

    if (len < 3 || memcmp(msg, "n,,", 3) != 0) {
        return -1;
    }

    bare = msg + 3;
    end = msg + len;

    if ((size_t) (end - bare) >= sizeof(st->first_bare)) {
        return -1;
    }

    n = gpugate_scram_attr(bare, end - bare, 'n', &nlen);
    if (n == NULL || nlen == 0 || n + nlen >= end) {
        return -1;
    }

    r = gpugate_scram_attr(n + nlen + 1, end - (n + nlen + 1), 'r', &rlen);
    if (r == NULL || rlen < 16 || rlen >= sizeof(st->nonce) / 2) {
        return -1;
    }

    for (i = 0; i < rlen; i++) {
        if (r[i] < 0x21 || r[i] > 0x7e || r[i] == ',') {
            return -1;
        }
    }

    /* undo =2C / =3D; anything else after '=' is malformed */

    for (i = 0, o = 0; i < nlen; i++) {
        if (o + 1 >= user_size || o >= GPUGATE_SCRAM_USER_MAX) {
            return -1;
        }

        if (n[i] == '=') {
            if (i + 2 >= nlen) {
                return -1;
            }

            if (n[i + 1] == '2' && n[i + 2] == 'C') {
                user[o++] = ',';
            } else if (n[i + 1] == '3' && n[i + 2] == 'D') {
                user[o++] = '=';
            } else {
                return -1;
            }

            i += 2;
            continue;
        }

        if ((unsigned char) n[i] < 0x20) {
            return -1;
        }

        user[o++] = n[i];
    }

    user[o] = '\0';

    memcpy(st->first_bare, bare, end - bare);
    st->first_bare_len = end - bare;
    memcpy(st->nonce, r, rlen);
    st->nonce_len = rlen;

    return 0;
}


int
gpugate_scram_server_first(gpugate_scram_t *st, const unsigned char *salt,
    size_t salt_len, unsigned iterations, const char *snonce, char *out,
    size_t size)
{
    int   n;
    char  salt_b64[200], ext[64];

    if (gpugate_scram_b64(salt, salt_len, salt_b64, sizeof(salt_b64)) < 0) {
        return -1;
    }

    if (snonce) {
        n = snprintf(ext, sizeof(ext), "%s", snonce);
    } else {
        n = gpugate_scram_nonce(18, ext, sizeof(ext));
    }

    if (n <= 0 || (size_t) n >= sizeof(ext)
        || st->nonce_len + n >= sizeof(st->nonce))
    {
        return -1;
    }

    memcpy(st->nonce + st->nonce_len, ext, n);
    st->nonce_len += n;

    n = snprintf(st->server_first, sizeof(st->server_first),
                 "r=%.*s,s=%s,i=%u", (int) st->nonce_len, st->nonce,
                 salt_b64, iterations);
    if (n <= 0 || (size_t) n >= sizeof(st->server_first)) {
        return -1;
    }

    st->server_first_len = n;

    if ((size_t) n >= size) {
        return -1;
    }

    memcpy(out, st->server_first, n + 1);

    return n;
}


int
gpugate_scram_server_final(gpugate_scram_t *st, const char *msg, size_t len,
    const unsigned char *stored_key, const unsigned char *server_key,
    char *out, size_t size)
{
    int            am_len, n;
    char           am[3 * GPUGATE_SCRAM_MSG_MAX], sig_b64[64];
    size_t         wo_len, rlen, plen, i;
    const char    *c, *r, *p, *end;
    unsigned char  proof[48], sig[32], ck[32], h[32], ssig[32];

    end = msg + len;

    /* "c=biws,r=<nonce>,p=<proof>": biws is base64("n,,") */

    c = gpugate_scram_attr(msg, len, 'c', &wo_len);
    if (c == NULL || wo_len != 4 || memcmp(c, "biws", 4) != 0) {
        goto refuse;
    }

    r = c + 5;
    r = (r < end) ? gpugate_scram_attr(r, end - r, 'r', &rlen) : NULL;
    if (r == NULL || rlen != st->nonce_len
        || CRYPTO_memcmp(r, st->nonce, rlen) != 0)
    {
        goto refuse;
    }

    p = r + rlen + 1;
    p = (p < end) ? gpugate_scram_attr(p, end - p, 'p', &plen) : NULL;
    if (p == NULL || p + plen != end
        || gpugate_scram_unb64(p, plen, proof, sizeof(proof)) != 32)
    {
        goto refuse;
    }

    wo_len = (p - 3) - msg;          /* client-final-without-proof */

    am_len = gpugate_scram_auth_message(st, msg, wo_len, am, sizeof(am));
    if (am_len < 0) {
        goto refuse;
    }

    /* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); H(it) = StoredKey */

    if (gpugate_scram_hmac(stored_key, 32, am, am_len, sig) != 0) {
        goto refuse;
    }

    for (i = 0; i < 32; i++) {
        ck[i] = proof[i] ^ sig[i];
    }

    if (SHA256(ck, 32, h) == NULL || CRYPTO_memcmp(h, stored_key, 32) != 0
        || gpugate_scram_hmac(server_key, 32, am, am_len, ssig) != 0
        || gpugate_scram_b64(ssig, 32, sig_b64, sizeof(sig_b64)) < 0)
    {
        OPENSSL_cleanse(ck, sizeof(ck));
        goto refuse;
    }

    OPENSSL_cleanse(ck, sizeof(ck));

    n = snprintf(out, size, "v=%s", sig_b64);

    return (n > 0 && (size_t) n < size) ? 0 : -1;

refuse:

    (void) snprintf(out, size, "e=invalid-proof");

    return -1;
}
