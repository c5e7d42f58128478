
/*
 * Copyright (C) gpugate authors
 *
 * The agents' side door: SCRAM-SHA-256 in HTTP authentication (RFC 7804)
 * over two requests on one keep-alive connection, then 101.
 *
 * Step 1 reads the agent's verifier from PostgreSQL (never blocking: the
 * request waits with NGX_DONE) and keeps the exchange in a per-worker
 * table under a random sid, bound to the connection, for step_timeout.
 * Step 2 finds it there, so no second query and no state in the client's
 * hands; a sid is used once, so a replayed step 2 is refused.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"
#include "ngx_http_gpugate_auth.h"
#include "gpugate_scram.h"


/* exchanges between step 1 and step 2, per worker */
#define NGX_HTTP_GPUGATE_TUNNEL_PENDING_MAX  1024

/* iteration count of the fake exchange; the key tool uses the same */
#define NGX_HTTP_GPUGATE_TUNNEL_FAKE_ITER    4096


typedef struct {
    ngx_queue_t                 queue;     /* in the pending list */
    ngx_http_request_t         *request;   /* step 1 waiting for the
                                              query; NULL once answered or
                                              when the client left */
    ngx_http_gpugate_pg_query_t query;     /* the verifier lookup */
    ngx_event_t                 expire;    /* end of the step_timeout */
    ngx_atomic_uint_t           conn;      /* c->number of step 1: step 2
                                              must come on the same
                                              connection */
    u_char                      sid[GPUGATE_TUNNEL_SID_LEN];
                                           /* hex id sent to the agent */
    unsigned                    known:1;   /* the agent exists */
    unsigned                    listed:1;  /* in the pending list */
    int64_t                     agent_id;  /* agents.id */
    size_t                      user_len;  /* length of user */
    char                        user[GPUGATE_SCRAM_USER_SIZE];
                                           /* agent name, NUL-ended */
    unsigned char               stored_key[GPUGATE_SCRAM_KEY_LEN];
                                           /* from the verifier */
    unsigned char               server_key[GPUGATE_SCRAM_KEY_LEN];
                                           /* from the verifier */
    gpugate_scram_server_t      scram;     /* the exchange */
} ngx_http_gpugate_tunnel_step_t;


typedef struct {
    ngx_queue_t                 pending;   /* of ..._step_t */
    ngx_uint_t                  npending;  /* their number */
} ngx_http_gpugate_tunnel_hs_t;


static ngx_int_t ngx_http_gpugate_tunnel_step1(ngx_http_request_t *r,
    gpugate_tunnel_auth_t *auth);
static ngx_int_t ngx_http_gpugate_tunnel_step2(ngx_http_request_t *r,
    gpugate_tunnel_auth_t *auth);
static void ngx_http_gpugate_tunnel_pg_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error);
static ngx_int_t ngx_http_gpugate_tunnel_challenge(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_step_t *st, PGresult *res);
static void ngx_http_gpugate_tunnel_step_cleanup(void *data);
static void ngx_http_gpugate_tunnel_step_expire(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_step_free(
    ngx_http_gpugate_tunnel_step_t *st);
static ngx_int_t ngx_http_gpugate_tunnel_refuse(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *fmt, ...);
static ngx_int_t ngx_http_gpugate_tunnel_decode(ngx_http_request_t *r,
    const char *data, size_t len, ngx_str_t *out);
static ngx_table_elt_t *ngx_http_gpugate_tunnel_header(ngx_http_request_t *r,
    const char *name, size_t len);
static ngx_int_t ngx_http_gpugate_tunnel_unhex(const u_char *hex, size_t len,
    u_char *out, size_t size);


static ngx_http_gpugate_tunnel_hs_t  *ngx_http_gpugate_tunnel_hs;


ngx_int_t
ngx_http_gpugate_tunnel_handshake_init(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_tunnel_hs_t  *hs;

    hs = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_tunnel_hs_t));
    if (hs == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&hs->pending);
    ngx_http_gpugate_tunnel_hs = hs;

    return NGX_OK;
}


