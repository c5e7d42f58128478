
/*
 * Copyright (C) gpugate authors
 *
 * What a request brings to the balancer besides its model: a priority
 * and a region.
 *
 * Priority, 0 (lowest) to 9: the key's default (api_keys.priority, else
 * its tenant's, else 5), which X-Gpugate-Priority may change up to the
 * key's maximum (the lower of the key's and the tenant's max_priority;
 * none set: the default).  Asking more than the maximum is not an error:
 * the request gets the maximum (a client cannot tell its key's maximum,
 * and a hint is no reason to fail a request).  A value that is not one
 * digit is a 400.  It orders this worker's wait queue (see _enqueue()).
 *
 * Region: the client's, from the location's "gpugate_region" (any
 * variable: geo, GeoIP2, a header), with the neighbours of
 * "gpugate_region_order" tried next, then any agent.  A key or tenant
 * pinned to a region (api_keys.region), or a request's X-Gpugate-Region,
 * takes agents of that region only.  Both headers are the gateway's and
 * are not passed to the runtime.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"
#include "ngx_http_gpugate_auth_api.h"
#include "ngx_http_gpugate_openai.h"


static ngx_int_t ngx_http_gpugate_tunnel_priority(ngx_http_request_t *r,
    ngx_http_gpugate_limits_t *lim, ngx_uint_t keyed, ngx_str_t *header,
    ngx_int_t *priority, ngx_str_t *bad);
static ngx_int_t ngx_http_gpugate_tunnel_pin(
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_http_gpugate_limits_t *lim,
    ngx_uint_t keyed, ngx_str_t *header);
static ngx_int_t ngx_http_gpugate_tunnel_headers(ngx_http_request_t *r,
    ngx_str_t *prio, ngx_str_t *region);
static ngx_int_t ngx_http_gpugate_tunnel_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_gpugate_tunnel_vars[] = {

    { ngx_string("gpugate_region"), NULL,
      ngx_http_gpugate_tunnel_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_priority"), NULL,
      ngx_http_gpugate_tunnel_variable, 1,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_gpugate_tunnel_classify(ngx_http_gpugate_tunnel_ctx_t *ctx)
{
    ngx_int_t                            rc;
    ngx_str_t                            prio, pin, region;
    ngx_uint_t                           keyed;
    ngx_http_request_t                  *r;
    ngx_http_gpugate_limits_t            lim;
    ngx_http_gpugate_openai_ctx_t       *octx;
    ngx_http_gpugate_tunnel_loc_conf_t  *tlcf;

    if (ctx->classified) {
        return NGX_OK;
    }

    ctx->classified = 1;
    r = ctx->request;

    if (ngx_http_gpugate_tunnel_headers(r, &prio, &pin) != NGX_OK) {
        return NGX_ERROR;
    }

    keyed = (ngx_http_gpugate_auth_limits(r, &lim) == NGX_OK);

    octx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (octx && octx->routed && octx->priority >= 0) {
        /* the router computed it (and refused a bad header) for every
           pool: one computation per request */
        ctx->priority = octx->priority;
        rc = NGX_OK;

    } else {
        /* NGX_DECLINED: ctx->bad says why, the wait phase answers 400 */
        rc = ngx_http_gpugate_tunnel_priority(r, &lim, keyed, &prio,
                                              &ctx->priority, &ctx->bad);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_gpugate_tunnel_pin(ctx, &lim, keyed, &pin);
    }

    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : NGX_ERROR;
    }

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_tunnel_module);
    ctx->order = tlcf->region_order;

    if (ctx->pinned || tlcf->region == NULL) {
        goto done;
    }

    if (ngx_http_complex_value(r, tlcf->region, &region) != NGX_OK) {
        return NGX_ERROR;
    }

    if (region.len
        && gpugate_tunnel_check_region((char *) region.data, region.len)
           == 0)
    {
        ctx->region = region;

    } else if (region.len) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate tunnel: gpugate_region gave \"%*s\", not a "
                      "region name: none used", ngx_min(region.len, 64),
                      region.data);
    }

done:

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate tunnel: priority %i, region \"%V\"%s",
                   ctx->priority, &ctx->region,
                   ctx->pinned ? " (pinned)" : "");

    return NGX_OK;
}


/*
 * The priority of a request the router routes (any pool), asked before
 * the tunnel's wait phase: the same rules, the header only read (the
 * wait phase takes it out, and takes the router's value).  NGX_DECLINED
 * and *bad when the header is bad.
 */

ngx_int_t
ngx_http_gpugate_tunnel_request_priority(ngx_http_request_t *r,
    ngx_int_t *priority, ngx_str_t *bad)
{
    ngx_str_t                   prio;
    ngx_uint_t                  i, keyed;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h;
    ngx_http_gpugate_limits_t   lim;

    ngx_str_null(&prio);

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == 18
                && ngx_strncasecmp(h[i].key.data,
                                   (u_char *) "x-gpugate-priority", 18) == 0)
            {
                prio = h[i].value;
            }
        }
    }

    keyed = (ngx_http_gpugate_auth_limits(r, &lim) == NGX_OK);

    return ngx_http_gpugate_tunnel_priority(r, &lim, keyed, &prio, priority,
                                            bad);
}


