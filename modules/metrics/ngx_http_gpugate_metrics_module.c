
/*
 * Copyright (C) gpugate authors
 *
 * Accounting directives and the phases they add:
 *
 *     gpugate_accounting  on | off;                       (http, srv, loc)
 *     gpugate_metrics     [admin_key=KEY];                (location)
 *     gpugate_status      [admin_key=KEY];                (location)
 *     gpugate_usage_ledger "CONNINFO" [gateway=NAME] [batch=N]
 *                         [interval=TIME] [buffer=N] [spill=DIR]
 *                         [exit_timeout=TIME];            (http)
 *
 * The log phase reads the other modules' variables (they are the only
 * interface between gpugate modules) and counts the request in shared
 * memory and, with a ledger, queues its row.  A header filter counts
 * streams while they are answered.  The pages answer GET from shared
 * memory, so any worker answers for all.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_metrics.h"
#include "ngx_http_gpugate_auth_api.h"
#include "ngx_http_gpugate_tunnel_api.h"
#include "ngx_http_gpugate_limits_api.h"
#include "ngx_http_gpugate_trace_api.h"
#include "gpugate_utf8.h"


/* the variables read in the log phase, in mmcf->vars order */
enum {
    NGX_HTTP_GPUGATE_MV_MODEL = 0,
    NGX_HTTP_GPUGATE_MV_TENANT,
    NGX_HTTP_GPUGATE_MV_TENANT_ID,
    NGX_HTTP_GPUGATE_MV_KEY_ID,
    NGX_HTTP_GPUGATE_MV_PROMPT,
    NGX_HTTP_GPUGATE_MV_COMPLETION,
    NGX_HTTP_GPUGATE_MV_TTFT,
    NGX_HTTP_GPUGATE_MV_PARTIAL,
    NGX_HTTP_GPUGATE_MV_STREAM,
    NGX_HTTP_GPUGATE_MV_SOURCE,
    NGX_HTTP_GPUGATE_MV_RESULT,
    NGX_HTTP_GPUGATE_MV_REQUEST_ID
};

static ngx_str_t  ngx_http_gpugate_metrics_var_names[] = {
    ngx_string("gpugate_model"),
    ngx_string("gpugate_tenant"),
    ngx_string("gpugate_tenant_id"),
    ngx_string("gpugate_key_id"),
    ngx_string("gpugate_prompt_tokens"),
    ngx_string("gpugate_completion_tokens"),
    ngx_string("gpugate_ttft_ms"),
    ngx_string("gpugate_usage_partial"),
    ngx_string("gpugate_stream"),
    ngx_string("gpugate_auth_source"),
    ngx_string("gpugate_auth_result"),
    ngx_string("request_id")
};


/* per request: the stream counted in "active" */
typedef struct {
    ngx_http_gpugate_metrics_model_t  *streaming; /* NULL: none */
} ngx_http_gpugate_metrics_ctx_t;