void
ngx_http_gpugate_tunnel_handshake_exit(void)
{
    ngx_queue_t                     *q;
    ngx_http_gpugate_tunnel_hs_t    *hs;
    ngx_http_gpugate_tunnel_step_t  *st;

    hs = ngx_http_gpugate_tunnel_hs;

    if (hs == NULL) {
        return;
    }

    /* queries still in the PostgreSQL pool were dropped with it */

    while (!ngx_queue_empty(&hs->pending)) {
        q = ngx_queue_head(&hs->pending);
        st = ngx_queue_data(q, ngx_http_gpugate_tunnel_step_t, queue);
        ngx_http_gpugate_tunnel_step_free(st);
    }

    ngx_http_gpugate_tunnel_hs = NULL;
}


ngx_int_t
ngx_http_gpugate_tunnel_handler(ngx_http_request_t *r)
{
    ngx_table_elt_t        *h;
    gpugate_tunnel_auth_t   auth;

    if (r != r->main) {
        return NGX_HTTP_NOT_FOUND;
    }

    if (r->method != NGX_HTTP_GET) {
        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_NOT_ALLOWED,
                   "method_not_allowed",
                   "The tunnel handshake uses GET.");
    }

    if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake",
                   "A tunnel handshake request has no body.");
    }

    if (ngx_http_gpugate_tunnel_hs == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = r->headers_in.authorization;

    if (h == NULL) {
        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_UNAUTHORIZED,
                   "missing_credentials",
                   "Agents authenticate with SCRAM-SHA-256.");
    }

    if (gpugate_tunnel_parse_auth((char *) h->value.data, h->value.len, 1,
                                  &auth)
        != 0
        || auth.data == NULL)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate tunnel: malformed Authorization header");

        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake",
                   "Malformed SCRAM-SHA-256 Authorization header.");
    }

    if (auth.sid == NULL) {
        return ngx_http_gpugate_tunnel_step1(r, &auth);
    }

    return ngx_http_gpugate_tunnel_step2(r, &auth);
}


