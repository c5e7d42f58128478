
/*
 * Copyright (C) gpugate authors
 *
 * What the key record auth granted tells the rest of the request: the
 * $gpugate_* variables (for logs) and the limits the limits module reads
 * through ngx_http_gpugate_auth_limits().  No lookup: everything comes
 * from the entry in the request's ctx.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_auth.h"


static ngx_int_t ngx_http_gpugate_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gpugate_auth_limit_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data,
    ngx_http_gpugate_key_info_t *info);


enum {
    NGX_HTTP_GPUGATE_VAR_KEY_ID = 0,
    NGX_HTTP_GPUGATE_VAR_KEY_NAME,
    NGX_HTTP_GPUGATE_VAR_KEY_PREFIX,
    NGX_HTTP_GPUGATE_VAR_TENANT,
    NGX_HTTP_GPUGATE_VAR_TENANT_ID,
    NGX_HTTP_GPUGATE_VAR_MODELS,
    NGX_HTTP_GPUGATE_VAR_SOURCE,
    NGX_HTTP_GPUGATE_VAR_RESULT,

    /* a limit: _LIMIT and which one, ORed with _TENANT_SET for the
       tenant's */
    NGX_HTTP_GPUGATE_VAR_LIMIT = 0x100,
    NGX_HTTP_GPUGATE_VAR_RPM = NGX_HTTP_GPUGATE_VAR_LIMIT,
    NGX_HTTP_GPUGATE_VAR_TPM,
    NGX_HTTP_GPUGATE_VAR_PARALLEL,
    NGX_HTTP_GPUGATE_VAR_TPD,
    NGX_HTTP_GPUGATE_VAR_BUDGET,
    NGX_HTTP_GPUGATE_VAR_PERIOD,

    NGX_HTTP_GPUGATE_VAR_TENANT_SET = 0x10
};


static ngx_http_variable_t  ngx_http_gpugate_auth_vars[] = {

    { ngx_string("gpugate_key_id"), NULL, ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_KEY_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_key_name"), NULL, ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_KEY_NAME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_key_prefix"), NULL, ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_KEY_PREFIX, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tenant"), NULL, ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_TENANT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tenant_id"), NULL, ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_TENANT_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_allowed_models"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_MODELS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_rpm_limit"), NULL, ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_RPM, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tpm_limit"), NULL, ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_TPM, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_parallel_limit"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_PARALLEL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tpd_limit"), NULL, ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_TPD, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_budget"), NULL, ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_BUDGET, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_budget_period"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_PERIOD, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tenant_rpm_limit"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_RPM|NGX_HTTP_GPUGATE_VAR_TENANT_SET,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tenant_tpm_limit"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_TPM|NGX_HTTP_GPUGATE_VAR_TENANT_SET,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tenant_parallel_limit"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_PARALLEL|NGX_HTTP_GPUGATE_VAR_TENANT_SET,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tenant_tpd_limit"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_TPD|NGX_HTTP_GPUGATE_VAR_TENANT_SET,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tenant_budget"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_BUDGET|NGX_HTTP_GPUGATE_VAR_TENANT_SET,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tenant_budget_period"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_PERIOD|NGX_HTTP_GPUGATE_VAR_TENANT_SET,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_auth_source"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_SOURCE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_auth_result"), NULL,
      ngx_http_gpugate_auth_variable,
      NGX_HTTP_GPUGATE_VAR_RESULT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_gpugate_auth_results[] = {
    ngx_string(""),
    ngx_string("ok"),
    ngx_string("refused"),
    ngx_string("unavailable")
};


/* indexed by ngx_http_gpugate_period_e */
static ngx_str_t  ngx_http_gpugate_auth_periods[] = {
    ngx_string(""),
    ngx_string("day"),
    ngx_string("month")
};


static ngx_str_t  ngx_http_gpugate_auth_sources[] = {
    ngx_string(""),
    ngx_string("shm"),
    ngx_string("redis"),
    ngx_string("postgres"),
    ngx_string("stale")
};


