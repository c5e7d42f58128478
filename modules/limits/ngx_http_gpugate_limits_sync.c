
/*
 * Copyright (C) gpugate authors
 *
 * Limits across gateway nodes (gpugate_limits_redis): Redis holds the
 * whole gateway's buckets and counters, and no request waits for it.
 * Every "sync=" each worker takes what its host added to the recently
 * used subjects since their last sync and sends it all in one EVAL (one
 * round trip for up to 128 subjects, not one per request); the script
 * drains Redis's buckets to now, adds the deltas and returns the
 * gateway's totals, which become the host's view.  Until the next sync a
 * host may add at most its lease: 1/nodes of what was left at the last,
 * so the hosts together cannot spend more than was left.  While Redis
 * does not answer (3 syncs in a row) each host enforces 1/nodes of every
 * limit on its own counts, logged once and counted.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_limits.h"


/* one subject of a sync in flight */
typedef struct {
    ngx_http_gpugate_limits_node_t  *node;    /* pinned by "syncing" */
    int64_t                          day;     /* its day when claimed */
    int64_t                          period;  /* its budget period */
} ngx_http_gpugate_limits_claim_t;


typedef struct {
    ngx_http_gpugate_redis_t        *redis;   /* this worker's connection */
    ngx_event_t                      timer;   /* the next sync */
    ngx_pool_t                      *pool;    /* the sync in flight's
                                                 strings; NULL: none */
    ngx_http_gpugate_limits_claim_t  claims[NGX_HTTP_GPUGATE_LIMITS_BATCH];
                                              /* its subjects */
    ngx_uint_t                       n;       /* how many */
    ngx_msec_t                       started; /* this worker's start: the
                                                 fallback's clock before a
                                                 first sync */
    u_char                           id[NGX_MAXHOSTNAMELEN + NGX_INT_T_LEN];
                                              /* this host in Redis */
    size_t                           id_len;
} ngx_http_gpugate_limits_syncer_t;


static void ngx_http_gpugate_limits_sync_run(ngx_event_t *ev);
static ngx_uint_t ngx_http_gpugate_limits_sync_claim(
    ngx_http_gpugate_limits_zone_t *z, ngx_http_gpugate_limits_syncer_t *sy);
static void ngx_http_gpugate_limits_sync_done(void *data, redisReply *reply,
    const char *error);
static void ngx_http_gpugate_limits_sync_failed(ngx_http_gpugate_limits_zone_t
    *z, const char *error);
static void ngx_http_gpugate_limits_sync_pull(ngx_http_gpugate_limits_zone_t
    *z, redisReply *list);
static void ngx_http_gpugate_limits_sync_release(
    ngx_http_gpugate_limits_syncer_t *sy);


ngx_uint_t  ngx_http_gpugate_limits_nodes;

static ngx_http_gpugate_limits_syncer_t  *ngx_http_gpugate_limits_syncer;


/*
 * KEYS: three a subject (buckets and in-flight hash, day counter, budget
 * counter).  ARGV: this host, now (ms), the in-flight window (ms), then
 * eight a subject: rpm, tpm (-1: not known here, the buckets are only
 * read), requests and tokens added (bucket units), day tokens and spend
 * added, this host's requests in flight, the subject's name in the
 * active set.  Returns for each subject: requests and tokens used
 * (units), today's tokens, the period's spend, and requests in flight on
 * the other hosts; then the subjects used in the last two minutes.
 */

