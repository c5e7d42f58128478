
/*
 * Copyright (C) gpugate authors
 *
 * Limits and budgets of API keys and their tenants: requests and tokens
 * per minute, requests in flight, tokens per UTC day, spend per day or
 * month.  The router admits a request once its body is read: its token
 * estimate (prompt from the body's size, completion from max_tokens or a
 * default) is reserved against every limit of the key and of the tenant
 * at once, under the zone's lock, or the request gets 429 in OpenAI's
 * JSON with a Retry-After of when capacity returns.  When the request
 * ends (answered, cut, or the client gone: the pool cleanup runs in every
 * case) the reservation is settled with the usage the response filter
 * read.  Every answer of a limited key carries OpenAI's x-ratelimit-*
 * headers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_limits.h"
#include "ngx_http_gpugate_openai.h"


static ngx_int_t ngx_http_gpugate_limits_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_gpugate_limits_init(ngx_conf_t *cf);
static void *ngx_http_gpugate_limits_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_gpugate_limits_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_limits_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_gpugate_limits_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gpugate_limits_estimate(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_gpugate_limits_redis(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_gpugate_limits_init_process(ngx_cycle_t *cycle);
static void ngx_http_gpugate_limits_exit_process(ngx_cycle_t *cycle);
static ngx_uint_t ngx_http_gpugate_limits_none(
    ngx_http_gpugate_limit_set_t *set);
static ngx_int_t ngx_http_gpugate_limits_refused(ngx_http_request_t *r,
    ngx_http_gpugate_limits_ctx_t *ctx);
static ngx_int_t ngx_http_gpugate_limits_cut(ngx_http_request_t *r,
    ngx_http_gpugate_limits_ctx_t *ctx, ngx_http_gpugate_openai_ctx_t *octx,
    ngx_chain_t *in);
static void ngx_http_gpugate_limits_cleanup(void *data);
static int64_t ngx_http_gpugate_limits_used(ngx_http_request_t *r,
    ngx_http_gpugate_limits_ctx_t *ctx);
static int64_t ngx_http_gpugate_limits_spend(ngx_http_request_t *r,
    ngx_http_gpugate_limits_ctx_t *ctx);
static ngx_int_t ngx_http_gpugate_limits_header_filter(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_limits_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_gpugate_limits_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_command_t  ngx_http_gpugate_limits_commands[] = {

    { ngx_string("gpugate_limits_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_gpugate_limits_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_limits_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_limits_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_limits"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gpugate_limits_loc_conf_t, enable),
      NULL },

    { ngx_string("gpugate_limits_stream_cut"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gpugate_limits_loc_conf_t, stream_cut),
      NULL },

    { ngx_string("gpugate_limits_estimate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_gpugate_limits_estimate,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gpugate_limits_module_ctx = {
    ngx_http_gpugate_limits_add_variables,  /* preconfiguration */
    ngx_http_gpugate_limits_init,           /* postconfiguration */

    ngx_http_gpugate_limits_create_main_conf, /* create main configuration */
    NULL,                                   /* init main configuration */

    NULL,                                   /* create server configuration */
    NULL,                                   /* merge server configuration */

    ngx_http_gpugate_limits_create_loc_conf, /* create location conf */
    ngx_http_gpugate_limits_merge_loc_conf  /* merge location conf */
};


ngx_module_t  ngx_http_gpugate_limits_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_limits_module_ctx,    /* module context */
    ngx_http_gpugate_limits_commands,       /* module directives */
    NGX_HTTP_MODULE,                        /* module type */
    NULL,                                   /* init master */
    NULL,                                   /* init module */
    ngx_http_gpugate_limits_init_process,   /* init process */
    NULL,                                   /* init thread */
    NULL,                                   /* exit thread */
    ngx_http_gpugate_limits_exit_process,   /* exit process */
    NULL,                                   /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

/* the zone of the running configuration, for the pages */
ngx_shm_zone_t  *ngx_http_gpugate_limits_shm;