static ngx_int_t
ngx_http_gpugate_tunnel_step1(ngx_http_request_t *r,
    gpugate_tunnel_auth_t *auth)
{
    ngx_str_t                        msg;
    ngx_int_t                        rc;
    gpugate_scram_rc_t               src;
    ngx_pool_cleanup_t              *cln;
    ngx_http_gpugate_pg_t           *pg;
    ngx_http_gpugate_tunnel_hs_t    *hs;
    ngx_http_gpugate_tunnel_step_t  *st;

    hs = ngx_http_gpugate_tunnel_hs;

    if (ngx_http_gpugate_tunnel_decode(r, auth->data, auth->data_len, &msg)
        != NGX_OK)
    {
        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake", "Malformed SCRAM message.");
    }

    if (hs->npending >= NGX_HTTP_GPUGATE_TUNNEL_PENDING_MAX) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: %ui handshakes pending, refusing",
                      hs->npending);

        return ngx_http_gpugate_tunnel_refuse(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "handshake_busy",
                   "Too many tunnel handshakes in progress.");
    }

    st = ngx_calloc(sizeof(ngx_http_gpugate_tunnel_step_t),
                    r->connection->log);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    src = gpugate_scram_server_parse_first(&st->scram, (char *) msg.data,
                                           msg.len, st->user, &st->user_len);

    if (src != GPUGATE_SCRAM_OK) {
        ngx_free(st);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate tunnel: client-first refused: %s",
                      gpugate_scram_strerror(src));

        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake", "Malformed SCRAM client-first "
                   "message: %s.", gpugate_scram_strerror(src));
    }

    pg = ngx_http_gpugate_auth_pg();

    if (pg == NULL) {
        ngx_free(st);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->request = r;
    st->conn = r->connection->number;

    st->query.stmt = "gpugate_tunnel_agent";
    st->query.nparams = 1;
    st->query.values[0] = st->user;
    st->query.lengths[0] = (int) st->user_len;
    st->query.formats[0] = 0;
    st->query.handler = ngx_http_gpugate_tunnel_pg_done;
    st->query.data = st;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(st);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_gpugate_pg_run(pg, &st->query);

    if (rc != NGX_OK) {
        ngx_free(st);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate tunnel: PostgreSQL unavailable (%s), "
                      "agent handshake refused",
                      ngx_http_gpugate_pg_state(pg));

        return ngx_http_gpugate_tunnel_refuse(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "verifier_unavailable",
                   "Agent credentials cannot be checked now.");
    }

    /* the query may outlive the request; the cleanup disowns it */

    cln->handler = ngx_http_gpugate_tunnel_step_cleanup;
    cln->data = st;

    hs->npending++;
    ngx_queue_insert_tail(&hs->pending, &st->queue);
    st->listed = 1;

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_gpugate_tunnel_pg_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error)
{
    ngx_http_gpugate_tunnel_step_t *st = q->data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = st->request;

    if (r == NULL) {
        /* the agent left while we asked */
        ngx_http_gpugate_tunnel_step_free(st);
        return;
    }

    st->request = NULL;
    c = r->connection;

    if (res == NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "gpugate tunnel: verifier lookup for \"%s\" failed: "
                      "%s", st->user, error);

        ngx_http_gpugate_tunnel_step_free(st);

        rc = ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                 "verifier_unavailable",
                 "Agent credentials cannot be checked now.");

    } else {
        rc = ngx_http_gpugate_tunnel_challenge(r, st, res);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_gpugate_tunnel_challenge(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_step_t *st, PGresult *res)
{
    u_char                         *p;
    size_t                          len, salt_len;
    unsigned                        iterations;
    ngx_int_t                       n;
    ngx_str_t                       b64, raw;
    ngx_table_elt_t                *h;
    gpugate_scram_rc_t              src;
    ngx_http_gpugate_error_t        err;
    ngx_http_gpugate_tunnel_shm_t  *shm;
    u_char                          salt[GPUGATE_SCRAM_SALT_MAX];
    u_char                          rnd[GPUGATE_TUNNEL_SID_LEN / 2];
    char                            first[GPUGATE_SCRAM_SERVER_FIRST_SIZE];

    if (PQntuples(res) == 1) {
        st->known = 1;
        st->agent_id = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                                 PQgetlength(res, 0, 0));

        n = ngx_atoi((u_char *) PQgetvalue(res, 0, 2),
                     PQgetlength(res, 0, 2));

        salt_len = ngx_http_gpugate_tunnel_unhex(
                       (u_char *) PQgetvalue(res, 0, 1),
                       PQgetlength(res, 0, 1), salt, sizeof(salt));

        if (n == NGX_ERROR || salt_len == 0 || st->agent_id <= 0
            || ngx_http_gpugate_tunnel_unhex(
                   (u_char *) PQgetvalue(res, 0, 3), PQgetlength(res, 0, 3),
                   st->stored_key, GPUGATE_SCRAM_KEY_LEN)
               != GPUGATE_SCRAM_KEY_LEN
            || ngx_http_gpugate_tunnel_unhex(
                   (u_char *) PQgetvalue(res, 0, 4), PQgetlength(res, 0, 4),
                   st->server_key, GPUGATE_SCRAM_KEY_LEN)
               != GPUGATE_SCRAM_KEY_LEN)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "gpugate tunnel: agent \"%s\" has a malformed "
                          "verifier in PostgreSQL", st->user);
            ngx_http_gpugate_tunnel_step_free(st);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        iterations = (unsigned) n;

    } else {
        shm = ngx_http_gpugate_tunnel_shm();
        salt_len = GPUGATE_SCRAM_FAKE_SALT_LEN;
        iterations = NGX_HTTP_GPUGATE_TUNNEL_FAKE_ITER;

        if (gpugate_scram_fake_salt(shm->secret, sizeof(shm->secret),
                                    st->user, st->user_len, salt, salt_len)
            != GPUGATE_SCRAM_OK)
        {
            ngx_http_gpugate_tunnel_step_free(st);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    src = gpugate_scram_server_first(&st->scram, salt, salt_len, iterations,
                                     first, sizeof(first), &len);

    if (src != GPUGATE_SCRAM_OK || RAND_bytes(rnd, sizeof(rnd)) != 1) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate tunnel: server-first for \"%s\" failed: %s",
                      st->user, gpugate_scram_strerror(src));
        ngx_http_gpugate_tunnel_step_free(st);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_hex_dump(st->sid, rnd, sizeof(rnd));

    raw.data = (u_char *) first;
    raw.len = len;

    b64.len = ngx_base64_encoded_length(len);
    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, sizeof("SCRAM-SHA-256 sid=, data=") - 1
                             + GPUGATE_TUNNEL_SID_LEN + b64.len);

    if (h == NULL || p == NULL) {
        ngx_http_gpugate_tunnel_step_free(st);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value.data = p;

    p = ngx_cpymem(p, "SCRAM-SHA-256 sid=", 18);
    p = ngx_cpymem(p, st->sid, GPUGATE_TUNNEL_SID_LEN);
    p = ngx_cpymem(p, ", data=", 7);
    b64.data = p;
    ngx_encode_base64(&b64, &raw);
    h->value.len = p + b64.len - h->value.data;

    /* the exchange now waits for step 2 on this connection */

    st->expire.handler = ngx_http_gpugate_tunnel_step_expire;
    st->expire.data = st;
    st->expire.log = ngx_cycle->log;
    st->expire.cancelable = 1;

    ngx_add_timer(&st->expire,
                  ((ngx_http_gpugate_tunnel_loc_conf_t *)
                   ngx_http_get_module_loc_conf(r,
                       ngx_http_gpugate_tunnel_module))->step_timeout);

    ngx_http_gpugate_status_error(NGX_HTTP_UNAUTHORIZED, &err);
    err.type = NGX_HTTP_GPUGATE_ERR_INVALID;
    err.code = "scram_continue";
    ngx_str_set(&err.message, "Continue the SCRAM-SHA-256 exchange.");

    return ngx_http_gpugate_send_error(r, &err);
}