static void *ngx_http_gpugate_metrics_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_gpugate_metrics_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_metrics_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_gpugate_metrics_page(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_gpugate_metrics_ledger(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_gpugate_metrics_add_zone(ngx_conf_t *cf,
    ngx_http_gpugate_metrics_main_conf_t *mmcf);
static ngx_int_t ngx_http_gpugate_metrics_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_gpugate_metrics_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_gpugate_metrics_init_process(ngx_cycle_t *cycle);
static void ngx_http_gpugate_metrics_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_gpugate_metrics_log(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_metrics_start(ngx_http_request_t *r);
static void ngx_http_gpugate_metrics_done(void *data);
static void ngx_http_gpugate_metrics_request_id(ngx_http_request_t *r,
    ngx_http_gpugate_metrics_main_conf_t *mmcf, ngx_str_t *id);
static ngx_int_t ngx_http_gpugate_metrics_header_filter(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_metrics_handler(ngx_http_request_t *r);


static ngx_command_t  ngx_http_gpugate_metrics_commands[] = {

    { ngx_string("gpugate_accounting"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gpugate_metrics_loc_conf_t, accounting),
      NULL },

    { ngx_string("gpugate_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_gpugate_metrics_page,
      NGX_HTTP_LOC_CONF_OFFSET,
      1,
      NULL },

    { ngx_string("gpugate_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_gpugate_metrics_page,
      NGX_HTTP_LOC_CONF_OFFSET,
      2,
      NULL },

    { ngx_string("gpugate_usage_ledger"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_metrics_ledger,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gpugate_metrics_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_gpugate_metrics_init,         /* postconfiguration */

    ngx_http_gpugate_metrics_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gpugate_metrics_create_loc_conf, /* create location conf */
    ngx_http_gpugate_metrics_merge_loc_conf /* merge location configuration */
};


ngx_module_t  ngx_http_gpugate_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_metrics_module_ctx,  /* module context */
    ngx_http_gpugate_metrics_commands,     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_gpugate_metrics_init_module,  /* init module */
    ngx_http_gpugate_metrics_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_gpugate_metrics_exit_process, /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

static ngx_str_t  ngx_http_gpugate_metrics_zone_name =
    ngx_string("gpugate_metrics");

ngx_uint_t  ngx_http_gpugate_metrics_slot = NGX_HTTP_GPUGATE_METRICS_PROCS;


static void *
ngx_http_gpugate_metrics_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_metrics_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    return mmcf;
}


static void *
ngx_http_gpugate_metrics_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_metrics_loc_conf_t  *mlcf;

    mlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_metrics_loc_conf_t));
    if (mlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mlcf->page = 0;
     *     mlcf->admin_key = { 0, NULL };
     */

    mlcf->accounting = NGX_CONF_UNSET;

    return mlcf;
}


static char *
ngx_http_gpugate_metrics_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_gpugate_metrics_loc_conf_t *prev = parent;
    ngx_http_gpugate_metrics_loc_conf_t *conf = child;

    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    ngx_conf_merge_value(conf->accounting, prev->accounting, 0);

    if (conf->accounting) {
        mmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_metrics_module);

        if (ngx_http_gpugate_metrics_add_zone(cf, mmcf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_gpugate_metrics_add_zone(ngx_conf_t *cf,
    ngx_http_gpugate_metrics_main_conf_t *mmcf)
{
    size_t  size;

    if (mmcf->zone) {
        return NGX_OK;
    }

    /* fixed tables: the size follows from them, no directive needed */

    size = ngx_align(sizeof(ngx_http_gpugate_metrics_shm_t), ngx_pagesize)
           + 16 * ngx_pagesize;

    mmcf->zone = ngx_shared_memory_add(cf, &ngx_http_gpugate_metrics_zone_name,
                                       size, &ngx_http_gpugate_metrics_module);
    if (mmcf->zone == NULL) {
        return NGX_ERROR;
    }

    mmcf->zone->init = ngx_http_gpugate_metrics_init_zone;

    return NGX_OK;
}


/* "gpugate_metrics" and "gpugate_status" ("cmd->offset" tells which) */

static char *
ngx_http_gpugate_metrics_page(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_metrics_loc_conf_t *mlcf = conf;

    ngx_str_t                             *value;
    ngx_http_core_loc_conf_t              *clcf;
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    if (mlcf->page) {
        return "is duplicate";
    }

    mlcf->page = cmd->offset;
    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        if (ngx_strncmp(value[1].data, "admin_key=", 10) != 0
            || value[1].len < 10 + 16)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": expected "
                               "admin_key=KEY of 16 or more characters",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        mlcf->admin_key.data = value[1].data + 10;
        mlcf->admin_key.len = value[1].len - 10;
    }

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_metrics_module);

    if (ngx_http_gpugate_metrics_add_zone(cf, mmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_gpugate_metrics_handler;

    return NGX_CONF_OK;
}


/* the ledger's one statement, in its own PostgreSQL pool */

static char *
ngx_http_gpugate_metrics_ledger_stmt(ngx_conf_t *cf,
    ngx_http_gpugate_metrics_main_conf_t *mmcf)
{
    ngx_http_gpugate_pg_stmt_t  *st;

    if (ngx_array_init(&mmcf->pg.statements, cf->pool, 1,
                       sizeof(ngx_http_gpugate_pg_stmt_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    st = ngx_array_push(&mmcf->pg.statements);
    if (st == NULL) {
        return NGX_CONF_ERROR;
    }

    /*
     * One statement per batch: the rows as a JSON array, each with its
     * gateway (a spill file may be sent by another nginx).  A batch sent
     * again after a lost answer inserts nothing twice (the unique key).
     */

    st->name = "gpugate_usage";
    st->nparams = 1;
    st->sql =
        "INSERT INTO usage_events (request_id, gateway, api_key_id, "
        "tenant_id, agent_id, agent_name, model, endpoint, stream, "
        "prompt_tokens, completion_tokens, ttft_ms, duration_ms, status, "
        "partial, cost_micros, created_at, trace_id, batch_id, region, "
        "image_size, reasoning_tokens, reasoning_estimated, "
        "cache_read_tokens, cache_write_tokens, images, priority) "
        "SELECT x.r, x.g, x.k, x.t, "
        "(SELECT id FROM agents WHERE name = x.a), x.a, x.m, x.e, x.s, "
        "x.p, x.c, x.f, x.d, x.st, x.pa, COALESCE(x.co, 0), "
        "to_timestamp(x.at), x.tr, x.b, x.rg, x.\"is\", x.rt, "
        "COALESCE(x.re, false), x.cr, x.cw, x.im, x.pr "
        "FROM json_to_recordset($1::json) AS x(r text, g text, k bigint, "
        "t bigint, a text, m text, e text, s boolean, p integer, "
        "c integer, f integer, d integer, st smallint, pa boolean, "
        "co bigint, at double precision, tr text, b text, rg text, "
        "\"is\" text, rt integer, re boolean, cr integer, cw integer, "
        "im integer, pr smallint) "
        "ON CONFLICT (gateway, request_id) DO NOTHING";

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_metrics_ledger(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_gpugate_metrics_main_conf_t *mmcf = conf;

    u_char      *p;
    ngx_int_t    n;
    ngx_str_t   *value, s, val;
    ngx_uint_t   i;

    if (mmcf->ledger) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mmcf->ledger = 1;
    mmcf->batch = 500;
    mmcf->interval = 1000;
    mmcf->buffer = 16384;
    mmcf->exit_timeout = 10000;

    /*
     * The new cycle's host name, not ngx_cycle's: during a reload that is
     * the cycle being replaced, freed once the new one runs (rows then
     * carried whatever reused its memory).
     */

    mmcf->gateway = cf->cycle->hostname;

    /* libpq wants a C string */

    p = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(p, value[1].data, value[1].len);
    p[value[1].len] = '\0';

    mmcf->pg.conninfo.data = p;
    mmcf->pg.conninfo.len = value[1].len;
    mmcf->pg.connections = 1;
    mmcf->pg.timeout = 10000;
    mmcf->pg.backoff_max = 5000;

    for (i = 2; i < cf->args->nelts; i++) {
        s = value[i];

        if (ngx_http_gpugate_conf_param(&s, "gateway", &val) && val.len) {
            mmcf->gateway = val;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&s, "spill", &val) && val.len) {
            mmcf->spill = val;

            if (ngx_conf_full_name(cf->cycle, &mmcf->spill, 0) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&s, "batch", &val)) {
            n = ngx_atoi(val.data, val.len);

            if (n < 1 || n > 10000) {
                goto invalid;
            }

            mmcf->batch = n;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&s, "buffer", &val)) {
            n = ngx_atoi(val.data, val.len);

            if (n < 1 || n > 10000000) {
                goto invalid;
            }

            mmcf->buffer = n;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&s, "interval", &val)) {
            if (ngx_http_gpugate_conf_msec(cf, &s, &val, 10, &mmcf->interval)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&s, "exit_timeout", &val)) {
            if (ngx_http_gpugate_conf_msec(cf, &s, &val, 0,
                                           &mmcf->exit_timeout)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        goto invalid;
    }

    /* every row carries it: a byte PostgreSQL refuses would refuse all */

    p = ngx_pnalloc(cf->pool, mmcf->gateway.len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mmcf->gateway.len > 255
        || !gpugate_utf8_valid(mmcf->gateway.data, mmcf->gateway.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid gateway name \"%V\": at most 255 "
                           "bytes of UTF-8 without NUL", &mmcf->gateway);
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(p, mmcf->gateway.data, mmcf->gateway.len);
    mmcf->gateway.data = p;

    if (mmcf->buffer < mmcf->batch) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"buffer=\" must be at least \"batch=\"");
        return NGX_CONF_ERROR;
    }

    return ngx_http_gpugate_metrics_ledger_stmt(cf, mmcf);

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_gpugate_metrics_init(ngx_conf_t *cf)
{
    ngx_uint_t                             i;
    ngx_http_handler_pt                   *h;
    ngx_http_core_main_conf_t             *cmcf;
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_metrics_module);

    if (mmcf->ledger
        && ngx_http_gpugate_metrics_add_zone(cf, mmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * Without a ledger the node still names itself on /status and
     * /metrics (several nodes are told apart by it): the host name.
     */

    if (mmcf->gateway.data == NULL) {
        mmcf->gateway = cf->cycle->hostname;
    }

    if (mmcf->zone == NULL) {
        return NGX_OK;
    }

    for (i = 0; i < sizeof(mmcf->vars) / sizeof(mmcf->vars[0]); i++) {
        mmcf->vars[i] = ngx_http_get_variable_index(cf,
                                        &ngx_http_gpugate_metrics_var_names[i]);
        if (mmcf->vars[i] == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gpugate_metrics_log;

    if (mmcf->ledger) {
        h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = ngx_http_gpugate_metrics_start;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_gpugate_metrics_header_filter;

    return NGX_OK;
}


/* in the master, the configuration read: the spill directory usable */

static ngx_int_t
ngx_http_gpugate_metrics_init_module(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_gpugate_metrics_module);

    if (mmcf == NULL || !mmcf->ledger || mmcf->spill.len == 0) {
        return NGX_OK;
    }

    return ngx_http_gpugate_ledger_check_spill(cycle, mmcf);
}


static ngx_int_t
ngx_http_gpugate_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_gpugate_metrics_module);

    if (mmcf == NULL || mmcf->zone == NULL) {
        return NGX_OK;
    }

    ngx_http_gpugate_metrics_attach(mmcf->zone->data,
                                    (ngx_slab_pool_t *) mmcf->zone->shm.addr,
                                    cycle->log);

    return ngx_http_gpugate_ledger_init(cycle, mmcf);
}


static void
ngx_http_gpugate_metrics_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    ngx_http_gpugate_ledger_exit(cycle);

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_gpugate_metrics_module);

    if (mmcf == NULL || mmcf->zone == NULL) {
        return;
    }

    ngx_http_gpugate_metrics_detach(mmcf->zone->data,
                                    (ngx_slab_pool_t *) mmcf->zone->shm.addr,
                                    cycle->log);
}


/*
 * A request of an accounting location with a ledger counts as in flight
 * in the worker's slot until its pool goes (after the log phase), so a
 * worker that dies leaves a count of the rows it will never write.  The
 * cleanup, unlike a module context, survives internal redirects (which
 * run this phase again): it is looked for first.
 */

static ngx_int_t
ngx_http_gpugate_metrics_start(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t                    *cln;
    ngx_http_gpugate_metrics_shm_t        *shm;
    ngx_http_gpugate_metrics_loc_conf_t   *mlcf;
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_metrics_module);

    if (!mlcf->accounting || r != r->main
        || ngx_http_gpugate_metrics_slot == NGX_HTTP_GPUGATE_METRICS_PROCS)
    {
        return NGX_DECLINED;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_gpugate_metrics_done) {
            return NGX_DECLINED;
        }
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_metrics_module);
    shm = mmcf->zone->data;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_DECLINED;
    }

    cln->handler = ngx_http_gpugate_metrics_done;
    cln->data = &shm->procs[ngx_http_gpugate_metrics_slot];

    (void) ngx_atomic_fetch_add(&shm->procs[ngx_http_gpugate_metrics_slot]
                                    .inflight, 1);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate metrics: request in flight");

    return NGX_DECLINED;
}


static void
ngx_http_gpugate_metrics_done(void *data)
{
    ngx_http_gpugate_metrics_proc_t *pr = data;

    /* a slot the exit already emptied stays at 0 */
    if (pr->pid == ngx_pid && pr->inflight) {
        (void) ngx_atomic_fetch_add(&pr->inflight, -1);
    }
}


/* a variable's value, "" when not found */

static void
ngx_http_gpugate_metrics_var(ngx_http_request_t *r, ngx_int_t index,
    ngx_str_t *out)
{
    ngx_http_variable_value_t  *v;

    v = ngx_http_get_indexed_variable(r, index);

    if (v == NULL || v->not_found) {
        out->data = (u_char *) "";
        out->len = 0;
        return;
    }

    out->data = v->data;
    out->len = v->len;
}


static ngx_int_t
ngx_http_gpugate_metrics_num(ngx_http_request_t *r, ngx_int_t index)
{
    ngx_str_t  s;

    ngx_http_gpugate_metrics_var(r, index, &s);

    if (s.len == 0) {
        return -1;
    }

    return ngx_atoi(s.data, s.len);
}


/*
 * A row's request id: $request_id when the request already has one (the
 * operator logs it or sends it upstream: rows then match those logs),
 * else one of our own, 32 hex digits like $request_id: a random prefix
 * per worker and a counter.  $request_id would cost a RAND_bytes() per
 * request, a tenth of the ledger's cost on the gateway.
 */

static void
ngx_http_gpugate_metrics_request_id(ngx_http_request_t *r,
    ngx_http_gpugate_metrics_main_conf_t *mmcf, ngx_str_t *id)
{
    u_char                     *p;
    ngx_http_variable_value_t  *v;

    static uint64_t  prefix, counter;

    v = &r->variables[mmcf->vars[NGX_HTTP_GPUGATE_MV_REQUEST_ID]];

    if (v->valid && !v->not_found && v->len) {
        id->data = v->data;
        id->len = v->len;
        return;
    }

    p = ngx_pnalloc(r->pool, 32);
    if (p == NULL) {
        id->len = 0;
        return;
    }

    if (prefix == 0) {
        if (RAND_bytes((u_char *) &prefix, sizeof(prefix)) != 1) {
            prefix = (uint64_t) ngx_pid << 32 ^ (uint64_t) ngx_time();
        }

        prefix |= 1;
    }

    (void) ngx_sprintf(p, "%016xL%016xL", prefix, ++counter);

    id->data = p;
    id->len = 32;
}


static ngx_int_t
ngx_http_gpugate_metrics_log(ngx_http_request_t *r)
{
    ngx_int_t                              n;
    ngx_str_t                              s;
    ngx_uint_t                             i;
    ngx_time_t                            *tp;
    ngx_msec_int_t                         ms;
    ngx_http_upstream_state_t             *state;
    ngx_http_gpugate_metrics_ctx_t        *ctx;
    ngx_http_gpugate_metrics_req_t         req;
    ngx_http_gpugate_metrics_loc_conf_t   *mlcf;
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    static ngx_str_t  sources[] = {
        ngx_null_string, ngx_string("shm"), ngx_string("redis"),
        ngx_string("postgres"), ngx_string("stale")
    };

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_metrics_module);

    if (ctx && ctx->streaming) {
        /* the stream ends here, whatever ended it */
        (void) ngx_atomic_fetch_add(
                   &ctx->streaming->active[ngx_http_gpugate_metrics_slot], -1);
        ctx->streaming = NULL;
    }

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_metrics_module);

    if (!mlcf->accounting || r != r->main) {
        return NGX_OK;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_metrics_module);

    ngx_memzero(&req, sizeof(ngx_http_gpugate_metrics_req_t));

    ngx_http_gpugate_metrics_var(r, mmcf->vars[NGX_HTTP_GPUGATE_MV_MODEL],
                                 &req.model);
    ngx_http_gpugate_metrics_var(r, mmcf->vars[NGX_HTTP_GPUGATE_MV_TENANT],
                                 &req.tenant);
    if (mmcf->ledger) {
        ngx_http_gpugate_metrics_request_id(r, mmcf, &req.request_id);
    }

    req.key_id = ngx_http_gpugate_metrics_num(r,
                                  mmcf->vars[NGX_HTTP_GPUGATE_MV_KEY_ID]);
    req.tenant_id = ngx_http_gpugate_metrics_num(r,
                                  mmcf->vars[NGX_HTTP_GPUGATE_MV_TENANT_ID]);

    n = ngx_http_gpugate_metrics_num(r,
                                  mmcf->vars[NGX_HTTP_GPUGATE_MV_PROMPT]);
    req.prompt = n > 0 ? (ngx_uint_t) n : 0;
    n = ngx_http_gpugate_metrics_num(r,
                                  mmcf->vars[NGX_HTTP_GPUGATE_MV_COMPLETION]);
    req.completion = n > 0 ? (ngx_uint_t) n : 0;
    req.ttft_ms = ngx_http_gpugate_metrics_num(r,
                                  mmcf->vars[NGX_HTTP_GPUGATE_MV_TTFT]);
    req.partial = ngx_http_gpugate_metrics_num(r,
                                  mmcf->vars[NGX_HTTP_GPUGATE_MV_PARTIAL])
                  == 1;
    req.stream = ngx_http_gpugate_metrics_num(r,
                                  mmcf->vars[NGX_HTTP_GPUGATE_MV_STREAM])
                 == 1;
    req.cost = ngx_http_gpugate_limits_cost(r);
    req.extra = ngx_http_gpugate_ledger_extra_find(r);

    ngx_http_gpugate_metrics_var(r, mmcf->vars[NGX_HTTP_GPUGATE_MV_RESULT],
                                 &s);

    req.auth_result = (s.len == 2) ? 0
                      : (s.len == 7) ? 1
                      : (s.len == 11) ? 2 : -1;

    ngx_http_gpugate_metrics_var(r, mmcf->vars[NGX_HTTP_GPUGATE_MV_SOURCE],
                                 &s);

    for (i = 1; i < 5; i++) {
        if (s.len == sources[i].len
            && ngx_strncmp(s.data, sources[i].data, s.len) == 0)
        {
            req.auth_source = i;
        }
    }

    /* as $status has it: a special response's code first */
    req.status = r->err_status ? r->err_status : r->headers_out.status;

    if (r->connection->error && req.status == 0) {
        /* the client left before an answer: nginx's own 499 */
        req.status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
    }

    /* the ledger cuts it, on a character boundary */
    req.endpoint = r->uri;

    /* the agent (a tunnel peer is named after it), or the server, of
       the last upstream attempt */

    if (r->upstream_states && r->upstream_states->nelts) {
        state = r->upstream_states->elts;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].status >= 500 || state[i].status == 0) {
                req.upstream_errors++;
            }
        }

        if (state[r->upstream_states->nelts - 1].peer) {
            req.agent = *state[r->upstream_states->nelts - 1].peer;
        }
    }

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    req.duration_ms = ms > 0 ? (ngx_msec_t) ms : 0;
    req.sec = r->start_sec;
    req.msec = r->start_msec;

    ngx_http_gpugate_metrics_record(mmcf->zone->data,
                                    (ngx_slab_pool_t *) mmcf->zone->shm.addr,
                                    &req);

    if (mmcf->ledger) {
        ngx_http_gpugate_ledger_add(&req);
    }

    return NGX_OK;
}


/* a stream starts: it counts as active until its log phase */

static ngx_int_t
ngx_http_gpugate_metrics_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                              model;
    ngx_http_gpugate_metrics_ctx_t        *ctx;
    ngx_http_gpugate_metrics_loc_conf_t   *mlcf;
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_metrics_module);

    if (!mlcf->accounting || r != r->main
        || r->headers_out.content_type.len < sizeof("text/event-stream") - 1
        || ngx_strncasecmp(r->headers_out.content_type.data,
                           (u_char *) "text/event-stream",
                           sizeof("text/event-stream") - 1) != 0
        || ngx_http_get_module_ctx(r, ngx_http_gpugate_metrics_module))
    {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_gpugate_metrics_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_gpugate_metrics_module);

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_metrics_module);

    ngx_http_gpugate_metrics_var(r, mmcf->vars[NGX_HTTP_GPUGATE_MV_MODEL],
                                 &model);

    ctx->streaming = ngx_http_gpugate_metrics_model(mmcf->zone->data,
                               (ngx_slab_pool_t *) mmcf->zone->shm.addr,
                               &model);

    (void) ngx_atomic_fetch_add(
               &ctx->streaming->active[ngx_http_gpugate_metrics_slot], 1);

    return ngx_http_next_header_filter(r);
}