static ngx_http_variable_t  ngx_http_gpugate_limits_vars[] = {

    { ngx_string("gpugate_limit_reason"), NULL,
      ngx_http_gpugate_limits_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_limit_reserved"), NULL,
      ngx_http_gpugate_limits_variable, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_cost_micros"), NULL,
      ngx_http_gpugate_limits_variable, 2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_gpugate_limits_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_gpugate_limits_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_limits_init(ngx_conf_t *cf)
{
    ngx_http_gpugate_limits_main_conf_t  *lmcf;

    lmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_limits_module);

    ngx_http_gpugate_limits_shm = lmcf->zone;
    ngx_http_gpugate_limits_nodes = (lmcf->zone && lmcf->redis.addr)
                                    ? lmcf->nodes : 0;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_gpugate_limits_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_gpugate_limits_body_filter;

    return NGX_OK;
}


static void *
ngx_http_gpugate_limits_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_limits_main_conf_t));
}


static void *
ngx_http_gpugate_limits_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_limits_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_limits_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->enable = NGX_CONF_UNSET;
    conf->stream_cut = NGX_CONF_UNSET;
    conf->max_tokens = NGX_CONF_UNSET;
    conf->bytes_per_token = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_gpugate_limits_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_gpugate_limits_loc_conf_t *prev = parent;
    ngx_http_gpugate_limits_loc_conf_t *conf = child;

    ngx_http_gpugate_limits_main_conf_t  *lmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->stream_cut, prev->stream_cut, 0);
    ngx_conf_merge_value(conf->max_tokens, prev->max_tokens, 256);
    ngx_conf_merge_value(conf->bytes_per_token, prev->bytes_per_token, 4);

    if (conf->enable) {
        lmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_limits_module);

        if (lmcf->zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"gpugate_limits on\" needs "
                               "\"gpugate_limits_zone\"");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* gpugate_limits_zone zone=NAME:SIZE; */

static char *
ngx_http_gpugate_limits_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_limits_main_conf_t *lmcf = conf;

    u_char                          *p;
    ssize_t                          size;
    ngx_str_t                       *value, val, name;
    ngx_shm_zone_t                  *zone;
    ngx_http_gpugate_limits_zone_t  *z;

    if (lmcf->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (!ngx_http_gpugate_conf_param(&value[1], "zone", &val)
        || (p = ngx_strlchr(val.data, val.data + val.len, ':')) == NULL
        || p == val.data)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected "
                           "zone=NAME:SIZE", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = val.data;
    name.len = p - val.data;

    val.data = p + 1;
    val.len = value[1].data + value[1].len - val.data;

    size = ngx_parse_size(&val);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" (at least %uz)", &val,
                           8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_limits_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    zone = ngx_shared_memory_add(cf, &name, size,
                                 &ngx_http_gpugate_limits_module);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already defined", &name);
        return NGX_CONF_ERROR;
    }

    zone->init = ngx_http_gpugate_limits_init_zone;
    zone->data = z;
    lmcf->zone = zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_gpugate_limits_init_process(ngx_cycle_t *cycle)
{
    return ngx_http_gpugate_limits_sync_start(cycle);
}


static void
ngx_http_gpugate_limits_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_limits_sync_stop(cycle);
}


/*
 * gpugate_limits_redis ADDRESS:PORT [nodes=2] [sync=250ms] [timeout=500ms]
 *                      [db=N] [password_file=PATH];
 */

