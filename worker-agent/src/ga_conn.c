
/*
 * Copyright (C) gpugate authors
 *
 * One tunnel connection of gpugate-agent: dial, TLS, the two-step SCRAM
 * handshake, then serving nginx's requests one at a time by relaying
 * each to the runtime over its own TCP connection.
 *
 * The runtime connection lives exactly as long as the request: when the
 * tunnel breaks mid-answer it is closed at once, which is what stops the
 * GPU (the runtime sees its client go).  Response bytes are passed on as
 * they arrive; the runtime is read only while the tunnel's output holds
 * less than GA_OUT_HIGH, so a slow client slows the runtime, not memory.
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
#define GA_HEAD_MAX           (64 * 1024)

/* a tunnel the gateway drops sooner than this, unused, is a failure */
#define GA_FLAP_US            (1000000ULL)


static void ga_conn_io(gg_io_t *io, uint32_t revents);
static void ga_conn_timer(gg_timer_t *t);
static void ga_conn_update(ga_conn_t *c);
static int ga_conn_connected(ga_conn_t *c);
static int ga_tls_step(ga_conn_t *c);
static ssize_t ga_recv(ga_conn_t *c, char *buf, size_t size);
static ssize_t ga_send(ga_conn_t *c, const char *buf, size_t size);
static int ga_conn_read(ga_conn_t *c);
static int ga_conn_flush(ga_conn_t *c);
static int ga_step1_send(ga_conn_t *c);
static int ga_step1_done(ga_conn_t *c);
static int ga_step2_done(ga_conn_t *c);
static int ga_serve(ga_conn_t *c);
static int ga_relay_start(ga_conn_t *c, size_t body, size_t total);
static void ga_relay_io(gg_io_t *io, uint32_t revents);
static int ga_relay_response(ga_conn_t *c, int eof);
static void ga_relay_end(ga_conn_t *c);
static void ga_relay_fail(ga_conn_t *c, const char *why);
static int ga_answer(ga_conn_t *c, int status, const char *reason,
    const char *code, const char *message);
static int ga_socket(const char *host, const char *port, int *fd,
    char *err, size_t size);
static size_t ga_b64_decode(const char *in, size_t len, unsigned char *out);
static void ga_dead_io(gg_io_t *io, uint32_t revents);
static void ga_reap(gg_timer_t *t);


#define ga_conn_dead(c)  ((c)->io.handler == ga_dead_io)


/* closed connections waiting for the end of the epoll batch */
static ga_conn_t   *ga_graveyard;
static gg_timer_t   ga_reaper;


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
    char        err[256];
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
    c->rio.fd = -1;
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

    if (c->rio.fd != -1) {
        /* the runtime sees its client go: generation stops */
        ga_relay_end(c);
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
     * runtime socket): it is freed by a timer that runs after the batch,
     * and until then its handlers do nothing.
     */

    c->io.handler = ga_dead_io;
    c->rio.handler = ga_dead_io;
    c->next = ga_graveyard;
    ga_graveyard = c;

    if (!gg_timer_armed(&ga_reaper)) {
        ga_reaper.handler = ga_reap;
        (void) gg_timer_add(&ga_agent.loop, &ga_reaper, 0);
    }

    ga_supply(gw);
}


static void
ga_dead_io(gg_io_t *io, uint32_t revents)
{
    (void) io;
    (void) revents;
}


static void
ga_reap(gg_timer_t *t)
{
    ga_conn_t  *c;

    (void) t;

    while (ga_graveyard) {
        c = ga_graveyard;
        ga_graveyard = c->next;
        free(c);
    }
}


