
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of ga_tls_offer_session(): OpenSSL clients set up as the
 * agent's (the newest session kept as the context's application data)
 * and a server with stateless tickets as nginx's, their handshakes in
 * memory.  With TLS 1.3 and 1.2: the tunnels dialed after one resumed,
 * before it read its new ticket, resume too; a tunnel closed without a
 * close_notify spoils nothing; a server that does not know the session
 * makes a full handshake.  Prints TAP.
 */


#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ga_tls_session.h"
#include "tests/tap.h"           /* modules/core/tests/tap.h */


/* as ga_conn.c's ga_tls_new_session(): a copy of the newest kept */

static int
new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_CTX      *ctx;
    SSL_SESSION  *old, *copy;

    copy = SSL_SESSION_dup(sess);
    if (copy == NULL) {
        return 0;
    }

    ctx = SSL_get_SSL_CTX(ssl);
    old = SSL_CTX_get_app_data(ctx);

    if (old != NULL) {
        SSL_SESSION_free(old);
    }

    SSL_CTX_set_app_data(ctx, copy);

    return 0;
}


static SSL_CTX *
server_ctx(void)
{
    X509      *x;
    SSL_CTX   *ctx;
    EVP_PKEY  *pk;

    pk = EVP_EC_gen("P-256");
    x = X509_new();

    if (pk == NULL || x == NULL) {
        return NULL;
    }

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *) "gateway", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));

    ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL || X509_sign(x, pk, EVP_sha256()) == 0
        || SSL_CTX_use_certificate(ctx, x) != 1
        || SSL_CTX_use_PrivateKey(ctx, pk) != 1)
    {
        return NULL;
    }

    /* nginx without ssl_session_cache: stateless tickets only */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    X509_free(x);
    EVP_PKEY_free(pk);

    return ctx;
}


static SSL_CTX *
client_ctx(int version)
{
    SSL_CTX  *ctx;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        return NULL;
    }

    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT
                                        | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);

    return ctx;
}


/* a tunnel: client and server ends joined in memory */

typedef struct {
    SSL  *client;
    SSL  *server;
} pair_t;


/*
 * dial(): a client that offers what ga_tls_offer_session() gives and
 * its handshake with a server of "sctx"; returns 1 when both ends are
 * up.  The client reads nothing after its handshake: a TLS 1.3 ticket
 * the server sent waits unread, as in a tunnel between two reads.
 */

static int
dial(pair_t *p, SSL_CTX *cctx, SSL_CTX *sctx)
{
    int   i, c, s;
    BIO  *cb, *sb;

    p->client = SSL_new(cctx);
    p->server = SSL_new(sctx);

    if (p->client == NULL || p->server == NULL
        || BIO_new_bio_pair(&cb, 0, &sb, 0) != 1)
    {
        return 0;
    }

    SSL_set_bio(p->client, cb, cb);
    SSL_set_bio(p->server, sb, sb);
    SSL_set_connect_state(p->client);
    SSL_set_accept_state(p->server);

    if (ga_tls_offer_session(p->client) != 0) {
        return 0;
    }

    c = s = 0;

    for (i = 0; i < 20 && (c != 1 || s != 1); i++) {
        if (c != 1) {
            c = SSL_do_handshake(p->client);
        }

        if (s != 1) {
            s = SSL_do_handshake(p->server);
        }
    }

    return c == 1 && s == 1;
}


/* the client reads what waits for it: a TLS 1.3 ticket, if any */

static void
read_tickets(pair_t *p)
{
    char  buf[16];

    (void) SSL_read(p->client, buf, sizeof(buf));
}


/* a tunnel closed by the gateway's reload: no close_notify either way */

static void
drop(pair_t *p)
{
    SSL_free(p->client);
    SSL_free(p->server);
}


static void
test_version(int version, const char *name)
{
    int           n, up;
    pair_t        first, second, later[3], stranger;
    SSL_CTX      *cctx, *sctx, *other;
    SSL_SESSION  *kept;

    cctx = client_ctx(version);
    sctx = server_ctx();
    other = server_ctx();

    if (cctx == NULL || sctx == NULL || other == NULL) {
        tap_ok(0, "%s: OpenSSL contexts", name);
        return;
    }

    up = dial(&first, cctx, sctx);
    tap_ok(up && !SSL_session_reused(first.client),
           "%s: no session kept: a full handshake", name);
    read_tickets(&first);
    tap_ok(SSL_CTX_get_app_data(cctx) != NULL, "%s: a session kept", name);

    /* the gateway closes it (an idle close): the kept copy stays good */
    drop(&first);

    up = dial(&second, cctx, sctx);
    tap_ok(up && SSL_session_reused(second.client),
           "%s: the next tunnel resumes it", name);

    /*
     * Before the tunnel that resumed reads its new ticket: with the
     * session shared with it, TLS 1.3 made these full handshakes.
     */
    for (n = 0; n < 3; n++) {
        up = dial(&later[n], cctx, sctx);
        tap_ok(up && SSL_session_reused(later[n].client),
               "%s: tunnel %d dialed before that one's new ticket was read "
               "resumes too", name, n + 1);
    }

    read_tickets(&second);
    kept = SSL_CTX_get_app_data(cctx);
    tap_ok(kept != NULL && SSL_SESSION_is_resumable(kept),
           "%s: the newest session is kept, resumable", name);

    for (n = 0; n < 3; n++) {
        drop(&later[n]);
    }

    drop(&second);

    up = dial(&second, cctx, sctx);
    tap_ok(up && SSL_session_reused(second.client),
           "%s: after those tunnels closed, the next resumes", name);
    drop(&second);

    /* a gateway that does not know the session: a full handshake */
    up = dial(&stranger, cctx, other);
    tap_ok(up && !SSL_session_reused(stranger.client),
           "%s: another server's ticket key: a full handshake", name);
    drop(&stranger);

    kept = SSL_CTX_get_app_data(cctx);
    if (kept != NULL) {
        SSL_SESSION_free(kept);
    }

    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    SSL_CTX_free(other);
}


int
main(void)
{
    test_version(TLS1_3_VERSION, "TLS 1.3");
    test_version(TLS1_2_VERSION, "TLS 1.2");

    return tap_done();
}
