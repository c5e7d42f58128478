
/*
 * Copyright (C) gpugate authors
 *
 * The trace module: gpugate_trace and gpugate_otlp, the request's trace
 * context (made in the rewrite phase, or when a variable or the header
 * filter first asks), the traceresponse header, and in the log phase
 * the GenAI histograms and the request's span.  See
 * ngx_http_gpugate_trace.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_gpugate_trace.h"
#include "ngx_http_gpugate_metrics.h"
#include "gpugate_oai_body.h"


/* indexes into vars[] of the other modules' variables */
enum {
    NGX_HTTP_GPUGATE_TV_MODEL = 0,
    NGX_HTTP_GPUGATE_TV_TENANT,
    NGX_HTTP_GPUGATE_TV_KEY_PREFIX,
    NGX_HTTP_GPUGATE_TV_PROMPT,
    NGX_HTTP_GPUGATE_TV_COMPLETION,
    NGX_HTTP_GPUGATE_TV_TTFT,
    NGX_HTTP_GPUGATE_TV_PARTIAL,
    NGX_HTTP_GPUGATE_TV_STREAM,
    NGX_HTTP_GPUGATE_TV_POOL,
    NGX_HTTP_GPUGATE_TV_FINISH,
    NGX_HTTP_GPUGATE_TV_N
};


static ngx_str_t  ngx_http_gpugate_trace_var_names[] = {
    ngx_string("gpugate_model"),
    ngx_string("gpugate_tenant"),
    ngx_string("gpugate_key_prefix"),
    ngx_string("gpugate_prompt_tokens"),
    ngx_string("gpugate_completion_tokens"),
    ngx_string("gpugate_ttft_ms"),
    ngx_string("gpugate_usage_partial"),
    ngx_string("gpugate_stream"),
    ngx_string("gpugate_pool"),
    ngx_string("gpugate_finish_reasons")
};


