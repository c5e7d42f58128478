
/*
 * Copyright (C) gpugate authors
 *
 * One tunnel connection of gpugate-agent: dial, TLS, the two-step SCRAM
 * handshake, then reading nginx's requests and writing the answers.  The
 * layer of sockets, TLS and buffers: what the bytes mean (the handshake's
 * messages, ga_handshake.c; requests and answers, ga_relay.c) is asked of
 * the handler table main() gives ga_conn_init(), so this file calls
 * nothing above it.  A closed connection is freed only after the epoll
 * batch, since later events of the batch may still name it.
 */


#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ga_agent.h"
#include "ga_tls_session.h"


#define GA_HANDSHAKE_TIMEOUT  (10 * 1000000ULL)

#define GA_TLS12_CIPHERS                                                      \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"              \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"              \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"

#define GA_TLS13_CIPHERS                                                      \
    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"                    \
    "TLS_AES_256_GCM_SHA384"

/* a tunnel the gateway drops sooner than this, unused, is a failure */
#define GA_FLAP_US            (1000000ULL)

/* at most this many idle head parsers are kept for reuse (140 KiB) */
#define GA_HEAD_SHELF         64


static void ga_conn_io(gg_io_t *io, uint32_t revents);
static void ga_conn_timer(gg_timer_t *t);
static int ga_conn_connected(ga_conn_t *c);
static int ga_tls_step(ga_conn_t *c);
static ssize_t ga_recv(ga_conn_t *c, char *buf, size_t size);
static ssize_t ga_send(ga_conn_t *c, const char *buf, size_t size);
static int ga_conn_read(ga_conn_t *c);
static int ga_conn_step1(ga_conn_t *c);
static int ga_conn_step2(ga_conn_t *c);
static int ga_socket(ga_gateway_t *gw, int *fd, char *err, size_t size);
static int ga_tls_new_session(SSL *ssl, SSL_SESSION *sess);
static void ga_conn_head_put(ga_conn_t *c);


/* the layers above, as main() wired them */
static ga_conn_ops_t  ga_conn_ops;

/*
 * Head parsers of tunnels that parse nothing now (2.2 KiB each): a parked
 * tunnel holds none, and the next message of any tunnel takes one from
 * here instead of calling malloc().
 */
static gg_http_head_t  *ga_conn_heads[GA_HEAD_SHELF];
static int              ga_conn_nheads;


void
ga_conn_init(const ga_conn_ops_t *ops)
{
    ga_conn_ops = *ops;
}


SSL_CTX *
ga_tls_ctx(const ga_conf_t *cf)
{
    SSL_CTX  *ctx;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        return NULL;
    }

    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                          | SSL_MODE_RELEASE_BUFFERS);

    /* whole records in one read(), not a header read and a body read */
    SSL_CTX_set_read_ahead(ctx, 1);

    /*
     * Tunnels resume the gateway's last session (ga_tls_new_session()):
     * a resumed connection shares the session's parsed certificate chain
     * where a full handshake parses and verifies it again, about 11 KiB
     * per parked tunnel (massif) and the verification's CPU.
     */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT
                                        | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, ga_tls_new_session);

    /*
     * Forward-secret AEAD only, AES-128-GCM first: records are small
     * and many, and nginx (ssl_prefer_server_ciphers off) takes our order.
     */
    if (SSL_CTX_set_cipher_list(ctx, GA_TLS12_CIPHERS) != 1
        || SSL_CTX_set_ciphersuites(ctx, GA_TLS13_CIPHERS) != 1)
    {
        ga_log(GA_ERROR, "TLS: cipher list refused by OpenSSL");
        SSL_CTX_free(ctx);
        return NULL;
    }

    if (cf->ca_file[0]) {
        if (SSL_CTX_load_verify_locations(ctx, cf->ca_file, NULL) != 1) {
            char  reason[256];

            ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
            ERR_clear_error();
            ga_log(GA_ERROR, "ca_file \"%s\": cannot load: %s", cf->ca_file,
                   reason);
            SSL_CTX_free(ctx);
            return NULL;
        }

    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }

    return ctx;
}