void
ga_conn_drain(ga_conn_t *c)
{
    if (c->state == GA_RELAY || c->state == GA_CLOSING) {
        /* finishes its answer first; ga_relay_end() closes it */
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


static void
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

    if (c->rio.fd == -1) {
        return;
    }

    ev = 0;

    if (!c->rconnected || gg_buf_len(&c->rout)) {
        ev |= EPOLLOUT;
    }

    if (c->rconnected && gg_buf_len(&c->out) < GA_OUT_HIGH) {
        ev |= EPOLLIN;
    }

    (void) gg_io_set(&ga_agent.loop, &c->rio, ev);
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
    ssize_t  n;

    for ( ;; ) {
        if (gg_buf_len(&c->in) > GA_REQUEST_MAX) {
            ga_log(GA_WARN, "gateway %s:%s: request over %d bytes",
                   c->gw->url->host, c->gw->url->port, GA_REQUEST_MAX);
            return -1;
        }

        if (gg_buf_reserve(&c->in, 16384) != 0) {
            return -1;
        }

        n = ga_recv(c, gg_buf_last(&c->in), gg_buf_room(&c->in));

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
    }
}


static int
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

    if (c->rio.fd != -1) {
        /* room again: the runtime may be read */
        ga_conn_update(c);
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
    char                     sid[GPUGATE_TUNNEL_SID_LEN + 1];
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

    src = gpugate_scram_client_final(&c->scram, first, flen,
                                     (unsigned char *) ga_agent.token,
                                     ga_agent.token_len, final,
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
                      "X-Gpugate-Capacity: %d\r\n"
                      "X-Gpugate-Models: %s\r\n\r\n",
                      c->gw->url->path, c->gw->url->host, sid, b64,
                      ga_agent.instance, ga_agent.conf.capacity,
                      ga_agent.models)
        != 0)
    {
        return -1;
    }

    c->state = GA_STEP2;
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
    gg_http_head_init(&c->head, 0, GA_HEAD_MAX);

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


/* handles complete requests in c->in while the connection is idle */

static int
ga_serve(ga_conn_t *c)
{
    int                 rc;
    size_t              used, out_len, body, total;
    const char         *buf;
    gg_http_chunked_t   ck;
    char                scratch[4096];

    while (c->state == GA_IDLE && gg_buf_len(&c->in)) {

        buf = gg_buf_pos(&c->in);
        rc = gg_http_parse_head(&c->head, buf, gg_buf_len(&c->in));

        if (rc == GG_HTTP_AGAIN) {
            return 0;
        }

        if (rc != GG_HTTP_OK) {
            ga_log(GA_WARN, "malformed request from the gateway (%d)", rc);
            return -1;
        }

        /* the request must be whole before the runtime is dialed */

        body = 0;

        if (c->head.chunked) {
            gg_http_chunked_init(&ck, GA_REQUEST_MAX);
            used = 0;
            rc = GG_HTTP_AGAIN;

            while (c->head.head_len + used < gg_buf_len(&c->in)) {
                size_t  n, k;

                n = gg_buf_len(&c->in) - c->head.head_len - used;
                n = n > sizeof(scratch) ? sizeof(scratch) : n;
                memcpy(scratch, buf + c->head.head_len + used, n);

                rc = gg_http_parse_chunked(&ck, scratch, n, scratch, &k,
                                           &out_len);
                used += k;

                if (rc != GG_HTTP_AGAIN) {
                    break;
                }
            }

            if (rc == GG_HTTP_AGAIN) {
                gg_http_head_init(&c->head, 0, GA_HEAD_MAX);
                return 0;
            }

            if (rc != GG_HTTP_OK) {
                return -1;
            }

            body = used;

        } else if (c->head.content_length > 0) {
            body = (size_t) c->head.content_length;

            if (gg_buf_len(&c->in) - c->head.head_len < body) {
                /* parsed again when more arrives: cheap, heads are small */
                gg_http_head_init(&c->head, 0, GA_HEAD_MAX);
                return 0;
            }
        }

        total = c->head.head_len + body;

        (void) gg_timer_add(&ga_agent.loop, &c->timer,
                            ga_agent.conf.idle_timeout * 1000000ULL);

        if (c->head.method_len == 3 && memcmp(buf + c->head.method, "GET", 3)
            == 0 && c->head.uri_len == sizeof("/gpugate/ping") - 1
            && memcmp(buf + c->head.uri, "/gpugate/ping",
                      c->head.uri_len) == 0)
        {
            gg_buf_consume(&c->in, total);
            gg_http_head_init(&c->head, 0, GA_HEAD_MAX);

            if (gg_buf_printf(&c->out, "HTTP/1.1 204 No Content\r\n"
                              "X-Gpugate-Inflight: %d\r\n\r\n",
                              ga_agent.inflight)
                != 0)
            {
                return -1;
            }

            continue;
        }

        if (ga_agent.inflight >= ga_agent.conf.capacity) {
            gg_buf_consume(&c->in, total);
            gg_http_head_init(&c->head, 0, GA_HEAD_MAX);

            if (ga_answer(c, 503, "Service Unavailable", "agent_busy",
                          "agent at capacity") != 0)
            {
                return -1;
            }

            continue;
        }

        return ga_relay_start(c, body, total);
    }

    return 0;
}


static int
ga_relay_start(ga_conn_t *c, size_t body, size_t total)
{
    int                      fd;
    size_t                   i;
    char                     err[256];
    const char              *buf;
    const gg_http_header_t  *h;

    buf = gg_buf_pos(&c->in);

    gg_buf_reset(&c->rout);

    if (gg_buf_printf(&c->rout, "%.*s %.*s HTTP/1.1\r\n",
                      (int) c->head.method_len, buf + c->head.method,
                      (int) c->head.uri_len, buf + c->head.uri) != 0)
    {
        return -1;
    }

    for (i = 0; i < c->head.nheaders; i++) {
        h = &c->head.headers[i];

        /* hop-by-hop: this hop ends here */

        if (gg_http_header_is(h, buf, "host")
            || gg_http_header_is(h, buf, "connection")
            || gg_http_header_is(h, buf, "keep-alive")
            || gg_http_header_is(h, buf, "proxy-connection")
            || gg_http_header_is(h, buf, "te")
            || gg_http_header_is(h, buf, "upgrade"))
        {
            continue;
        }

        if (gg_http_header_is(h, buf, "expect")) {
            /* the body is whole already: no "100 Continue" wanted */
            continue;
        }

        if (gg_buf_printf(&c->rout, "%.*s: %.*s\r\n", (int) h->name_len,
                          buf + h->name, (int) h->value_len, buf + h->value)
            != 0)
        {
            return -1;
        }
    }

    if (gg_buf_printf(&c->rout, "Host: %s:%s\r\nConnection: close\r\n\r\n",
                      ga_agent.conf.runtime.host, ga_agent.conf.runtime.port)
        != 0
        || gg_buf_append(&c->rout, buf + c->head.head_len, body) != 0)
    {
        return -1;
    }

    c->head_req = (c->head.method_len == 4
                   && memcmp(buf + c->head.method, "HEAD", 4) == 0);

    gg_buf_consume(&c->in, total);
    gg_http_head_init(&c->head, 0, GA_HEAD_MAX);

    c->state = GA_RELAY;
    c->worker->idle--;
    c->requests++;
    c->gw->flaps = 0;
    ga_agent.inflight++;
    ga_agent.served++;

    /* one idle connection fewer in this worker: replace it now (§3) */
    ga_supply(c->gw);

    gg_timer_del(&ga_agent.loop, &c->timer);

    gg_buf_reset(&c->rin);
    gg_http_head_init(&c->rhead, 1, GA_HEAD_MAX);
    c->rhead_done = 0;
    c->rconnected = 0;

    if (ga_socket(ga_agent.conf.runtime.host, ga_agent.conf.runtime.port,
                  &fd, err, sizeof(err))
        != 0)
    {
        ga_relay_fail(c, err);
        return ga_conn_dead(c) ? 1 : 0;
    }

    c->rio.fd = fd;
    c->rio.handler = ga_relay_io;
    c->rio.data = c;
    c->rio.events = 0;

    return 0;
}


static void
ga_relay_io(gg_io_t *io, uint32_t revents)
{
    ga_conn_t  *c = io->data;
    int         err, eof;
    ssize_t     n;
    socklen_t   len;

    (void) revents;

    if (!c->rconnected) {
        len = sizeof(err);

        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0
            || err != 0)
        {
            ga_relay_fail(c, strerror(err ? err : errno));

            if (c->io.handler != ga_dead_io) {
                ga_conn_update(c);
            }

            return;
        }

        c->rconnected = 1;
    }

    while (gg_buf_len(&c->rout)) {
        n = send(io->fd, gg_buf_pos(&c->rout), gg_buf_len(&c->rout),
                 MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }

            /* the runtime may answer before reading everything */
            gg_buf_reset(&c->rout);
            break;
        }

        gg_buf_consume(&c->rout, n);
    }

    eof = 0;

    while (gg_buf_len(&c->out) < GA_OUT_HIGH) {
        if (gg_buf_reserve(&c->rin, 16384) != 0) {
            ga_conn_close(c, "out of memory");
            return;
        }

        n = read(io->fd, gg_buf_last(&c->rin), gg_buf_room(&c->rin));

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }

            eof = 1;
            break;
        }

        if (n == 0) {
            eof = 1;
            break;
        }

        c->rin.end += n;

        if (ga_relay_response(c, 0) != 0 || ga_conn_dead(c)) {
            return;
        }

        if (c->rio.fd == -1) {
            break;
        }
    }

    if (eof && c->rio.fd != -1
        && (ga_relay_response(c, 1) != 0 || ga_conn_dead(c)))
    {
        return;
    }

    if (ga_conn_flush(c) != 0) {
        ga_conn_close(c, "write to gateway failed");
        return;
    }

    if (c->state == GA_CLOSING && gg_buf_len(&c->out) == 0) {
        ga_conn_close(c, NULL);
        return;
    }

    ga_conn_update(c);

    /* requests queued behind this one (nginx does not pipeline, but) */
    if (c->state == GA_IDLE && gg_buf_len(&c->in) && ga_serve(c) != 0) {
        ga_conn_close(c, NULL);
    }
}


