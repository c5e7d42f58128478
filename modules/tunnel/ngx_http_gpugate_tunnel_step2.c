
/*
 * Copyright (C) gpugate authors
 *
 * Step 2 of the agent handshake: the agent's proof checked against the
 * exchange step 1 kept, its hello headers (instance, capacity, models,
 * load, telemetry) read, the models it may serve chosen, and the 101
 * that hands the connection to the pool (ngx_http_gpugate_tunnel_conn.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"
#include "ngx_http_gpugate_tunnel_handshake.h"
#include "gpugate_scram.h"


static ngx_int_t ngx_http_gpugate_tunnel_models(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_step_t *st, ngx_str_t *advertised,
    ngx_str_t *out);


/* why step 2 refuses an agent: the answer's status and error */

typedef struct {
    ngx_uint_t   status;   /* HTTP status of the refusal */
    const char  *code;     /* its OpenAI-style error code */
    const char  *message;  /* and message, for the agent's log */
} ngx_http_gpugate_tunnel_refusal_t;


enum {
    NGX_HTTP_GPUGATE_TUNNEL_BAD_SID = 1,
    NGX_HTTP_GPUGATE_TUNNEL_NO_UPGRADE,
    NGX_HTTP_GPUGATE_TUNNEL_BAD_LOAD,
    NGX_HTTP_GPUGATE_TUNNEL_BAD_HEADERS,
    NGX_HTTP_GPUGATE_TUNNEL_BAD_ENDPOINTS,
    NGX_HTTP_GPUGATE_TUNNEL_BAD_SCRAM,
    NGX_HTTP_GPUGATE_TUNNEL_BAD_PROOF,
    NGX_HTTP_GPUGATE_TUNNEL_NO_MODEL,
    NGX_HTTP_GPUGATE_TUNNEL_FULL
};


static const ngx_http_gpugate_tunnel_refusal_t
    ngx_http_gpugate_tunnel_refusals[] =
{
    { 0, NULL, NULL },
    { NGX_HTTP_UNAUTHORIZED, "invalid_sid",
      "Unknown or expired SCRAM session." },
    { 426, "upgrade_required",
      "Step 2 must ask for \"Upgrade: " GPUGATE_TUNNEL_UPGRADE "\"." },
    { NGX_HTTP_BAD_REQUEST, "invalid_handshake",
      "X-Gpugate-Load must be \"queue=N, gpu_free_mb=N\"." },
    { NGX_HTTP_BAD_REQUEST, "invalid_handshake",
      "X-Gpugate-Instance (16-32 hex), X-Gpugate-Capacity (1-65535) and "
      "X-Gpugate-Models are required." },
    { NGX_HTTP_BAD_REQUEST, "invalid_handshake",
      "X-Gpugate-Endpoints must be endpoint names separated by commas "
      "(chat, completions, embeddings, ...)." },
    { NGX_HTTP_BAD_REQUEST, "invalid_handshake",
      "Malformed SCRAM message." },
    { NGX_HTTP_UNAUTHORIZED, "invalid_credentials",
      "Agent authentication failed." },
    { NGX_HTTP_FORBIDDEN, "model_not_allowed",
      "None of the advertised models is allowed for this agent "
      "(gpugate-keys agent-create --models)." },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "tunnel_full",
      "No room for another agent (gpugate_tunnel_zone)." },
};


/* what step 2's headers say of the agent */

typedef struct {
    ngx_str_t                    instance;   /* X-Gpugate-Instance */
    ngx_str_t                    models;     /* X-Gpugate-Models */
    unsigned                     capacity;   /* X-Gpugate-Capacity */
    gpugate_tunnel_load_t        load;       /* X-Gpugate-Load, or none */
    gpugate_tunnel_telemetry_t   telemetry;  /* X-Gpugate-Telemetry */
    uint32_t                     endpoints;  /* X-Gpugate-Endpoints,
                                                0: none came (every
                                                endpoint) */
    ngx_str_t                    region;     /* X-Gpugate-Region, "":
                                                none or invalid */
    unsigned                     has_telemetry:1; /* a valid one came */
    unsigned                     heartbeats:1; /* X-Gpugate-Heartbeat:
                                                  the agent beats */
} ngx_http_gpugate_tunnel_hello_t;