/*
 * A session the gateway gave (a TLS 1.3 ticket, or a TLS 1.2 session at
 * the handshake's end): the newest is kept with the context, which is
 * one gateway node's, for the next tunnels to resume.
 */

static int
ga_tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_CTX      *ctx;
    SSL_SESSION  *old, *copy;

    /*
     * A copy: "sess" is also the tunnel's own, and OpenSSL marks it
     * unresumable when the tunnel closes without a close_notify, which
     * is how a gateway's reload or idle close ends them.  The copy shares
     * the parsed certificate chain (references, not a new parse).
     */
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

    ga_log(GA_DEBUG, "TLS: a session to resume from the gateway");

    /* "sess" itself stays OpenSSL's */
    return 0;
}


void
ga_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_SESSION  *sess;

    sess = SSL_CTX_get_app_data(ctx);

    if (sess != NULL) {
        SSL_SESSION_free(sess);
    }

    SSL_CTX_free(ctx);
}


int
ga_conn_dial(ga_gateway_t *gw)
{
    int         fd;
    char        err[GA_ERR_SIZE];
    ga_conn_t  *c;

    if (ga_socket(gw, &fd, err, sizeof(err)) != 0) {
        ga_log(GA_WARN, "gateway %s:%s: %s", gw->url->host, gw->url->port,
               err);
        return -1;
    }

    c = calloc(1, sizeof(ga_conn_t));
    if (c == NULL) {
        close(fd);
        return -1;
    }

    c->gw = gw;
    c->io.fd = fd;
    c->io.handler = ga_conn_io;
    c->io.data = c;
    c->state = GA_CONNECTING;
    c->timer.handler = ga_conn_timer;
    c->timer.data = c;

    c->next = gw->conns;
    if (gw->conns) {
        gw->conns->prev = c;
    }
    gw->conns = c;
    gw->nconns++;
    gw->dialing++;

    ga_log(GA_DEBUG, "gateway %s:%s: dialing for runtime \"%s\" (%d "
           "connection(s), %d dialing)", gw->url->host, gw->url->port,
           gw->rt->conf->name, gw->nconns, gw->dialing);

    if (gg_io_set(&ga_agent.loop, &c->io, EPOLLOUT) != 0
        || gg_timer_add(&ga_agent.loop, &c->timer, GA_HANDSHAKE_TIMEOUT) != 0)
    {
        ga_conn_close(c, "event registration failed");
        return -1;
    }

    return 0;
}


void
ga_conn_close(ga_conn_t *c, const char *why)
{
    ga_gateway_t  *gw;

    if (ga_conn_dead(c)) {
        return;
    }

    gw = c->gw;

    if (why) {
        ga_log(c->state >= GA_IDLE ? GA_INFO : GA_WARN,
               "gateway %s:%s: connection closed: %s", gw->url->host,
               gw->url->port, why);
    }

    if (c->relay.rc != NULL) {
        /* the runtime sees its client go: generation stops */
        ga_conn_ops.end(c, 0);
    }

    if (c->state < GA_IDLE) {
        gw->dialing--;

    } else if (c->state == GA_IDLE && c->requests == 0
               && !ga_agent.draining && gg_time_us() - c->up < GA_FLAP_US)
    {
        /*
         * Accepted and dropped at once: redialing at full speed would be
         * a loop of PBKDF2 handshakes on both sides.
         */
        ga_agent.on.tunnel_dropped(gw);
    }

    if (c->scram) {
        /* closed mid-handshake */
        OPENSSL_cleanse(c->scram, sizeof(gpugate_scram_client_t));
        free(c->scram);
    }

    if (c->worker) {
        c->worker->conns--;

        if (c->state == GA_IDLE) {
            c->worker->idle--;
        }

        if (c->worker->conns == 0) {
            c->worker->pid = 0;
        }
    }

    gg_timer_del(&ga_agent.loop, &c->timer);
    (void) gg_io_set(&ga_agent.loop, &c->io, 0);

    if (c->ssl) {
        SSL_free(c->ssl);
    }

    close(c->io.fd);

    if (c->prev) {
        c->prev->next = c->next;
    } else {
        gw->conns = c->next;
    }

    if (c->next) {
        c->next->prev = c->prev;
    }

    gw->nconns--;

    gg_buf_free(&c->in);
    gg_buf_free(&c->out);
    gg_buf_free(&c->relay.in);
    gg_buf_free(&c->relay.out);
    ga_conn_head_put(c);

    /*
     * The rest of this epoll batch may still name c (its tunnel or
     * runtime socket): the loop frees it after the batch, and until then
     * its handlers do nothing.
     */

    c->io.handler = ga_dead_io;
    gg_defer_free(&ga_agent.loop, &c->defer, c);

    ga_agent.on.supply(gw);
}


