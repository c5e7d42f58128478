
/*
 * Copyright (C) gpugate authors
 *
 * The agents' side door: SCRAM-SHA-256 in HTTP authentication (RFC 7804)
 * over two requests on one keep-alive connection, then 101.
 *
 * Step 1 reads the agent's verifier from PostgreSQL (never blocking: the
 * request waits with NGX_DONE) and keeps the exchange under a random sid,
 * bound to the connection, for step_timeout.  A connection holds one
 * exchange at most (a new step 1 replaces it) and its close frees it.
 * Step 2 finds it there, so no second query and no state in the client's
 * hands; a sid is used once, so a replayed step 2 is refused.
 *
 * Verifiers PostgreSQL gave are kept in the zone, so that a known agent
 * can handshake while PostgreSQL is down (ngx_http_gpugate_tunnel_
 * verifier.c).  Step 2 serves only models in the agent's allowed_models.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"
#include "ngx_http_gpugate_tunnel_handshake.h"
#include "ngx_http_gpugate_auth_api.h"
#include "gpugate_scram.h"


/* exchanges between step 1 and step 2, per worker; names not in the
   verifier cache get only three quarters, so they cannot starve agents
   that are known */
#define NGX_HTTP_GPUGATE_TUNNEL_PENDING_MAX  1024
#define NGX_HTTP_GPUGATE_TUNNEL_UNKNOWN_MAX  768

/* iteration count of the fake exchange; the key tool uses the same */
#define NGX_HTTP_GPUGATE_TUNNEL_FAKE_ITER    4096




typedef struct {
    ngx_queue_t                 pending;   /* of ..._step_t */
    ngx_uint_t                  npending;  /* their number */
} ngx_http_gpugate_tunnel_hs_t;


static void ngx_http_gpugate_tunnel_step_query(
    ngx_http_gpugate_tunnel_step_t *st);
static void ngx_http_gpugate_tunnel_pg_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error);
static ngx_int_t ngx_http_gpugate_tunnel_row(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_step_t *st, PGresult *res);
static ngx_int_t ngx_http_gpugate_tunnel_challenge(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_step_t *st);
static ngx_int_t ngx_http_gpugate_tunnel_rate(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_loc_conf_t *tlcf);
static ngx_pool_cleanup_t *ngx_http_gpugate_tunnel_conn_step(
    ngx_connection_t *c, ngx_uint_t add);
static void ngx_http_gpugate_tunnel_conn_cleanup(void *data);
static void ngx_http_gpugate_tunnel_step_cleanup(void *data);
static void ngx_http_gpugate_tunnel_step_expire(ngx_event_t *ev);
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

    return ngx_http_gpugate_tunnel_verifier_init(cycle);
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

    ngx_http_gpugate_tunnel_verifier_exit();

    while (!ngx_queue_empty(&hs->pending)) {
        q = ngx_queue_head(&hs->pending);
        st = ngx_queue_data(q, ngx_http_gpugate_tunnel_step_t, queue);
        ngx_http_gpugate_tunnel_step_free(st);
    }

    ngx_http_gpugate_tunnel_hs = NULL;
}


/* 0 before the worker's handshake state is set up, or after its exit */

ngx_uint_t
ngx_http_gpugate_tunnel_hs_ready(void)
{
    return ngx_http_gpugate_tunnel_hs != NULL;
}


/* step 1's query of the agent's row (its SCRAM verifier and state) */
static void
ngx_http_gpugate_tunnel_step_query(ngx_http_gpugate_tunnel_step_t *st)
{
    st->query.stmt = "gpugate_tunnel_agent";
    st->query.nparams = 1;
    st->query.values[0] = st->user;
    st->query.lengths[0] = (int) st->user_len;
    st->query.formats[0] = 0;
    st->query.handler = ngx_http_gpugate_tunnel_pg_done;
    st->query.data = st;
}


