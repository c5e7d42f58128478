
/*
 * Copyright (C) gpugate authors
 *
 * The OpenAI router: configuration of served models, the gateway's own
 * GET /v1/models answer, and the switch that makes a proxied location
 * OpenAI-aware (see ngx_http_gpugate_openai_filter.c for the streaming
 * side).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_openai.h"
#include "gpugate_ratelimit.h"


static ngx_int_t ngx_http_gpugate_models_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_models_serialise(ngx_conf_t *cf,
    ngx_http_gpugate_openai_loc_conf_t *conf);
static void *ngx_http_gpugate_openai_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_openai_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_gpugate_model(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gpugate_models(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gpugate_passthrough(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_gpugate_openai_upstream_headers(ngx_conf_t *cf);


static ngx_str_t  ngx_http_gpugate_allowed_models_name =
    ngx_string("gpugate_allowed_models");


static ngx_command_t  ngx_http_gpugate_openai_commands[] = {

    { ngx_string("gpugate_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_model,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_models"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_gpugate_models,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_passthrough"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_passthrough,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_default_pool"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gpugate_openai_loc_conf_t, default_pool),
      NULL },

    { ngx_string("gpugate_openai"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gpugate_openai_loc_conf_t, enable),
      NULL },

    { ngx_string("gpugate_stream_usage"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gpugate_openai_loc_conf_t, stream_usage),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gpugate_openai_module_ctx = {
    ngx_http_gpugate_openai_add_variables, /* preconfiguration */
    ngx_http_gpugate_openai_route_init,    /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gpugate_openai_create_loc_conf, /* create location conf */
    ngx_http_gpugate_openai_merge_loc_conf   /* merge location conf */
};


ngx_module_t  ngx_http_gpugate_openai_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_openai_module_ctx,   /* module context */
    ngx_http_gpugate_openai_commands,      /* module directives */
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


static ngx_int_t
ngx_http_gpugate_models_handler(ngx_http_request_t *r)
{
    ngx_table_elt_t                     *h;
    ngx_http_gpugate_error_t             err;
    ngx_http_gpugate_openai_loc_conf_t  *olcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        ngx_str_set(&h->value, "GET, HEAD");

        ngx_http_gpugate_status_error(NGX_HTTP_NOT_ALLOWED, &err);
        ngx_str_set(&err.message, "Only GET is allowed on /v1/models.");

        return ngx_http_gpugate_send_error(r, &err);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_openai_module);

    /* a key limited to some models sees only those */

    return ngx_http_gpugate_models_answer(r, olcf, NULL);
}


static ngx_int_t
ngx_http_gpugate_models_serialise(ngx_conf_t *cf,
    ngx_http_gpugate_openai_loc_conf_t *conf)
{
    size_t                     len;
    u_char                    *p;
    ngx_uint_t                 i, n, first;
    ngx_http_gpugate_model_t  *m;

    static const char  head[] = "{\"object\":\"list\",\"data\":[";
    static const char  tail[] = "]}\n";

    /* model names are validated at parse time: no escaping is needed */

    m = conf->models ? conf->models->elts : NULL;
    n = conf->models ? conf->models->nelts : 0;

    len = sizeof(head) - 1 + sizeof(tail) - 1;

    for (i = 0; i < n; i++) {
        len += sizeof(",{\"id\":\"\",\"object\":\"model\",\"created\":,"
                      "\"owned_by\":\"gpugate\"}") - 1
               + m[i].name.len + NGX_TIME_T_LEN;
    }

    /* prefix entries ("qwen*") stand for a family: nothing to list */

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    conf->models_body.data = p;

    p = ngx_cpymem(p, head, sizeof(head) - 1);

    first = 1;

    for (i = 0; i < n; i++) {
        if (m[i].prefix) {
            continue;
        }

        p = ngx_sprintf(p, "%s{\"id\":\"%V\",\"object\":\"model\","
                        "\"created\":%T,\"owned_by\":\"gpugate\"}",
                        first ? "" : ",", &m[i].name, conf->created);
        first = 0;
    }

    p = ngx_cpymem(p, tail, sizeof(tail) - 1);

    conf->models_body.len = p - conf->models_body.data;

    return NGX_OK;
}


static void *
ngx_http_gpugate_openai_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_openai_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_openai_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->models = NULL;
     *     conf->passthrough = NULL;
     *     conf->models_body = { 0, NULL };
     *     conf->models_handler = 0;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->stream_usage = NGX_CONF_UNSET;
    conf->created = ngx_time();

    return conf;
}