static void *ngx_http_gpugate_trace_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_gpugate_trace_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_trace_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_gpugate_trace_otlp(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gpugate_trace_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_gpugate_trace_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_gpugate_trace_init_process(ngx_cycle_t *cycle);
static void ngx_http_gpugate_trace_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_gpugate_trace_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gpugate_trace_rewrite(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_trace_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_trace_log(ngx_http_request_t *r);


static ngx_command_t  ngx_http_gpugate_trace_commands[] = {

    { ngx_string("gpugate_trace"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gpugate_trace_loc_conf_t, enable),
      NULL },

    { ngx_string("gpugate_otlp"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_trace_otlp,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gpugate_trace_module_ctx = {
    ngx_http_gpugate_trace_add_variables,  /* preconfiguration */
    ngx_http_gpugate_trace_init,           /* postconfiguration */

    ngx_http_gpugate_trace_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gpugate_trace_create_loc_conf, /* create location configuration */
    ngx_http_gpugate_trace_merge_loc_conf  /* merge location configuration */
};


ngx_module_t  ngx_http_gpugate_trace_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_trace_module_ctx,    /* module context */
    ngx_http_gpugate_trace_commands,       /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_gpugate_trace_init_process,   /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_gpugate_trace_exit_process,   /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_gpugate_trace_vars[] = {

    { ngx_string("gpugate_trace_id"), NULL,
      ngx_http_gpugate_trace_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_span_id"), NULL,
      ngx_http_gpugate_trace_variable, 1,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_traceparent"), NULL,
      ngx_http_gpugate_trace_variable, 2,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_tracestate"), NULL,
      ngx_http_gpugate_trace_variable, 3,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

static ngx_str_t  ngx_http_gpugate_trace_zone_name =
    ngx_string("gpugate_trace");

/* this worker's id generator, seeded from RAND_bytes on first use */
static gpugate_trace_rng_t  ngx_http_gpugate_trace_rng;
static ngx_uint_t           ngx_http_gpugate_trace_seeded;


static void *
ngx_http_gpugate_trace_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_trace_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_trace_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    return tmcf;
}


static void *
ngx_http_gpugate_trace_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_trace_loc_conf_t  *tlcf;

    tlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_trace_loc_conf_t));
    if (tlcf == NULL) {
        return NULL;
    }

    tlcf->enable = NGX_CONF_UNSET;

    return tlcf;
}


static char *
ngx_http_gpugate_trace_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_gpugate_trace_loc_conf_t  *prev = parent;
    ngx_http_gpugate_trace_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    return NGX_CONF_OK;
}


/* a ratio from 0 to 1 in millionths, without the locale's float parser */

static ngx_int_t
ngx_http_gpugate_trace_ratio(ngx_str_t *val)
{
    double      d, scale;
    u_char     *p;
    ngx_uint_t  dot;

    d = 0;
    scale = 0;
    dot = 0;

    for (p = val->data; p < val->data + val->len; p++) {
        if (*p == '.' && !dot) {
            dot = 1;
            scale = 1;
            continue;
        }

        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        if (dot) {
            scale /= 10;
            d += (*p - '0') * scale;

        } else {
            d = d * 10 + (*p - '0');
        }

        if (d > 1.0) {
            return NGX_ERROR;
        }
    }

    if (val->len == 0) {
        return NGX_ERROR;
    }

    return (ngx_int_t) (d * 1000000 + 0.5);
}


/*
 * gpugate_otlp http://HOST:PORT/PATH [sample=R] [batch=N] [buffer=N]
 *              [interval=TIME] [timeout=TIME] [service=NAME]
 * The collector's name is resolved once, here, like an upstream server's.
 */

static char *
ngx_http_gpugate_trace_otlp(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_trace_main_conf_t *tmcf = conf;

    u_char     *p;
    ngx_int_t   n;
    ngx_str_t  *value, val;
    ngx_url_t   u;
    ngx_uint_t  i;

    if (tmcf->otlp) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len <= 7
        || ngx_strncmp(value[1].data, "http://", 7) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "gpugate_otlp: \"%V\" is not an http:// URL "
                           "(OTLP/HTTP, JSON)", &value[1]);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = value[1].data + 7;
    u.url.len = value[1].len - 7;
    u.default_port = 4318;
    u.uri_part = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "gpugate_otlp: bad collector \"%V\"%s%s",
                           &value[1], u.err ? ": " : "",
                           u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    tmcf->addr = u.addrs[0];
    tmcf->host = u.host;

    if (u.port != 80) {
        p = ngx_pnalloc(cf->pool, u.host.len + sizeof(":65535"));
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        tmcf->host.data = p;
        tmcf->host.len = ngx_sprintf(p, "%V:%d", &u.host, (int) u.port) - p;
    }

    if (u.uri.len) {
        tmcf->uri = u.uri;
    } else {
        ngx_str_set(&tmcf->uri, "/v1/traces");
    }

    tmcf->sample = 1000000;
    tmcf->batch = 256;
    tmcf->buffer = 4096;
    tmcf->interval = 1000;
    tmcf->timeout = 5000;
    ngx_str_set(&tmcf->service, "gpugate");

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_http_gpugate_conf_param(&value[i], "sample", &val)) {
            n = ngx_http_gpugate_trace_ratio(&val);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            tmcf->sample = n;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "batch", &val)) {
            n = ngx_atoi(val.data, val.len);
            if (n < 1 || n > 4096) {
                goto invalid;
            }

            tmcf->batch = n;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "buffer", &val)) {
            n = ngx_atoi(val.data, val.len);
            if (n < 1 || n > 1000000) {
                goto invalid;
            }

            tmcf->buffer = n;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "interval", &val)) {
            if (ngx_http_gpugate_conf_msec(cf, &value[i], &val, 10,
                                           &tmcf->interval)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "timeout", &val)) {
            if (ngx_http_gpugate_conf_msec(cf, &value[i], &val, 10,
                                           &tmcf->timeout)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "service", &val)) {
            if (val.len == 0 || val.len > 255) {
                goto invalid;
            }

            tmcf->service = val;
            continue;
        }

        goto invalid;
    }

    if (tmcf->buffer < tmcf->batch) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "gpugate_otlp: buffer=%ui is less than "
                           "batch=%ui", tmcf->buffer, tmcf->batch);
        return NGX_CONF_ERROR;
    }

    tmcf->otlp = 1;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "gpugate_otlp: invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_gpugate_trace_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_gpugate_trace_vars; v->name.len; v++) {
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
ngx_http_gpugate_trace_init(ngx_conf_t *cf)
{
    ngx_uint_t                           i;
    ngx_http_handler_pt                 *h;
    ngx_http_core_main_conf_t           *cmcf;
    ngx_http_gpugate_trace_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_trace_module);

    /* the GenAI histograms: 256 models of about 600 bytes each */
    tmcf->zone = ngx_shared_memory_add(cf, &ngx_http_gpugate_trace_zone_name,
                                       256 * 1024 + 8 * ngx_pagesize,
                                       &ngx_http_gpugate_trace_module);
    if (tmcf->zone == NULL) {
        return NGX_ERROR;
    }

    tmcf->zone->init = ngx_http_gpugate_trace_init_zone;
    tmcf->zone->noreuse = 0;

    for (i = 0; i < NGX_HTTP_GPUGATE_TV_N; i++) {
        tmcf->vars[i] = ngx_http_get_variable_index(cf,
                                        &ngx_http_gpugate_trace_var_names[i]);
        if (tmcf->vars[i] == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gpugate_trace_rewrite;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gpugate_trace_log;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_gpugate_trace_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_trace_init_process(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_trace_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_gpugate_trace_module);

    if (tmcf == NULL || !tmcf->otlp) {
        return NGX_OK;
    }

    return ngx_http_gpugate_trace_otlp_init(cycle, tmcf);
}


static void
ngx_http_gpugate_trace_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_trace_otlp_exit(cycle);
}