ngx_int_t
ngx_http_gpugate_tunnel_step1(ngx_http_request_t *r,
    gpugate_tunnel_auth_t *auth)
{
    ngx_str_t                           msg;
    ngx_int_t                           rc;
    ngx_uint_t                          limit;
    gpugate_scram_rc_t                  src;
    ngx_pool_cleanup_t                 *cln, *rcln;
    ngx_http_gpugate_pg_t              *pg;
    ngx_http_gpugate_tunnel_hs_t       *hs;
    ngx_http_gpugate_tunnel_shm_t      *shm;
    ngx_http_gpugate_tunnel_step_t     *st;
    ngx_http_gpugate_tunnel_loc_conf_t *tlcf;

    hs = ngx_http_gpugate_tunnel_hs;
    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_tunnel_module);

    if (tlcf->rate && ngx_http_gpugate_tunnel_rate(r, tlcf) != NGX_OK) {
        return ngx_http_gpugate_tunnel_hs_refuse(r, NGX_HTTP_TOO_MANY_REQUESTS,
                   "handshake_rate",
                   "Too many tunnel handshakes from this address.");
    }

    if (ngx_http_gpugate_tunnel_decode(r, auth->data, auth->data_len, &msg)
        != NGX_OK)
    {
        return ngx_http_gpugate_tunnel_hs_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake", "Malformed SCRAM message.");
    }

    /* one exchange per connection: a new step 1 replaces the old one */

    cln = ngx_http_gpugate_tunnel_conn_step(r->connection, 1);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cln->data) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate tunnel: step 1 replaces the connection's "
                       "pending exchange");
        ngx_http_gpugate_tunnel_step_free(cln->data);
    }

    st = ngx_calloc(sizeof(ngx_http_gpugate_tunnel_step_t),
                    r->connection->log);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* before the cache or PostgreSQL is asked for the verifier */
    shm = ngx_http_gpugate_tunnel_shm();
    st->bus_msgs = shm ? shm->bus_msgs : 0;

    src = gpugate_scram_server_parse_first(&st->scram, (char *) msg.data,
                                           msg.len, st->user, &st->user_len);

    if (src != GPUGATE_SCRAM_OK) {
        ngx_free(st);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate tunnel: client-first refused: %s",
                      gpugate_scram_strerror(src));

        return ngx_http_gpugate_tunnel_hs_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake", "Malformed SCRAM client-first "
                   "message: %s.", gpugate_scram_strerror(src));
    }

    (void) ngx_http_gpugate_tunnel_cache_get(st);

    limit = st->cached ? NGX_HTTP_GPUGATE_TUNNEL_PENDING_MAX
                       : NGX_HTTP_GPUGATE_TUNNEL_UNKNOWN_MAX;

    if (hs->npending >= limit) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: %ui handshakes pending, refusing "
                      "\"%s\"%s", hs->npending, st->user,
                      st->cached ? "" : " (not a cached agent)");
        ngx_http_gpugate_tunnel_step_free(st);

        return ngx_http_gpugate_tunnel_hs_refuse(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "handshake_busy",
                   "Too many tunnel handshakes in progress.");
    }

    pg = ngx_http_gpugate_auth_pg();

    if (pg == NULL) {
        ngx_http_gpugate_tunnel_step_free(st);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rcln = ngx_pool_cleanup_add(r->pool, 0);
    if (rcln == NULL) {
        ngx_http_gpugate_tunnel_step_free(st);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_gpugate_tunnel_step_query(st);

    /* the exchange is the connection's and counts as pending from now */

    st->cln = cln;
    cln->data = st;
    hs->npending++;
    ngx_queue_insert_tail(&hs->pending, &st->queue);
    st->listed = 1;

    rc = ngx_http_gpugate_pg_run(pg, &st->query);

    if (rc != NGX_OK) {

        if (st->cached) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "gpugate tunnel: PostgreSQL unavailable (%s), "
                          "agent \"%s\" checked against its cached "
                          "verifier", ngx_http_gpugate_pg_state(pg),
                          st->user);

            return ngx_http_gpugate_tunnel_challenge(r, st);
        }

        ngx_http_gpugate_tunnel_step_free(st);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate tunnel: PostgreSQL unavailable (%s), "
                      "agent handshake refused",
                      ngx_http_gpugate_pg_state(pg));

        return ngx_http_gpugate_tunnel_hs_refuse(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "verifier_unavailable",
                   "Agent credentials cannot be checked now.");
    }

    /* the query may outlive the request; the cleanup disowns it */

    st->querying = 1;
    st->request = r;
    st->rcln = rcln;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate tunnel: step 1 of \"%s\" asks PostgreSQL%s",
                   st->user, st->cached ? ", verifier cached" : "");
    rcln->handler = ngx_http_gpugate_tunnel_step_cleanup;
    rcln->data = st;

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
    st->request = NULL;
    st->querying = 0;

    if (st->rcln) {
        st->rcln->handler = NULL;
        st->rcln = NULL;
    }

    if (r == NULL) {
        /* the agent left while we asked */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate tunnel: \"%s\" left during its lookup",
                       st->user);
        ngx_http_gpugate_tunnel_step_free(st);
        return;
    }

    c = r->connection;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "gpugate tunnel: PostgreSQL %s for \"%s\"",
                   res ? "answered" : "failed", st->user);

    if (res == NULL && st->cached) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "gpugate tunnel: PostgreSQL unavailable (%s), agent "
                      "\"%s\" checked against its cached verifier", error,
                      st->user);

        rc = ngx_http_gpugate_tunnel_challenge(r, st);

    } else if (res == NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "gpugate tunnel: verifier lookup for \"%s\" failed: "
                      "%s", st->user, error);

        ngx_http_gpugate_tunnel_step_free(st);

        rc = ngx_http_gpugate_tunnel_hs_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                 "verifier_unavailable",
                 "Agent credentials cannot be checked now.");

    } else if (ngx_http_gpugate_tunnel_row(r, st, res) != NGX_OK) {
        ngx_http_gpugate_tunnel_step_free(st);
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    } else {
        rc = ngx_http_gpugate_tunnel_challenge(r, st);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* PostgreSQL's answer into the exchange, and into the verifier cache */

static ngx_int_t
ngx_http_gpugate_tunnel_row(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_step_t *st, PGresult *res)
{
    size_t     len;
    ngx_int_t  n, count;
    ngx_str_t  name;

    name.data = (u_char *) st->user;
    name.len = st->user_len;

    /* what PostgreSQL says wins over the cache */

    st->cached = 0;
    st->known = 0;

    if (PQntuples(res) != 1 || PQnfields(res) != 10
        || *PQgetvalue(res, 0, 8) == 't')
    {
        if (PQntuples(res) == 1) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "gpugate tunnel: agent \"%s\" is revoked",
                          st->user);
        }

        ngx_http_gpugate_tunnel_cache_drop(&name, 0);

        return NGX_OK;
    }

    st->agent_id = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                             PQgetlength(res, 0, 0));

    n = ngx_atoi((u_char *) PQgetvalue(res, 0, 2), PQgetlength(res, 0, 2));

    st->salt_len = ngx_http_gpugate_tunnel_unhex(
                       (u_char *) PQgetvalue(res, 0, 1),
                       PQgetlength(res, 0, 1), st->salt, sizeof(st->salt));

    if (n == NGX_ERROR || st->salt_len == 0 || st->agent_id <= 0
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
        return NGX_ERROR;
    }

    st->iterations = n;
    st->any_model = (*PQgetvalue(res, 0, 5) == 't');
    st->drained = (*PQgetvalue(res, 0, 9) == 't');

    if (!st->any_model) {

        /*
         * Each name must be a model id the handshake could match: the
         * joined list must split into as many ids as the array holds.
         */

        len = PQgetlength(res, 0, 6);
        count = ngx_atoi((u_char *) PQgetvalue(res, 0, 7),
                         PQgetlength(res, 0, 7));

        if (len > sizeof(st->allowed)
            || count != gpugate_tunnel_check_models(PQgetvalue(res, 0, 6),
                                                    len))
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "gpugate tunnel: agent \"%s\" has malformed "
                          "allowed_models in PostgreSQL (model ids without "
                          "commas or spaces, %uz bytes in all at most), "
                          "refusing it", st->user, sizeof(st->allowed));
            return NGX_ERROR;
        }

        st->allowed_len = len;
        ngx_memcpy(st->allowed, PQgetvalue(res, 0, 6), len);
    }

    st->known = 1;

    ngx_http_gpugate_tunnel_cache_put(st);

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_tunnel_challenge(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_step_t *st)
{
    u_char                         *p, *salt;
    size_t                          len, salt_len;
    unsigned                        iterations;
    ngx_str_t                       b64, raw;
    ngx_table_elt_t                *h;
    gpugate_scram_rc_t              src;
    ngx_http_gpugate_error_t        err;
    ngx_http_gpugate_tunnel_shm_t  *shm;
    u_char                          fake[GPUGATE_SCRAM_FAKE_SALT_LEN];
    u_char                          rnd[GPUGATE_TUNNEL_SID_LEN / 2];
    char                            first[GPUGATE_SCRAM_SERVER_FIRST_SIZE];

    if (st->known || st->cached) {
        st->known = 1;
        salt = st->salt;
        salt_len = st->salt_len;
        iterations = (unsigned) st->iterations;

    } else {
        shm = ngx_http_gpugate_tunnel_shm();
        salt = fake;
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

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate tunnel: challenge sent to \"%s\"", st->user);

    ngx_http_gpugate_status_error(NGX_HTTP_UNAUTHORIZED, &err);
    err.type = NGX_HTTP_GPUGATE_ERR_INVALID;
    err.code = "scram_continue";
    ngx_str_set(&err.message, "Continue the SCRAM-SHA-256 exchange.");

    return ngx_http_gpugate_send_error(r, &err);
}