void
ga_conn_drain(ga_conn_t *c)
{
    if (c->state == GA_RELAY || c->state == GA_CLOSING) {
        /* finishes its answer first, then closes */
        return;
    }

    if (c->state == GA_IDLE && gg_buf_len(&c->out)) {
        /* the runtime is done, but the end of its answer is not sent */
        c->worker->idle--;
        c->state = GA_CLOSING;
        ga_log(GA_DEBUG, "gateway %s:%s: drain: tunnel closes once its "
               "answer is out", c->gw->url->host, c->gw->url->port);
        ga_conn_update(c);
        return;
    }

    ga_conn_close(c, "draining");
}


static void
ga_conn_timer(gg_timer_t *t)
{
    ga_conn_t  *c = t->data;

    if (c->state < GA_IDLE) {
        ga_agent.on.handshake_failed(c->gw);
        ga_conn_close(c, "handshake timed out");
        return;
    }

    if (c->state == GA_RELAY) {
        /*
         * The runtime has not begun to answer (it may take a minute to
         * the first token): the gateway gives up on a busy tunnel that
         * stays silent, which is how it finds a frozen agent.
         */

        if (c->heartbeat_us == 0 || c->relay.head_done) {
            return;
        }

        if (gg_buf_len(&c->out) == 0) {
            if (gg_buf_append(&c->out, "\r\n", 2) != 0
                || ga_conn_flush(c) != 0)
            {
                ga_conn_close(c, "write to gateway failed");
                return;
            }

            ga_conn_update(c);
        }

        (void) gg_timer_add(&ga_agent.loop, &c->timer, c->heartbeat_us);
        return;
    }

    if (c->state != GA_IDLE) {
        return;
    }

    if (gg_buf_len(&c->out)) {
        /*
         * The gateway is still taking the last answer (a slow client):
         * the connection is in use, not silent.
         */
        (void) gg_timer_add(&ga_agent.loop, &c->timer,
                            ga_agent.conf.idle_timeout * 1000000ULL);
        return;
    }

    ga_conn_close(c, "no request or ping within idle_timeout (half-open?)");
}


void
ga_conn_update(ga_conn_t *c)
{
    uint32_t  ev;

    /* an upload waits in the tunnel while the runtime is behind */
    ev = ga_conn_ops.body_full(c) ? 0 : EPOLLIN;

    if (c->state == GA_CONNECTING || gg_buf_len(&c->out)
        || c->ssl_want_write)
    {
        ev = (c->state == GA_CONNECTING) ? EPOLLOUT : ev | EPOLLOUT;
    }

    (void) gg_io_set(&ga_agent.loop, &c->io, ev);

    if (c->state == GA_IDLE) {
        /* a parked tunnel holds no buffers: 1,000 of them are cheap */

        if (gg_buf_len(&c->in) == 0) {
            /* no byte of a request yet: its parser has nothing to keep */
            gg_buf_free(&c->in);
            ga_conn_head_put(c);
        }

        if (gg_buf_len(&c->out) == 0) {
            gg_buf_free(&c->out);
        }
    }

    ga_conn_ops.update(c);
}