static ngx_int_t
ngx_http_gpugate_tunnel_step2(ngx_http_request_t *r,
    gpugate_tunnel_auth_t *auth)
{
    int                                 n;
    u_char                             *p;
    size_t                              len;
    ngx_str_t                           msg, name, instance, models, head;
    ngx_str_t                           b64, raw;
    unsigned                            capacity;
    gpugate_tunnel_load_t               load;
    gpugate_tunnel_telemetry_t          tel;
    ngx_queue_t                        *q;
    ngx_table_elt_t                    *upgrade, *hi, *hc, *hm, *hl, *ht;
    gpugate_scram_rc_t                  src;
    ngx_http_gpugate_tunnel_hs_t       *hs;
    ngx_http_gpugate_tunnel_shm_t      *shm;
    ngx_http_gpugate_tunnel_step_t     *st;
    ngx_http_gpugate_tunnel_loc_conf_t *tlcf;
    char                                final[GPUGATE_SCRAM_SERVER_FINAL_SIZE];
    u_char                              buf[512];

    hs = ngx_http_gpugate_tunnel_hs;
    st = NULL;

    for (q = ngx_queue_head(&hs->pending);
         q != ngx_queue_sentinel(&hs->pending);
         q = ngx_queue_next(q))
    {
        st = ngx_queue_data(q, ngx_http_gpugate_tunnel_step_t, queue);

        if (st->request == NULL
            && ngx_memcmp(st->sid, auth->sid, GPUGATE_TUNNEL_SID_LEN) == 0)
        {
            break;
        }

        st = NULL;
    }

    r->keepalive = 0;

    if (st == NULL || st->conn != r->connection->number) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: unknown, expired or replayed "
                      "handshake sid");

        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_UNAUTHORIZED,
                   "invalid_sid", "Unknown or expired SCRAM session.");
    }

    /* one use only: whatever happens now, the sid is gone */

    ngx_queue_remove(&st->queue);
    st->listed = 0;
    hs->npending--;

    if (st->expire.timer_set) {
        ngx_del_timer(&st->expire);
    }

    upgrade = r->headers_in.upgrade;

    if (upgrade == NULL
        || upgrade->value.len != sizeof(GPUGATE_TUNNEL_UPGRADE) - 1
        || ngx_strncasecmp(upgrade->value.data,
                           (u_char *) GPUGATE_TUNNEL_UPGRADE,
                           upgrade->value.len)
           != 0)
    {
        ngx_free(st);
        return ngx_http_gpugate_tunnel_refuse(r, 426, "upgrade_required",
                   "Step 2 must ask for \"Upgrade: %s\".",
                   GPUGATE_TUNNEL_UPGRADE);
    }

    hi = ngx_http_gpugate_tunnel_header(r, "x-gpugate-instance", 18);
    hc = ngx_http_gpugate_tunnel_header(r, "x-gpugate-capacity", 18);
    hm = ngx_http_gpugate_tunnel_header(r, "x-gpugate-models", 16);
    hl = ngx_http_gpugate_tunnel_header(r, "x-gpugate-load", 14);

    if (hl == NULL) {
        ngx_memzero(&load, sizeof(gpugate_tunnel_load_t));

    } else if (gpugate_tunnel_parse_load((char *) hl->value.data,
                                         hl->value.len, &load) != 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\": invalid "
                      "X-Gpugate-Load \"%V\"", st->user, &hl->value);
        ngx_free(st);

        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake", "X-Gpugate-Load must be "
                   "\"queue=N, gpu_free_mb=N\".");
    }

    /* telemetry is no reason to refuse a tunnel: a bad one is ignored */

    ht = ngx_http_gpugate_tunnel_header(r, "x-gpugate-telemetry", 19);

    if (ht && gpugate_tunnel_parse_telemetry((char *) ht->value.data,
                                             ht->value.len, &tel) != 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\": invalid "
                      "X-Gpugate-Telemetry \"%*s\"", st->user,
                      ngx_min(ht->value.len, 128), ht->value.data);
        ht = NULL;
    }

    n = hm ? gpugate_tunnel_check_models((char *) hm->value.data,
                                         hm->value.len)
           : -1;

    if (hi == NULL || hc == NULL || n < 0
        || gpugate_tunnel_check_instance((char *) hi->value.data,
                                         hi->value.len) != 0
        || gpugate_tunnel_parse_capacity((char *) hc->value.data,
                                         hc->value.len, &capacity) != 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\": missing or invalid "
                      "X-Gpugate-Instance, -Capacity or -Models",
                      st->user);
        ngx_free(st);

        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake", "X-Gpugate-Instance (16-32 hex), "
                   "X-Gpugate-Capacity (1-65535) and X-Gpugate-Models are "
                   "required.");
    }

    if (ngx_http_gpugate_tunnel_decode(r, auth->data, auth->data_len, &msg)
        != NGX_OK)
    {
        ngx_free(st);
        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake", "Malformed SCRAM message.");
    }

    src = gpugate_scram_server_final(&st->scram, (char *) msg.data, msg.len,
                                     st->known ? st->stored_key : NULL,
                                     st->known ? st->server_key : NULL,
                                     final, sizeof(final), &len);

    if (src != GPUGATE_SCRAM_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: agent \"%s\" refused: %s",
                      st->user, gpugate_scram_strerror(src));
        ngx_free(st);

        return ngx_http_gpugate_tunnel_refuse(r, NGX_HTTP_UNAUTHORIZED,
                   "invalid_credentials",
                   "Agent authentication failed.");
    }

    /* proven: the 101 and the Authentication-Info the agent checks */

    raw.data = (u_char *) final;
    raw.len = len;
    b64.len = ngx_base64_encoded_length(len);

    shm = ngx_http_gpugate_tunnel_shm();

    p = ngx_snprintf(buf, sizeof(buf) - b64.len - 64,
                     "HTTP/1.1 101 Switching Protocols" CRLF
                     "Upgrade: " GPUGATE_TUNNEL_UPGRADE CRLF
                     "Connection: upgrade" CRLF
                     "X-Gpugate-Worker: slot=%ui, pid=%P, workers=%ui, "
                     "generation=%ui" CRLF
                     "Authentication-Info: sid=",
                     ngx_worker, ngx_pid,
                     ((ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                            ngx_core_module))->worker_processes,
                     ngx_http_gpugate_tunnel_generation());

    p = ngx_cpymem(p, st->sid, GPUGATE_TUNNEL_SID_LEN);
    p = ngx_cpymem(p, ", data=", 7);
    b64.data = p;
    ngx_encode_base64(&b64, &raw);
    p += b64.len;
    p = ngx_cpymem(p, CRLF CRLF, 4);

    head.data = buf;
    head.len = p - buf;

    name.data = (u_char *) st->user;
    name.len = st->user_len;
    instance = hi->value;
    models = hm->value;

    (void) shm;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_tunnel_module);

    if (ngx_http_gpugate_tunnel_attach(r, tlcf, &name, st->agent_id,
                                       &instance, &models, capacity, &load,
                                       ht ? &tel : NULL, &head)
        != NGX_OK)
    {
        ngx_free(st);

        return ngx_http_gpugate_tunnel_refuse(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "tunnel_full",
                   "No room for another agent (gpugate_tunnel_zone).");
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gpugate tunnel: agent \"%s\" connected, capacity %ud, "
                  "models \"%V\"", st->user, capacity, &models);

    ngx_free(st);

    return NGX_DONE;
}