/*
 * The connection's exchange, if "auth" names it, taken out of the
 * pending list: one use only, whatever happens now the sid is gone.
 */

ngx_http_gpugate_tunnel_step_t *
ngx_http_gpugate_tunnel_step_take(ngx_http_request_t *r,
    gpugate_tunnel_auth_t *auth)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_gpugate_tunnel_step_t  *st;

    /* the exchange is the connection's own: no other one can match */

    cln = ngx_http_gpugate_tunnel_conn_step(r->connection, 0);
    st = cln ? cln->data : NULL;

    if (st == NULL || st->querying || !st->listed
        || ngx_memcmp(st->sid, auth->sid, GPUGATE_TUNNEL_SID_LEN) != 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: unknown, expired or replayed "
                      "handshake sid");
        return NULL;
    }

    ngx_queue_remove(&st->queue);
    st->listed = 0;
    ngx_http_gpugate_tunnel_hs->npending--;

    if (st->expire.timer_set) {
        ngx_del_timer(&st->expire);
    }

    cln->data = NULL;
    st->cln = NULL;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate tunnel: step 2 of \"%s\"", st->user);

    return st;
}


static void
ngx_http_gpugate_tunnel_step_cleanup(void *data)
{
    ngx_http_gpugate_tunnel_step_t *st = data;

    /*
     * The step 1 request ended while its query was out (the agent left):
     * the query's handler frees the exchange; its place is given back now.
     */

    st->rcln = NULL;
    st->request = NULL;

    if (st->listed) {
        ngx_queue_remove(&st->queue);
        st->listed = 0;
        ngx_http_gpugate_tunnel_hs->npending--;
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


void
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

    if (st->cln) {
        st->cln->data = NULL;
        st->cln = NULL;
    }

    /* the query may still sit in the pool; its handler frees us */

    if (st->querying) {
        st->request = NULL;

        if (st->rcln) {
            st->rcln->handler = NULL;
            st->rcln = NULL;
        }

        return;
    }

    ngx_explicit_memzero(st->stored_key, sizeof(st->stored_key));
    ngx_explicit_memzero(st->server_key, sizeof(st->server_key));
    ngx_free(st);
}


/*
 * The connection's exchange lives in a cleanup of the connection's pool,
 * found again by its handler: one per connection however many step 1
 * requests it carries, and run when the connection closes.
 */

static ngx_pool_cleanup_t *
ngx_http_gpugate_tunnel_conn_step(ngx_connection_t *c, ngx_uint_t add)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = c->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_gpugate_tunnel_conn_cleanup) {
            return cln;
        }
    }

    if (!add) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_gpugate_tunnel_conn_cleanup;
    cln->data = NULL;

    return cln;
}


