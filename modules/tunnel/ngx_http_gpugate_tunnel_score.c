
/*
 * Copyright (C) gpugate authors
 *
 * How the balancer weighs agents beyond what they report: where they are
 * (the client's region, then its neighbours), how fast their answers
 * began and how often they failed lately (moving averages kept in the
 * zone), and a cooldown for an agent whose requests fail in a row.
 *
 * Which agents may take a request at all (_suits(): not tried yet, the
 * model, the endpoint, not drained, the region pin) is here too, below
 * every file that chooses: the balancer's choice (_pick.c), the prefix
 * and session preference (_affinity.c) and the wait queue (_peer.c) ask
 * it alike.
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
 * requests for "cooldown="; then it is on trial: it takes one request at
 * a time, ahead of the others (score 0), until one succeeds, which also
 * clears its error average; a failure on trial cools it down again.
 *
 * The averages move only with the agent's own requests: one that the
 * score keeps out at low load is measured again when the others are
 * busier, or after a cooldown.
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


/* 1 if the agent in slot "i" (connected or not) may take this request */

ngx_int_t
ngx_http_gpugate_tunnel_suits(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_uint_t i, ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_uint_t  k;

    for (k = 0; k < ctx->ntried; k++) {
        if (ctx->tried[k] == i) {
            return 0;
        }
    }

    if (ctx->model.len
        && !gpugate_tunnel_models_has((char *) a->models, a->models_len,
                                      (char *) ctx->model.data,
                                      ctx->model.len))
    {
        return 0;
    }

    if (!gpugate_tunnel_endpoint_served((uint32_t) a->endpoints,
                                        (int) ctx->endpoint))
    {
        return 0;
    }

    /* drained (sql/006): its streams finish, no new request */
    if (a->drained) {
        return 0;
    }

    /* a request pinned to a region takes none of another */

    return ngx_http_gpugate_tunnel_region_rank(ctx, a) >= 0;
}


ngx_uint_t
ngx_http_gpugate_tunnel_score(ngx_http_gpugate_tunnel_srv_conf_t *conf,
    ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_uint_t  score;

    /* on trial: its one request goes first, it tells whether it is back */

    if (a->cool_until
        && (ngx_msec_int_t) (a->cool_until - ngx_current_msec) <= 0)
    {
        return 0;
    }

    score = a->inflight * 1000;

    if (conf->ttft_step) {
        score += a->ttft / conf->ttft_step * 1000;
    }

    score += a->errors * conf->error_weight / 1000 * 1000;

    return score;
}


/*
 * A cooled agent as the last resort: when no other suitable agent has
 * room, it takes the request up to its capacity rather than the request
 * failing (a pool of one agent gains nothing from a cooldown).
 */

ngx_int_t
ngx_http_gpugate_tunnel_take_cooled(ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_atomic_uint_t  n;

    if (a->revoked) {
        return NGX_BUSY;
    }

    n = ngx_atomic_fetch_add(&a->inflight, 1);

    if (n >= a->capacity) {
        (void) ngx_atomic_fetch_add(&a->inflight, -1);
        return NGX_BUSY;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate tunnel: cooled agent \"%*s\" taken, no other "
                   "has room", a->name_len, a->name);

    return NGX_OK;
}


/* a moving average, 1/8 for the new sample */

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
    ngx_msec_t  ttft, cap;

    if (ctx->answered) {
        return;
    }

    ctx->answered = 1;
    ttft = ngx_current_msec - ctx->handed;

    /*
     * A sample counts for at most four times the average or four
     * ttft_steps: one slow request (a huge prompt, a loaded host) moves
     * the average by half a step at most, never a whole request; a
     * runtime that really slowed down lifts it by up to 3/8 per request.
     */

    cap = ngx_max(4 * a->ttft, 4 * ctx->conf->ttft_step);
    ngx_http_gpugate_tunnel_average(&a->ttft, ngx_min(ttft, cap));

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

            /* a successful trial clears the record that kept it out */

            if (a->cool_until) {
                a->cool_until = 0;
                a->errors = 0;
            }
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


/* "gpugate_tunnel" parameters of the score, the cooldown and aging */

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

    return NGX_DECLINED;
}


/* the weights of the first "gpugate_tunnel" block: the status page's */

static ngx_http_gpugate_tunnel_srv_conf_t *
ngx_http_gpugate_tunnel_first_pool(void)
{
    ngx_http_gpugate_tunnel_srv_conf_t   **tscf;
    ngx_http_gpugate_tunnel_main_conf_t   *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_gpugate_tunnel_module);

    if (tmcf == NULL || tmcf->upstreams.nelts == 0) {
        return NULL;
    }

    tscf = tmcf->upstreams.elts;

    return tscf[0];
}