/*
 * The context lives in a pool cleanup of the main request, as the
 * ledger's extra fields do: an internal redirect wipes module contexts,
 * and the trace must stay the one the client and the ledger were told.
 */

static void
ngx_http_gpugate_trace_mark(void *data)
{
}


static ngx_http_gpugate_trace_req_t *
ngx_http_gpugate_trace_find(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = r->main->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_gpugate_trace_mark) {
            return cln->data;
        }
    }

    return NULL;
}


/* the client's trace headers: one traceparent, tracestate joined */

static ngx_int_t
ngx_http_gpugate_trace_headers(ngx_http_request_t *r, ngx_str_t *parent,
    ngx_str_t *state)
{
    u_char           *p;
    ngx_uint_t        i, parents, states;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    parents = 0;
    states = 0;
    ngx_str_null(parent);
    ngx_str_null(state);

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == 11
            && ngx_strncasecmp(h[i].key.data, (u_char *) "traceparent", 11)
               == 0)
        {
            *parent = h[i].value;
            parents++;

        } else if (h[i].key.len == 10
                   && ngx_strncasecmp(h[i].key.data, (u_char *) "tracestate",
                                      10) == 0)
        {
            if (states++ == 0) {
                *state = h[i].value;
                continue;
            }

            /* several fields are one list (RFC 9110, 5.3) */
            if (state->len + 1 + h[i].value.len > GPUGATE_TRACESTATE_MAX) {
                state->len = GPUGATE_TRACESTATE_MAX + 1;
                continue;
            }

            p = ngx_pnalloc(r->pool, state->len + 1 + h[i].value.len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(p, state->data, state->len);
            p[state->len] = ',';
            ngx_memcpy(p + state->len + 1, h[i].value.data, h[i].value.len);
            state->data = p;
            state->len += 1 + h[i].value.len;
        }
    }

    return parents;
}