static void
ga_conn_io(gg_io_t *io, uint32_t revents)
{
    ga_conn_t  *c = io->data;
    int         rc;

    (void) revents;

    switch (c->state) {

    case GA_CONNECTING:
        rc = ga_conn_connected(c);
        break;

    case GA_TLS:
        rc = ga_tls_step(c);
        break;

    default:
        c->ssl_want_write = 0;

        if (ga_conn_flush(c) != 0) {
            ga_conn_close(c, "write to gateway failed");
            return;
        }

        rc = ga_conn_read(c);

        if (rc == 0) {
            if (c->state == GA_STEP1) {
                rc = ga_conn_ops.step1(c);
            } else if (c->state == GA_STEP2) {
                rc = ga_conn_step2(c);
            } else if (c->state == GA_IDLE) {
                rc = ga_conn_ops.request(c);
            } else if (c->state == GA_RELAY) {
                rc = ga_conn_ops.body(c);
            }
        }

        if (rc == 0 && ga_conn_flush(c) != 0) {
            ga_conn_close(c, "write to gateway failed");
            return;
        }

        if (rc == 0 && c->state == GA_CLOSING && gg_buf_len(&c->out) == 0) {
            ga_conn_close(c, NULL);
            return;
        }

        break;
    }

    if (rc == 1 || ga_conn_dead(c)) {
        /* closed inside */
        return;
    }

    if (rc != 0) {
        ga_conn_close(c, NULL);
        return;
    }

    ga_conn_update(c);
}


static int
ga_conn_connected(ga_conn_t *c)
{
    int           err, on;
    socklen_t     len;
    const char   *name;

    len = sizeof(err);

    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0
        || err != 0)
    {
        ga_log(GA_WARN, "gateway %s:%s: connect: %s", c->gw->url->host,
               c->gw->url->port, strerror(err ? err : errno));
        ga_agent.on.handshake_failed(c->gw);
        return -1;
    }

    /* the gateway pings idle connections; this is the backstop */
    on = 1;
    (void) setsockopt(c->io.fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void) setsockopt(c->io.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

    if (!c->gw->url->tls) {
        return ga_conn_step1(c);
    }

    c->ssl = SSL_new(c->gw->ssl_ctx);
    if (c->ssl == NULL) {
        return -1;
    }

    name = ga_agent.conf.server_name[0] ? ga_agent.conf.server_name
                                        : c->gw->url->host;

    SSL_set_fd(c->ssl, c->io.fd);
    SSL_set_connect_state(c->ssl);
    SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);

    if (SSL_set1_host(c->ssl, name) != 1
        || SSL_set_tlsext_host_name(c->ssl, name) != 1)
    {
        return -1;
    }

    /*
     * Offered only: a gateway that does not know it (restarted, another
     * node behind the same name) makes a full, verified handshake.
     */
    if (ga_tls_offer_session(c->ssl) != 0) {
        return -1;
    }

    c->state = GA_TLS;

    ga_log(GA_DEBUG, "gateway %s:%s: connected, TLS handshake with \"%s\"",
           c->gw->url->host, c->gw->url->port, name);

    return ga_tls_step(c);
}