static void
ngx_http_gpugate_tunnel_step_cleanup(void *data)
{
    ngx_http_gpugate_tunnel_step_t *st = data;

    /*
     * Runs when the step 1 request ends.  While the query is out the
     * handler owns the step; afterwards only the pending list does.
     */

    if (st->request) {
        st->request = NULL;

        if (st->listed) {
            ngx_queue_remove(&st->queue);
            st->listed = 0;
            ngx_http_gpugate_tunnel_hs->npending--;
        }
    }
}


static void
ngx_http_gpugate_tunnel_step_expire(ngx_event_t *ev)
{
    ngx_http_gpugate_tunnel_step_t *st = ev->data;

    ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                  "gpugate tunnel: handshake of \"%s\" not completed in "
                  "time", st->user);

    ngx_http_gpugate_tunnel_step_free(st);
}


static void
ngx_http_gpugate_tunnel_step_free(ngx_http_gpugate_tunnel_step_t *st)
{
    if (st->listed) {
        ngx_queue_remove(&st->queue);
        st->listed = 0;
        ngx_http_gpugate_tunnel_hs->npending--;
    }

    if (st->expire.timer_set) {
        ngx_del_timer(&st->expire);
    }

    /* the query may still sit in the pool; it must not call back */

    if (st->request) {
        st->request = NULL;
        return;
    }

    ngx_explicit_memzero(st->stored_key, sizeof(st->stored_key));
    ngx_explicit_memzero(st->server_key, sizeof(st->server_key));
    ngx_free(st);
}