static char *
ngx_http_gpugate_limits_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_gpugate_limits_main_conf_t *lmcf = conf;

    u_char      *nl;
    ssize_t      n;
    ngx_int_t    v;
    ngx_str_t   *value, val;
    ngx_uint_t   i;
    ngx_url_t    u;
    ngx_file_t   file;
    u_char       buf[512];

    if (lmcf->redis.addr) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 6379;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid Redis address \"%V\": a numeric "
                           "ADDRESS:PORT is required", &value[1]);
        return NGX_CONF_ERROR;
    }

    lmcf->redis.addr = &u.addrs[0];
    lmcf->redis.timeout = 500;
    lmcf->redis.backoff_max = 5000;
    lmcf->redis.ping = 10000;
    lmcf->sync = 250;
    lmcf->nodes = 2;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_http_gpugate_conf_param(&value[i], "nodes", &val)
            || ngx_http_gpugate_conf_param(&value[i], "db", &val))
        {
            v = ngx_atoi(val.data, val.len);

            if (v == NGX_ERROR || v > 1000
                || (v == 0 && value[i].data[0] == 'n'))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (value[i].data[0] == 'n') {
                lmcf->nodes = v;
            } else {
                lmcf->redis.db = v;
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "sync", &val)) {
            if (ngx_http_gpugate_conf_msec(cf, &value[i], &val, 10,
                                           &lmcf->sync)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "timeout", &val)) {
            if (ngx_http_gpugate_conf_msec(cf, &value[i], &val, 1,
                                           &lmcf->redis.timeout)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "password_file", &val)) {
            ngx_memzero(&file, sizeof(ngx_file_t));
            file.name = val;
            file.log = cf->log;

            if (ngx_conf_full_name(cf->cycle, &file.name, 1) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            file.fd = ngx_open_file(file.name.data, NGX_FILE_RDONLY,
                                    NGX_FILE_OPEN, 0);
            if (file.fd == NGX_INVALID_FILE) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                                   "cannot open Redis password file "
                                   "\"%V\"", &file.name);
                return NGX_CONF_ERROR;
            }

            n = ngx_read_file(&file, buf, sizeof(buf), 0);
            ngx_close_file(file.fd);

            nl = (n > 0) ? ngx_strlchr(buf, buf + n, '\n') : NULL;

            if (n <= 0 || (nl == NULL && n == sizeof(buf))) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "cannot read a password from \"%V\"",
                                   &file.name);
                return NGX_CONF_ERROR;
            }

            lmcf->redis.password.len = (nl ? nl : buf + n) - buf;
            lmcf->redis.password.data = ngx_pstrdup(cf->pool,
                                            &(ngx_str_t) { lmcf->redis.password.len, buf });
            if (lmcf->redis.password.data == NULL) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected nodes=, "
                           "sync=, timeout=, db= or password_file=",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* gpugate_limits_estimate [max_tokens=N] [bytes_per_token=N]; */

static char *
ngx_http_gpugate_limits_estimate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_gpugate_limits_loc_conf_t *llcf = conf;

    ngx_int_t    n, *field;
    ngx_str_t   *value, val;
    ngx_uint_t   i;

    if (llcf->max_tokens != NGX_CONF_UNSET
        || llcf->bytes_per_token != NGX_CONF_UNSET)
    {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_http_gpugate_conf_param(&value[i], "max_tokens", &val)) {
            field = &llcf->max_tokens;

        } else if (ngx_http_gpugate_conf_param(&value[i], "bytes_per_token",
                                               &val))
        {
            field = &llcf->bytes_per_token;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", expected "
                               "max_tokens= or bytes_per_token=", &value[i]);
            return NGX_CONF_ERROR;
        }

        n = ngx_atoi(val.data, val.len);

        if (n == NGX_ERROR || n > 100000000
            || (n == 0 && field == &llcf->bytes_per_token))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value in \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *field = n;
    }

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_http_gpugate_limits_none(ngx_http_gpugate_limit_set_t *set)
{
    return set->rpm <= 0 && set->tpm <= 0 && set->parallel <= 0
           && set->tpd <= 0 && set->budget <= 0;
}


ngx_int_t
ngx_http_gpugate_limits_admit(ngx_http_request_t *r,
    ngx_http_gpugate_limits_req_t *lr, ngx_int_t *rc)
{
    ngx_pool_cleanup_t                   *cln;
    ngx_http_gpugate_limits_t             lim;
    ngx_http_gpugate_error_t              err;
    ngx_http_gpugate_limits_ctx_t        *ctx;
    ngx_http_gpugate_limits_zone_t       *z;
    ngx_http_gpugate_limits_loc_conf_t   *llcf;
    ngx_http_gpugate_limits_main_conf_t  *lmcf;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_limits_module);

    if (!llcf->enable
        || ngx_http_get_module_ctx(r, ngx_http_gpugate_limits_module)
        || ngx_http_gpugate_auth_limits(r, &lim) != NGX_OK)
    {
        return NGX_OK;
    }

    if (ngx_http_gpugate_limits_none(&lim.key)
        && ngx_http_gpugate_limits_none(&lim.tenant_set))
    {
        /* nothing to count: no node, no lock, no headers */
        return NGX_OK;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_limits_module);
    z = lmcf->zone->data;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_gpugate_limits_ctx_t));
    if (ctx == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    /* the body was checked as a JSON object: the estimate cannot fail */

    (void) gpugate_rl_estimate((char *) lr->body.data, lr->body.len,
                               lr->answers != 0, llcf->max_tokens,
                               llcf->bytes_per_token, &ctx->est);

    ctx->reserved = ctx->est.prompt + ctx->est.completion;
    ctx->cut_after = -1;
    ctx->stream_cut = (llcf->stream_cut && lr->stream);
    ctx->price_in = lr->price_in;
    ctx->price_out = lr->price_out;
    ctx->priced = (lr->price_in || lr->price_out);
    ctx->cost = gpugate_rl_cost(ctx->est.prompt, ctx->est.completion,
                                lr->price_in, lr->price_out);

    /* the cleanup is in place before anything is counted: no way out of
       the request that skips the settlement */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    ctx->request = r;
    cln->handler = ngx_http_gpugate_limits_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_gpugate_limits_module);

    if (ngx_http_gpugate_limits_reserve(r, z, &lim, ctx) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate limits: zone \"%V\" is full of keys with "
                      "requests in flight, request refused (make it "
                      "larger)", &lmcf->zone->shm.name);

        ngx_http_gpugate_status_error(NGX_HTTP_SERVICE_UNAVAILABLE, &err);
        err.code = "limits_unavailable";
        ngx_str_set(&err.message, "The gateway cannot count this key's "
                                  "limits right now; retry shortly.");

        *rc = ngx_http_gpugate_send_error(r, &err);
        return NGX_DONE;
    }

    if (ctx->admitted) {
        ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate limits: key %L tenant %L admitted, "
                       "reserved %L tokens (prompt %L), cost %L",
                       lim.key_id, lim.tenant_id, ctx->reserved,
                       ctx->est.prompt, ctx->cost);
        return NGX_OK;
    }

    *rc = ngx_http_gpugate_limits_refused(r, ctx);

    return NGX_DONE;
}


