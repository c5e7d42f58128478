
/*
 * Copyright (C) gpugate authors
 *
 * Access phase of the API-key auth: key -> shared memory -> Redis ->
 * PostgreSQL, filling back on the way out.  A request whose key is not
 * cached returns NGX_AGAIN and is parked on a per-worker lookup for its
 * digest; every request with the same key joins that one lookup, and all
 * are resumed (ngx_http_core_run_phases) when it completes.  Nothing here
 * waits: Redis and PostgreSQL are driven by the worker's event loop, each
 * operation under a deadline, so a slow database delays only the requests
 * that need it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_auth.h"
#include "gpugate_apikey.h"


#define NGX_HTTP_GPUGATE_REDIS_PREFIX  "gpugate:key:"
#define NGX_HTTP_GPUGATE_REDIS_KEY_LEN  (sizeof(NGX_HTTP_GPUGATE_REDIS_PREFIX) \
                                         - 1 + 64)

/* a signed Redis entry: "m=" + 64 hex of the HMAC + " " + the JSON */
#define NGX_HTTP_GPUGATE_MAC_HEAD_LEN   (2 + 64 + 1)


typedef struct {
    ngx_rbtree_node_t                  node;      /* in the worker's tree */
    u_char                             digest[NGX_HTTP_GPUGATE_DIGEST_LEN];
                                                  /* the key looked up */
    u_char                             rkey[NGX_HTTP_GPUGATE_REDIS_KEY_LEN];
                                                  /* its Redis key */
    u_char                             prefix[GPUGATE_APIKEY_PREFIX_LEN];
                                                  /* for log lines */
    ngx_queue_t                        waiters;   /* parked requests' ctx */
    ngx_http_gpugate_pg_query_t        query;     /* PostgreSQL stage */
    ngx_pool_t                        *pool;      /* answer's strings */
    ngx_http_gpugate_key_info_t        info;      /* the answer */
    ngx_uint_t                         source;    /* who answered */
    unsigned                           answered:1; /* info is valid; else
                                                     every layer failed */
} ngx_http_gpugate_auth_lookup_t;


typedef struct {
    ngx_http_gpugate_auth_main_conf_t *amcf;      /* configuration */
    ngx_http_gpugate_pg_t             *pg;        /* NULL: not configured */
    ngx_http_gpugate_redis_t          *redis;     /* NULL: not configured */
    ngx_rbtree_t                       lookups;   /* in flight, by digest */
    ngx_rbtree_node_t                  sentinel;  /* the tree's sentinel */
} ngx_http_gpugate_auth_worker_t;


static ngx_int_t ngx_http_gpugate_auth_digest(ngx_http_request_t *r,
    ngx_http_gpugate_auth_loc_conf_t *alcf, ngx_str_t *key, u_char *digest,
    ngx_int_t *rc);
static ngx_int_t ngx_http_gpugate_auth_finish(ngx_http_request_t *r,
    ngx_http_gpugate_auth_ctx_t *ctx);
static ngx_int_t ngx_http_gpugate_auth_reject(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
static ngx_http_gpugate_auth_lookup_t *ngx_http_gpugate_auth_find(
    u_char *digest);
static ngx_int_t ngx_http_gpugate_auth_start(
    ngx_http_gpugate_auth_lookup_t *lk);
static void ngx_http_gpugate_auth_redis_done(void *data, redisReply *reply,
    const char *error);
static ngx_int_t ngx_http_gpugate_auth_pg_start(
    ngx_http_gpugate_auth_lookup_t *lk);
static void ngx_http_gpugate_auth_pg_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error);
static void ngx_http_gpugate_auth_complete(
    ngx_http_gpugate_auth_lookup_t *lk);
static void ngx_http_gpugate_auth_wait_cleanup(void *data);
static void ngx_http_gpugate_auth_noop(void *data, redisReply *reply,
    const char *error);
static ngx_int_t ngx_http_gpugate_auth_from_redis(
    ngx_http_gpugate_auth_lookup_t *lk, const char *s, size_t len,
    time_t *fresh);
static ngx_int_t ngx_http_gpugate_auth_mac(ngx_http_gpugate_auth_lookup_t *lk,
    const char *json, size_t len, u_char *mac);
static void ngx_http_gpugate_auth_message(void *data, ngx_str_t *msg);
static void ngx_http_gpugate_auth_lookup_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


