
/*
 * Copyright (C) gpugate authors
 *
 * The handshake client of gpugate-agent (docs/tunnel-protocol.md): the
 * SCRAM step 1 request, the 401 read and step 2 built from it, the 101
 * read and checked, and the nginx worker it names recorded.  It builds
 * into and reads from the connection's buffers; ga_conn.c does the I/O.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ga_agent.h"
#include "gpugate_base64.h"
#include "gpugate_tunnel_msg.h"
#include "gpugate_tunnel_proto.h"


static int ga_read_response(ga_conn_t *c, const char **body,
    size_t *body_len);
static int ga_refused(ga_conn_t *c, const char *body, size_t len);
static void ga_worker_seen(ga_conn_t *c, uint64_t pid, unsigned slot,
    unsigned workers, uint64_t generation);
static size_t ga_b64_decode(const char *in, size_t len, unsigned char *out,
    size_t size);
static int ga_hs_send(ga_conn_t *c, const gpugate_tunnel_hs_t *hs);


int
ga_handshake_start(ga_conn_t *c)
{
    char                 first[GPUGATE_SCRAM_CLIENT_FIRST_SIZE];
    char                 b64[GPUGATE_SCRAM_B64_LEN(
                                 GPUGATE_SCRAM_CLIENT_FIRST_SIZE) + 1];
    size_t               len;
    gpugate_tunnel_hs_t  hs;

    /* held only for the exchange: a parked tunnel keeps none of it */
    c->scram = calloc(1, sizeof(gpugate_scram_client_t));

    if (c->scram == NULL) {
        ga_log(GA_ERROR, "gateway %s:%s: out of memory for the handshake",
               c->gw->url->host, c->gw->url->port);
        return -1;
    }

    if (gpugate_scram_client_first(c->scram, ga_agent.conf.name, first,
                                   sizeof(first), &len)
        != GPUGATE_SCRAM_OK)
    {
        return -1;
    }

    b64[gpugate_base64_encode((unsigned char *) first, len, b64)] = '\0';

    memset(&hs, 0, sizeof(hs));
    hs.path = c->gw->url->path;
    hs.host = c->gw->url->host;
    hs.user_agent = "gpugate-agent/" GA_VERSION;
    hs.data = b64;

    if (ga_hs_send(c, &hs) != 0) {
        return -1;
    }

    if (ga_conn_head(c, 1, GA_HEAD_MAX) != 0) {
        return -1;
    }

    c->state = GA_STEP1;

    ga_log(GA_DEBUG, "gateway %s:%s: step 1 sent", c->gw->url->host,
           c->gw->url->port);

    return 0;
}


/* parses a response head (and its Content-Length body) from c->in */

static int
ga_read_response(ga_conn_t *c, const char **body, size_t *body_len)
{
    int      rc;
    int64_t  cl;

    rc = gg_http_parse_head(c->head, gg_buf_pos(&c->in), gg_buf_len(&c->in));

    if (rc == GG_HTTP_AGAIN) {
        return 1;
    }

    if (rc != GG_HTTP_OK) {
        ga_log(GA_WARN, "gateway %s:%s: malformed handshake response",
               c->gw->url->host, c->gw->url->port);
        return -1;
    }

    cl = c->head->content_length < 0 ? 0 : c->head->content_length;

    if ((int64_t) (gg_buf_len(&c->in) - c->head->head_len) < cl) {
        return 1;
    }

    *body = gg_buf_pos(&c->in) + c->head->head_len;
    *body_len = (size_t) cl;

    return 0;
}


static int
ga_refused(ga_conn_t *c, const char *body, size_t len)
{
    ga_log(GA_ERROR, "gateway %s:%s refused the handshake: %d %.*s",
           c->gw->url->host, c->gw->url->port, c->head->status,
           (int) (len > 300 ? 300 : len), body);
    ga_agent.on.handshake_failed(c->gw);

    return -1;
}