static void
ngx_http_gpugate_tunnel_conn_cleanup(void *data)
{
    ngx_http_gpugate_tunnel_step_t *st = data;

    if (st == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate tunnel: connection closed, exchange of \"%s\" "
                   "freed", st->user);

    st->cln = NULL;
    ngx_http_gpugate_tunnel_step_free(st);
}


/* a leaky bucket per client address, shared by the workers */

static ngx_int_t
ngx_http_gpugate_tunnel_rate(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_loc_conf_t *tlcf)
{
    u_char                          *addr;
    size_t                           len;
    ngx_int_t                        excess;
    ngx_msec_t                       now, ms;
    ngx_slab_pool_t                 *shpool;
    struct sockaddr_in              *sin;
    ngx_http_gpugate_tunnel_rate_t  *e;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6             *sin6;
#endif

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        addr = (u_char *) &sin->sin_addr;
        len = 4;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        addr = sin6->sin6_addr.s6_addr;
        len = 16;
        break;
#endif

    default:
        return NGX_OK;
    }

    shpool = ngx_http_gpugate_tunnel_shpool();
    e = &ngx_http_gpugate_tunnel_shm()->rates[ngx_crc32_short(addr, len)
                                         % NGX_HTTP_GPUGATE_TUNNEL_RATES];
    now = ngx_current_msec;

    ngx_shmtx_lock(&shpool->mutex);

    if (e->addr_len != len || ngx_memcmp(e->addr, addr, len) != 0) {

        /* a new address, or one that takes the place of another */

        ngx_memcpy(e->addr, addr, len);
        e->addr_len = len;
        e->excess = 0;
        e->last = now;

        ngx_shmtx_unlock(&shpool->mutex);

        return NGX_OK;
    }

    ms = now - e->last;

    if (ms > 3600000) {
        ms = 3600000;
    }

    excess = (ngx_int_t) e->excess - (ngx_int_t) (tlcf->rate * ms) + 1000;

    if (excess < 0) {
        excess = 0;
    }

    if ((ngx_uint_t) excess > tlcf->burst * 1000) {
        ngx_shmtx_unlock(&shpool->mutex);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate tunnel: handshakes from %V above rate=%ui "
                      "burst=%ui, refusing", &r->connection->addr_text,
                      tlcf->rate, tlcf->burst);

        return NGX_BUSY;
    }

    e->excess = excess;
    e->last = now;

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


ngx_int_t ngx_cdecl
ngx_http_gpugate_tunnel_hs_refuse(ngx_http_request_t *r, ngx_uint_t status,
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

    /* 429 and 503 get their Retry-After from ngx_http_gpugate_send_error() */

    if (status != NGX_HTTP_UNAUTHORIZED || ngx_strcmp(code, "scram_continue"))
    {
        r->keepalive = 0;
    }

    return ngx_http_gpugate_send_error(r, &err);
}


ngx_int_t
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


ngx_table_elt_t *
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