static ngx_http_gpugate_auth_worker_t  *ngx_http_gpugate_auth_worker;

/* who vouches for a request's key (the batch runner); NULL: nobody */
static ngx_http_gpugate_auth_trusted_pt ngx_http_gpugate_auth_trusted;

/*
 * OpenSSL 3 looks the algorithm up on every EVP_Digest(EVP_sha256()) call;
 * fetching it once per worker and reusing one context removes a lookup
 * and an allocation from every request.
 */
static EVP_MD                          *ngx_http_gpugate_auth_md;
static EVP_MD_CTX                      *ngx_http_gpugate_auth_mdctx;


static const char  *ngx_http_gpugate_auth_refusals[] = {
    "ok", "unknown", "revoked", "expired", "disabled"
};


ngx_int_t
ngx_http_gpugate_auth_init_worker(ngx_cycle_t *cycle,
    ngx_http_gpugate_auth_main_conf_t *amcf)
{
    ngx_http_gpugate_auth_worker_t  *w;

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_auth_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->amcf = amcf;

    ngx_http_gpugate_auth_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    ngx_http_gpugate_auth_mdctx = EVP_MD_CTX_new();

    if (ngx_http_gpugate_auth_md == NULL
        || ngx_http_gpugate_auth_mdctx == NULL
        || EVP_DigestInit_ex2(ngx_http_gpugate_auth_mdctx,
                              ngx_http_gpugate_auth_md, NULL) != 1)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "gpugate auth: SHA-256 is not available");
        return NGX_ERROR;
    }

    ngx_rbtree_init(&w->lookups, &w->sentinel,
                    ngx_http_gpugate_auth_lookup_insert);

    if (amcf->pg.conninfo.len) {
        w->pg = ngx_http_gpugate_pg_create(cycle, &amcf->pg);
        if (w->pg == NULL) {
            return NGX_ERROR;
        }
    }

    if (amcf->redis.addr) {
        w->redis = ngx_http_gpugate_redis_create(cycle, &amcf->redis,
                                                 ngx_http_gpugate_auth_message,
                                                 w);
        if (w->redis == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_http_gpugate_auth_worker = w;

    return NGX_OK;
}


/*
 * The tunnel's handshake reads agent verifiers through the same pool, so a
 * worker keeps one set of PostgreSQL connections.
 */

void
ngx_http_gpugate_auth_on_trusted(ngx_http_gpugate_auth_trusted_pt handler)
{
    ngx_http_gpugate_auth_trusted = handler;
}


ngx_http_gpugate_pg_t *
ngx_http_gpugate_auth_pg(void)
{
    if (ngx_http_gpugate_auth_worker == NULL) {
        return NULL;
    }

    return ngx_http_gpugate_auth_worker->pg;
}


ngx_http_gpugate_redis_t *
ngx_http_gpugate_auth_redis_cmd(ngx_str_t *channel)
{
    ngx_http_gpugate_auth_worker_t  *w;

    w = ngx_http_gpugate_auth_worker;

    if (w == NULL || w->redis == NULL) {
        return NULL;
    }

    *channel = w->amcf->redis.channel;

    return w->redis;
}


void
ngx_http_gpugate_auth_exit_worker(void)
{
    ngx_http_gpugate_auth_worker_t  *w;

    w = ngx_http_gpugate_auth_worker;

    if (w == NULL) {
        return;
    }

    /* sockets still open at exit would be reported as leaked */

    if (w->pg) {
        ngx_http_gpugate_pg_destroy(w->pg);
    }

    if (w->redis) {
        ngx_http_gpugate_redis_destroy(w->redis);
    }

    ngx_http_gpugate_auth_worker = NULL;

    EVP_MD_CTX_free(ngx_http_gpugate_auth_mdctx);
    EVP_MD_free(ngx_http_gpugate_auth_md);
    ngx_http_gpugate_auth_mdctx = NULL;
    ngx_http_gpugate_auth_md = NULL;
}


/*
 * The API key the request presents and its digest; NGX_ERROR with what
 * the handler returns in "rc" when there is none or it is malformed.
 */

static ngx_int_t
ngx_http_gpugate_auth_digest(ngx_http_request_t *r,
    ngx_http_gpugate_auth_loc_conf_t *alcf, ngx_str_t *key, u_char *digest,
    ngx_int_t *rc)
{
    if (ngx_http_gpugate_auth_read_key(r, alcf, key) == NGX_DECLINED) {
        *rc = ngx_http_gpugate_auth_reject(r, NGX_HTTP_UNAUTHORIZED,
                  "invalid_api_key",
                  "You didn't provide an API key. Provide it in the "
                  "Authorization header as \"Bearer YOUR_KEY\".");
        return NGX_ERROR;
    }

    if (!gpugate_apikey_valid(key->data, key->len)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate auth: malformed API key (%uz bytes) refused",
                      key->len);

        *rc = ngx_http_gpugate_auth_reject(r, NGX_HTTP_UNAUTHORIZED,
                  "invalid_api_key",
                  "Incorrect API key provided. Keys look like "
                  "sk-gg-... ; check the key and try again.");
        return NGX_ERROR;
    }

    /* NULL type: reinitialise for the algorithm already set at start-up */

    if (EVP_DigestInit_ex2(ngx_http_gpugate_auth_mdctx, NULL, NULL) != 1
        || EVP_DigestUpdate(ngx_http_gpugate_auth_mdctx, key->data, key->len)
           != 1
        || EVP_DigestFinal_ex(ngx_http_gpugate_auth_mdctx, digest, NULL)
           != 1)
    {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_gpugate_auth_handler(ngx_http_request_t *r)
{
    u_char                             *p;
    ngx_int_t                           rc;
    ngx_str_t                           key;
    ngx_pool_cleanup_t                 *cln;
    ngx_http_gpugate_auth_ctx_t        *ctx;
    ngx_http_gpugate_auth_lookup_t     *lk;
    ngx_http_gpugate_auth_loc_conf_t   *alcf;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_auth_module);

    if (!alcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_auth_module);

    if (ctx) {
        if (ctx->waiting) {
            /* woken by something else than our lookup: keep waiting */
            return NGX_AGAIN;
        }

        if (ctx->granted) {
            return NGX_OK;
        }

        return ngx_http_gpugate_auth_finish(r, ctx);
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_auth_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_gpugate_auth_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_gpugate_auth_module);

    /* a batch line: the runner names its key by digest */
    rc = ngx_http_gpugate_auth_trusted
         ? ngx_http_gpugate_auth_trusted(r, ctx->digest) : NGX_DECLINED;

    if (rc == NGX_ERROR) {
        return ngx_http_gpugate_auth_reject(r, NGX_HTTP_UNAUTHORIZED,
                   "invalid_api_key", "Invalid batch runner credential.");
    }

    /* the runner's lines have no key to show: this stands for it */
    ngx_str_set(&key, "batch-runner");

    if (rc == NGX_DECLINED
        && ngx_http_gpugate_auth_digest(r, alcf, &key, ctx->digest, &rc)
           != NGX_OK)
    {
        return rc;
    }

    rc = ngx_http_gpugate_auth_cache_get(amcf->zone, ctx->digest, 0,
                                         &ctx->info, r->pool);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK) {
        ctx->source = NGX_HTTP_GPUGATE_SRC_SHM;
        ctx->answered = 1;
        (void) ngx_atomic_fetch_add(
                   &ngx_http_gpugate_auth_cache_stats(amcf->zone)->shm_hits,
                   1);

        return ngx_http_gpugate_auth_finish(r, ctx);
    }

    /* not cached: join the lookup of this key, or start one */

    lk = ngx_http_gpugate_auth_find(ctx->digest);

    if (lk == NULL) {
        lk = ngx_alloc(sizeof(ngx_http_gpugate_auth_lookup_t),
                       r->connection->log);
        if (lk == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memzero(lk, sizeof(ngx_http_gpugate_auth_lookup_t));

        lk->pool = ngx_create_pool(1024, ngx_cycle->log);
        if (lk->pool == NULL) {
            ngx_free(lk);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(lk->digest, ctx->digest, NGX_HTTP_GPUGATE_DIGEST_LEN);
        ngx_memcpy(lk->prefix, key.data, GPUGATE_APIKEY_PREFIX_LEN);
        p = ngx_cpymem(lk->rkey, NGX_HTTP_GPUGATE_REDIS_PREFIX,
                       sizeof(NGX_HTTP_GPUGATE_REDIS_PREFIX) - 1);
        gpugate_digest_hex(lk->digest, p);
        ngx_queue_init(&lk->waiters);

        lk->node.key = ((ngx_rbtree_key_t) lk->digest[0] << 24)
                       | ((ngx_rbtree_key_t) lk->digest[1] << 16)
                       | ((ngx_rbtree_key_t) lk->digest[2] << 8)
                       | (ngx_rbtree_key_t) lk->digest[3];

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate auth: looking up key %*s",
                       (size_t) GPUGATE_APIKEY_PREFIX_LEN, lk->prefix);

        if (ngx_http_gpugate_auth_start(lk) != NGX_OK) {
            /* no layer can even be asked: answer from stale or 503 */
            ngx_destroy_pool(lk->pool);
            ngx_free(lk);
            return ngx_http_gpugate_auth_finish(r, ctx);
        }

        ngx_rbtree_insert(&ngx_http_gpugate_auth_worker->lookups, &lk->node);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_gpugate_auth_wait_cleanup;
    cln->data = ctx;

    ngx_queue_insert_tail(&lk->waiters, &ctx->wait);
    ctx->waiting = 1;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_gpugate_auth_finish(ngx_http_request_t *r,
    ngx_http_gpugate_auth_ctx_t *ctx)
{
    ngx_int_t                           rc;
    ngx_http_gpugate_key_info_t        *info;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_auth_module);

    if (!ctx->answered) {
        /*
         * No layer could answer.  A key seen recently keeps working for
         * the stale grace period; an unknown one gets 503, never 401: the
         * gateway cannot tell that the key is wrong.
         */

        rc = ngx_http_gpugate_auth_cache_get(amcf->zone, ctx->digest, 1,
                                             &ctx->info, r->pool);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_DECLINED) {
            (void) ngx_atomic_fetch_add(
                &ngx_http_gpugate_auth_cache_stats(amcf->zone)->unavailable,
                1);

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "gpugate auth: key cannot be checked: Redis and "
                          "PostgreSQL unavailable, no cached entry");

            return ngx_http_gpugate_auth_reject(r,
                       NGX_HTTP_SERVICE_UNAVAILABLE, "auth_unavailable",
                       "The gateway cannot verify API keys right now; "
                       "retry shortly.");
        }

        ctx->answered = 1;
        ctx->source = NGX_HTTP_GPUGATE_SRC_STALE;
        (void) ngx_atomic_fetch_add(
                   &ngx_http_gpugate_auth_cache_stats(amcf->zone)->stale, 1);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate auth: key %V answered from a stale cache "
                      "entry: PostgreSQL unavailable", &ctx->info.prefix);
    }

    info = &ctx->info;

    if (info->refusal == NGX_HTTP_GPUGATE_KEY_OK
        && info->expires && info->expires <= ngx_time())
    {
        info->refusal = NGX_HTTP_GPUGATE_KEY_EXPIRED;
    }

    if (info->refusal != NGX_HTTP_GPUGATE_KEY_OK) {
        /* logged before the response: the request is gone after it */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate auth: key %V refused: %s", &info->prefix,
                      ngx_http_gpugate_auth_refusals[
                          info->refusal <= NGX_HTTP_GPUGATE_KEY_DISABLED
                          ? info->refusal : NGX_HTTP_GPUGATE_KEY_UNKNOWN]);
    }

    switch (info->refusal) {

    case NGX_HTTP_GPUGATE_KEY_OK:
        ctx->granted = 1;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate auth: key %V granted", &info->prefix);

        return ngx_http_gpugate_auth_strip(r,
                   ngx_http_get_module_loc_conf(r,
                                                ngx_http_gpugate_auth_module));

    case NGX_HTTP_GPUGATE_KEY_REVOKED:
        rc = ngx_http_gpugate_auth_reject(r, NGX_HTTP_UNAUTHORIZED,
                 "invalid_api_key", "This API key has been revoked.");
        break;

    case NGX_HTTP_GPUGATE_KEY_EXPIRED:
        rc = ngx_http_gpugate_auth_reject(r, NGX_HTTP_UNAUTHORIZED,
                 "invalid_api_key", "This API key has expired.");
        break;

    case NGX_HTTP_GPUGATE_KEY_DISABLED:
        rc = ngx_http_gpugate_auth_reject(r, NGX_HTTP_UNAUTHORIZED,
                 "invalid_api_key",
                 "The account this API key belongs to is disabled.");
        break;

    default:
        rc = ngx_http_gpugate_auth_reject(r, NGX_HTTP_UNAUTHORIZED,
                 "invalid_api_key", "Incorrect API key provided.");
    }

    return rc;
}