/* the 429 (OpenAI's JSON and headers) of a request refused */

static ngx_int_t
ngx_http_gpugate_limits_refused(ngx_http_request_t *r,
    ngx_http_gpugate_limits_ctx_t *ctx)
{
    u_char                    *p;
    int64_t                    limit;
    ngx_table_elt_t           *h;
    ngx_http_gpugate_error_t   err;

    ngx_http_gpugate_status_error(NGX_HTTP_TOO_MANY_REQUESTS, &err);

    err.code = "rate_limit_exceeded";
    err.message.data = ngx_pnalloc(r->pool, 256);
    if (err.message.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = err.message.data;

    switch (ctx->reason) {

    case NGX_HTTP_GPUGATE_LR_TOO_LARGE:
        err.type = "tokens";
        p = ngx_sprintf(p, "Request too large: it may use %L tokens, more "
                        "than this key's limit allows at once. Lower "
                        "max_tokens or the prompt.", ctx->reserved);
        break;

    case NGX_HTTP_GPUGATE_LR_PARALLEL:
        err.type = "requests";
        p = ngx_sprintf(p, "Too many requests in flight for this key: "
                        "wait for one to finish.");
        break;

    case NGX_HTTP_GPUGATE_LR_REQUESTS:
        err.type = "requests";
        limit = ctx->requests.limit;
        p = ngx_sprintf(p, "Rate limit reached for requests per minute "
                        "(RPM): Limit %L. Please try again in %Lms.",
                        limit, ctx->wait_ms);
        break;

    case NGX_HTTP_GPUGATE_LR_TOKENS:
        err.type = "tokens";
        limit = ctx->tokens.limit;
        p = ngx_sprintf(p, "Rate limit reached for tokens per minute "
                        "(TPM): Limit %L, Requested %L. Please try again "
                        "in %Lms.", limit, ctx->reserved, ctx->wait_ms);
        break;

    case NGX_HTTP_GPUGATE_LR_DAY:
        err.type = "tokens";
        err.code = "insufficient_quota";
        p = ngx_sprintf(p, "You exceeded your tokens per day quota: "
                        "Requested %L.", ctx->reserved);
        break;

    default: /* NGX_HTTP_GPUGATE_LR_BUDGET */
        err.type = "insufficient_quota";
        err.code = "insufficient_quota";
        p = ngx_sprintf(p, "You exceeded your current quota: the spend "
                        "budget of this period is used up.");
    }

    err.message.len = p - err.message.data;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gpugate limits: request refused (%s), %L tokens, "
                  "retry in %Lms",
                  ngx_http_gpugate_limits_reason_name(ctx->reason),
                  ctx->reserved, ctx->wait_ms);

    /*
     * A request too large never fits: its Retry-After is hidden (hash 0),
     * which also keeps ngx_http_gpugate_send_error() from adding one.
     */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = (ctx->wait_ms >= 0);
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%L", (ctx->wait_ms + 999) / 1000) - p;

    return ngx_http_gpugate_send_error(r, &err);
}