static ngx_http_gpugate_trace_req_t *
ngx_http_gpugate_trace_get(ngx_http_request_t *r)
{
    int                                  rc;
    u_char                               seed[32];
    ngx_int_t                            parents;
    ngx_str_t                            parent, state;
    ngx_pool_cleanup_t                  *cln;
    ngx_http_gpugate_trace_req_t        *t;
    ngx_http_gpugate_trace_shm_t        *shm;
    ngx_http_gpugate_ledger_extra_t     *x;
    ngx_http_gpugate_trace_loc_conf_t   *tlcf;
    ngx_http_gpugate_trace_main_conf_t  *tmcf;

    t = ngx_http_gpugate_trace_find(r);

    if (t) {
        return t;
    }

    tlcf = ngx_http_get_module_loc_conf(r->main,
                                        ngx_http_gpugate_trace_module);

    if (!tlcf->enable) {
        return NULL;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_trace_module);
    shm = tmcf->zone->data;

    cln = ngx_pool_cleanup_add(r->main->pool,
                               sizeof(ngx_http_gpugate_trace_req_t));
    if (cln == NULL) {
        return NULL;
    }

    t = cln->data;
    ngx_memzero(t, sizeof(ngx_http_gpugate_trace_req_t));
    cln->handler = ngx_http_gpugate_trace_mark;

    if (!ngx_http_gpugate_trace_seeded) {
        if (RAND_bytes(seed, sizeof(seed)) != 1) {
            ngx_memcpy(seed, &ngx_pid, sizeof(ngx_pid));
            ngx_memcpy(seed + 8, &r->start_msec, sizeof(r->start_msec));
            ngx_memcpy(seed + 16, &r, sizeof(r));
        }

        gpugate_trace_rng_seed(&ngx_http_gpugate_trace_rng, seed);
        ngx_http_gpugate_trace_seeded = 1;
    }

    parents = ngx_http_gpugate_trace_headers(r->main, &parent, &state);
    rc = GPUGATE_TRACE_E_LENGTH;

    if (parents == 1) {
        rc = gpugate_traceparent_parse((char *) parent.data, parent.len,
                                       &t->tc);
    }

    if (parents == 1 && rc == GPUGATE_TRACE_OK) {
        ngx_memcpy(t->parent, t->tc.span_id, GPUGATE_SPAN_ID_SIZE);
        t->has_parent = 1;
        t->sampled = (t->tc.flags & GPUGATE_TRACE_SAMPLED) ? 1 : 0;
        (void) ngx_atomic_fetch_add(&shm->traces_joined, 1);

        if (state.len && !gpugate_tracestate_valid((char *) state.data,
                                                   state.len))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "gpugate trace: the client's tracestate "
                          "(%uz bytes) is not a valid list of at most %d "
                          "bytes: not passed on", state.len,
                          GPUGATE_TRACESTATE_MAX);
            state.len = 0;
        }

        t->tracestate = state;

    } else {
        if (parents) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "gpugate trace: the client's traceparent is "
                          "refused (%s): a new trace starts",
                          parents > 1 ? "sent more than once"
                                      : gpugate_traceparent_error(rc));
            (void) ngx_atomic_fetch_add(&shm->bad_traceparent, 1);

        } else {
            (void) ngx_atomic_fetch_add(&shm->traces_started, 1);
        }

        /* W3C: without a valid traceparent, tracestate is dropped too */
        gpugate_trace_rng_id(&ngx_http_gpugate_trace_rng, t->tc.trace_id,
                             GPUGATE_TRACE_ID_SIZE);
        t->tc.flags = 0;
    }

    gpugate_trace_rng_id(&ngx_http_gpugate_trace_rng, t->tc.span_id,
                         GPUGATE_SPAN_ID_SIZE);

    if (!t->sampled && tmcf->otlp
        && gpugate_trace_rng_unit(&ngx_http_gpugate_trace_rng) * 1000000
           < (double) tmcf->sample)
    {
        t->sampled = 1;
    }

    gpugate_trace_hex((char *) t->trace_hex, t->tc.trace_id,
                      GPUGATE_TRACE_ID_SIZE);
    gpugate_trace_hex((char *) t->span_hex, t->tc.span_id,
                      GPUGATE_SPAN_ID_SIZE);
    gpugate_traceparent_format((char *) t->traceparent, t->tc.trace_id,
                               t->tc.span_id,
                               (u_char) ((t->tc.flags
                                          & ~GPUGATE_TRACE_SAMPLED)
                                         | (t->sampled
                                            ? GPUGATE_TRACE_SAMPLED : 0)));

    x = ngx_http_gpugate_ledger_extra(r->main);

    if (x) {
        x->trace_id.data = t->trace_hex;
        x->trace_id.len = sizeof(t->trace_hex);
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate trace: trace %*s, span %*s%s",
                   sizeof(t->trace_hex), t->trace_hex, sizeof(t->span_hex),
                   t->span_hex, t->has_parent ? " (client's trace)" : "");

    return t;
}


