
/*
 * Copyright (C) gpugate authors
 *
 * The session a new tunnel offers: the gateway's newest one, kept as the
 * application data of its SSL_CTX (ga_tls_new_session() in ga_conn.c).
 */


#include <openssl/ssl.h>

#include "ga_tls_session.h"


/*
 * Offers the kept session on "ssl", a client not yet connected; none
 * kept, or one OpenSSL no longer resumes: a full handshake.  Returns 0,
 * or -1 when OpenSSL refuses it.
 *
 * Each tunnel gets a copy of its own.  OpenSSL marks the session a
 * TLS 1.3 handshake resumed unresumable as the handshake ends (tickets
 * for one use), so a kept session shared with the tunnel that resumed it
 * is spent until that tunnel reads its new ticket; the tunnels dialed in
 * between (after a reload they are dialed together) made full handshakes.
 * nginx's tickets are stateless and resume as often as offered.  The
 * copy shares the parsed certificate chain (references).
 */

int
ga_tls_offer_session(SSL *ssl)
{
    int           rc;
    SSL_SESSION  *kept, *copy;

    kept = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

    if (kept == NULL || !SSL_SESSION_is_resumable(kept)) {
        return 0;
    }

    copy = SSL_SESSION_dup(kept);
    if (copy == NULL) {
        return -1;
    }

    rc = SSL_set_session(ssl, copy);

    /* the tunnel holds its own reference */
    SSL_SESSION_free(copy);

    return rc == 1 ? 0 : -1;
}