int
ga_handshake_step1(ga_conn_t *c)
{
    int                      rc, share;
    char                     first[GPUGATE_SCRAM_MSG_MAX + 4];
    char                     final[GPUGATE_SCRAM_CLIENT_FINAL_SIZE];
    char                     b64[GPUGATE_SCRAM_B64_LEN(
                                     GPUGATE_SCRAM_CLIENT_FINAL_SIZE) + 1];
    char                     sid[GPUGATE_TUNNEL_SID_LEN + 1], load[96];
    size_t                   body_len, len, flen;
    const char              *body, *buf;
    gpugate_scram_rc_t       src;
    gpugate_tunnel_hs_t      hs;
    gpugate_tunnel_auth_t    auth;
    const gg_http_header_t  *h;

    rc = ga_read_response(c, &body, &body_len);

    if (rc != 0) {
        return rc == 1 ? 0 : -1;
    }

    buf = gg_buf_pos(&c->in);
    h = gg_http_find_header(c->head, buf, "www-authenticate");

    if (c->head->status != 401 || h == NULL
        || gpugate_tunnel_parse_auth(buf + h->value, h->value_len, 1, &auth)
           != 0
        || auth.sid == NULL || auth.data == NULL
        || auth.data_len > GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_MSG_MAX))
    {
        return ga_refused(c, body, body_len);
    }

    flen = ga_b64_decode(auth.data, auth.data_len, (unsigned char *) first,
                         sizeof(first));
    memcpy(sid, auth.sid, GPUGATE_TUNNEL_SID_LEN);
    sid[GPUGATE_TUNNEL_SID_LEN] = '\0';

    /* PBKDF2 once per salt, not once per connection */
    src = gpugate_scram_client_final_keys(c->scram, first, flen,
                                          (unsigned char *) ga_agent.token,
                                          ga_agent.token_len,
                                          &ga_agent.scram_keys, final,
                                          sizeof(final), &len);

    if (src != GPUGATE_SCRAM_OK) {
        ga_log(GA_ERROR, "gateway %s:%s: bad server-first: %s",
               c->gw->url->host, c->gw->url->port,
               gpugate_scram_strerror(src));
        ga_agent.on.handshake_failed(c->gw);
        return -1;
    }

    gg_buf_consume(&c->in, c->head->head_len + body_len);

    b64[gpugate_base64_encode((unsigned char *) final, len, b64)] = '\0';

    hs.path = c->gw->url->path;
    hs.host = c->gw->url->host;
    hs.user_agent = "gpugate-agent/" GA_VERSION;
    hs.data = b64;
    hs.sid = sid;
    hs.instance = c->gw->rt->instance;
    /* X-Gpugate-Capacity is 1 at least; X-Gpugate-Load says 0 if so */
    share = ga_gateway_share(c->gw);
    hs.capacity = (unsigned) (share > 0 ? share : 1);
    hs.models = c->gw->rt->models;
    hs.endpoints = c->gw->rt->conf->endpoints;
    hs.region = ga_agent.conf.region;
    hs.load = ga_gateway_header(c->gw, load, sizeof(load));
    hs.telemetry = ga_agent.telemetry;

    if (ga_hs_send(c, &hs) != 0) {
        return -1;
    }

    c->state = GA_STEP2;
    c->models_gen = c->gw->rt->models_gen;
    gg_http_head_init(c->head, 1, GA_HEAD_MAX);

    ga_log(GA_DEBUG, "gateway %s:%s: step 2 sent", c->gw->url->host,
           c->gw->url->port);

    return 0;
}