static ngx_int_t
ngx_http_gpugate_trace_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_gpugate_trace_req_t  *t;

    t = ngx_http_gpugate_trace_get(r);

    if (t == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case 0:
        v->data = t->trace_hex;
        v->len = sizeof(t->trace_hex);
        break;

    case 1:
        v->data = t->span_hex;
        v->len = sizeof(t->span_hex);
        break;

    case 2:
        v->data = t->traceparent;
        v->len = sizeof(t->traceparent);
        break;

    default:
        v->data = t->tracestate.data;
        v->len = t->tracestate.len;
        break;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_trace_rewrite(ngx_http_request_t *r)
{
    if (r == r->main) {
        (void) ngx_http_gpugate_trace_get(r);
    }

    return NGX_DECLINED;
}


/*
 * traceresponse (W3C Trace Context Level 2): the trace and the gateway's
 * span, so a client that sent no traceparent can still name its trace.
 */

static ngx_int_t
ngx_http_gpugate_trace_header_filter(ngx_http_request_t *r)
{
    ngx_table_elt_t               *h;
    ngx_http_gpugate_trace_req_t  *t;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    t = ngx_http_gpugate_trace_get(r);

    if (t == NULL) {
        return ngx_http_next_header_filter(r);
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "traceresponse");
    h->value.data = t->traceparent;
    h->value.len = sizeof(t->traceparent);

    return ngx_http_next_header_filter(r);
}


static void
ngx_http_gpugate_trace_var(ngx_http_request_t *r, ngx_int_t index,
    ngx_str_t *out)
{
    ngx_http_variable_value_t  *v;

    v = ngx_http_get_indexed_variable(r, index);

    if (v == NULL || v->not_found) {
        ngx_str_null(out);
        return;
    }

    out->data = v->data;
    out->len = v->len;
}


static ngx_int_t
ngx_http_gpugate_trace_num(ngx_http_request_t *r, ngx_int_t index)
{
    ngx_str_t  s;

    ngx_http_gpugate_trace_var(r, index, &s);

    if (s.len == 0) {
        return -1;
    }

    return ngx_atoi(s.data, s.len);
}


/* gen_ai.operation.name of an endpoint: the conventions' names where
   they have one */

static const char *
ngx_http_gpugate_trace_operation(ngx_http_request_t *r)
{
    size_t       len;
    const char  *id;

    static const char  *names[] = {
        "http", "chat", "text_completion", "embeddings", "chat", "chat",
        "rerank", "score", "image_generation",
        "speech", "transcription", "translation", "image_edit",
        "list_models", "get_model"
    };

    return names[gpugate_oai_path((char *) r->uri.data, r->uri.len, &id,
                                  &len)];
}


/* the agent, or server, of the last upstream attempt */

static void
ngx_http_gpugate_trace_agent(ngx_http_request_t *r, ngx_str_t *agent)
{
    ngx_http_upstream_state_t  *state;

    ngx_str_null(agent);

    if (r->upstream_states && r->upstream_states->nelts) {
        state = r->upstream_states->elts;

        if (state[r->upstream_states->nelts - 1].peer) {
            *agent = *state[r->upstream_states->nelts - 1].peer;
        }
    }
}


#define ngx_http_gpugate_trace_str(a, k, v)                                  \
    do {                                                                      \
        if ((v).len) {                                                        \
            (a)->key = k;                                                     \
            (a)->type = GPUGATE_OTLP_STR;                                     \
            (a)->s = (const char *) (v).data;                                 \
            (a)->len = (v).len;                                               \
            (a)++;                                                            \
        }                                                                     \
    } while (0)

#define ngx_http_gpugate_trace_int(a, k, t, v)                               \
    do {                                                                      \
        (a)->key = k;                                                         \
        (a)->type = t;                                                        \
        (a)->i = (int64_t) (v);                                               \
        (a)++;                                                                \
    } while (0)


/* the request's span, as OTLP/JSON, to the worker's exporter */

static void
ngx_http_gpugate_trace_span(ngx_http_request_t *r,
    ngx_http_gpugate_trace_main_conf_t *tmcf,
    ngx_http_gpugate_trace_req_t *t, ngx_http_gpugate_trace_obs_t *obs)
{
    u_char                           *name;
    size_t                            len;
    ngx_str_t                         tenant, prefix, pool, agent, host;
    ngx_str_t                         region, finish;
    ngx_time_t                       *tp;
    const char                       *op;
    gpugate_otlp_attr_t               attrs[20], *a;
    gpugate_otlp_span_t               sp;
    ngx_http_gpugate_trace_shm_t     *shm;
    ngx_http_gpugate_ledger_extra_t  *x;

    static u_char  json[NGX_HTTP_GPUGATE_TRACE_SPAN_MAX];

    shm = tmcf->zone->data;

    op = ngx_http_gpugate_trace_operation(r);

    ngx_http_gpugate_trace_var(r, tmcf->vars[NGX_HTTP_GPUGATE_TV_TENANT],
                               &tenant);
    ngx_http_gpugate_trace_var(r,
                               tmcf->vars[NGX_HTTP_GPUGATE_TV_KEY_PREFIX],
                               &prefix);
    ngx_http_gpugate_trace_var(r, tmcf->vars[NGX_HTTP_GPUGATE_TV_POOL],
                               &pool);
    ngx_http_gpugate_trace_agent(r, &agent);

    ngx_str_null(&host);
    if (r->headers_in.server.len) {
        host = r->headers_in.server;
    }

    ngx_str_null(&region);
    x = ngx_http_gpugate_ledger_extra_find(r);
    if (x) {
        region = x->region;
    }

    a = attrs;

    a->key = "gen_ai.operation.name";
    a->type = GPUGATE_OTLP_STR;
    a->s = op;
    a->len = ngx_strlen(op);
    a++;

    ngx_http_gpugate_trace_str(a, "gen_ai.request.model", obs->model);

    if (obs->status == NGX_HTTP_OK) {
        /* the model that answered is the one routed to */
        ngx_http_gpugate_trace_str(a, "gen_ai.response.model", obs->model);
    }

    if (obs->prompt >= 0) {
        ngx_http_gpugate_trace_int(a, "gen_ai.usage.input_tokens",
                                   GPUGATE_OTLP_INT, obs->prompt);
    }

    if (obs->completion >= 0) {
        ngx_http_gpugate_trace_int(a, "gen_ai.usage.output_tokens",
                                   GPUGATE_OTLP_INT, obs->completion);
    }

    /* comma-separated: no reason holds a comma (gpugate_oai_reasons.h) */

    ngx_http_gpugate_trace_var(r, tmcf->vars[NGX_HTTP_GPUGATE_TV_FINISH],
                               &finish);

    if (finish.len) {
        a->key = "gen_ai.response.finish_reasons";
        a->type = GPUGATE_OTLP_STRS;
        a->s = (const char *) finish.data;
        a->len = finish.len;
        a++;
    }

    ngx_http_gpugate_trace_str(a, "server.address", host);
    ngx_http_gpugate_trace_int(a, "http.response.status_code",
                               GPUGATE_OTLP_INT, obs->status);
    ngx_http_gpugate_trace_str(a, "gpugate.tenant", tenant);
    ngx_http_gpugate_trace_str(a, "gpugate.key_prefix", prefix);
    ngx_http_gpugate_trace_str(a, "gpugate.agent", agent);
    ngx_http_gpugate_trace_str(a, "gpugate.pool", pool);
    ngx_http_gpugate_trace_str(a, "gpugate.region", region);

    if (obs->ttft_ms >= 0) {
        ngx_http_gpugate_trace_int(a, "gpugate.ttft_ms", GPUGATE_OTLP_INT,
                                   obs->ttft_ms);
    }

    ngx_http_gpugate_trace_int(a, "gpugate.stream", GPUGATE_OTLP_BOOL,
                               obs->stream);
    ngx_http_gpugate_trace_int(a, "gpugate.partial", GPUGATE_OTLP_BOOL,
                               obs->partial);

    /* "{operation} {model}" */

    len = ngx_strlen(op);
    name = ngx_pnalloc(r->pool, len + 1 + obs->model.len);
    if (name == NULL) {
        return;
    }

    ngx_memcpy(name, op, len);

    if (obs->model.len) {
        name[len++] = ' ';
        ngx_memcpy(name + len, obs->model.data, obs->model.len);
        len += obs->model.len;
    }

    tp = ngx_timeofday();

    ngx_memzero(&sp, sizeof(gpugate_otlp_span_t));
    sp.trace_id = t->tc.trace_id;
    sp.span_id = t->tc.span_id;
    sp.parent_id = t->has_parent ? t->parent : NULL;
    sp.name = (char *) name;
    sp.name_len = len;
    sp.kind = 2;
    sp.start_ns = (uint64_t) r->start_sec * 1000000000
                  + (uint64_t) r->start_msec * 1000000;
    sp.end_ns = (uint64_t) tp->sec * 1000000000
                + (uint64_t) tp->msec * 1000000;
    sp.error = obs->status >= 500 || obs->partial;
    sp.tracestate = (char *) t->tracestate.data;
    sp.tracestate_len = t->tracestate.len;
    sp.attrs = attrs;
    sp.nattrs = a - attrs;

    /* written once into a buffer of the most a span may take */
    len = gpugate_otlp_span_json((char *) json,
                                 NGX_HTTP_GPUGATE_TRACE_SPAN_MAX, &sp);

    if (len > NGX_HTTP_GPUGATE_TRACE_SPAN_MAX) {
        (void) ngx_atomic_fetch_add(&shm->dropped, 1);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate trace: a span of %uz bytes is over %d: "
                      "dropped", len, NGX_HTTP_GPUGATE_TRACE_SPAN_MAX);
        return;
    }

    ngx_http_gpugate_trace_otlp_add(json, len);
}