/* the request's priority; NGX_DECLINED and *bad when the header is */

static ngx_int_t
ngx_http_gpugate_tunnel_priority(ngx_http_request_t *r,
    ngx_http_gpugate_limits_t *lim, ngx_uint_t keyed, ngx_str_t *header,
    ngx_int_t *priority, ngx_str_t *bad)
{
    ngx_int_t  dflt, max, asked;

    dflt = NGX_HTTP_GPUGATE_PRIO_DEFAULT;
    max = -1;

    if (keyed) {
        if (lim->key.priority >= 0) {
            dflt = (ngx_int_t) lim->key.priority;

        } else if (lim->tenant_set.priority >= 0) {
            dflt = (ngx_int_t) lim->tenant_set.priority;
        }

        /* both apply: the lower maximum wins */

        max = (ngx_int_t) lim->key.priority_max;

        if (lim->tenant_set.priority_max >= 0
            && (max < 0 || lim->tenant_set.priority_max < max))
        {
            max = (ngx_int_t) lim->tenant_set.priority_max;
        }
    }

    if (max < 0) {
        max = dflt;
    }

    if (dflt > max) {
        dflt = max;
    }

    *priority = dflt;

    if (header->data == NULL) {
        return NGX_OK;
    }

    if (header->len != 1 || header->data[0] < '0' || header->data[0] > '9') {
        ngx_str_set(bad, "X-Gpugate-Priority must be one digit, "
                         "0 (lowest) to 9");
        return NGX_DECLINED;
    }

    asked = header->data[0] - '0';
    *priority = ngx_min(asked, max);

    if (asked > max) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate tunnel: priority %i asked, the key's "
                       "maximum %i given", asked, max);
    }

    return NGX_OK;
}


/* a pinned region: the key's, its tenant's, or the header's */

static ngx_int_t
ngx_http_gpugate_tunnel_pin(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_limits_t *lim, ngx_uint_t keyed, ngx_str_t *header)
{
    ngx_str_t                      pin;
    ngx_http_gpugate_limit_set_t  *set;

    ngx_str_null(&pin);

    if (keyed) {
        set = lim->key.region_len ? &lim->key : &lim->tenant_set;

        pin.len = set->region_len;
        pin.data = ngx_pnalloc(ctx->request->pool, set->region_len + 1);
        if (pin.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(pin.data, set->region, set->region_len);
    }

    if (header->data) {
        if (gpugate_tunnel_check_region((char *) header->data, header->len)
            != 0)
        {
            ngx_str_set(&ctx->bad, "X-Gpugate-Region must be a region "
                                   "name: 1-31 of A-Z a-z 0-9 . _ -");
            return NGX_DECLINED;
        }

        /* a key's pin is a rule (data residency), not a preference */

        if (pin.len && (pin.len != header->len
                        || ngx_strncasecmp(pin.data, header->data, pin.len)
                           != 0))
        {
            ngx_str_set(&ctx->bad, "X-Gpugate-Region names another region "
                                   "than the one this API key is pinned "
                                   "to");
            return NGX_DECLINED;
        }

        pin = *header;
    }

    if (pin.len) {
        ctx->region = pin;
        ctx->pinned = 1;
    }

    return NGX_OK;
}


/*
 * X-Gpugate-Priority and X-Gpugate-Region (data NULL: absent) taken out
 * of the request's headers, which proxy_pass would otherwise forward.
 */

static ngx_int_t
ngx_http_gpugate_tunnel_headers(ngx_http_request_t *r, ngx_str_t *prio,
    ngx_str_t *region)
{
    ngx_uint_t        i, found;
    ngx_list_t        kept;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    ngx_str_null(prio);
    ngx_str_null(region);
    found = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == 18
                && ngx_strncasecmp(h[i].key.data,
                                   (u_char *) "x-gpugate-priority", 18) == 0)
            {
                *prio = h[i].value;
                found++;

            } else if (h[i].key.len == 16
                       && ngx_strncasecmp(h[i].key.data,
                                          (u_char *) "x-gpugate-region", 16)
                          == 0)
            {
                *region = h[i].value;
                found++;
            }
        }
    }

    if (found == 0) {
        return NGX_OK;
    }

    if (ngx_list_init(&kept, r->pool, 8, sizeof(ngx_table_elt_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if ((h[i].key.len == 18
                 && ngx_strncasecmp(h[i].key.data,
                                    (u_char *) "x-gpugate-priority", 18) == 0)
                || (h[i].key.len == 16
                    && ngx_strncasecmp(h[i].key.data,
                                       (u_char *) "x-gpugate-region", 16)
                       == 0))
            {
                continue;
            }

            nh = ngx_list_push(&kept);
            if (nh == NULL) {
                return NGX_ERROR;
            }

            *nh = h[i];
        }
    }

    r->headers_in.headers = kept;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate tunnel: %ui priority/region headers taken out",
                   found);

    return NGX_OK;
}