/*
 * The reservation is settled as soon as the answer's last byte has passed
 * the response filter (which read its usage on the way): a client that
 * keeps its connection open, or the lingering close of one that does
 * not, must not hold the tokens or the in-flight slot.
 */

static ngx_int_t
ngx_http_gpugate_limits_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                    *cl;
    ngx_http_gpugate_openai_ctx_t  *octx;
    ngx_http_gpugate_limits_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_limits_module);

    if (ctx == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ctx->cut) {
        /* what the runtime sends after the cut is not the client's */

        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }

        return NGX_OK;
    }

    if (ctx->cut_after >= 0) {
        octx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

        if (octx && octx->event_stream
            && (int64_t) octx->token_events > ctx->cut_after)
        {
            return ngx_http_gpugate_limits_cut(r, ctx, octx, in);
        }
    }

    if (!ctx->admitted || ctx->settled) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "gpugate limits: the answer ended");
            ngx_http_gpugate_limits_cleanup(ctx);
            break;
        }
    }

    return ngx_http_next_body_filter(r, in);
}


/*
 * A stream that crossed a day's tokens or a budget ("gpugate_limits_stream
 * _cut on"): what came with the crossing token still goes out, then a
 * final error event that OpenAI's SDKs raise, and the answer ends.  The
 * runtime's connection is closed (it stops generating) once that is
 * written; what it sends meanwhile is dropped.  The usage is settled with
 * the token events the client got.
 */

static ngx_int_t
ngx_http_gpugate_limits_cut(ngx_http_request_t *r,
    ngx_http_gpugate_limits_ctx_t *ctx, ngx_http_gpugate_openai_ctx_t *octx,
    ngx_chain_t *in)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl, **ll;

    static u_char  event[] =
        "data: {\"error\":{\"message\":\"You exceeded your current "
        "quota: this stream was ended when it crossed it.\","
        "\"type\":\"insufficient_quota\",\"param\":null,"
        "\"code\":\"insufficient_quota\"}}\n\n";

    ctx->cut = 1;
    ctx->cut_events = (int64_t) octx->token_events;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gpugate limits: stream cut after %L token events: it "
                  "crossed the key's or tenant's quota", ctx->cut_events);

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = event;
    b->last = event + sizeof(event) - 1;
    b->memory = 1;
    b->last_buf = 1;
    b->flush = 1;

    for (ll = &in; *ll; ll = &(*ll)->next) {
        (*ll)->buf->last_buf = 0;
    }

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;
    *ll = cl;

    ngx_http_gpugate_limits_cleanup(ctx);

    rc = ngx_http_next_body_filter(r, in);

    if (rc == NGX_OK && !r->buffered && r->upstream) {
        /* written: an error ends the upstream's part (closing the
           runtime's connection) without anything more for the client */
        return NGX_ERROR;
    }

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/* the end of a request, however it ends (the client gone, an error, a
   worker that quits): a reservation still held is settled */

static void
ngx_http_gpugate_limits_cleanup(void *data)
{
    ngx_http_gpugate_limits_ctx_t *ctx = data;

    int64_t                               used, cost;
    ngx_http_request_t                   *r;
    ngx_http_gpugate_limits_main_conf_t  *lmcf;

    if (!ctx->admitted || ctx->settled) {
        return;
    }

    r = ctx->request;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_limits_module);

    used = ngx_http_gpugate_limits_used(r, ctx);
    cost = ngx_http_gpugate_limits_spend(r, ctx);

    ngx_http_gpugate_limits_settle(lmcf->zone->data, ctx, used,
                                   cost < 0 ? 0 : cost, r->connection->log);
}


/*
 * The tokens a request used, by what the response filter read: the
 * answer's usage object; without one (a stream cut before it), the
 * prompt estimate and the token events seen; without any answer from a
 * runtime (refused, failed) nothing.
 */

static int64_t
ngx_http_gpugate_limits_used(ngx_http_request_t *r,
    ngx_http_gpugate_limits_ctx_t *ctx)
{
    ngx_http_gpugate_openai_ctx_t  *octx;

    octx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (octx == NULL || !octx->observe) {
        return 0;
    }

    if (ctx->cut) {
        return ctx->est.prompt + ctx->cut_events;
    }

    if (octx->usage) {
        return octx->prompt_tokens + octx->completion_tokens;
    }

    if (r->headers_out.status >= NGX_HTTP_BAD_REQUEST) {
        return 0;
    }

    return ctx->est.prompt + (int64_t) octx->token_events;
}