static int
ga_tls_step(ga_conn_t *c)
{
    int  rc, e;

    rc = SSL_do_handshake(c->ssl);

    if (rc == 1) {
        ga_log(GA_DEBUG, "gateway %s:%s: TLS up (%s)", c->gw->url->host,
               c->gw->url->port,
               SSL_session_reused(c->ssl) ? "session resumed"
                                          : "full handshake");
        return ga_conn_step1(c);
    }

    e = SSL_get_error(c->ssl, rc);

    if (e == SSL_ERROR_WANT_READ) {
        (void) gg_io_set(&ga_agent.loop, &c->io, EPOLLIN);
        return 1;
    }

    if (e == SSL_ERROR_WANT_WRITE) {
        (void) gg_io_set(&ga_agent.loop, &c->io, EPOLLOUT);
        return 1;
    }

    ga_log(GA_WARN, "gateway %s:%s: TLS handshake failed: %s%s%s",
           c->gw->url->host, c->gw->url->port,
           ERR_reason_error_string(ERR_peek_error())
           ? ERR_reason_error_string(ERR_peek_error()) : "closed",
           SSL_get_verify_result(c->ssl) != X509_V_OK ? ": " : "",
           SSL_get_verify_result(c->ssl) != X509_V_OK
           ? X509_verify_cert_error_string(SSL_get_verify_result(c->ssl))
           : "");
    ERR_clear_error();
    ga_agent.on.handshake_failed(c->gw);

    return -1;
}


/* >0 bytes, 0 end of stream, -1 error, -2 try later */

static ssize_t
ga_recv(ga_conn_t *c, char *buf, size_t size)
{
    int      rc, e;
    ssize_t  n;

    if (c->ssl == NULL) {
        n = read(c->io.fd, buf, size);

        if (n < 0) {
            return (errno == EAGAIN || errno == EINTR) ? -2 : -1;
        }

        return n;
    }

    rc = SSL_read(c->ssl, buf, (int) size);

    if (rc > 0) {
        return rc;
    }

    e = SSL_get_error(c->ssl, rc);

    if (e == SSL_ERROR_WANT_READ) {
        return -2;
    }

    if (e == SSL_ERROR_WANT_WRITE) {
        c->ssl_want_write = 1;
        return -2;
    }

    ERR_clear_error();

    return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}


static ssize_t
ga_send(ga_conn_t *c, const char *buf, size_t size)
{
    int      rc, e;
    ssize_t  n;

    if (c->ssl == NULL) {
        n = send(c->io.fd, buf, size, MSG_NOSIGNAL);

        if (n < 0) {
            return (errno == EAGAIN || errno == EINTR) ? -2 : -1;
        }

        return n;
    }

    rc = SSL_write(c->ssl, buf, (int) size);

    if (rc > 0) {
        return rc;
    }

    e = SSL_get_error(c->ssl, rc);

    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        return -2;
    }

    ERR_clear_error();

    return -1;
}


/* reads what the socket has into c->in: 0, or -1 on end or error */

static int
ga_conn_read(ga_conn_t *c)
{
    size_t   room;
    ssize_t  n;

    for ( ;; ) {
        if (c->relay.skipping && c->state == GA_IDLE
            && ga_conn_ops.skip(c) < GG_HTTP_OK)
        {
            /* a refused chunked body turned out malformed: the request
               handler says */
            return 0;
        }

        /* bytes TLS has decrypted already are taken (one record at
           most): epoll would not say they are there */

        if (ga_conn_ops.body_full(c)
            && (c->ssl == NULL || !SSL_has_pending(c->ssl)))
        {
            return 0;
        }

        if (gg_buf_len(&c->in) > GA_REQUEST_MAX + GA_REQUEST_HEAD_MAX) {
            ga_log(GA_WARN, "gateway %s:%s: request over %d bytes",
                   c->gw->url->host, c->gw->url->port,
                   GA_REQUEST_MAX + GA_REQUEST_HEAD_MAX);
            return -1;
        }

        if (gg_buf_reserve(&c->in, GG_BUF_BLOCK) != 0) {
            return -1;
        }

        room = gg_buf_room(&c->in);
        n = ga_recv(c, gg_buf_last(&c->in), room);

        if (n == -2) {
            return 0;
        }

        if (n <= 0) {
            if (c->state == GA_RELAY) {
                ga_log(GA_INFO, "gateway closed the tunnel mid-request: "
                       "closing the runtime connection");

            } else if (c->state == GA_IDLE) {
                ga_log(GA_DEBUG, "gateway %s:%s closed an idle tunnel%s",
                       c->gw->url->host, c->gw->url->port,
                       n == 0 ? "" : " (error)");
            }

            return -1;
        }

        c->in.end += n;

        if ((size_t) n < room
            && (c->ssl == NULL || !SSL_has_pending(c->ssl)))
        {
            /*
             * The socket is drained for now (epoll is level-triggered):
             * no read() just to be told EAGAIN.
             */
            return 0;
        }
    }
}