static const char  ngx_http_gpugate_limits_script[] =
    "local host, now, win = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local out = {}\n"
    "local function drain(u, s, rate, d)\n"
    "  u = tonumber(u) or 0\n"
    "  s = tonumber(s) or now\n"
    "  if now > s then u = u - rate * (now - s) end\n"
    "  if u < 0 or rate == 0 then u = 0 end\n"
    "  u = u + d\n"
    "  if u < 0 then u = 0 end\n"
    "  return u\n"
    "end\n"
    "for i = 0, #KEYS / 3 - 1 do\n"
    "  local b, dk, sk = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]\n"
    "  local a = 4 + i * 8\n"
    "  local h = redis.call('HMGET', b, 'ru', 'rs', 'tu', 'ts')\n"
    "  local ru, tu\n"
    "  if tonumber(ARGV[a]) < 0 then\n"
    "    ru, tu = tonumber(h[1]) or 0, tonumber(h[3]) or 0\n"
    "  else\n"
    "    ru = drain(h[1], h[2], tonumber(ARGV[a]), tonumber(ARGV[a+2]))\n"
    "    tu = drain(h[3], h[4], tonumber(ARGV[a+1]), tonumber(ARGV[a+3]))\n"
    "    redis.call('HSET', b, 'ru', ru, 'rs', now, 'tu', tu, 'ts', now)\n"
    "    redis.call('ZADD', 'gpugate:lim:active', now, ARGV[a+7])\n"
    "  end\n"
    "  redis.call('HSET', b, 'i:' .. host, ARGV[a+6] .. ' ' .. now)\n"
    "  local others = 0\n"
    "  local all = redis.call('HGETALL', b)\n"
    "  for j = 1, #all, 2 do\n"
    "    local f = all[j]\n"
    "    if string.sub(f, 1, 2) == 'i:' and f ~= 'i:' .. host then\n"
    "      local n, t = string.match(all[j + 1], '(%d+) (%d+)')\n"
    "      if n == nil or tonumber(t) + win < now then\n"
    "        redis.call('HDEL', b, f)\n"
    "      else\n"
    "        others = others + tonumber(n)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  redis.call('PEXPIRE', b, 3600000)\n"
    "  local day = redis.call('INCRBY', dk, ARGV[a+4])\n"
    "  if day < 0 then redis.call('SET', dk, 0) day = 0 end\n"
    "  redis.call('EXPIRE', dk, 172800)\n"
    "  local spend = redis.call('INCRBY', sk, ARGV[a+5])\n"
    "  if spend < 0 then redis.call('SET', sk, 0) spend = 0 end\n"
    "  redis.call('EXPIRE', sk, 2764800)\n"
    "  out[#out + 1] = {ru, tu, day, spend, others}\n"
    "end\n"
    "redis.call('ZREMRANGEBYSCORE', 'gpugate:lim:active', '-inf',"
              " now - 120000)\n"
    "out[#out + 1] = redis.call('ZRANGEBYSCORE', 'gpugate:lim:active',"
              " now - 120000, '+inf', 'LIMIT', 0, 256)\n"
    "return out\n";


ngx_int_t
ngx_http_gpugate_limits_sync_start(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_limits_syncer_t     *sy;
    ngx_http_gpugate_limits_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_gpugate_limits_module);

    if (lmcf == NULL || lmcf->zone == NULL || lmcf->redis.addr == NULL) {
        return NGX_OK;
    }

    sy = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_limits_syncer_t));
    if (sy == NULL) {
        return NGX_ERROR;
    }

    sy->redis = ngx_http_gpugate_redis_create(cycle, &lmcf->redis, NULL,
                                              NULL);
    if (sy->redis == NULL) {
        return NGX_ERROR;
    }

    /* the host: its name and its master's pid (a restart is a new host;
       the old one's requests in flight age out of Redis) */

    sy->id_len = ngx_sprintf(sy->id, "%V:%P", &cycle->hostname,
                             (ngx_pid_t) getppid())
                 - sy->id;

    sy->started = ngx_current_msec;
    sy->timer.handler = ngx_http_gpugate_limits_sync_run;
    sy->timer.data = lmcf;
    sy->timer.log = cycle->log;
    sy->timer.cancelable = 1;

    ngx_add_timer(&sy->timer, lmcf->sync);

    ngx_http_gpugate_limits_syncer = sy;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "gpugate limits: syncing with Redis every %M ms",
                   lmcf->sync);

    return NGX_OK;
}


/* the claims of a sync that will not be answered go back to "unsynced" */

static void
ngx_http_gpugate_limits_sync_release(ngx_http_gpugate_limits_syncer_t *sy)
{
    ngx_uint_t                            i, d;
    ngx_http_gpugate_limits_zone_t       *z;
    ngx_http_gpugate_limits_node_t       *ln;
    ngx_http_gpugate_limits_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_gpugate_limits_module);
    z = lmcf->zone->data;

    ngx_shmtx_lock(&z->shpool->mutex);

    for (i = 0; i < sy->n; i++) {
        ln = sy->claims[i].node;

        for (d = 0; d < NGX_HTTP_GPUGATE_LS_N; d++) {
            ln->sync[d].unsynced += ln->sync[d].sending;
            ln->sync[d].sending = 0;
        }

        ln->syncing = 0;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    sy->n = 0;
}