/* step 2's headers into "hello"; NGX_OK or the refusal */

static ngx_int_t
ngx_http_gpugate_tunnel_step2_headers(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_step_t *st, ngx_http_gpugate_tunnel_hello_t *h)
{
    int               n;
    ngx_table_elt_t  *upgrade, *hi, *hc, *hm, *hl, *ht, *he, *hr;

    upgrade = r->headers_in.upgrade;

    if (upgrade == NULL
        || upgrade->value.len != sizeof(GPUGATE_TUNNEL_UPGRADE) - 1
        || ngx_strncasecmp(upgrade->value.data,
                           (u_char *) GPUGATE_TUNNEL_UPGRADE,
                           upgrade->value.len)
           != 0)
    {
        return NGX_HTTP_GPUGATE_TUNNEL_NO_UPGRADE;
    }

    hi = ngx_http_gpugate_tunnel_header(r, "x-gpugate-instance", 18);
    hc = ngx_http_gpugate_tunnel_header(r, "x-gpugate-capacity", 18);
    hm = ngx_http_gpugate_tunnel_header(r, "x-gpugate-models", 16);
    hl = ngx_http_gpugate_tunnel_header(r, "x-gpugate-load", 14);

    if (hl == NULL) {
        ngx_memzero(&h->load, sizeof(gpugate_tunnel_load_t));

    } else if (gpugate_tunnel_parse_load((char *) hl->value.data,
                                         hl->value.len, &h->load) != 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\": invalid "
                      "X-Gpugate-Load \"%V\"", st->user, &hl->value);
        return NGX_HTTP_GPUGATE_TUNNEL_BAD_LOAD;
    }

    /* telemetry is no reason to refuse a tunnel: a bad one is ignored */

    ht = ngx_http_gpugate_tunnel_header(r, "x-gpugate-telemetry", 19);
    h->has_telemetry = 0;

    if (ht) {
        if (gpugate_tunnel_parse_telemetry((char *) ht->value.data,
                                           ht->value.len, &h->telemetry)
            == 0)
        {
            h->has_telemetry = 1;

        } else {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "gpugate tunnel: agent \"%s\": invalid "
                          "X-Gpugate-Telemetry \"%*s\"", st->user,
                          ngx_min(ht->value.len, 128), ht->value.data);
        }
    }

    /* as telemetry: a bad region leaves the agent without one */

    hr = ngx_http_gpugate_tunnel_header(r, "x-gpugate-region", 16);
    ngx_str_null(&h->region);

    if (hr) {
        if (gpugate_tunnel_check_region((char *) hr->value.data,
                                        hr->value.len)
            == 0)
        {
            h->region = hr->value;

        } else {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "gpugate tunnel: agent \"%s\": invalid "
                          "X-Gpugate-Region \"%*s\", none used", st->user,
                          ngx_min(hr->value.len, 64), hr->value.data);
        }
    }

    he = ngx_http_gpugate_tunnel_header(r, "x-gpugate-endpoints", 19);
    h->endpoints = GPUGATE_TUNNEL_ENDPOINTS_ANY;

    if (he
        && gpugate_tunnel_parse_endpoints((char *) he->value.data,
                                          he->value.len, &h->endpoints)
           != 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\": invalid "
                      "X-Gpugate-Endpoints \"%*s\"", st->user,
                      ngx_min(he->value.len, 128), he->value.data);
        return NGX_HTTP_GPUGATE_TUNNEL_BAD_ENDPOINTS;
    }

    n = hm ? gpugate_tunnel_check_models((char *) hm->value.data,
                                         hm->value.len)
           : -1;

    if (hi == NULL || hc == NULL || n < 0
        || gpugate_tunnel_check_instance((char *) hi->value.data,
                                         hi->value.len) != 0
        || gpugate_tunnel_parse_capacity((char *) hc->value.data,
                                         hc->value.len, &h->capacity) != 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\": missing or invalid "
                      "X-Gpugate-Instance, -Capacity or -Models",
                      st->user);
        return NGX_HTTP_GPUGATE_TUNNEL_BAD_HEADERS;
    }

    h->instance = hi->value;
    h->models = hm->value;
    h->heartbeats = (ngx_http_gpugate_tunnel_header(r, "x-gpugate-heartbeat",
                                                    19)
                     != NULL);

    return NGX_OK;
}