int
ga_conn_flush(ga_conn_t *c)
{
    ssize_t  n;

    while (gg_buf_len(&c->out)) {
        n = ga_send(c, gg_buf_pos(&c->out), gg_buf_len(&c->out));

        if (n == -2) {
            return 0;
        }

        if (n < 0) {
            return -1;
        }

        gg_buf_consume(&c->out, n);
    }

    if (c->relay.rc != NULL) {
        /* room again: the runtime may be read */
        ga_conn_ops.update(c);
    }

    return 0;
}


/*
 * The tunnel's head parser, made ready for a message (a response or a
 * request, at most "max" bytes of head): taken from the shelf when the
 * tunnel holds none.  0, or -1 on ENOMEM.
 */

int
ga_conn_head(ga_conn_t *c, int response, size_t max)
{
    if (c->head == NULL) {
        c->head = ga_conn_nheads ? ga_conn_heads[--ga_conn_nheads]
                                 : malloc(sizeof(gg_http_head_t));

        if (c->head == NULL) {
            ga_log(GA_ERROR, "gateway %s:%s: out of memory for a head "
                   "parser", c->gw->url->host, c->gw->url->port);
            return -1;
        }
    }

    gg_http_head_init(c->head, response, max);

    return 0;
}


/* the parser goes back to the shelf, or to free() past GA_HEAD_SHELF */

static void
ga_conn_head_put(ga_conn_t *c)
{
    if (c->head == NULL) {
        return;
    }

    if (ga_conn_nheads < GA_HEAD_SHELF) {
        ga_conn_heads[ga_conn_nheads++] = c->head;

    } else {
        free(c->head);
    }

    c->head = NULL;
}


/* TLS is up, or not wanted: the handshake's first request goes out */

static int
ga_conn_step1(ga_conn_t *c)
{
    if (ga_conn_ops.hello(c) != 0) {
        return -1;
    }

    return ga_conn_flush(c) != 0 ? -1 : 0;
}


/* the 101 is read: the tunnel serves, unless the agent drains */

static int
ga_conn_step2(ga_conn_t *c)
{
    int  rc;

    rc = ga_conn_ops.step2(c);

    if (rc != GA_HANDSHAKE_UP) {
        return rc;
    }

    if (ga_agent.draining) {
        ga_conn_close(c, NULL);
        return 1;
    }

    /* nginx may already have sent a request behind the 101 */
    return gg_buf_len(&c->in) ? ga_conn_ops.request(c) : 0;
}


static int
ga_socket(ga_gateway_t *gw, int *fd, char *err, size_t size)
{
    int  s;

    if (gw->addr->len == 0) {
        snprintf(err, size, "%s: %s", gw->url->host, gw->addr->err);
        return -1;
    }

    s = socket(gw->addr->sa.ss_family,
               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (s == -1) {
        snprintf(err, size, "socket: %s", strerror(errno));
        return -1;
    }

    if (connect(s, (struct sockaddr *) &gw->addr->sa, gw->addr->len) != 0
        && errno != EINPROGRESS)
    {
        snprintf(err, size, "connect: %s", strerror(errno));
        close(s);
        return -1;
    }

    *fd = s;

    return 0;
}