/*
 * The log phase: the GenAI histograms of an accounting location, and the
 * span of a traced request when it is sampled, failed (5xx) or cut short
 * (partial): errors are always exported, whatever the ratio.
 */

static ngx_int_t
ngx_http_gpugate_trace_log(ngx_http_request_t *r)
{
    ngx_time_t                           *tp;
    ngx_msec_int_t                        ms;
    ngx_http_gpugate_trace_req_t         *t;
    ngx_http_gpugate_trace_obs_t          obs;
    ngx_http_gpugate_metrics_loc_conf_t  *mlcf;
    ngx_http_gpugate_trace_main_conf_t   *tmcf;

    if (r != r->main) {
        return NGX_OK;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_trace_module);
    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_metrics_module);
    t = tmcf->otlp ? ngx_http_gpugate_trace_find(r) : NULL;

    if (!mlcf->accounting && t == NULL) {
        return NGX_OK;
    }

    if (t) {
        if (t->logged) {
            return NGX_OK;
        }

        t->logged = 1;
    }

    ngx_memzero(&obs, sizeof(ngx_http_gpugate_trace_obs_t));

    ngx_http_gpugate_trace_var(r, tmcf->vars[NGX_HTTP_GPUGATE_TV_MODEL],
                               &obs.model);
    obs.prompt = ngx_http_gpugate_trace_num(r,
                               tmcf->vars[NGX_HTTP_GPUGATE_TV_PROMPT]);
    obs.completion = ngx_http_gpugate_trace_num(r,
                               tmcf->vars[NGX_HTTP_GPUGATE_TV_COMPLETION]);
    obs.ttft_ms = ngx_http_gpugate_trace_num(r,
                               tmcf->vars[NGX_HTTP_GPUGATE_TV_TTFT]);
    obs.partial = ngx_http_gpugate_trace_num(r,
                               tmcf->vars[NGX_HTTP_GPUGATE_TV_PARTIAL]) == 1;
    obs.stream = ngx_http_gpugate_trace_num(r,
                               tmcf->vars[NGX_HTTP_GPUGATE_TV_STREAM]) == 1;

    obs.status = r->err_status ? r->err_status : r->headers_out.status;

    if (r->connection->error && obs.status == 0) {
        obs.status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
    }

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    obs.duration_ms = ms > 0 ? (ngx_msec_t) ms : 0;

    if (mlcf->accounting) {
        ngx_http_gpugate_trace_record(tmcf->zone->data,
                                   (ngx_slab_pool_t *) tmcf->zone->shm.addr,
                                   &obs);
    }

    if (t && (t->sampled || obs.status >= 500 || obs.partial)) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate trace: span of trace %*s exported",
                       sizeof(t->trace_hex), t->trace_hex);

        ngx_http_gpugate_trace_span(r, tmcf, t, &obs);
    }

    return NGX_OK;
}
