
/*
 * Copyright (C) gpugate authors
 *
 * One tunnel connection of gpugate-agent: dial, TLS, the two-step SCRAM
 * handshake, then reading nginx's requests and writing the answers that
 * ga_relay.c produces.  A closed connection is freed only after the epoll
 * batch, since later events of the batch may still name it.
 */


#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "ga_agent.h"
#include "gpugate_tunnel_proto.h"


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


static void ga_conn_io(gg_io_t *io, uint32_t revents);
static void ga_conn_timer(gg_timer_t *t);
static int ga_conn_connected(ga_conn_t *c);
static int ga_tls_step(ga_conn_t *c);
static ssize_t ga_recv(ga_conn_t *c, char *buf, size_t size);
static ssize_t ga_send(ga_conn_t *c, const char *buf, size_t size);
static int ga_conn_read(ga_conn_t *c);
static int ga_step1_send(ga_conn_t *c);
static int ga_step1_done(ga_conn_t *c);
static int ga_step2_done(ga_conn_t *c);
static int ga_socket(const char *host, const char *port, int *fd,
    char *err, size_t size);
static size_t ga_b64_decode(const char *in, size_t len, unsigned char *out);


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


int
ga_conn_dial(ga_gateway_t *gw)
{
    int         fd;
    char        err[GA_ERR_SIZE];
    ga_conn_t  *c;

    if (ga_socket(gw->url->host, gw->url->port, &fd, err, sizeof(err))
        != 0)
    {
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

    if (c->rc != NULL) {
        /* the runtime sees its client go: generation stops */
        ga_relay_end(c, 0);
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
        ga_tunnel_dropped(gw);
    }

    OPENSSL_cleanse(&c->scram, sizeof(c->scram));

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
    gg_buf_free(&c->rin);
    gg_buf_free(&c->rout);

    /*
     * The rest of this epoll batch may still name c (its tunnel or
     * runtime socket): the loop frees it after the batch, and until then
     * its handlers do nothing.
     */

    c->io.handler = ga_dead_io;
    gg_defer_free(&ga_agent.loop, &c->defer, c);

    ga_supply(gw);
}


void
ga_dead_io(gg_io_t *io, uint32_t revents)
{
    (void) io;
    (void) revents;
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
        ga_handshake_failed(c->gw);
        ga_conn_close(c, "handshake timed out");
        return;
    }

    if (c->state == GA_RELAY) {
        /*
         * The runtime has not begun to answer (it may take a minute to
         * the first token): the gateway gives up on a busy tunnel that
         * stays silent, which is how it finds a frozen agent.
         */

        if (c->heartbeat_us == 0 || c->rhead_done) {
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

    ev = EPOLLIN;

    if (c->state == GA_CONNECTING || gg_buf_len(&c->out)
        || c->ssl_want_write)
    {
        ev = (c->state == GA_CONNECTING) ? EPOLLOUT : ev | EPOLLOUT;
    }

    (void) gg_io_set(&ga_agent.loop, &c->io, ev);

    if (c->state == GA_IDLE) {
        /* a parked tunnel holds no buffers: 1,000 of them are cheap */

        if (gg_buf_len(&c->in) == 0) {
            gg_buf_free(&c->in);
        }

        if (gg_buf_len(&c->out) == 0) {
            gg_buf_free(&c->out);
        }
    }

    ga_relay_update(c);
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
                rc = ga_step1_done(c);
            } else if (c->state == GA_STEP2) {
                rc = ga_step2_done(c);
            } else if (c->state == GA_IDLE) {
                rc = ga_serve(c);
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
    int         err, on;
    socklen_t   len;
    const char *name;

    len = sizeof(err);

    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0
        || err != 0)
    {
        ga_log(GA_WARN, "gateway %s:%s: connect: %s", c->gw->url->host,
               c->gw->url->port, strerror(err ? err : errno));
        ga_handshake_failed(c->gw);
        return -1;
    }

    /* the gateway pings idle connections; this is the backstop */
    on = 1;
    (void) setsockopt(c->io.fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void) setsockopt(c->io.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

    if (!c->gw->url->tls) {
        return ga_step1_send(c);
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

    c->state = GA_TLS;

    return ga_tls_step(c);
}


static int
ga_tls_step(ga_conn_t *c)
{
    int  rc, e;

    rc = SSL_do_handshake(c->ssl);

    if (rc == 1) {
        return ga_step1_send(c);
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
    ga_handshake_failed(c->gw);

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
        if (c->skipping && c->state == GA_IDLE
            && ga_serve_skip(c) < GG_HTTP_OK)
        {
            /* a refused chunked body turned out malformed: ga_serve says */
            return 0;
        }

        if (gg_buf_len(&c->in) > GA_REQUEST_MAX + GA_REQUEST_HEAD_MAX) {
            ga_log(GA_WARN, "gateway %s:%s: request over %d bytes",
                   c->gw->url->host, c->gw->url->port,
                   GA_REQUEST_MAX + GA_REQUEST_HEAD_MAX);
            return -1;
        }

        if (gg_buf_reserve(&c->in, 16384) != 0) {
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

    if (c->rc != NULL) {
        /* room again: the runtime may be read */
        ga_relay_update(c);
    }

    return 0;
}


static int
ga_step1_send(ga_conn_t *c)
{
    char            first[GPUGATE_SCRAM_CLIENT_FIRST_SIZE];
    char            b64[GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_CLIENT_FIRST_SIZE)
                        + 1];
    size_t          len;

    memset(&c->scram, 0, sizeof(c->scram));

    if (gpugate_scram_client_first(&c->scram, ga_agent.conf.name, first,
                                   sizeof(first), &len)
        != GPUGATE_SCRAM_OK)
    {
        return -1;
    }

    EVP_EncodeBlock((unsigned char *) b64, (unsigned char *) first,
                    (int) len);

    if (gg_buf_printf(&c->out,
                      "GET %s HTTP/1.1\r\n"
                      "Host: %s\r\n"
                      "User-Agent: gpugate-agent/" GA_VERSION "\r\n"
                      "Authorization: SCRAM-SHA-256 data=%s\r\n\r\n",
                      c->gw->url->path, c->gw->url->host, b64)
        != 0)
    {
        return -1;
    }

    c->state = GA_STEP1;
    gg_http_head_init(&c->head, 1, GA_HEAD_MAX);

    if (ga_conn_flush(c) != 0) {
        return -1;
    }

    return 0;
}


/* parses a response head (and its Content-Length body) from c->in */

static int
ga_read_response(ga_conn_t *c, const char **body, size_t *body_len)
{
    int      rc;
    int64_t  cl;

    rc = gg_http_parse_head(&c->head, gg_buf_pos(&c->in), gg_buf_len(&c->in));

    if (rc == GG_HTTP_AGAIN) {
        return 1;
    }

    if (rc != GG_HTTP_OK) {
        ga_log(GA_WARN, "gateway %s:%s: malformed handshake response",
               c->gw->url->host, c->gw->url->port);
        return -1;
    }

    cl = c->head.content_length < 0 ? 0 : c->head.content_length;

    if ((int64_t) (gg_buf_len(&c->in) - c->head.head_len) < cl) {
        return 1;
    }

    *body = gg_buf_pos(&c->in) + c->head.head_len;
    *body_len = (size_t) cl;

    return 0;
}


static int
ga_refused(ga_conn_t *c, const char *body, size_t len)
{
    ga_log(GA_ERROR, "gateway %s:%s refused the handshake: %d %.*s",
           c->gw->url->host, c->gw->url->port, c->head.status,
           (int) (len > 300 ? 300 : len), body);
    ga_handshake_failed(c->gw);

    return -1;
}


static int
ga_step1_done(ga_conn_t *c)
{
    int                      rc;
    char                     first[GPUGATE_SCRAM_MSG_MAX + 4];
    char                     final[GPUGATE_SCRAM_CLIENT_FINAL_SIZE];
    char                     b64[GPUGATE_SCRAM_B64_LEN(
                                     GPUGATE_SCRAM_CLIENT_FINAL_SIZE) + 1];
    char                     sid[GPUGATE_TUNNEL_SID_LEN + 1], load[96];
    size_t                   body_len, len, flen;
    const char              *body, *buf;
    gpugate_scram_rc_t       src;
    gpugate_tunnel_auth_t    auth;
    const gg_http_header_t  *h;

    rc = ga_read_response(c, &body, &body_len);

    if (rc != 0) {
        return rc == 1 ? 0 : -1;
    }

    buf = gg_buf_pos(&c->in);
    h = gg_http_find_header(&c->head, buf, "www-authenticate");

    if (c->head.status != 401 || h == NULL
        || gpugate_tunnel_parse_auth(buf + h->value, h->value_len, 1, &auth)
           != 0
        || auth.sid == NULL || auth.data == NULL
        || auth.data_len > GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_MSG_MAX))
    {
        return ga_refused(c, body, body_len);
    }

    flen = ga_b64_decode(auth.data, auth.data_len, (unsigned char *) first);
    memcpy(sid, auth.sid, GPUGATE_TUNNEL_SID_LEN);
    sid[GPUGATE_TUNNEL_SID_LEN] = '\0';

    /* PBKDF2 once per salt, not once per connection */
    src = gpugate_scram_client_final_keys(&c->scram, first, flen,
                                          (unsigned char *) ga_agent.token,
                                          ga_agent.token_len,
                                          &ga_agent.scram_keys, final,
                                          sizeof(final), &len);

    if (src != GPUGATE_SCRAM_OK) {
        ga_log(GA_ERROR, "gateway %s:%s: bad server-first: %s",
               c->gw->url->host, c->gw->url->port,
               gpugate_scram_strerror(src));
        ga_handshake_failed(c->gw);
        return -1;
    }

    gg_buf_consume(&c->in, c->head.head_len + body_len);

    EVP_EncodeBlock((unsigned char *) b64, (unsigned char *) final,
                    (int) len);

    if (gg_buf_printf(&c->out,
                      "GET %s HTTP/1.1\r\n"
                      "Host: %s\r\n"
                      "User-Agent: gpugate-agent/" GA_VERSION "\r\n"
                      "Authorization: SCRAM-SHA-256 sid=%s, data=%s\r\n"
                      "Connection: Upgrade\r\n"
                      "Upgrade: " GPUGATE_TUNNEL_UPGRADE "\r\n"
                      "X-Gpugate-Instance: %s\r\n"
                      "X-Gpugate-Heartbeat: 1\r\n"
                      "X-Gpugate-Capacity: %d\r\n"
                      "X-Gpugate-Models: %s\r\n%s%s\r\n",
                      c->gw->url->path, c->gw->url->host, sid, b64,
                      c->gw->rt->instance, c->gw->rt->conf->capacity,
                      c->gw->rt->models,
                      ga_probe_header(c->gw->rt, load, sizeof(load)),
                      ga_agent.telemetry)
        != 0)
    {
        return -1;
    }

    c->state = GA_STEP2;
    c->models_gen = c->gw->rt->models_gen;
    gg_http_head_init(&c->head, 1, GA_HEAD_MAX);

    return 0;
}


static int
ga_step2_done(ga_conn_t *c)
{
    int                      rc;
    char                     final[GPUGATE_SCRAM_MSG_MAX + 4];
    size_t                   body_len, flen;
    const char              *body, *buf;
    gpugate_scram_rc_t       src;
    gpugate_tunnel_auth_t    auth;
    gpugate_tunnel_worker_t  wk;
    const gg_http_header_t  *ai, *wh;

    rc = ga_read_response(c, &body, &body_len);

    if (rc != 0) {
        return rc == 1 ? 0 : -1;
    }

    buf = gg_buf_pos(&c->in);

    if (c->head.status != 101) {
        return ga_refused(c, body, body_len);
    }

    ai = gg_http_find_header(&c->head, buf, "authentication-info");
    wh = gg_http_find_header(&c->head, buf, "x-gpugate-worker");

    if (ai == NULL
        || gpugate_tunnel_parse_auth(buf + ai->value, ai->value_len, 0,
                                     &auth) != 0
        || auth.data == NULL
        || auth.data_len > GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_MSG_MAX))
    {
        ga_log(GA_ERROR, "gateway %s:%s: 101 without Authentication-Info",
               c->gw->url->host, c->gw->url->port);
        ga_handshake_failed(c->gw);
        return -1;
    }

    flen = ga_b64_decode(auth.data, auth.data_len, (unsigned char *) final);
    src = gpugate_scram_client_verify(&c->scram, final, flen);

    /* the exchange is over: keep none of it */
    OPENSSL_cleanse(&c->scram, sizeof(c->scram));

    if (src != GPUGATE_SCRAM_OK) {
        /* whoever answered does not hold our verifier: not our gateway */
        ga_log(GA_ERROR, "gateway %s:%s: server signature refused (%s): "
               "not serving it", c->gw->url->host, c->gw->url->port,
               gpugate_scram_strerror(src));
        ga_handshake_failed(c->gw);
        return -1;
    }

    if (wh == NULL
        || gpugate_tunnel_parse_worker(buf + wh->value, wh->value_len, &wk)
           != 0)
    {
        ga_log(GA_ERROR, "gateway %s:%s: bad X-Gpugate-Worker",
               c->gw->url->host, c->gw->url->port);
        ga_handshake_failed(c->gw);
        return -1;
    }

    gg_buf_consume(&c->in, c->head.head_len);

    c->gw->dialing--;
    c->state = GA_IDLE;
    c->up = gg_time_us();
    c->requests = 0;
    c->heartbeat_us = wk.heartbeat * 1000;
    gg_http_head_init(&c->head, 0, GA_REQUEST_HEAD_MAX);

    ga_worker_seen(c, wk.pid, wk.slot, wk.workers, wk.generation);
    ga_handshake_done(c->gw);

    (void) gg_timer_add(&ga_agent.loop, &c->timer,
                        ga_agent.conf.idle_timeout * 1000000ULL);

    ga_log(GA_DEBUG, "gateway %s:%s: tunnel up in worker %u (pid %llu)",
           c->gw->url->host, c->gw->url->port, wk.slot,
           (unsigned long long) wk.pid);

    if (ga_agent.draining) {
        ga_conn_close(c, NULL);
        return 1;
    }

    /* nginx may already have sent a request behind the 101 */
    return gg_buf_len(&c->in) ? ga_serve(c) : 0;
}



static int
ga_socket(const char *host, const char *port, int *fd, char *err,
    size_t size)
{
    int               s, rc;
    struct addrinfo   hints, *res;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(host, port, &hints, &res);

    if (rc != 0) {
        snprintf(err, size, "%s: %s", host, gai_strerror(rc));
        return -1;
    }

    s = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
               0);

    if (s == -1) {
        snprintf(err, size, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }

    if (connect(s, res->ai_addr, res->ai_addrlen) != 0
        && errno != EINPROGRESS)
    {
        snprintf(err, size, "connect: %s", strerror(errno));
        close(s);
        freeaddrinfo(res);
        return -1;
    }

    freeaddrinfo(res);
    *fd = s;

    return 0;
}


static size_t
ga_b64_decode(const char *in, size_t len, unsigned char *out)
{
    int  n;

    n = EVP_DecodeBlock(out, (const unsigned char *) in, (int) len);

    if (n < 0) {
        return 0;
    }

    /* EVP_DecodeBlock counts the padding as zero bytes */

    if (len >= 1 && in[len - 1] == '=') {
        n--;
    }

    if (len >= 2 && in[len - 2] == '=') {
        n--;
    }

    return (size_t) n;
}

