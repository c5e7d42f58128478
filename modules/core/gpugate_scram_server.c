
/*
 * Copyright (C) gpugate authors
 *
 * SCRAM-SHA-256, the server's steps (nginx): reading client-first,
 * server-first with the salt and iteration count, checking the proof in
 * client-final and signing the answer; and fake salts, which make an
 * unknown user look like a known one.
 */


#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "gpugate_base64.h"
#include "gpugate_scram.h"
#include "gpugate_scram_common.h"


/* the server's nonce part as base64 */
#define GPUGATE_SCRAM_SNONCE_B64                                             \
    GPUGATE_BASE64_LEN(GPUGATE_SCRAM_SNONCE_RAND)

/* longest gs2 header: "n,a=" escaped name "," */
#define GPUGATE_SCRAM_GS2_MAX     (sizeof("n,a=,") + 3 * GPUGATE_SCRAM_USER_MAX)


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

    n = gpugate_base64_encode(raw, sizeof(raw), raw_b64);

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
    p += gpugate_base64_encode(salt, salt_len, p);
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

    return gpugate_base64_encode((unsigned char *) header, p - header,
                                    out);
}


/*
 * Reads client-final-message: "c=" the gs2 header we were sent, "r=" the
 * combined nonce exactly, extensions, "p=" the proof last.  *wo_len is
 * the length of client-final-message-without-proof.
 */

static gpugate_scram_rc_t
gpugate_scram_server_read_final(gpugate_scram_server_t *st, const char *msg,
    size_t len, unsigned char proof[GPUGATE_SCRAM_KEY_LEN], size_t *wo_len)
{
    char                    name;
    char                    cbind[GPUGATE_SCRAM_B64_LEN(
                                      GPUGATE_SCRAM_GS2_MAX)];
    size_t                  clen, rlen, plen, cblen;
    const char             *cv, *r, *pv;
    gpugate_scram_rc_t      rc;
    gpugate_scram_cursor_t  c;

    rc = gpugate_scram_check_msg(msg, len);
    if (rc != GPUGATE_SCRAM_OK) {
        return rc;
    }

    c.pos = msg;
    c.end = msg + len;

    /* "c=" channel binding: the gs2 header, base64 */

    if (gpugate_scram_attr(&c, &name, &cv, &clen) != 0 || name != 'c') {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    cblen = gpugate_scram_cbind(st, cbind);

    if (clen != cblen || memcmp(cv, cbind, cblen) != 0) {
        return GPUGATE_SCRAM_ERR_CBIND_DATA;
    }

    /* "r=" the combined nonce, exactly */

    if (gpugate_scram_next(&c) != 1
        || gpugate_scram_attr(&c, &name, &r, &rlen) != 0 || name != 'r')
    {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    if (rlen != st->nonce_len
        || CRYPTO_memcmp(r, st->server_first + 2, rlen) != 0)
    {
        return GPUGATE_SCRAM_ERR_NONCE_MISMATCH;
    }

    /* extensions, then "p=" proof last */

    for ( ;; ) {
        if (gpugate_scram_next(&c) != 1
            || gpugate_scram_attr(&c, &name, &pv, &plen) != 0)
        {
            return GPUGATE_SCRAM_ERR_SYNTAX;
        }

        if (name == 'p') {
            break;
        }

        if (plen == 0) {
            return GPUGATE_SCRAM_ERR_SYNTAX;
        }
    }

    if (c.pos != c.end) {
        return GPUGATE_SCRAM_ERR_SYNTAX;
    }

    if (gpugate_base64_decode(pv, plen, proof, GPUGATE_SCRAM_KEY_LEN)
        != GPUGATE_SCRAM_KEY_LEN)
    {
        return GPUGATE_SCRAM_ERR_PROOF_FORMAT;
    }

    *wo_len = (pv - 3) - msg;           /* up to ",p=" */

    return GPUGATE_SCRAM_OK;
}


gpugate_scram_rc_t
gpugate_scram_server_final(gpugate_scram_server_t *st, const char *msg,
    size_t len, const unsigned char stored_key[GPUGATE_SCRAM_KEY_LEN],
    const unsigned char server_key[GPUGATE_SCRAM_KEY_LEN], char *out,
    size_t size, size_t *out_len)
{
    int                 fake, ok;
    char               *o;
    size_t              wo_len, i;
    unsigned char       proof[GPUGATE_SCRAM_KEY_LEN];
    unsigned char       sig[GPUGATE_SCRAM_KEY_LEN];
    unsigned char       client_key[GPUGATE_SCRAM_KEY_LEN];
    unsigned char       h[GPUGATE_SCRAM_KEY_LEN];
    unsigned char       dummy[GPUGATE_SCRAM_KEY_LEN];
    gpugate_scram_rc_t  rc;

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

    rc = gpugate_scram_server_read_final(st, msg, len, proof, &wo_len);
    if (rc != GPUGATE_SCRAM_OK) {
        return gpugate_scram_server_refuse(rc, out, size, out_len);
    }

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
    o += gpugate_base64_encode(sig, sizeof(sig), o);
    *o = '\0';
    *out_len = o - out;

    return GPUGATE_SCRAM_OK;
}
