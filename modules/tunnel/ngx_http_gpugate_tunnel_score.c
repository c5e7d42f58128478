
/*
 * Copyright (C) gpugate authors
 *
 * How the balancer weighs agents beyond what they report: where they are
 * (the client's region, then its neighbours), how fast their answers
 * began and how often they failed lately (moving averages kept in the
 * zone), and a cooldown for an agent whose requests fail in a row.
 *
 * Score, in thousandths of a request in flight (smaller is better):
 *
 *     1000 * in_flight
 *   + 1000 * floor(ttft_average / ttft_step)
 *   + 1000 * floor(error_average * error_weight)
 *
 * The averages count in whole requests only, so that agents alike in
 * health still tie and share traffic by the tie-break (shorter queue,
 * more free GPU memory, least recently chosen).  With the defaults
 * (ttft_step=100ms, error_weight=4) an agent whose answers begin 300 ms
 * later weighs as three more requests in flight, and one that fails one
 * request in four as one more.
 *
 * Cooldown: "failures=" failures in a row (an error or a timeout before
 * or during the answer, or a 5xx answer) keep the agent from new
 * requests for "cooldown="; then it takes one request at a time until
 * one succeeds, and a failure on trial cools it down again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"
#include "ngx_http_gpugate_ledger_api.h"


/* weight of a new sample in the moving averages: 1/8 */
#define NGX_HTTP_GPUGATE_TUNNEL_EMA  8


static void ngx_http_gpugate_tunnel_average(ngx_atomic_t *avg,
    ngx_atomic_uint_t sample);


ngx_int_t
ngx_http_gpugate_tunnel_region_rank(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_str_t   *order;
    ngx_uint_t   i, n;

    if (ctx->region.len == 0) {
        return 0;
    }

    if (a->region_len == ctx->region.len
        && ngx_strncasecmp(a->region, ctx->region.data, ctx->region.len)
           == 0)
    {
        return 0;
    }

    if (ctx->pinned) {
        return -1;
    }

    n = ctx->order ? ctx->order->nelts : 0;
    order = ctx->order ? ctx->order->elts : NULL;

    for (i = 0; i < n; i++) {
        if (a->region_len == order[i].len
            && ngx_strncasecmp(a->region, order[i].data, order[i].len) == 0)
        {
            return i + 1;
        }
    }

    return n + 1;
}


ngx_uint_t
ngx_http_gpugate_tunnel_score(ngx_http_gpugate_tunnel_srv_conf_t *conf,
    ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_uint_t  score;

    score = a->inflight * 1000;

    if (conf->ttft_step) {
        score += a->ttft / conf->ttft_step * 1000;
    }

    score += a->errors * conf->error_weight / 1000 * 1000;

    return score;
}


ngx_uint_t
ngx_http_gpugate_tunnel_room(ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_msec_int_t  left;

    if (a->cool_until == 0) {
        return a->capacity;
    }

    left = (ngx_msec_int_t) (a->cool_until - ngx_current_msec);

    if (left > 0) {
        return 0;
    }

    /* on trial: one request until one succeeds */

    return ngx_min(a->capacity, 1);
}


/* a moving average, 1/8 for the new sample; the first sample starts it */

static void
ngx_http_gpugate_tunnel_average(ngx_atomic_t *avg, ngx_atomic_uint_t sample)
{
    ngx_atomic_uint_t  old;

    old = *avg;

    if (sample >= old) {
        *avg = old + (sample - old + NGX_HTTP_GPUGATE_TUNNEL_EMA - 1)
                     / NGX_HTTP_GPUGATE_TUNNEL_EMA;

    } else {
        *avg = old - (old - sample) / NGX_HTTP_GPUGATE_TUNNEL_EMA;
    }
}


/* the connection of agent "a" goes to the request: where, when */

void
ngx_http_gpugate_tunnel_handed(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_http_gpugate_tunnel_shm_t    *shm;
    ngx_http_gpugate_ledger_extra_t  *x;

    ctx->handed = ngx_current_msec;
    ctx->answered = 0;

    ctx->served.len = a->region_len;
    ctx->served.data = ngx_pnalloc(ctx->request->pool, a->region_len + 1);

    if (ctx->served.data == NULL) {
        ctx->served.len = 0;
        return;
    }

    ngx_memcpy(ctx->served.data, a->region, a->region_len);

    if (ctx->region.len && ngx_http_gpugate_tunnel_region_rank(ctx, a) > 0) {
        shm = ngx_http_gpugate_tunnel_shm();
        (void) ngx_atomic_fetch_add(&shm->spills, 1);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "gpugate tunnel: spilled from region \"%V\" to "
                       "\"%V\"", &ctx->region, &ctx->served);
    }

    x = ngx_http_gpugate_ledger_extra(ctx->request);

    if (x) {
        if (ctx->served.len) {
            x->region = ctx->served;
        }

        x->priority = ctx->priority;
    }
}