/*
 * An agent's place in the choice for the status page (at most
 * NGX_HTTP_GPUGATE_TUNNEL_SCORE_JSON bytes): region, the averages, the
 * cooldown, and the score by the first pool's weights.
 */

u_char *
ngx_http_gpugate_tunnel_score_json(u_char *p,
    ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_msec_int_t                       left;
    ngx_http_gpugate_tunnel_srv_conf_t  *conf;

    left = a->cool_until
           ? (ngx_msec_int_t) (a->cool_until - ngx_current_msec) : 0;

    p = ngx_sprintf(p, ",\"region\":\"%*s\",\"ttft_ms\":%uA,"
                    "\"error_ratio\":%uA.%03uA,\"fails\":%uA,"
                    "\"cooldowns\":%uA,\"cooldown_left_ms\":%M,"
                    "\"on_trial\":%s",
                    a->region_len, a->region, a->ttft, a->errors / 1000,
                    a->errors % 1000, a->fails, a->cooldowns,
                    (ngx_msec_t) (left > 0 ? left : 0),
                    a->cool_until && left <= 0 ? "true" : "false");

    conf = ngx_http_gpugate_tunnel_first_pool();

    if (conf) {
        p = ngx_sprintf(p, ",\"score\":%ui",
                        ngx_http_gpugate_tunnel_score(conf, a));
    }

    return p;
}


/* a pool's weights for the status page (SCORE_JSON bytes at most) */

u_char *
ngx_http_gpugate_tunnel_pool_json(u_char *p,
    ngx_http_gpugate_tunnel_srv_conf_t *conf)
{
    return ngx_sprintf(p, ",\"aging_ms\":%M,\"ttft_step_ms\":%M,"
                       "\"error_weight\":%ui,\"failures\":%ui,"
                       "\"cooldown_ms\":%M",
                       conf->aging, conf->ttft_step, conf->error_weight,
                       conf->failures, conf->cooldown);
}


/* one agent's figures for the Prometheus page, copied under the lock */

typedef struct {
    u_char            name[2 * NGX_HTTP_GPUGATE_TUNNEL_NAME_MAX + 1];
                                   /* label-escaped name */
    size_t            name_len;    /* its length */
    u_char            region[NGX_HTTP_GPUGATE_REGION_MAX];
                                   /* region, label-safe by its grammar */
    size_t            region_len;  /* its length */
    ngx_uint_t        ttft;        /* average TTFT, ms */
    ngx_uint_t        errors;      /* average failures, thousandths */
    ngx_uint_t        cooled;      /* taking nothing now */
    ngx_uint_t        inflight;    /* requests on it */
    ngx_uint_t        capacity;    /* requests it takes at once */
} ngx_http_gpugate_tunnel_score_row_t;


static void ngx_http_gpugate_tunnel_score_regions(
    ngx_http_gpugate_out_t *out, ngx_http_gpugate_tunnel_score_row_t *row,
    ngx_uint_t m, ngx_uint_t what);
static void ngx_http_gpugate_tunnel_score_agents(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_tunnel_score_row_t *row, ngx_uint_t m);


/*
 * Regions, spills, cooldowns and each agent's averages (by name: the
 * first instance of a name stands for it).
 */