/*
 * Moves what the runtime sent from c->rin to c->out: the head rewritten
 * (hop-by-hop fields dropped, a close-delimited body re-framed as
 * chunked), then body bytes as they are.  Returns 0, or -1 when the
 * connection was closed here.
 */

static int
ga_relay_response(ga_conn_t *c, int eof)
{
    int                      rc;
    size_t                   i, n, used, out_len;
    const char              *buf;
    const gg_http_header_t  *h;
    char                     scratch[16384];

    while (!c->rhead_done) {
        buf = gg_buf_pos(&c->rin);
        rc = gg_http_parse_head(&c->rhead, buf, gg_buf_len(&c->rin));

        if (rc == GG_HTTP_AGAIN) {
            if (eof) {
                ga_relay_fail(c, "runtime closed before answering");
            }

            return 0;
        }

        if (rc != GG_HTTP_OK) {
            ga_relay_fail(c, "malformed response from the runtime");
            return 0;
        }

        if (c->rhead.status >= 100 && c->rhead.status < 200
            && c->rhead.status != 101)
        {
            /* interim (103 Early Hints): the final head follows */
            gg_buf_consume(&c->rin, c->rhead.head_len);
            gg_http_head_init(&c->rhead, 1, GA_HEAD_MAX);
            continue;
        }

        if (gg_buf_printf(&c->out, "HTTP/1.1 %d %.*s\r\n", c->rhead.status,
                          (int) c->rhead.reason_len, buf + c->rhead.reason)
            != 0)
        {
            ga_conn_close(c, "out of memory");
            return -1;
        }

        if (c->head_req || c->rhead.status < 200 || c->rhead.status == 204
            || c->rhead.status == 304)
        {
            c->rframe = 3;

        } else if (c->rhead.chunked) {
            c->rframe = 1;
            gg_http_chunked_init(&c->rchunk, UINT64_MAX);

        } else if (c->rhead.content_length >= 0) {
            c->rframe = 0;
            c->rleft = c->rhead.content_length;

        } else {
            c->rframe = 2;
        }

        for (i = 0; i < c->rhead.nheaders; i++) {
            h = &c->rhead.headers[i];

            if (gg_http_header_is(h, buf, "connection")
                || gg_http_header_is(h, buf, "keep-alive"))
            {
                continue;
            }

            (void) gg_buf_printf(&c->out, "%.*s: %.*s\r\n",
                                 (int) h->name_len, buf + h->name,
                                 (int) h->value_len, buf + h->value);
        }

        if (c->rframe == 2) {
            (void) gg_buf_append(&c->out, "Transfer-Encoding: chunked\r\n",
                                 28);
        }

        if (gg_buf_append(&c->out, "\r\n", 2) != 0) {
            ga_conn_close(c, "out of memory");
            return -1;
        }

        gg_buf_consume(&c->rin, c->rhead.head_len);
        c->rhead_done = 1;
    }

    n = gg_buf_len(&c->rin);

    switch (c->rframe) {

    case 0:
        n = (int64_t) n > c->rleft ? (size_t) c->rleft : n;
        (void) gg_buf_append(&c->out, gg_buf_pos(&c->rin), n);
        gg_buf_reset(&c->rin);
        c->rleft -= n;

        if (c->rleft == 0) {
            ga_relay_end(c);
        } else if (eof) {
            ga_conn_close(c, "runtime answer cut short");
            return -1;
        }

        break;

    case 1:
        used = 0;
        rc = GG_HTTP_AGAIN;

        while (used < n && rc == GG_HTTP_AGAIN) {
            size_t  k, m;

            m = n - used > sizeof(scratch) ? sizeof(scratch) : n - used;
            memcpy(scratch, gg_buf_pos(&c->rin) + used, m);
            rc = gg_http_parse_chunked(&c->rchunk, scratch, m, scratch, &k,
                                       &out_len);
            used += k;
        }

        if (rc != GG_HTTP_AGAIN && rc != GG_HTTP_OK) {
            ga_conn_close(c, "malformed chunked answer from the runtime");
            return -1;
        }

        (void) gg_buf_append(&c->out, gg_buf_pos(&c->rin), used);
        gg_buf_reset(&c->rin);

        if (rc == GG_HTTP_OK) {
            ga_relay_end(c);
        } else if (eof) {
            ga_conn_close(c, "runtime answer cut short");
            return -1;
        }

        break;

    case 2:
        if (n) {
            (void) gg_buf_printf(&c->out, "%zx\r\n", n);
            (void) gg_buf_append(&c->out, gg_buf_pos(&c->rin), n);
            (void) gg_buf_append(&c->out, "\r\n", 2);
            gg_buf_reset(&c->rin);
        }

        if (eof) {
            (void) gg_buf_append(&c->out, "0\r\n\r\n", 5);
            ga_relay_end(c);
        }

        break;

    default:
        gg_buf_reset(&c->rin);
        ga_relay_end(c);
        break;
    }

    return 0;
}