static ngx_int_t
ngx_http_gpugate_tunnel_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *fmt, ...)
{
    u_char                    *p;
    va_list                    args;
    ngx_table_elt_t           *h;
    ngx_http_gpugate_error_t   err;

    p = ngx_pnalloc(r->pool, 256);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_gpugate_status_error(status, &err);
    err.code = code;
    err.message.data = p;

    va_start(args, fmt);
    err.message.len = ngx_vslprintf(p, p + 256, fmt, args) - p;
    va_end(args);

    if (status == NGX_HTTP_UNAUTHORIZED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        ngx_str_set(&h->value, "SCRAM-SHA-256");
    }

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "5");
    }

    if (status != NGX_HTTP_UNAUTHORIZED || ngx_strcmp(code, "scram_continue"))
    {
        r->keepalive = 0;
    }

    return ngx_http_gpugate_send_error(r, &err);
}


static ngx_int_t
ngx_http_gpugate_tunnel_decode(ngx_http_request_t *r, const char *data,
    size_t len, ngx_str_t *out)
{
    ngx_str_t  src;

    if (len > ngx_base64_encoded_length(GPUGATE_SCRAM_MSG_MAX)) {
        return NGX_ERROR;
    }

    src.data = (u_char *) data;
    src.len = len;

    out->data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(len) + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64(out, &src) != NGX_OK || out->len == 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_gpugate_tunnel_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncmp(h[i].lowcase_key, name, len) == 0)
        {
            return &h[i];
        }
    }
}


/* decodes hex into at most "size" bytes; returns the length or 0 */

static ngx_int_t
ngx_http_gpugate_tunnel_unhex(const u_char *hex, size_t len, u_char *out,
    size_t size)
{
    size_t     i;
    ngx_int_t  hi, lo;

    if (len == 0 || len % 2 || len / 2 > size) {
        return 0;
    }

    for (i = 0; i < len; i += 2) {
        hi = ngx_hextoi((u_char *) &hex[i], 1);
        lo = ngx_hextoi((u_char *) &hex[i + 1], 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return 0;
        }

        out[i / 2] = (u_char) (hi * 16 + lo);
    }

    return len / 2;
}
