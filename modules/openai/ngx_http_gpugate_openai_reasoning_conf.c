
/*
 * Copyright (C) gpugate authors
 *
 * The reasoning split's configuration ("gpugate_reasoning") and its
 * variable ($gpugate_reasoning_tokens); the filter itself is in
 * ngx_http_gpugate_openai_reasoning.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_ledger_api.h"
#include "gpugate_think.h"
#include "ngx_http_gpugate_openai_reasoning.h"


static ngx_int_t ngx_http_gpugate_reasoning_add_variables(ngx_conf_t *cf);
static void *ngx_http_gpugate_reasoning_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_reasoning_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_gpugate_reasoning(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_str_t  ngx_http_gpugate_reasoning_tokens_name =
    ngx_string("gpugate_reasoning_tokens");


static ngx_command_t  ngx_http_gpugate_reasoning_commands[] = {

    { ngx_string("gpugate_reasoning"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1234,
      ngx_http_gpugate_reasoning,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gpugate_reasoning_module_ctx = {
    ngx_http_gpugate_reasoning_add_variables, /* preconfiguration */
    ngx_http_gpugate_reasoning_filter_init, /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gpugate_reasoning_create_loc_conf, /* create location conf */
    ngx_http_gpugate_reasoning_merge_loc_conf   /* merge location conf */
};


ngx_module_t  ngx_http_gpugate_reasoning_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_reasoning_module_ctx, /* module context */
    ngx_http_gpugate_reasoning_commands,   /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


ngx_http_gpugate_reasoning_rule_t *
ngx_http_gpugate_reasoning_rule(ngx_http_request_t *r, ngx_str_t *pool)
{
    ngx_uint_t                              i;
    ngx_http_gpugate_reasoning_rule_t      *rule, *any;
    ngx_http_gpugate_reasoning_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_reasoning_module);

    if (rlcf->rules == NULL) {
        return NULL;
    }

    rule = rlcf->rules->elts;
    any = NULL;

    for (i = 0; i < rlcf->rules->nelts; i++) {
        if (rule[i].pool.len == 0) {
            any = &rule[i];

        } else if (rule[i].pool.len == pool->len
                   && ngx_strncmp(rule[i].pool.data, pool->data,
                                  pool->len) == 0)
        {
            return &rule[i];
        }
    }

    return any;
}


static ngx_int_t
ngx_http_gpugate_reasoning_tokens_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                           *p;
    ngx_http_gpugate_ledger_extra_t  *extra;

    extra = ngx_http_gpugate_ledger_extra_find(r);

    if (extra == NULL || extra->reasoning_tokens < 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%i", extra->reasoning_tokens) - p;
    v->data = p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_reasoning_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var;

    var = ngx_http_add_variable(cf, &ngx_http_gpugate_reasoning_tokens_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_gpugate_reasoning_tokens_variable;

    return NGX_OK;
}


static void *
ngx_http_gpugate_reasoning_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_reasoning_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_gpugate_reasoning_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->rules = NULL;
     */

    return conf;
}


static char *
ngx_http_gpugate_reasoning_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_gpugate_reasoning_loc_conf_t  *prev = parent;
    ngx_http_gpugate_reasoning_loc_conf_t  *conf = child;

    /* a level with rules of its own replaces the inherited ones */

    if (conf->rules == NULL) {
        conf->rules = prev->rules;
    }

    return NGX_CONF_OK;
}


/* a tag: 1..32 printable ASCII bytes, no spaces */

static char *
ngx_http_gpugate_reasoning_tag(ngx_str_t *value, size_t skip, ngx_str_t *tag)
{
    size_t  i;

    tag->data = value->data + skip;
    tag->len = value->len - skip;

    if (tag->len == 0 || tag->len > GPUGATE_THINK_TAG_MAX) {
        return "tags must be 1 to 32 bytes";
    }

    for (i = 0; i < tag->len; i++) {
        if (tag->data[i] <= ' ' || tag->data[i] >= 0x7f) {
            return "tags must be printable ASCII without spaces";
        }
    }

    return NGX_CONF_OK;
}


/* gpugate_reasoning off|split [pool=NAME] [open=TAG] [close=TAG] */

static char *
ngx_http_gpugate_reasoning(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_reasoning_loc_conf_t  *rlcf = conf;

    char                               *rv;
    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_http_gpugate_reasoning_rule_t  *rule, *other;

    value = cf->args->elts;

    if (rlcf->rules == NULL) {
        rlcf->rules = ngx_array_create(cf->pool, 2,
                                 sizeof(ngx_http_gpugate_reasoning_rule_t));
        if (rlcf->rules == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    rule = ngx_array_push(rlcf->rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(rule, sizeof(ngx_http_gpugate_reasoning_rule_t));
    ngx_str_set(&rule->open, "<think>");
    ngx_str_set(&rule->close, "</think>");

    if (ngx_strcmp(value[1].data, "split") == 0) {
        rule->split = 1;

    } else if (ngx_strcmp(value[1].data, "off") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", expected split or off",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        rv = NGX_CONF_OK;

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            rule->pool.data = value[i].data + 5;
            rule->pool.len = value[i].len - 5;

            if (rule->pool.len == 0) {
                return "has an empty pool=";
            }

        } else if (ngx_strncmp(value[i].data, "open=", 5) == 0) {
            rv = ngx_http_gpugate_reasoning_tag(&value[i], 5, &rule->open);

        } else if (ngx_strncmp(value[i].data, "close=", 6) == 0) {
            rv = ngx_http_gpugate_reasoning_tag(&value[i], 6, &rule->close);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", expected pool=, "
                               "open= or close=", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    other = rlcf->rules->elts;

    for (i = 0; i + 1 < rlcf->rules->nelts; i++) {
        if (other[i].pool.len == rule->pool.len
            && ngx_strncmp(other[i].pool.data, rule->pool.data,
                           rule->pool.len) == 0)
        {
            return rule->pool.len ? "is duplicate for this pool"
                                  : "is duplicate without pool=";
        }
    }

    return NGX_CONF_OK;
}