/* the runtime connection is done with: the tunnel goes back to idle */

static void
ga_relay_end(ga_conn_t *c)
{
    if (c->rio.fd != -1) {
        (void) gg_io_set(&ga_agent.loop, &c->rio, 0);
        close(c->rio.fd);
        c->rio.fd = -1;
    }

    if (c->state != GA_RELAY) {
        return;
    }

    ga_agent.inflight--;

    if (ga_agent.draining) {
        /* closed once the answer is sent */
        c->state = GA_CLOSING;
        return;
    }

    c->worker->idle++;
    c->state = GA_IDLE;

    (void) gg_timer_add(&ga_agent.loop, &c->timer,
                        ga_agent.conf.idle_timeout * 1000000ULL);
}


static void
ga_relay_fail(ga_conn_t *c, const char *why)
{
    char  msg[300];

    ga_log(GA_WARN, "runtime %s:%s: %s", ga_agent.conf.runtime.host,
           ga_agent.conf.runtime.port, why);

    if (c->rhead_done) {
        ga_conn_close(c, "runtime failed mid-answer");
        return;
    }

    ga_relay_end(c);

    snprintf(msg, sizeof(msg), "runtime unreachable: %s", why);

    if (ga_answer(c, 502, "Bad Gateway", "runtime_unavailable", msg) != 0) {
        ga_conn_close(c, "out of memory");
    }
}


static int
ga_answer(ga_conn_t *c, int status, const char *reason, const char *code,
    const char *message)
{
    char    body[1024], esc[600], *e;
    int     n;
    size_t  i;

    /* the message may quote strerror() or a host name: keep JSON valid */

    e = esc;

    for (i = 0; message[i] && e < esc + sizeof(esc) - 7; i++) {
        unsigned char  ch = (unsigned char) message[i];

        if (ch == '"' || ch == '\\') {
            *e++ = '\\';
            *e++ = (char) ch;

        } else if (ch < 0x20 || ch == 0x7f) {
            e += snprintf(e, 7, "\\u%04x", ch);

        } else {
            *e++ = (char) ch;
        }
    }

    *e = '\0';

    n = snprintf(body, sizeof(body),
                 "{\"error\":{\"message\":\"%s\",\"type\":\"server_error\","
                 "\"param\":null,\"code\":\"%s\"}}\n", esc, code);

    return gg_buf_printf(&c->out, "HTTP/1.1 %d %s\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n%s",
                         status, reason, n, body);
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