/* the 101 and the Authentication-Info the agent checks, into "buf" */

static void
ngx_http_gpugate_tunnel_step2_head(ngx_http_gpugate_tunnel_step_t *st,
    ngx_http_gpugate_tunnel_loc_conf_t *tlcf, char *final, size_t len,
    u_char *buf, size_t size, ngx_str_t *head)
{
    u_char     *p;
    ngx_str_t   b64, raw;

    raw.data = (u_char *) final;
    raw.len = len;
    b64.len = ngx_base64_encoded_length(len);

    p = ngx_snprintf(buf, size - b64.len - 64,
                     "HTTP/1.1 101 Switching Protocols" CRLF
                     "Upgrade: " GPUGATE_TUNNEL_UPGRADE CRLF
                     "Connection: upgrade" CRLF
                     "X-Gpugate-Worker: slot=%ui, pid=%P, workers=%ui, "
                     "generation=%ui, heartbeat=%M" CRLF
                     "Authentication-Info: sid=",
                     ngx_worker, ngx_pid,
                     ((ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                            ngx_core_module))->worker_processes,
                     ngx_http_gpugate_tunnel_generation(),
                     ngx_http_gpugate_tunnel_heartbeat(tlcf));

    p = ngx_cpymem(p, st->sid, GPUGATE_TUNNEL_SID_LEN);
    p = ngx_cpymem(p, ", data=", 7);
    b64.data = p;
    ngx_encode_base64(&b64, &raw);
    p += b64.len;
    p = ngx_cpymem(p, CRLF CRLF, 4);

    head->data = buf;
    head->len = p - buf;
}


/*
 * Step 2: the client's proof checked against the exchange, then the
 * connection joins the pool with the models the agent may serve.  Every
 * refusal leaves through "failed", which frees the exchange.
 */

ngx_int_t
ngx_http_gpugate_tunnel_step2(ngx_http_request_t *r,
    gpugate_tunnel_auth_t *auth)
{
    size_t                              len;
    ngx_int_t                           rc, refused;
    ngx_str_t                           msg, name, models, head;
    gpugate_scram_rc_t                  src;
    ngx_http_gpugate_tunnel_step_t     *st;
    ngx_http_gpugate_tunnel_hello_t     hello;
    ngx_http_gpugate_tunnel_loc_conf_t *tlcf;
    char                                final[GPUGATE_SCRAM_SERVER_FINAL_SIZE];
    u_char                              buf[512];
    char                                eps[256];

    r->keepalive = 0;

    st = ngx_http_gpugate_tunnel_step_take(r, auth);

    if (st == NULL) {
        refused = NGX_HTTP_GPUGATE_TUNNEL_BAD_SID;
        goto failed;
    }

    refused = ngx_http_gpugate_tunnel_step2_headers(r, st, &hello);

    if (refused != NGX_OK) {
        goto failed;
    }

    if (ngx_http_gpugate_tunnel_decode(r, auth->data, auth->data_len, &msg)
        != NGX_OK)
    {
        refused = NGX_HTTP_GPUGATE_TUNNEL_BAD_SCRAM;
        goto failed;
    }

    src = gpugate_scram_server_final(&st->scram, (char *) msg.data, msg.len,
                                     st->known ? st->stored_key : NULL,
                                     st->known ? st->server_key : NULL,
                                     final, sizeof(final), &len);

    if (src != GPUGATE_SCRAM_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\" refused: %s",
                      st->user, gpugate_scram_strerror(src));
        refused = NGX_HTTP_GPUGATE_TUNNEL_BAD_PROOF;
        goto failed;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate tunnel: agent \"%s\" proved its key", st->user);

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_tunnel_module);

    ngx_http_gpugate_tunnel_step2_head(st, tlcf, final, len, buf,
                                       sizeof(buf), &head);

    name.data = (u_char *) st->user;
    name.len = st->user_len;

    /* only what the agent may serve is routed to it */

    rc = ngx_http_gpugate_tunnel_models(r, st, &hello.models, &models);

    if (rc == NGX_ERROR) {
        refused = NGX_ERROR;
        goto failed;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\" refused: none of the "
                      "models it advertises (\"%V\") is in its "
                      "allowed_models (\"%*s\")", st->user, &hello.models,
                      st->allowed_len, st->allowed);
        refused = NGX_HTTP_GPUGATE_TUNNEL_NO_MODEL;
        goto failed;
    }

    if (ngx_http_gpugate_tunnel_attach(r, tlcf, &name, st->agent_id,
                                       &hello.instance, &models,
                                       hello.capacity, &hello.load,
                                       hello.has_telemetry ? &hello.telemetry
                                                           : NULL,
                                       &head, hello.heartbeats)
        != NGX_OK)
    {
        refused = NGX_HTTP_GPUGATE_TUNNEL_FULL;
        goto failed;
    }

    ngx_http_gpugate_tunnel_set_endpoints(&name, &hello.instance,
                                          hello.endpoints);
    ngx_http_gpugate_tunnel_set_region(&name, &hello.instance,
                                       &hello.region);

    /* before this worker's event loop can hand the connection out */
    ngx_http_gpugate_tunnel_drain_set(st->agent_id, st->drained);
    ngx_http_gpugate_tunnel_recheck_since(st->bus_msgs);

    (void) gpugate_tunnel_endpoints_print(hello.endpoints, eps, sizeof(eps));

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gpugate tunnel: agent \"%s\" connected, capacity %ud, "
                  "models \"%V\", endpoints %s, region \"%V\"", st->user,
                  hello.capacity, &models, eps, &hello.region);

    ngx_http_gpugate_tunnel_step_free(st);

    return NGX_DONE;