static ngx_int_t
ngx_http_gpugate_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                       *p;
    int64_t                       n;
    ngx_str_t                    *s;
    ngx_http_gpugate_auth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_gpugate_auth_module);

    if (ctx && data == NGX_HTTP_GPUGATE_VAR_RESULT) {
        /* "ok", "refused" (401), "unavailable" (503); "" while pending */
        s = &ngx_http_gpugate_auth_results[ctx->granted ? 1
                                           : ctx->refused ? 2
                                           : ctx->unavailable ? 3 : 0];
        v->data = s->data;
        v->len = s->len;
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;

        return NGX_OK;
    }

    if (ctx == NULL || !ctx->answered) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data & NGX_HTTP_GPUGATE_VAR_LIMIT) {
        return ngx_http_gpugate_auth_limit_variable(r, v, data, &ctx->info);
    }

    s = NULL;
    n = 0;

    switch (data) {

    case NGX_HTTP_GPUGATE_VAR_KEY_NAME:
        s = &ctx->info.name;
        break;

    case NGX_HTTP_GPUGATE_VAR_KEY_PREFIX:
        s = &ctx->info.prefix;
        break;

    case NGX_HTTP_GPUGATE_VAR_TENANT:
        s = &ctx->info.tenant;
        break;

    case NGX_HTTP_GPUGATE_VAR_MODELS:
        s = &ctx->info.models;
        break;

    case NGX_HTTP_GPUGATE_VAR_SOURCE:
        s = &ngx_http_gpugate_auth_sources[ctx->source];
        break;

    case NGX_HTTP_GPUGATE_VAR_KEY_ID:
        n = ctx->info.key_id;
        break;

    default: /* NGX_HTTP_GPUGATE_VAR_TENANT_ID */
        n = ctx->info.tenant_id;
        break;
    }

    if (s) {
        v->data = s->data;
        v->len = s->len;

    } else {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%L", n) - p;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * A key's or its tenant's limit: a number, 0 for none; a budget in
 * currency units with six decimals ("12.500000", "0" for none), so that
 * logs read like the key tool; a period as "day", "month" or "".
 */

static ngx_int_t
ngx_http_gpugate_auth_limit_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data,
    ngx_http_gpugate_key_info_t *info)
{
    u_char                        *p;
    int64_t                        n;
    ngx_str_t                     *s;
    ngx_http_gpugate_limit_set_t  *set;

    set = (data & NGX_HTTP_GPUGATE_VAR_TENANT_SET) ? &info->tenant_limits
                                                   : &info->key_limits;

    switch (data & ~NGX_HTTP_GPUGATE_VAR_TENANT_SET) {

    case NGX_HTTP_GPUGATE_VAR_PERIOD:
        s = &ngx_http_gpugate_auth_periods[
                 ngx_min(set->budget_period, NGX_HTTP_GPUGATE_PERIOD_MONTH)];
        v->data = s->data;
        v->len = s->len;
        goto done;

    case NGX_HTTP_GPUGATE_VAR_RPM:
        n = set->rpm;
        break;

    case NGX_HTTP_GPUGATE_VAR_TPM:
        n = set->tpm;
        break;

    case NGX_HTTP_GPUGATE_VAR_PARALLEL:
        n = set->parallel;
        break;

    case NGX_HTTP_GPUGATE_VAR_TPD:
        n = set->tpd;
        break;

    default: /* NGX_HTTP_GPUGATE_VAR_BUDGET */
        n = set->budget;
        break;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 8);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    if ((data & ~NGX_HTTP_GPUGATE_VAR_TENANT_SET)
        == NGX_HTTP_GPUGATE_VAR_BUDGET && n > 0)
    {
        v->len = ngx_sprintf(p, "%L.%06L", n / 1000000, n % 1000000) - p;

    } else {
        v->len = ngx_sprintf(p, "%L", n) - p;
    }

done:

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_gpugate_auth_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_gpugate_auth_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_gpugate_auth_limits(ngx_http_request_t *r,
    ngx_http_gpugate_limits_t *out)
{
    ngx_http_gpugate_auth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_gpugate_auth_module);

    if (ctx == NULL || !ctx->answered || !ctx->granted) {
        return NGX_DECLINED;
    }

    ngx_memzero(out, sizeof(ngx_http_gpugate_limits_t));

    out->key_id = ctx->info.key_id;
    out->tenant_id = ctx->info.tenant_id;
    out->tenant = ctx->info.tenant;
    out->prefix = ctx->info.prefix;
    out->key = ctx->info.key_limits;
    out->tenant_set = ctx->info.tenant_limits;

    return NGX_OK;
}