static char *
ngx_http_gpugate_openai_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_gpugate_openai_loc_conf_t *prev = parent;
    ngx_http_gpugate_openai_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->stream_usage, prev->stream_usage, 1);
    ngx_conf_merge_str_value(conf->default_pool, prev->default_pool, "");

    /* the auth module (same .so) defines it; NGX_ERROR if it did not */
    conf->allowed_index = ngx_http_get_variable_index(cf,
                              &ngx_http_gpugate_allowed_models_name);

    /* a level that names models replaces the inherited list, as with
       nginx's own array directives */

    if (conf->models == NULL) {
        conf->models = prev->models;
    }

    if (conf->passthrough == NULL) {
        conf->passthrough = prev->passthrough;
    }

    /* a gpugate_openai location answers GET /v1/models itself too */

    if ((conf->models_handler || conf->enable)
        && ngx_http_gpugate_models_serialise(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->enable) {
        return ngx_http_gpugate_openai_upstream_headers(cf);
    }

    return NGX_CONF_OK;
}


/*
 * A runtime must not steer nginx.  The upstream module acts on the
 * X-Accel-* headers of an answer (an internal redirect to any location,
 * a rate limit, buffering, a charset, a cache time) while it processes
 * the headers, before any header filter could remove them, and only its
 * configuration can stop it: the proxy module's location configuration
 * of every gpugate_openai location gets these headers ignored, as
 * "proxy_ignore_headers" would.  Every upstream module keeps its
 * ngx_http_upstream_conf_t first in its location configuration (the
 * request's u->conf points there); the proxy module is found by name so
 * the .so still loads into an nginx built without it.  Called during the
 * merge, when cf->ctx holds this location's configurations; the proxy
 * module is a built-in one, merged before any addon's.
 */

static char *
ngx_http_gpugate_openai_upstream_headers(ngx_conf_t *cf)
{
    ngx_uint_t                 i;
    ngx_module_t              *m;
    ngx_http_conf_ctx_t       *ctx;
    ngx_http_upstream_conf_t  *ucf;

    for (i = 0; cf->cycle->modules[i]; i++) {
        m = cf->cycle->modules[i];

        if (m->type == NGX_HTTP_MODULE
            && ngx_strcmp(m->name, "ngx_http_proxy_module") == 0)
        {
            break;
        }
    }

    m = cf->cycle->modules[i];

    if (m == NULL) {
        /* nothing in this nginx proxies */
        return NGX_CONF_OK;
    }

    if (m->ctx_index > ngx_http_gpugate_openai_module.ctx_index) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "gpugate_openai needs ngx_http_proxy_module "
                           "loaded before the gpugate module");
        return NGX_CONF_ERROR;
    }

    ctx = cf->ctx;
    ucf = ctx->loc_conf[m->ctx_index];

    ucf->ignore_headers |= NGX_HTTP_UPSTREAM_IGN_XA_REDIRECT
                           |NGX_HTTP_UPSTREAM_IGN_XA_EXPIRES
                           |NGX_HTTP_UPSTREAM_IGN_XA_LIMIT_RATE
                           |NGX_HTTP_UPSTREAM_IGN_XA_BUFFERING
                           |NGX_HTTP_UPSTREAM_IGN_XA_CHARSET;

    return NGX_CONF_OK;
}


/*
 * Names go verbatim into JSON, log lines and comma-separated key model
 * lists: printable ASCII without quotes, backslashes, spaces or commas
 * covers every real model id ("meta-llama/Llama-3.1-8B-Instruct",
 * "qwen2.5:7b", ...).
 */