/*
 * Sends the error itself (nginx's own 401 page is HTML) and finishes the
 * request, so the phase engine must only stop: NGX_DONE.
 */

static ngx_int_t
ngx_http_gpugate_auth_reject(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_int_t                     rc;
    ngx_table_elt_t              *h;
    ngx_http_gpugate_error_t      err;
    ngx_http_gpugate_auth_ctx_t  *ctx;

    ngx_http_gpugate_status_error(status, &err);
    err.code = code;
    err.message.data = (u_char *) message;
    err.message.len = ngx_strlen(message);

    if (status == NGX_HTTP_UNAUTHORIZED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        ngx_str_set(&h->value, "Bearer realm=\"gpugate\"");
        r->headers_out.www_authenticate = h;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_auth_module);

    if (ctx) {
        /* for $gpugate_auth_result: metrics and logs */
        ctx->refused = (status == NGX_HTTP_UNAUTHORIZED);
        ctx->unavailable = (status == NGX_HTTP_SERVICE_UNAVAILABLE);
    }

    rc = ngx_http_gpugate_send_error(r, &err);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static ngx_http_gpugate_auth_lookup_t *
ngx_http_gpugate_auth_find(u_char *digest)
{
    ngx_int_t                        rc;
    ngx_rbtree_key_t                 key;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_http_gpugate_auth_lookup_t  *lk;

    key = ((ngx_rbtree_key_t) digest[0] << 24)
          | ((ngx_rbtree_key_t) digest[1] << 16)
          | ((ngx_rbtree_key_t) digest[2] << 8)
          | (ngx_rbtree_key_t) digest[3];

    node = ngx_http_gpugate_auth_worker->lookups.root;
    sentinel = ngx_http_gpugate_auth_worker->lookups.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        lk = (ngx_http_gpugate_auth_lookup_t *) node;
        rc = ngx_memcmp(digest, lk->digest, NGX_HTTP_GPUGATE_DIGEST_LEN);

        if (rc == 0) {
            return lk;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_gpugate_auth_lookup_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t               **p;
    ngx_http_gpugate_auth_lookup_t   *a, *b;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            a = (ngx_http_gpugate_auth_lookup_t *) node;
            b = (ngx_http_gpugate_auth_lookup_t *) temp;
            p = (ngx_memcmp(a->digest, b->digest,
                            NGX_HTTP_GPUGATE_DIGEST_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* NGX_OK: a layer was asked and will answer; NGX_DECLINED: none can */

static ngx_int_t
ngx_http_gpugate_auth_start(ngx_http_gpugate_auth_lookup_t *lk)
{
    ngx_int_t                        rc;
    const char                      *argv[2];
    size_t                           argvlen[2];
    ngx_http_gpugate_auth_worker_t  *w;

    w = ngx_http_gpugate_auth_worker;

    if (w->redis) {
        argv[0] = "GET";
        argvlen[0] = 3;
        argv[1] = (const char *) lk->rkey;
        argvlen[1] = sizeof(lk->rkey);

        rc = ngx_http_gpugate_redis_command(w->redis,
                                            ngx_http_gpugate_auth_redis_done,
                                            lk, 2, argv, argvlen);
        if (rc == NGX_OK) {
            return NGX_OK;
        }

        /* Redis down: straight to the truth */
    }

    return ngx_http_gpugate_auth_pg_start(lk);
}


static void
ngx_http_gpugate_auth_redis_done(void *data, redisReply *reply,
    const char *error)
{
    ngx_http_gpugate_auth_lookup_t     *lk = data;

    time_t                              fresh;
    ngx_int_t                           rc;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_http_gpugate_auth_worker->amcf;

    if (reply && reply->type == REDIS_REPLY_STRING) {

        rc = ngx_http_gpugate_auth_from_redis(lk, reply->str, reply->len,
                                              &fresh);

        if (rc == NGX_OK) {
            lk->answered = 1;
            lk->source = NGX_HTTP_GPUGATE_SRC_REDIS;

            (void) ngx_atomic_fetch_add(
                &ngx_http_gpugate_auth_cache_stats(amcf->zone)->redis_hits, 1);

            ngx_http_gpugate_auth_cache_put(amcf->zone, lk->digest, &lk->info,
                fresh, lk->info.refusal ? 0 : amcf->stale);

            ngx_http_gpugate_auth_complete(lk);
            return;
        }

        /* NGX_DECLINED, NGX_ERROR: ignored (and logged), ask PostgreSQL */

    } else if (reply == NULL || reply->type != REDIS_REPLY_NIL) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "gpugate auth: Redis lookup failed (%s), asking "
                      "PostgreSQL", error ? error
                      : (reply->type == REDIS_REPLY_ERROR ? reply->str
                                                          : "bad reply"));
    }

    if (ngx_http_gpugate_auth_pg_start(lk) != NGX_OK) {
        ngx_http_gpugate_auth_complete(lk);
    }
}


/*
 * Checks a Redis entry and reads it into lk->info.  NGX_OK: usable, for
 * "fresh" more seconds.  NGX_DECLINED: older than the shm TTL (a copy may
 * not extend how long an answer of PostgreSQL is trusted: that is what
 * bounds revocation when an invalidation is lost).  NGX_ERROR: malformed
 * or failing the HMAC check.
 */

static ngx_int_t
ngx_http_gpugate_auth_from_redis(ngx_http_gpugate_auth_lookup_t *lk,
    const char *s, size_t len, time_t *fresh)
{
    time_t                              written, age, life;
    ngx_int_t                           rc;
    u_char                              mac[EVP_MAX_MD_SIZE];
    u_char                              given[NGX_HTTP_GPUGATE_DIGEST_LEN];
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_http_gpugate_auth_worker->amcf;

    if (amcf->secret.len) {

        if (len < NGX_HTTP_GPUGATE_MAC_HEAD_LEN
            || ngx_strncmp(s, "m=", 2) != 0
            || s[NGX_HTTP_GPUGATE_MAC_HEAD_LEN - 1] != ' '
            || !gpugate_hex_digest((u_char *) s + 2, 64, given)
            || ngx_http_gpugate_auth_mac(lk, s + NGX_HTTP_GPUGATE_MAC_HEAD_LEN,
                                         len - NGX_HTTP_GPUGATE_MAC_HEAD_LEN,
                                         mac)
               != NGX_OK
            || CRYPTO_memcmp(mac, given, NGX_HTTP_GPUGATE_DIGEST_LEN) != 0)
        {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "gpugate auth: ignoring Redis entry %*s: its HMAC "
                          "does not match the gateway secret (%uA so far)",
                          sizeof(lk->rkey), lk->rkey,
                          (ngx_atomic_uint_t) ngx_atomic_fetch_add(
                              &ngx_http_gpugate_auth_cache_stats(amcf->zone)
                                  ->rejected, 1) + 1);
            return NGX_ERROR;
        }

        s += NGX_HTTP_GPUGATE_MAC_HEAD_LEN;
        len -= NGX_HTTP_GPUGATE_MAC_HEAD_LEN;
    }

    rc = ngx_http_gpugate_auth_from_json(lk->pool, s, len, &lk->info,
                                         &written);

    if (rc == NGX_DECLINED) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate auth: Redis entry %*s has an older format: "
                       "asking PostgreSQL", sizeof(lk->rkey), lk->rkey);
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "gpugate auth: ignoring malformed Redis entry %*s",
                      sizeof(lk->rkey), lk->rkey);
        return NGX_ERROR;
    }

    /* a writer's clock ahead of ours makes an entry young, not older */

    age = ngx_max(ngx_time() - written, 0);
    life = lk->info.refusal ? amcf->negative_ttl : amcf->ttl;

    if (age >= life) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate auth: Redis entry %*s is %T s old, past "
                       "the cache ttl: asking PostgreSQL",
                       sizeof(lk->rkey), lk->rkey, age);
        return NGX_DECLINED;
    }

    *fresh = life - age;

    return NGX_OK;
}