/*
 * The wait queue's order: by rank, the time the request began to wait
 * less "aging" per priority level, smallest first.  A request of
 * priority p that waited "aging" ms is level with one of p + 1 that just
 * came: the priority a request waits at rises by one per "aging", so
 * nothing waits forever behind later higher ones.  Equal ranks keep
 * their arrival order (FIFO within a priority).  As the rise is the
 * same for every waiting request, ranks never need to be computed again.
 */

void
ngx_http_gpugate_tunnel_enqueue(ngx_queue_t *waiting,
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_msec_t aging)
{
    ngx_queue_t                    *q;
    ngx_http_gpugate_tunnel_ctx_t  *other;

    ctx->rank = (ngx_msec_int_t) (ctx->queued - ctx->priority * aging);

    /* most requests come last: look from the tail */

    for (q = ngx_queue_last(waiting);
         q != ngx_queue_sentinel(waiting);
         q = ngx_queue_prev(q))
    {
        other = ngx_queue_data(q, ngx_http_gpugate_tunnel_ctx_t, queue);

        if ((ngx_msec_int_t) (other->rank - ctx->rank) <= 0) {
            break;
        }
    }

    /* after "q", which may be the sentinel: the head */
    ngx_queue_insert_after(q, &ctx->queue);
}


/* 400 for a bad X-Gpugate-Priority or X-Gpugate-Region */

ngx_int_t
ngx_http_gpugate_tunnel_bad_request(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_ctx_t *ctx)
{
    ngx_http_gpugate_error_t  err;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gpugate tunnel: 400: %V", &ctx->bad);

    ngx_http_gpugate_status_error(NGX_HTTP_BAD_REQUEST, &err);
    err.type = NGX_HTTP_GPUGATE_ERR_INVALID;
    err.code = ngx_strncmp(ctx->bad.data, "X-Gpugate-Priority", 18) == 0
               ? "invalid_priority" : "invalid_region";
    err.message = ctx->bad;

    return ngx_http_gpugate_send_error(r, &err);
}


/* the no-capacity reason, naming the region a pinned request waits for */

const char *
ngx_http_gpugate_tunnel_region_why(ngx_http_gpugate_tunnel_ctx_t *ctx,
    const char *why)
{
    u_char  *p, *last;
    size_t   len;

    if (!ctx->pinned) {
        return why;
    }

    len = ngx_strlen(why) + ctx->region.len
          + sizeof(" (pinned to region \"\")");

    p = ngx_pnalloc(ctx->request->pool, len);
    if (p == NULL) {
        return why;
    }

    last = ngx_snprintf(p, len - 1, "%s (pinned to region \"%V\")", why,
                        &ctx->region);
    *last = '\0';

    return (const char *) p;
}


/* "gpugate_region $var;" */

char *
ngx_http_gpugate_tunnel_region_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_gpugate_tunnel_loc_conf_t *tlcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (tlcf->region != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tlcf->region = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (tlcf->region == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = tlcf->region;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* "gpugate_region_order eu-west eu-central us-east;" */

char *
ngx_http_gpugate_tunnel_region_order(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_gpugate_tunnel_loc_conf_t *tlcf = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (tlcf->region_order != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tlcf->region_order = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_str_t));
    if (tlcf->region_order == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (gpugate_tunnel_check_region((char *) value[i].data, value[i].len)
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid region \"%V\": 1-31 of A-Z a-z "
                               "0-9 . _ -", &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(tlcf->region_order);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_gpugate_tunnel_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_gpugate_tunnel_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * $gpugate_region: the served agent's region; $gpugate_priority: the
 * request's priority, the router's for every routed request (plain
 * upstreams too), else the tunnel's own for a balancer reached without
 * the router
 */

static ngx_int_t
ngx_http_gpugate_tunnel_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                         *p;
    ngx_int_t                       prio;
    ngx_http_gpugate_tunnel_ctx_t  *ctx;
    ngx_http_gpugate_openai_ctx_t  *octx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_gpugate_tunnel_module);

    if (data == 0) {
        if (ctx == NULL || !ctx->classified || ctx->served.len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = ctx->served.data;
        v->len = ctx->served.len;

    } else {
        octx = ngx_http_get_module_ctx(r->main,
                                       ngx_http_gpugate_openai_module);

        if (octx && octx->routed && octx->priority >= 0) {
            prio = octx->priority;

        } else if (ctx && ctx->classified) {
            prio = ctx->priority;

        } else {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%i", prio) - p;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