static char *
ngx_http_gpugate_model_name(ngx_conf_t *cf, ngx_str_t *name, ngx_uint_t star)
{
    u_char  *p, *last;

    if (name->len == 0 || name->len > NGX_HTTP_GPUGATE_MODEL_MAX_LEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "model name must be 1..%d bytes long",
                           NGX_HTTP_GPUGATE_MODEL_MAX_LEN);
        return NGX_CONF_ERROR;
    }

    last = name->data + name->len;

    for (p = name->data; p < last; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\'
            || *p == ',' || (*p == '*' && !(star && p == last - 1)))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid character 0x%02xd in model name "
                               "\"%V\"", (ngx_uint_t) *p, name);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_model(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_openai_loc_conf_t *olcf = conf;

    ngx_str_t                 *value, name;
    ngx_uint_t                 i;
    ngx_http_gpugate_model_t  *m;

    value = cf->args->elts;

    if (ngx_http_gpugate_model_name(cf, &value[1], 1) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (olcf->models == NULL) {
        olcf->models = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_gpugate_model_t));
        if (olcf->models == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    m = olcf->models->elts;

    for (i = 0; i < olcf->models->nelts; i++) {
        if (m[i].name.len + m[i].prefix == value[1].len
            && ngx_strncmp(m[i].name.data, value[1].data, m[i].name.len) == 0
            && (value[1].data[value[1].len - 1] == '*') == m[i].prefix)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate model \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    m = ngx_array_push(olcf->models);
    if (m == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(m, sizeof(ngx_http_gpugate_model_t));

    m->name = value[1];

    if (m->name.data[m->name.len - 1] == '*') {
        m->prefix = 1;
        m->name.len--;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_http_gpugate_conf_param(&value[i], "pool", &m->pool)) {

            if (m->pool.len == 0) {
                return "has an empty pool=";
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "target", &name)) {

            if (m->prefix) {
                return "cannot rename a model prefix (target= with \"*\")";
            }

            if (ngx_http_gpugate_model_name(cf, &name, 0) != NGX_CONF_OK) {
                return NGX_CONF_ERROR;
            }

            m->target = name;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "price", &name)) {

            if (gpugate_rl_price((char *) name.data, name.len, &m->price_in,
                                 &m->price_out)
                != 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\", expected price=IN/OUT "
                                   "(currency units per 1M prompt and "
                                   "completion tokens, up to 6 decimals)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "priority", &name)) {

            if (name.len == 4 && ngx_strncmp(name.data, "vllm", 4) == 0) {
                m->priority = GPUGATE_OAI_PRIO_VLLM;

            } else if (name.len == 6
                       && ngx_strncmp(name.data, "sglang", 6) == 0)
            {
                m->priority = GPUGATE_OAI_PRIO_SGLANG;

            } else if (name.len == 3
                       && ngx_strncmp(name.data, "off", 3) == 0)
            {
                m->priority = GPUGATE_OAI_PRIO_OFF;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\", expected "
                                   "priority=vllm, priority=sglang or "
                                   "priority=off (how the runtime reads "
                                   "a request's priority)", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected pool=, "
                           "target=, price= or priority=", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_models(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_openai_loc_conf_t *olcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (olcf->models_handler) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "conflicts with another content handler in this location";
    }

    clcf->handler = ngx_http_gpugate_models_handler;
    olcf->models_handler = 1;

    return NGX_CONF_OK;
}


/*
 * Paths are compared with the request's normalised path byte for byte,
 * and the router refuses requests whose raw path differs from it: an
 * entry that normalisation would change could never match.
 */

static char *
ngx_http_gpugate_passthrough(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_openai_loc_conf_t *olcf = conf;

    u_char                   *p, *last;
    ngx_str_t                *value;
    ngx_uint_t                i;
    ngx_http_gpugate_path_t  *e;

    value = cf->args->elts;

    if (olcf->passthrough == NULL) {
        olcf->passthrough = ngx_array_create(cf->pool, 4,
                                             sizeof(ngx_http_gpugate_path_t));
        if (olcf->passthrough == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0 || value[i].data[0] != '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "passthrough path \"%V\" must start with "
                               "\"/\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        last = value[i].data + value[i].len;

        for (p = value[i].data; p < last; p++) {
            if (*p <= ' ' || *p >= 0x7f || *p == '%' || *p == '?'
                || *p == '#' || *p == '\\'
                || (*p == '*' && p != last - 1))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid character 0x%02xd in "
                                   "passthrough path \"%V\"",
                                   (ngx_uint_t) *p, &value[i]);
                return NGX_CONF_ERROR;
            }

            if (*p == '/' && p + 1 < last
                && (p[1] == '/'
                    || (p[1] == '.'
                        && (p + 2 == last || p[2] == '/'
                            || (p[2] == '.'
                                && (p + 3 == last || p[3] == '/'))))))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "passthrough path \"%V\" has an empty "
                                   "or dot segment", &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        e = ngx_array_push(olcf->passthrough);
        if (e == NULL) {
            return NGX_CONF_ERROR;
        }

        e->path = value[i];
        e->prefix = 0;

        if (e->path.data[e->path.len - 1] == '*') {
            e->prefix = 1;
            e->path.len--;
        }
    }

    return NGX_CONF_OK;
}