/* HMAC-SHA-256 over the Redis key and the JSON: an entry is bound to it */

static ngx_int_t
ngx_http_gpugate_auth_mac(ngx_http_gpugate_auth_lookup_t *lk,
    const char *json, size_t len, u_char *mac)
{
    u_char                             *buf, *p;
    unsigned int                        n;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_http_gpugate_auth_worker->amcf;

    buf = ngx_pnalloc(lk->pool, sizeof(lk->rkey) + 1 + len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(buf, lk->rkey, sizeof(lk->rkey));
    *p++ = '\n';
    p = ngx_cpymem(p, json, len);

    if (HMAC(EVP_sha256(), amcf->secret.data, (int) amcf->secret.len, buf,
             p - buf, mac, &n)
        == NULL || n != NGX_HTTP_GPUGATE_DIGEST_LEN)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_auth_pg_start(ngx_http_gpugate_auth_lookup_t *lk)
{
    ngx_http_gpugate_auth_worker_t  *w;

    w = ngx_http_gpugate_auth_worker;

    if (w->pg == NULL) {
        return NGX_DECLINED;
    }

    lk->query.stmt = "gpugate_auth_key";
    lk->query.nparams = 1;
    lk->query.values[0] = (const char *) lk->digest;
    lk->query.lengths[0] = NGX_HTTP_GPUGATE_DIGEST_LEN;
    lk->query.formats[0] = 1;
    lk->query.handler = ngx_http_gpugate_auth_pg_done;
    lk->query.data = lk;

    return ngx_http_gpugate_pg_run(w->pg, &lk->query);
}


/*
 * PostgreSQL's answer copied to Redis for the other nodes, signed when a
 * secret is set.  Unknown keys stay out of Redis: a flood of random keys
 * would fill it for every node.  Readers ignore copies older than the shm
 * ttl, so a longer Redis lifetime would only hold dead entries.
 */

static void
ngx_http_gpugate_auth_redis_fill(ngx_http_gpugate_auth_lookup_t *lk)
{
    char                               *json;
    u_char                             *value;
    size_t                              len;
    time_t                              left;
    const char                         *argv[5];
    size_t                              argvlen[5];
    u_char                              ttl[NGX_TIME_T_LEN];
    u_char                              mac[EVP_MAX_MD_SIZE];
    ngx_http_gpugate_key_info_t        *info;
    ngx_http_gpugate_auth_worker_t     *w;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    w = ngx_http_gpugate_auth_worker;
    amcf = w->amcf;
    info = &lk->info;

    if (w->redis == NULL || info->refusal == NGX_HTTP_GPUGATE_KEY_UNKNOWN) {
        return;
    }

    json = ngx_http_gpugate_auth_to_json(info);

    if (json == NULL) {
        return;
    }

    len = ngx_strlen(json);
    value = (u_char *) json;

    if (amcf->secret.len) {
        value = ngx_pnalloc(lk->pool, NGX_HTTP_GPUGATE_MAC_HEAD_LEN + len);

        if (value == NULL
            || ngx_http_gpugate_auth_mac(lk, json, len, mac) != NGX_OK)
        {
            free(json);
            return;
        }

        ngx_memcpy(value, "m=", 2);
        gpugate_digest_hex(mac, value + 2);
        value[NGX_HTTP_GPUGATE_MAC_HEAD_LEN - 1] = ' ';
        ngx_memcpy(value + NGX_HTTP_GPUGATE_MAC_HEAD_LEN, json, len);
        len += NGX_HTTP_GPUGATE_MAC_HEAD_LEN;
    }

    left = info->refusal ? amcf->negative_ttl
                         : ngx_min(amcf->redis_ttl, amcf->ttl);

    if (info->refusal == NGX_HTTP_GPUGATE_KEY_OK && info->expires) {
        left = ngx_min(left, info->expires - ngx_time());
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (const char *) lk->rkey;
    argvlen[1] = sizeof(lk->rkey);
    argv[2] = (const char *) value;
    argvlen[2] = len;
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = (const char *) ttl;
    argvlen[4] = ngx_sprintf(ttl, "%T", ngx_max(left, 1)) - ttl;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate auth: key %*s copied to Redis",
                   (size_t) GPUGATE_APIKEY_PREFIX_LEN, lk->prefix);

    (void) ngx_http_gpugate_redis_command(w->redis,
                                          ngx_http_gpugate_auth_noop,
                                          NULL, 5, argv, argvlen);

    free(json);
}


static void
ngx_http_gpugate_auth_pg_done(ngx_http_gpugate_pg_query_t *q, PGresult *res,
    const char *error)
{
    ngx_http_gpugate_auth_lookup_t  *lk = q->data;

    size_t                              len;
    time_t                              fresh, left;
    ngx_http_gpugate_key_info_t        *info;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_http_gpugate_auth_worker->amcf;
    info = &lk->info;

    if (res == NULL) {
        len = ngx_strlen(error);
        while (len && (error[len - 1] == '\n' || error[len - 1] == ' ')) {
            len--;
        }

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "gpugate auth: PostgreSQL lookup of key %*s failed: "
                      "%*s", (size_t) GPUGATE_APIKEY_PREFIX_LEN, lk->prefix,
                      len, error);

        ngx_http_gpugate_auth_complete(lk);
        return;
    }

    if (ngx_http_gpugate_auth_from_row(lk->pool, res, lk->prefix,
                                       &lk->info)
        != NGX_OK)
    {
        ngx_http_gpugate_auth_complete(lk);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate auth: PostgreSQL answered for key %*s",
                   (size_t) GPUGATE_APIKEY_PREFIX_LEN, lk->prefix);

    lk->answered = 1;
    lk->source = NGX_HTTP_GPUGATE_SRC_POSTGRES;

    (void) ngx_atomic_fetch_add(
               &ngx_http_gpugate_auth_cache_stats(amcf->zone)->pg_hits, 1);

    /* a key must not outlive its expiry in any cache */

    fresh = info->refusal ? amcf->negative_ttl : amcf->ttl;

    if (info->refusal == NGX_HTTP_GPUGATE_KEY_OK && info->expires) {
        left = info->expires - ngx_time();
        fresh = ngx_min(fresh, left);
    }

    ngx_http_gpugate_auth_cache_put(amcf->zone, lk->digest, info, fresh,
                                    info->refusal ? 0 : amcf->stale);

    ngx_http_gpugate_auth_redis_fill(lk);

    ngx_http_gpugate_auth_complete(lk);
}


static void
ngx_http_gpugate_auth_noop(void *data, redisReply *reply, const char *error)
{
    /* a failed fill-back only costs a later PostgreSQL lookup */
}


static void
ngx_http_gpugate_auth_complete(ngx_http_gpugate_auth_lookup_t *lk)
{
    u_char                       *copy;
    size_t                        len;
    ngx_queue_t                   *qn, waiters;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_gpugate_auth_ctx_t  *ctx;

    ngx_rbtree_delete(&ngx_http_gpugate_auth_worker->lookups, &lk->node);

    /* detach first: resumed requests may start new lookups */

    ngx_queue_init(&waiters);

    if (!ngx_queue_empty(&lk->waiters)) {
        waiters = lk->waiters;
        waiters.next->prev = &waiters;
        waiters.prev->next = &waiters;
        ngx_queue_init(&lk->waiters);
    }

    len = lk->info.name.len + lk->info.prefix.len + lk->info.tenant.len
          + lk->info.models.len;

    while (!ngx_queue_empty(&waiters)) {
        qn = ngx_queue_head(&waiters);
        ngx_queue_remove(qn);

        ctx = ngx_queue_data(qn, ngx_http_gpugate_auth_ctx_t, wait);
        r = ctx->request;
        c = r->connection;

        ctx->waiting = 0;

        if (lk->answered) {
            /* the answer's strings die with the lookup: copy them */
            copy = ngx_pnalloc(r->pool, len ? len : 1);

            if (copy != NULL) {
                ctx->info = lk->info;
                ctx->info.name.data = copy;
                copy = ngx_cpymem(copy, lk->info.name.data,
                                  lk->info.name.len);
                ctx->info.prefix.data = copy;
                copy = ngx_cpymem(copy, lk->info.prefix.data,
                                  lk->info.prefix.len);
                ctx->info.tenant.data = copy;
                copy = ngx_cpymem(copy, lk->info.tenant.data,
                                  lk->info.tenant.len);
                ctx->info.models.data = copy;
                (void) ngx_cpymem(copy, lk->info.models.data,
                                  lk->info.models.len);

                ctx->answered = 1;
                ctx->source = lk->source;
            }
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "gpugate auth: lookup done, resuming \"%V\"",
                       &r->uri);

        ngx_http_core_run_phases(r);
        ngx_http_run_posted_requests(c);
    }

    ngx_destroy_pool(lk->pool);
    ngx_free(lk);
}


static void
ngx_http_gpugate_auth_wait_cleanup(void *data)
{
    ngx_http_gpugate_auth_ctx_t  *ctx = data;

    /* a request freed while parked must leave the lookup's list */

    if (ctx->waiting) {
        ngx_queue_remove(&ctx->wait);
        ctx->waiting = 0;
    }
}


static void
ngx_http_gpugate_auth_message(void *data, ngx_str_t *msg)
{
    ngx_http_gpugate_auth_worker_t  *w = data;

    ngx_http_gpugate_auth_invalidate(w->amcf->zone, msg);
}