failed:

    if (st) {
        ngx_http_gpugate_tunnel_step_free(st);
    }

    if (refused == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate tunnel: step 2 refused: %s",
                   ngx_http_gpugate_tunnel_refusals[refused].code);

    return ngx_http_gpugate_tunnel_hs_refuse(r,
               ngx_http_gpugate_tunnel_refusals[refused].status,
               ngx_http_gpugate_tunnel_refusals[refused].code, "%s",
               ngx_http_gpugate_tunnel_refusals[refused].message);
}


/*
 * The models routed to the agent: what it advertises, within its
 * allowed_models.  An empty advertisement ("any model") never widens
 * the list: the agent then gets its allowed models.  NGX_DECLINED when
 * nothing is left.
 */

static ngx_int_t
ngx_http_gpugate_tunnel_models(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_step_t *st, ngx_str_t *advertised,
    ngx_str_t *out)
{
    u_char  *p, *end, *id, *o;

    if (st->any_model) {
        *out = *advertised;
        return NGX_OK;
    }

    if (st->allowed_len == 0) {
        return NGX_DECLINED;
    }

    p = advertised->data;
    end = p + advertised->len;

    while (p < end && (*p == ' ' || *p == ',')) {
        p++;
    }

    if (p == end) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\" advertises any model, "
                      "routing its allowed_models \"%*s\"", st->user,
                      st->allowed_len, st->allowed);

        out->data = st->allowed;
        out->len = st->allowed_len;
        return NGX_OK;
    }

    /* no longer than the advertisement: it fits the agent slot */

    out->data = ngx_pnalloc(r->pool, advertised->len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    o = out->data;

    while (p < end) {
        id = p;

        while (p < end && *p != ',' && *p != ' ') {
            p++;
        }

        if (gpugate_tunnel_models_has((char *) st->allowed, st->allowed_len,
                                      (char *) id, p - id))
        {
            if (o != out->data) {
                *o++ = ',';
            }

            o = ngx_cpymem(o, id, p - id);

        } else {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "gpugate tunnel: agent \"%s\" advertises \"%*s\", "
                          "not in its allowed_models: not routed to it",
                          st->user, p - id, id);
        }

        while (p < end && (*p == ' ' || *p == ',')) {
            p++;
        }
    }

    out->len = o - out->data;

    return out->len ? NGX_OK : NGX_DECLINED;
}