/*
 * The node's name (gateway=, else the host name) as a label of its own
 * family: a scrape of several nodes joins on it, and every other series
 * stays as it was (the instance label tells the nodes apart too).
 */

static void
ngx_http_gpugate_metrics_node(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_metrics_main_conf_t *mmcf)
{
    u_char  *name, *last;

    name = ngx_pnalloc(out->pool, 2 * mmcf->gateway.len + 1);
    if (name == NULL) {
        out->failed = 1;
        return;
    }

    last = ngx_http_gpugate_prom_label(name, mmcf->gateway.data,
                                       mmcf->gateway.len);

    ngx_http_gpugate_prom_family(out, "gpugate_gateway_info", "gauge",
        "This gateway node: its name (the ledger's gateway column).");
    ngx_http_gpugate_out_printf(out,
                                "gpugate_gateway_info{gateway=\"%*s\"} 1\n",
                                (size_t) (last - name), name);
}


/* the ledger's and the auth layers' counts, as the status page's head */

static ngx_buf_t *
ngx_http_gpugate_metrics_status_head(ngx_http_request_t *r,
    ngx_http_gpugate_metrics_main_conf_t *mmcf)
{
    u_char                          *p;
    ngx_buf_t                       *b;
    ngx_uint_t                       pending, j;
    ngx_http_gpugate_auth_counts_t   ac;
    ngx_http_gpugate_metrics_shm_t  *shm;

    static const char  *sources[] = {
        "none", "shm", "redis", "postgres", "stale"
    };

    shm = mmcf->zone->data;

    b = ngx_create_temp_buf(r->pool, 1024 + 6 * mmcf->gateway.len);
    if (b == NULL) {
        return NULL;
    }

    pending = 0;

    for (j = 0; j < NGX_HTTP_GPUGATE_METRICS_PROCS; j++) {
        if (shm->procs[j].pid) {
            pending += shm->procs[j].pending;
        }
    }

    p = ngx_cpymem(b->last, "{\"gateway\":\"", sizeof("{\"gateway\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, mmcf->gateway.data, mmcf->gateway.len);

    p = ngx_sprintf(p, "\",\"ledger\":{\"enabled\":%s,\"state\":\"%s\","
                    "\"written\":%uA,\"pending\":%ui,\"dropped\":%uA,"
                    "\"lost\":%uA,\"spilled\":%uA,\"rejected\":%uA,"
                    "\"failures\":%uA},\"auth\":{",
                    mmcf->ledger ? "true" : "false",
                    ngx_http_gpugate_ledger_state(), shm->ledger_written,
                    pending, shm->ledger_dropped, shm->ledger_lost,
                    shm->ledger_spilled, shm->ledger_rejected,
                    shm->ledger_failures);

    for (j = 0; j < NGX_HTTP_GPUGATE_METRICS_SOURCES; j++) {
        p = ngx_sprintf(p, "%s\"%s\":{\"ok\":%uA,\"refused\":%uA,"
                        "\"unavailable\":%uA}", j ? "," : "", sources[j],
                        shm->auth[j][0], shm->auth[j][1], shm->auth[j][2]);
    }

    p = ngx_cpymem(p, "},\"auth_cache\":", sizeof("},\"auth_cache\":") - 1);

    if (ngx_http_gpugate_auth_counts(&ac) == NGX_OK) {
        p = ngx_sprintf(p, "{\"shm_hits\":%uA,\"redis_hits\":%uA,"
                        "\"postgres_hits\":%uA,\"stale\":%uA,"
                        "\"unavailable\":%uA,\"invalidated\":%uA,"
                        "\"evicted\":%uA}",
                        ac.shm_hits, ac.redis_hits, ac.pg_hits, ac.stale,
                        ac.unavailable, ac.invalidated, ac.evicted);
    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    b->last = ngx_cpymem(p, ",\"tunnel\":", sizeof(",\"tunnel\":") - 1);

    return b;
}


/*
 * The pages.  With admin_key=, a request must present it as a Bearer
 * token (compared in constant time); nginx's allow/deny apply as well.
 */

static ngx_int_t
ngx_http_gpugate_metrics_handler(ngx_http_request_t *r)
{
    u_char                                 diff;
    size_t                                 i;
    ngx_int_t                              rc;
    ngx_buf_t                             *b, *agents;
    ngx_str_t                              key;
    ngx_chain_t                           *cl;
    ngx_http_gpugate_out_t                 out;
    ngx_http_gpugate_error_t               err;
    ngx_http_gpugate_metrics_loc_conf_t   *mlcf;
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_metrics_module);

    if (mlcf->admin_key.len) {
        key.len = 0;
        key.data = NULL;

        if (r->headers_in.authorization
            && r->headers_in.authorization->value.len > 7
            && ngx_strncasecmp(r->headers_in.authorization->value.data,
                               (u_char *) "Bearer ", 7) == 0)
        {
            key.data = r->headers_in.authorization->value.data + 7;
            key.len = r->headers_in.authorization->value.len - 7;
        }

        diff = (key.len != mlcf->admin_key.len);

        for (i = 0; i < mlcf->admin_key.len; i++) {
            diff |= (i < key.len ? key.data[i] : 0) ^ mlcf->admin_key.data[i];
        }

        if (diff) {
            ngx_http_gpugate_status_error(NGX_HTTP_UNAUTHORIZED, &err);
            err.code = "invalid_admin_key";
            ngx_str_set(&err.message,
                        "This page needs the gateway's admin key as "
                        "\"Authorization: Bearer KEY\".");

            return ngx_http_gpugate_send_error(r, &err);
        }
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_metrics_module);

    /* a worker that died since the last look: its counts go first */
    ngx_http_gpugate_metrics_reap(mmcf->zone->data,
                                  (ngx_slab_pool_t *) mmcf->zone->shm.addr,
                                  r->connection->log);

    ngx_http_gpugate_out_init(&out, r->pool);

    if (mlcf->page == 1) {
        ngx_http_gpugate_metrics_node(&out, mmcf);

        if (ngx_http_gpugate_metrics_render(&out, mmcf->zone->data) != NGX_OK
            || ngx_http_gpugate_tunnel_prometheus(&out) == NGX_ERROR
            || ngx_http_gpugate_limits_prometheus(&out) == NGX_ERROR
            || ngx_http_gpugate_trace_prometheus(&out) == NGX_ERROR)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

    } else {
        b = ngx_http_gpugate_metrics_status_head(r, mmcf);

        if (b == NULL
            || ngx_http_gpugate_tunnel_status_json(r->pool, &agents)
               == NGX_ERROR)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_gpugate_out_buf(&out, b);

        if (agents == NULL) {
            ngx_http_gpugate_out_printf(&out, "null");

        } else {
            ngx_http_gpugate_out_buf(&out, agents);
        }

        ngx_http_gpugate_out_printf(&out, ",\"limits\":");
        ngx_http_gpugate_limits_status(&out);
        ngx_http_gpugate_out_printf(&out, "}" CRLF);

        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if (out.failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = 0;

    for (cl = out.first; cl; cl = cl->next) {
        r->headers_out.content_length_n += cl->buf->last - cl->buf->pos;

        if (cl->next == NULL) {
            cl->buf->last_buf = (r == r->main) ? 1 : 0;
            cl->buf->last_in_chain = 1;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out.first);
}