void
ngx_http_gpugate_limits_sync_stop(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_limits_syncer_t  *sy;

    sy = ngx_http_gpugate_limits_syncer;

    if (sy == NULL) {
        return;
    }

    if (sy->timer.timer_set) {
        ngx_del_timer(&sy->timer);
    }

    /* a sync in flight is dropped with the connection: what it carried
       is owed again, for another worker's next sync */

    if (sy->pool) {
        ngx_http_gpugate_limits_sync_release(sy);
        ngx_destroy_pool(sy->pool);
        sy->pool = NULL;
    }

    ngx_http_gpugate_redis_destroy(sy->redis);
    ngx_http_gpugate_limits_syncer = NULL;
}


/* the subjects used in the last two minutes, or owing Redis anything */

static ngx_uint_t
ngx_http_gpugate_limits_due(ngx_http_gpugate_limits_node_t *ln)
{
    ngx_uint_t  d;

    if (ln->syncing) {
        if (ngx_current_msec - ln->sync_at < 10000) {
            return 0;
        }

        /* its worker died with the sync in flight: what it carried is
           owed again (if Redis did take it, it counts twice: never less) */

        for (d = 0; d < NGX_HTTP_GPUGATE_LS_N; d++) {
            ln->sync[d].unsynced += ln->sync[d].sending;
            ln->sync[d].sending = 0;
        }

        ln->syncing = 0;
    }

    if (ln->inflight || ngx_current_msec - ln->used_at < 120000) {
        return 1;
    }

    for (d = 0; d < NGX_HTTP_GPUGATE_LS_N; d++) {
        if (ln->sync[d].unsynced) {
            return 1;
        }
    }

    return 0;
}


/* a subject's keys and arguments */