ngx_int_t
ngx_http_gpugate_tunnel_score_prom(ngx_http_gpugate_out_t *out)
{
    ngx_uint_t                            i, n, m;
    ngx_slab_pool_t                      *shpool;
    ngx_http_gpugate_tunnel_shm_t        *shm;
    ngx_http_gpugate_tunnel_agent_t      *a;
    ngx_http_gpugate_tunnel_score_row_t  *row, *x;

    shm = ngx_http_gpugate_tunnel_shm();
    shpool = ngx_http_gpugate_tunnel_shpool();

    if (shm == NULL || shpool == NULL) {
        return NGX_DECLINED;
    }

    n = ngx_min(shm->high, shm->nagents);

    row = ngx_pcalloc(out->pool,
                      (n + 1) * sizeof(ngx_http_gpugate_tunnel_score_row_t));
    if (row == NULL) {
        return NGX_ERROR;
    }

    m = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < n; i++) {
        a = &shm->agents[i];

        if (!a->used) {
            continue;
        }

        x = &row[m++];
        x->name_len = ngx_http_gpugate_prom_label(x->name, a->name,
                                                  a->name_len)
                      - x->name;
        x->region_len = a->region_len;
        ngx_memcpy(x->region, a->region, a->region_len);
        x->ttft = a->ttft;
        x->errors = a->errors;
        x->cooled = ngx_http_gpugate_tunnel_room(a) == 0;
        x->inflight = a->inflight;
        x->capacity = a->capacity;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_gpugate_prom_family(out, "gpugate_tunnel_region_spills_total",
        "counter", "Requests served outside the client's region because "
        "no agent of it had room.");
    ngx_http_gpugate_out_printf(out,
        "gpugate_tunnel_region_spills_total %uA\n", shm->spills);

    ngx_http_gpugate_prom_family(out, "gpugate_tunnel_cooldowns_total",
        "counter", "Agents cooled down after failures in a row.");
    ngx_http_gpugate_out_printf(out, "gpugate_tunnel_cooldowns_total %uA\n",
                                shm->cooled);

    /* regions: capacity and in flight of their connected agents */

    ngx_http_gpugate_prom_family(out,
        "gpugate_tunnel_region_capacity_requests", "gauge",
        "Requests the connected agents of a region take at once "
        "(region \"\": agents without one).");
    ngx_http_gpugate_tunnel_score_regions(out, row, m, 0);

    ngx_http_gpugate_prom_family(out,
        "gpugate_tunnel_region_inflight_requests", "gauge",
        "Requests in flight on the agents of a region.");
    ngx_http_gpugate_tunnel_score_regions(out, row, m, 1);

    ngx_http_gpugate_tunnel_score_agents(out, row, m);

    return out->failed ? NGX_ERROR : NGX_OK;
}


/* one line per region: the sum of capacity (0) or in flight (1) */

static void
ngx_http_gpugate_tunnel_score_regions(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_tunnel_score_row_t *row, ngx_uint_t m, ngx_uint_t what)
{
    ngx_uint_t  i, k, sum;

    for (i = 0; i < m; i++) {
        sum = 0;

        for (k = 0; k < m; k++) {
            if (row[k].region_len != row[i].region_len
                || ngx_memcmp(row[k].region, row[i].region,
                              row[i].region_len) != 0)
            {
                continue;
            }

            /* an earlier agent of the region wrote its line */

            if (k < i) {
                break;
            }

            sum += what ? row[k].inflight : row[k].capacity;
        }

        if (k < m) {
            continue;
        }

        ngx_http_gpugate_out_printf(out, "%s{region=\"%*s\"} %ui\n",
            what ? "gpugate_tunnel_region_inflight_requests"
                 : "gpugate_tunnel_region_capacity_requests",
            row[i].region_len, row[i].region, sum);
    }
}


/* each agent name's averages and cooldown, the first instance's */

static void
ngx_http_gpugate_tunnel_score_agents(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_tunnel_score_row_t *row, ngx_uint_t m)
{
    ngx_uint_t   f, i, k;

    static const char  *families[][2] = {
        { "gpugate_tunnel_agent_ttft_seconds",
          "Moving average of the time to an answer's first byte." },
        { "gpugate_tunnel_agent_error_ratio",
          "Moving average of the share of requests that failed." },
        { "gpugate_tunnel_agent_cooled",
          "1 while the agent is cooled down after failures in a row." }
    };

    for (f = 0; f < 3; f++) {
        ngx_http_gpugate_prom_family(out, families[f][0], "gauge",
                                     families[f][1]);

        for (i = 0; i < m; i++) {
            for (k = 0; k < i; k++) {
                if (row[k].name_len == row[i].name_len
                    && ngx_memcmp(row[k].name, row[i].name,
                                  row[i].name_len) == 0)
                {
                    break;
                }
            }

            if (k < i) {
                continue;
            }

            ngx_http_gpugate_out_printf(out,
                "%s{agent=\"%*s\",region=\"%*s\"} ", families[f][0],
                row[i].name_len, row[i].name, row[i].region_len,
                row[i].region);

            if (f == 0) {
                ngx_http_gpugate_out_printf(out, "%ui.%03ui\n",
                                            row[i].ttft / 1000,
                                            row[i].ttft % 1000);

            } else if (f == 1) {
                ngx_http_gpugate_out_printf(out, "%ui.%03ui\n",
                                            row[i].errors / 1000,
                                            row[i].errors % 1000);

            } else {
                ngx_http_gpugate_out_printf(out, "%ui\n", row[i].cooled);
            }
        }
    }
}