int
ga_handshake_step2(ga_conn_t *c)
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

    if (c->head->status != 101) {
        return ga_refused(c, body, body_len);
    }

    ai = gg_http_find_header(c->head, buf, "authentication-info");
    wh = gg_http_find_header(c->head, buf, "x-gpugate-worker");

    if (ai == NULL
        || gpugate_tunnel_parse_auth(buf + ai->value, ai->value_len, 0,
                                     &auth) != 0
        || auth.data == NULL
        || auth.data_len > GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_MSG_MAX))
    {
        ga_log(GA_ERROR, "gateway %s:%s: 101 without Authentication-Info",
               c->gw->url->host, c->gw->url->port);
        ga_agent.on.handshake_failed(c->gw);
        return -1;
    }

    flen = ga_b64_decode(auth.data, auth.data_len, (unsigned char *) final,
                         sizeof(final));
    src = gpugate_scram_client_verify(c->scram, final, flen);

    /* the exchange is over: keep none of it */
    OPENSSL_cleanse(c->scram, sizeof(gpugate_scram_client_t));
    free(c->scram);
    c->scram = NULL;

    if (src != GPUGATE_SCRAM_OK) {
        /* whoever answered does not hold our verifier: not our gateway */
        ga_log(GA_ERROR, "gateway %s:%s: server signature refused (%s): "
               "not serving it", c->gw->url->host, c->gw->url->port,
               gpugate_scram_strerror(src));
        ga_agent.on.handshake_failed(c->gw);
        return -1;
    }

    if (wh == NULL
        || gpugate_tunnel_parse_worker(buf + wh->value, wh->value_len, &wk)
           != 0)
    {
        ga_log(GA_ERROR, "gateway %s:%s: bad X-Gpugate-Worker",
               c->gw->url->host, c->gw->url->port);
        ga_agent.on.handshake_failed(c->gw);
        return -1;
    }

    gg_buf_consume(&c->in, c->head->head_len);

    c->gw->dialing--;
    c->state = GA_IDLE;
    c->up = gg_time_us();
    c->requests = 0;
    c->heartbeat_us = wk.heartbeat * 1000;
    gg_http_head_init(c->head, 0, GA_REQUEST_HEAD_MAX);

    ga_worker_seen(c, wk.pid, wk.slot, wk.workers, wk.generation);
    ga_agent.on.handshake_done(c->gw);

    (void) gg_timer_add(&ga_agent.loop, &c->timer,
                        ga_agent.conf.idle_timeout * 1000000ULL);

    ga_log(GA_DEBUG, "gateway %s:%s: tunnel up in worker %u (pid %llu)",
           c->gw->url->host, c->gw->url->port, wk.slot,
           (unsigned long long) wk.pid);

    return GA_HANDSHAKE_UP;
}



static void
ga_worker_seen(ga_conn_t *c, uint64_t pid, unsigned slot, unsigned workers,
    uint64_t generation)
{
    int            i, free;
    ga_gateway_t  *gw;

    (void) slot;

    gw = c->gw;

    if (generation > gw->generation) {
        if (gw->generation) {
            ga_log(GA_INFO, "gateway %s:%s reloaded (generation %llu)",
                   gw->url->host, gw->url->port,
                   (unsigned long long) generation);
        }

        gw->generation = generation;
        gw->nworkers = workers;

    } else if (generation == gw->generation) {
        gw->nworkers = workers;
    }

    free = -1;

    for (i = 0; i < GA_MAX_WORKERS; i++) {
        if (gw->workers[i].pid == pid) {
            break;
        }

        if (gw->workers[i].pid == 0 && free == -1) {
            free = i;
        }
    }

    if (i == GA_MAX_WORKERS) {
        /* more worker processes than we track: counted in the last */
        i = free == -1 ? GA_MAX_WORKERS - 1 : free;
        gw->workers[i].pid = pid;
        gw->workers[i].generation = generation;
    }

    c->worker = &gw->workers[i];
    c->worker->conns++;
    c->worker->idle++;
}


/* the core's strict decoder; a bad message decodes to nothing */

static size_t
ga_b64_decode(const char *in, size_t len, unsigned char *out, size_t size)
{
    ssize_t  n;

    n = gpugate_base64_decode(in, len, out, size);

    return n < 0 ? 0 : (size_t) n;
}


/* the core builds the request (size, then fill) into the output */

static int
ga_hs_send(ga_conn_t *c, const gpugate_tunnel_hs_t *hs)
{
    size_t  n;

    n = gpugate_tunnel_hs_request(NULL, 0, hs);

    if (gg_buf_reserve(&c->out, n) != 0) {
        return -1;
    }

    c->out.end += gpugate_tunnel_hs_request(gg_buf_last(&c->out), n, hs);

    return 0;
}