int64_t
ngx_http_gpugate_limits_cost(ngx_http_request_t *r)
{
    ngx_http_gpugate_limits_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_gpugate_limits_module);

    if (ctx == NULL) {
        return -1;
    }

    return ngx_http_gpugate_limits_spend(r->main, ctx);
}


/* what the request spent by its real usage, -1: not priced */

static int64_t
ngx_http_gpugate_limits_spend(ngx_http_request_t *r,
    ngx_http_gpugate_limits_ctx_t *ctx)
{
    int64_t                          prompt, completion;
    ngx_http_gpugate_openai_ctx_t   *octx;

    if (!ctx->admitted || !ctx->priced) {
        return -1;
    }

    octx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (octx == NULL || !octx->observe) {
        return 0;
    }

    if (ctx->cut) {
        prompt = ctx->est.prompt;
        completion = ctx->cut_events;

    } else if (octx->usage) {
        prompt = octx->prompt_tokens;
        completion = octx->completion_tokens;

    } else if (r->headers_out.status >= NGX_HTTP_BAD_REQUEST) {
        return 0;

    } else {
        prompt = ctx->est.prompt;
        completion = (int64_t) octx->token_events;
    }

    return gpugate_rl_cost(prompt, completion, ctx->price_in,
                           ctx->price_out);
}


/* one x-ratelimit-* header */

static ngx_int_t
ngx_http_gpugate_limits_header(ngx_http_request_t *r, const char *name,
    int64_t n, ngx_uint_t duration)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, GPUGATE_RL_DURATION_LEN + NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = p;
    h->value.len = duration ? gpugate_rl_duration((char *) p, n)
                            : (size_t) (ngx_sprintf(p, "%L", n) - p);

    return NGX_OK;
}


/*
 * Every answer of a limited key says where it stands, as OpenAI's do: a
 * runtime's own x-ratelimit-* headers are hidden (they would speak of the
 * runtime, not of the key).
 */

static ngx_int_t
ngx_http_gpugate_limits_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                      i;
    ngx_list_part_t                *part;
    ngx_table_elt_t                *h;
    ngx_http_gpugate_limits_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_limits_module);

    if (ctx == NULL || ctx->side[0].node == NULL) {
        return ngx_http_next_header_filter(r);
    }

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len > sizeof("x-ratelimit-") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "x-ratelimit-",
                               sizeof("x-ratelimit-") - 1) == 0)
        {
            h[i].hash = 0;
        }
    }

    if (ctx->requests.limit >= 0
        && (ngx_http_gpugate_limits_header(r, "x-ratelimit-limit-requests",
                                           ctx->requests.limit, 0)
            != NGX_OK
            || ngx_http_gpugate_limits_header(r,
                   "x-ratelimit-remaining-requests", ctx->requests.remaining,
                   0) != NGX_OK
            || ngx_http_gpugate_limits_header(r,
                   "x-ratelimit-reset-requests", ctx->requests.reset_ms, 1)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    if (ctx->tokens.limit >= 0
        && (ngx_http_gpugate_limits_header(r, "x-ratelimit-limit-tokens",
                                           ctx->tokens.limit, 0) != NGX_OK
            || ngx_http_gpugate_limits_header(r,
                   "x-ratelimit-remaining-tokens", ctx->tokens.remaining, 0)
               != NGX_OK
            || ngx_http_gpugate_limits_header(r, "x-ratelimit-reset-tokens",
                                              ctx->tokens.reset_ms, 1)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* $gpugate_limit_reason, $gpugate_limit_reserved, $gpugate_cost_micros */

static ngx_int_t
ngx_http_gpugate_limits_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                         *p;
    int64_t                         n;
    ngx_http_gpugate_limits_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_gpugate_limits_module);

    if (ctx == NULL || ctx->side[0].node == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data == 0) {
        v->data = (u_char *) ngx_http_gpugate_limits_reason_name(ctx->reason);
        v->len = ngx_strlen(v->data);
        goto done;
    }

    n = (data == 1) ? ctx->reserved : ngx_http_gpugate_limits_cost(r);

    if (n < 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%L", n) - p;

done:

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