/* the answer began: a TTFT sample */

void
ngx_http_gpugate_tunnel_first_byte(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_msec_t  ttft;

    if (ctx->answered) {
        return;
    }

    ctx->answered = 1;
    ttft = ngx_current_msec - ctx->handed;

    ngx_http_gpugate_tunnel_average(&a->ttft, ttft);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "gpugate tunnel: agent \"%*s\" first byte after %M ms",
                   a->name_len, a->name, ttft);
}


/* the request is done with agent "a": a success or a failure */

void
ngx_http_gpugate_tunnel_outcome(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_tunnel_agent_t *a, ngx_uint_t failed)
{
    ngx_atomic_uint_t                 fails;
    ngx_http_gpugate_tunnel_shm_t    *shm;
    ngx_http_gpugate_tunnel_srv_conf_t *conf;

    conf = ctx->conf;

    ngx_http_gpugate_tunnel_average(&a->errors, failed ? 1000 : 0);

    if (!failed) {
        if (a->fails || a->cool_until) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log,
                           0, "gpugate tunnel: agent \"%*s\" succeeded, "
                           "cooldown over", a->name_len, a->name);
            a->fails = 0;
            a->cool_until = 0;
        }

        return;
    }

    fails = ngx_atomic_fetch_add(&a->fails, 1) + 1;

    if (conf->failures == 0
        || (fails < conf->failures && a->cool_until == 0))
    {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "gpugate tunnel: agent \"%*s\" failed, %uA in a row",
                       a->name_len, a->name, fails);
        return;
    }

    /* a burst, or a failure on trial: cooled down (again) */

    a->cool_until = (ngx_current_msec + conf->cooldown) | 1;
    (void) ngx_atomic_fetch_add(&a->cooldowns, 1);

    shm = ngx_http_gpugate_tunnel_shm();
    (void) ngx_atomic_fetch_add(&shm->cooled, 1);

    ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                  "gpugate tunnel: agent \"%*s\" failed %uA requests in a "
                  "row, cooled down for %M ms", a->name_len, a->name, fails,
                  conf->cooldown);
}


/* "gpugate_tunnel" parameters of the score, the queue and priorities */

ngx_int_t
ngx_http_gpugate_tunnel_score_param(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_http_gpugate_tunnel_srv_conf_t *tscf)
{
    ngx_int_t    n;
    ngx_str_t    val;
    ngx_msec_t  *msec;

    msec = NULL;

    if (ngx_http_gpugate_conf_param(arg, "aging", &val)) {
        msec = &tscf->aging;

    } else if (ngx_http_gpugate_conf_param(arg, "ttft_step", &val)) {
        msec = &tscf->ttft_step;

    } else if (ngx_http_gpugate_conf_param(arg, "cooldown", &val)) {
        msec = &tscf->cooldown;
    }

    if (msec) {
        return ngx_http_gpugate_conf_msec(cf, arg, &val, 1, msec)
               == NGX_CONF_OK ? NGX_OK : NGX_ERROR;
    }

    if (ngx_http_gpugate_conf_param(arg, "error_weight", &val)
        || ngx_http_gpugate_conf_param(arg, "failures", &val))
    {
        n = ngx_atoi(val.data, val.len);

        if (n == NGX_ERROR || n > 1000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\", expected 0..1000", arg);
            return NGX_ERROR;
        }

        if (arg->data[0] == 'e') {
            tscf->error_weight = n;

        } else {
            tscf->failures = n;
        }

        return NGX_OK;
    }

    if (ngx_http_gpugate_conf_param(arg, "priority", &val)) {
        if (val.len == 7 && ngx_strncmp(val.data, "forward", 7) == 0) {
            tscf->forward_priority = 1;
            return NGX_OK;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\", expected \"priority=forward\"",
                           arg);
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}