static ngx_int_t
ngx_http_gpugate_limits_sync_args(ngx_pool_t *pool,
    ngx_http_gpugate_limits_node_t *ln, const char **argv, size_t *argvlen,
    ngx_uint_t *keys, ngx_uint_t *args, ngx_uint_t n)
{
    u_char      *p, *start;
    char         kind;
    int64_t      v[7];
    u_char      *name;
    ngx_uint_t   i;

    p = ngx_pnalloc(pool, 4 * 64 + 7 * NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    kind = (ln->kind == NGX_HTTP_GPUGATE_LIMITS_KEY) ? 'k' : 't';

    start = p;
    p = ngx_sprintf(p, "gpugate:lim:%c:%L", kind, ln->id);
    argv[keys[0] + n * 3] = (const char *) start;
    argvlen[keys[0] + n * 3] = p - start;

    start = p;
    p = ngx_sprintf(p, "gpugate:lim:%c:%L:d:%L", kind, ln->id, ln->day);
    argv[keys[0] + n * 3 + 1] = (const char *) start;
    argvlen[keys[0] + n * 3 + 1] = p - start;

    start = p;
    p = ngx_sprintf(p, "gpugate:lim:%c:%L:b:%ui:%L", kind, ln->id,
                    ln->period_kind, ln->period);
    argv[keys[0] + n * 3 + 2] = (const char *) start;
    argvlen[keys[0] + n * 3 + 2] = p - start;

    /* a node pulled from the active set has not seen its limits yet */

    v[0] = ln->used_at && ln->set_known ? ln->set.rpm : -1;
    v[1] = ln->used_at && ln->set_known ? ln->set.tpm : -1;
    v[2] = ln->sync[NGX_HTTP_GPUGATE_LS_REQ].sending;
    v[3] = ln->sync[NGX_HTTP_GPUGATE_LS_TOK].sending;
    v[4] = ln->sync[NGX_HTTP_GPUGATE_LS_DAY].sending;
    v[5] = ln->sync[NGX_HTTP_GPUGATE_LS_SPEND].sending;
    v[6] = ln->inflight;

    for (i = 0; i < 7; i++) {
        start = p;
        p = ngx_sprintf(p, "%L", v[i]);
        argv[*args + n * 8 + i] = (const char *) start;
        argvlen[*args + n * 8 + i] = p - start;
    }

    name = p;
    p = ngx_sprintf(p, "%c:%L", kind, ln->id);
    argv[*args + n * 8 + 7] = (const char *) name;
    argvlen[*args + n * 8 + 7] = p - name;

    return NGX_OK;
}


/* the subjects due take what they owe Redis into "sending"; under the
   lock */

static ngx_uint_t
ngx_http_gpugate_limits_sync_claim(ngx_http_gpugate_limits_zone_t *z,
    ngx_http_gpugate_limits_syncer_t *sy)
{
    ngx_uint_t                       n, d;
    ngx_queue_t                     *q;
    ngx_http_gpugate_limits_node_t  *ln;

    n = 0;

    for (q = ngx_queue_head(&z->sh->lru);
         q != ngx_queue_sentinel(&z->sh->lru)
         && n < NGX_HTTP_GPUGATE_LIMITS_BATCH;
         q = ngx_queue_next(q))
    {
        ln = ngx_queue_data(q, ngx_http_gpugate_limits_node_t, lru);

        if (!ngx_http_gpugate_limits_due(ln)) {
            continue;
        }

        ln->syncing = 1;
        ln->sync_at = ngx_current_msec;

        for (d = 0; d < NGX_HTTP_GPUGATE_LS_N; d++) {
            ln->sync[d].sending = ln->sync[d].unsynced;
            ln->sync[d].unsynced = 0;
        }

        sy->claims[n].node = ln;
        sy->claims[n].day = ln->day;
        sy->claims[n].period = ln->period;
        n++;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate limits: %ui subjects claimed for a sync", n);

    return n;
}


static void
ngx_http_gpugate_limits_sync_run(ngx_event_t *ev)
{
    ngx_http_gpugate_limits_main_conf_t *lmcf = ev->data;

    u_char                            *p;
    size_t                            *argvlen;
    ngx_int_t                          rc;
    ngx_uint_t                         n, keys, args, argc, i;
    ngx_time_t                        *tp;
    const char                       **argv;
    ngx_http_gpugate_limits_zone_t    *z;
    ngx_http_gpugate_limits_syncer_t  *sy;

    sy = ngx_http_gpugate_limits_syncer;
    z = lmcf->zone->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(&sy->timer, lmcf->sync);

    if (sy->pool) {
        /* the last sync is still out: its answer (or its timeout) first */
        return;
    }

    sy->pool = ngx_create_pool(4096, ev->log);
    if (sy->pool == NULL) {
        return;
    }

    sy->n = 0;
    argc = 6 + NGX_HTTP_GPUGATE_LIMITS_BATCH * 11;

    argv = ngx_palloc(sy->pool, argc * sizeof(char *));
    argvlen = ngx_palloc(sy->pool, argc * sizeof(size_t));
    p = ngx_pnalloc(sy->pool, 3 * NGX_INT64_LEN);

    if (argv == NULL || argvlen == NULL || p == NULL) {
        goto failed;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    /* count the subjects first: the keys come before the arguments */

    n = ngx_http_gpugate_limits_sync_claim(z, sy);

    /* EVAL script numkeys KEYS... host now window ARGS... */

    sy->n = n;
    keys = 3;
    args = 6 + 3 * n;

    for (i = 0; i < n; i++) {
        if (ngx_http_gpugate_limits_sync_args(sy->pool, sy->claims[i].node,
                                              argv, argvlen, &keys, &args,
                                              i)
            != NGX_OK)
        {
            break;
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (n == 0) {
        ngx_destroy_pool(sy->pool);
        sy->pool = NULL;
        return;
    }

    if (i < n) {
        goto failed;
    }

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_gpugate_limits_script;
    argvlen[1] = sizeof(ngx_http_gpugate_limits_script) - 1;

    argv[2] = (const char *) p;
    argvlen[2] = ngx_sprintf(p, "%ui", 3 * n) - p;
    p += argvlen[2];

    argv[args - 3] = (const char *) sy->id;
    argvlen[args - 3] = sy->id_len;

    /* wall-clock ms: every node drains Redis's buckets on one clock
       (nodes' clocks are assumed in sync, as for auth's Redis copies) */

    tp = ngx_timeofday();
    argv[args - 2] = (const char *) p;
    argvlen[args - 2] = ngx_sprintf(p, "%L", (int64_t) tp->sec * 1000
                                             + tp->msec)
                        - p;
    p += argvlen[args - 2];

    argv[args - 1] = (const char *) p;
    argvlen[args - 1] = ngx_sprintf(p, "%M", 3 * lmcf->sync + 1000) - p;

    /* the script reads ARGV[1..3] first: the host, now, the window */

    (void) ngx_atomic_fetch_add((ngx_atomic_t *) &z->sh->commands, 1);

    rc = ngx_http_gpugate_redis_command(sy->redis,
                                        ngx_http_gpugate_limits_sync_done,
                                        lmcf, (int) (args + 8 * n), argv,
                                        argvlen);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "gpugate limits: sync of %ui subjects sent, rc %i", n, rc);

    if (rc == NGX_OK) {
        return;
    }

    ngx_http_gpugate_limits_sync_done(lmcf, NULL,
                                      rc == NGX_DECLINED ? "Redis is down"
                                                         : "no memory");
    return;

failed:

    ngx_http_gpugate_limits_sync_done(lmcf, NULL, "no memory");
}


/* the gateway's totals become this host's view, and its new leases */

static void
ngx_http_gpugate_limits_sync_apply(ngx_http_gpugate_limits_claim_t *cl,
    redisReply *r)
{
    int64_t                          v[5];
    ngx_uint_t                       i;
    ngx_time_t                      *tp;
    ngx_http_gpugate_limits_node_t  *ln;
    ngx_http_gpugate_limits_sync_t  *sy;

    ln = cl->node;
    sy = ln->sync;

    for (i = 0; i < 5; i++) {
        v[i] = (r->element[i]->type == REDIS_REPLY_INTEGER)
               ? r->element[i]->integer : 0;
    }

    /* the view: the gateway's use, plus what this host added since */

    ln->req.used = v[0] + sy[NGX_HTTP_GPUGATE_LS_REQ].unsynced;
    tp = ngx_timeofday();
    ln->req.stamp = (uint64_t) tp->sec * 1000 + tp->msec;
    ln->tok.used = v[1] + sy[NGX_HTTP_GPUGATE_LS_TOK].unsynced;
    ln->tok.stamp = ln->req.stamp;

    if (ln->day == cl->day) {
        ln->day_tokens = ngx_max(v[2] + sy[NGX_HTTP_GPUGATE_LS_DAY].unsynced,
                                 0);
    }

    if (ln->period == cl->period) {
        ln->spent = ngx_max(v[3] + sy[NGX_HTTP_GPUGATE_LS_SPEND].unsynced, 0);
    }

    ln->others = v[4];

    /* each host may add 1/nodes of what is left until its next sync */

    sy[NGX_HTTP_GPUGATE_LS_REQ].global = v[0];
    sy[NGX_HTTP_GPUGATE_LS_TOK].global = v[1];

    if (ln->day == cl->day) {
        sy[NGX_HTTP_GPUGATE_LS_DAY].global = v[2];
    }

    if (ln->period == cl->period) {
        sy[NGX_HTTP_GPUGATE_LS_SPEND].global = v[3];
    }

    for (i = 0; i < NGX_HTTP_GPUGATE_LS_N; i++) {
        sy[i].sending = 0;
    }

    ln->syncing = 0;
}


static void
ngx_http_gpugate_limits_sync_done(void *data, redisReply *reply,
    const char *error)
{
    ngx_http_gpugate_limits_main_conf_t *lmcf = data;

    ngx_uint_t                         i, back;
    ngx_http_gpugate_limits_zone_t    *z;
    ngx_http_gpugate_limits_syncer_t  *sy;

    sy = ngx_http_gpugate_limits_syncer;
    z = lmcf->zone->data;

    if (sy == NULL) {
        return;
    }

    if (error == NULL
        && (reply->type != REDIS_REPLY_ARRAY
            || reply->elements != sy->n + 1
            || reply->element[sy->n]->type != REDIS_REPLY_ARRAY))
    {
        error = (reply->type == REDIS_REPLY_ERROR) ? reply->str
                                                   : "an unexpected reply";
    }

    for (i = 0; error == NULL && i < sy->n; i++) {
        if (reply->element[i]->type != REDIS_REPLY_ARRAY
            || reply->element[i]->elements != 5)
        {
            error = "an unexpected reply";
        }
    }

    if (error) {
        ngx_http_gpugate_limits_sync_failed(z, error);

    } else {
        ngx_shmtx_lock(&z->shpool->mutex);

        for (i = 0; i < sy->n; i++) {
            ngx_http_gpugate_limits_sync_apply(&sy->claims[i],
                                               reply->element[i]);
        }

        ngx_http_gpugate_limits_sync_pull(z, reply->element[sy->n]);

        back = z->sh->down;
        z->sh->down = 0;
        z->sh->synced_at = ngx_current_msec;
        z->sh->syncs++;

        ngx_shmtx_unlock(&z->shpool->mutex);

        if (back) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "gpugate limits: Redis answers again, limits are "
                          "the whole gateway's");
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate limits: sync of %ui subjects applied",
                       sy->n);
    }

    sy->n = 0;

    if (sy->pool) {
        ngx_destroy_pool(sy->pool);
        sy->pool = NULL;
    }
}


/*
 * The subjects used anywhere in the gateway in the last two minutes that
 * this host does not count yet get a node (synced from the next sync
 * on), so the first request a host sees of a busy key already meets the
 * gateway's count.  Under the lock.
 */

static void
ngx_http_gpugate_limits_sync_pull(ngx_http_gpugate_limits_zone_t *z,
    redisReply *list)
{
    u_char                          *p, *last;
    int64_t                          id;
    ngx_str_t                        none;
    ngx_uint_t                       i, kind;
    ngx_http_gpugate_limits_node_t  *ln;

    ngx_str_null(&none);

    for (i = 0; i < list->elements; i++) {
        if (list->element[i]->type != REDIS_REPLY_STRING
            || list->element[i]->len < 3)
        {
            continue;
        }

        p = (u_char *) list->element[i]->str;
        last = p + list->element[i]->len;

        if ((p[0] != 'k' && p[0] != 't') || p[1] != ':') {
            continue;
        }

        kind = (p[0] == 'k') ? NGX_HTTP_GPUGATE_LIMITS_KEY
                             : NGX_HTTP_GPUGATE_LIMITS_TENANT;

        id = ngx_atoof(p + 2, last - p - 2);

        if (id == NGX_ERROR) {
            continue;
        }

        ln = ngx_http_gpugate_limits_node(z, kind, id, &none,
                                          ngx_cycle->log);

        if (ln && ln->used_at == 0) {
            ln->used_at = ngx_current_msec;
        }
    }
}


/*
 * A sync that failed: what it carried is owed again.  Once Redis has not
 * answered for three syncs, each host enforces its share of every limit
 * (the fallback), which is logged once, when it begins.
 */

static void
ngx_http_gpugate_limits_sync_failed(ngx_http_gpugate_limits_zone_t *z,
    const char *error)
{
    ngx_uint_t                            begins;
    ngx_msec_t                            since;
    ngx_http_gpugate_limits_syncer_t     *sy;
    ngx_http_gpugate_limits_main_conf_t  *lmcf;

    sy = ngx_http_gpugate_limits_syncer;
    lmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_gpugate_limits_module);

    ngx_http_gpugate_limits_sync_release(sy);

    ngx_shmtx_lock(&z->shpool->mutex);

    z->sh->sync_errors++;

    since = z->sh->synced_at ? z->sh->synced_at : sy->started;
    begins = 0;

    if (!z->sh->down && ngx_current_msec - since > 3 * lmcf->sync) {
        z->sh->down = 1;
        z->sh->fallbacks++;
        begins = 1;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (begins) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "gpugate limits: Redis does not answer (%s): each of "
                      "the %ui gateway nodes now enforces its share of "
                      "every limit until it does", error, lmcf->nodes);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate limits: sync failed: %s", error);
}
