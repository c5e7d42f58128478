
/*
 * Copyright (C) gpugate authors
 *
 * The model list (GET /v1/models, /v1/models/ID), answered by the gateway
 * and never by a runtime: the location's models and those of connected
 * agents on its tunnel pools, filtered by the key's list; and the model
 * table's lookup and checks (may the key use it, is it served here) that
 * the router's JSON side (ngx_http_gpugate_openai_handler.c) and its
 * multipart side (ngx_http_gpugate_openai_multipart.c) both call, so the
 * three files call downwards only.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_openai.h"
#include "ngx_http_gpugate_tunnel_api.h"
#include "gpugate_oai_body.h"


static ngx_str_t *ngx_http_gpugate_models_allowed(ngx_http_request_t *r,
    ngx_http_gpugate_openai_loc_conf_t *olcf, ngx_str_t *allowed);
static ngx_int_t ngx_http_gpugate_openai_priority_check(
    ngx_http_request_t *r, ngx_http_gpugate_openai_ctx_t *ctx);
static ngx_int_t ngx_http_gpugate_openai_priority_header(
    ngx_http_request_t *r);


#define ngx_http_gpugate_openai_is_priority(h)                              \
    ((h)->key.len == sizeof("X-Gpugate-Priority") - 1                       \
     && ngx_strncasecmp((h)->key.data, (u_char *) "X-Gpugate-Priority",      \
                        sizeof("X-Gpugate-Priority") - 1) == 0)


/*
 * The key's model list, NULL when it may use every model (no auth here,
 * no list, or "*").
 */

static ngx_str_t *
ngx_http_gpugate_models_allowed(ngx_http_request_t *r,
    ngx_http_gpugate_openai_loc_conf_t *olcf, ngx_str_t *allowed)
{
    ngx_http_variable_value_t  *vv;

    if (olcf->allowed_index == NGX_ERROR) {
        return NULL;
    }

    vv = ngx_http_get_indexed_variable(r, olcf->allowed_index);

    if (vv == NULL || vv->not_found
        || (vv->len == 1 && vv->data[0] == '*'))
    {
        return NULL;
    }

    allowed->data = vv->data;
    allowed->len = vv->len;

    return allowed;
}


/*
 * Models of connected agents ("live") that the location routes to a
 * tunnel pool and does not list by name, appended to "names" (of which
 * the first "listed" are the location's exact names).
 */

static ngx_int_t
ngx_http_gpugate_models_merge(ngx_http_gpugate_openai_loc_conf_t *olcf,
    ngx_array_t *names, ngx_uint_t listed, ngx_array_t *agents)
{
    ngx_str_t                 *name, *live;
    ngx_uint_t                 i, j;
    ngx_http_gpugate_model_t  *e;

    live = agents->elts;

    for (i = 0; i < agents->nelts; i++) {

        if (olcf->models == NULL) {
            if (olcf->default_pool.len == 0
                || !ngx_http_gpugate_tunnel_is_pool(&olcf->default_pool))
            {
                continue;
            }

        } else {
            e = ngx_http_gpugate_openai_find(olcf, &live[i]);

            /* exact names are listed already; aliases are not ids */

            if (e == NULL || !e->prefix || e->pool.len == 0
                || !ngx_http_gpugate_tunnel_is_pool(&e->pool))
            {
                continue;
            }
        }

        name = names->elts;

        for (j = 0; j < listed; j++) {
            if (name[j].len == live[i].len
                && ngx_strncmp(name[j].data, live[i].data, live[i].len) == 0)
            {
                break;
            }
        }

        if (j < listed) {
            continue;
        }

        name = ngx_array_push(names);
        if (name == NULL) {
            return NGX_ERROR;
        }

        *name = live[i];
    }

    return NGX_OK;
}


/* the list (or, with "id", the one model) as OpenAI's JSON */

static ngx_int_t
ngx_http_gpugate_models_json(ngx_http_request_t *r,
    ngx_http_gpugate_openai_loc_conf_t *olcf, ngx_array_t *names,
    ngx_str_t *id, ngx_str_t *body)
{
    size_t       len;
    u_char      *p;
    ngx_str_t   *name;
    ngx_uint_t   i;

    static const char  head[] = "{\"object\":\"list\",\"data\":[";
    static const char  tail[] = "]}\n";

    name = names->elts;
    len = sizeof(head) - 1 + sizeof(tail) - 1;

    for (i = 0; i < names->nelts; i++) {
        len += sizeof(",{\"id\":\"\",\"object\":\"model\",\"created\":,"
                      "\"owned_by\":\"gpugate\"}") - 1
               + name[i].len + ngx_escape_json(NULL, name[i].data,
                                               name[i].len)
               + NGX_TIME_T_LEN;
    }

    body->data = ngx_pnalloc(r->pool, len);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    if (id == NULL) {
        p = ngx_cpymem(p, head, sizeof(head) - 1);
    }

    for (i = 0; i < names->nelts; i++) {
        p = ngx_sprintf(p, "%s{\"id\":\"", i ? "," : "");
        p = (u_char *) ngx_escape_json(p, name[i].data, name[i].len);
        p = ngx_sprintf(p, "\",\"object\":\"model\",\"created\":%T,"
                        "\"owned_by\":\"gpugate\"}", olcf->created);
    }

    if (id == NULL) {
        p = ngx_cpymem(p, tail, sizeof(tail) - 1);

    } else {
        *p++ = '\n';
    }

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * The /v1/models list: the configured model names, then the models that
 * connected agents advertise and that this location routes to a tunnel
 * pool (through a prefix entry, or as the default pool when there are no
 * entries), each once; only what the key may use.  Built per request when
 * agents or a key's limits are involved.  With an id (/v1/models/ID):
 * that one model object if the list has it, else 404 model_not_found.
 */

ngx_int_t
ngx_http_gpugate_models_answer(ngx_http_request_t *r,
    ngx_http_gpugate_openai_loc_conf_t *olcf, ngx_str_t *id)
{
    ngx_str_t                  body, *name, *allowed, list;
    ngx_uint_t                 i, j, n;
    ngx_array_t                names, agents;
    ngx_http_gpugate_error_t   err;
    ngx_http_gpugate_model_t  *m;

    m = olcf->models ? olcf->models->elts : NULL;
    n = olcf->models ? olcf->models->nelts : 0;

    allowed = ngx_http_gpugate_models_allowed(r, olcf, &list);

    if (ngx_array_init(&names, r->pool, n + 8, sizeof(ngx_str_t)) != NGX_OK
        || ngx_array_init(&agents, r->pool, 8, sizeof(ngx_str_t)) != NGX_OK
        || ngx_http_gpugate_tunnel_live_models(r->pool, &agents) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (agents.nelts == 0 && allowed == NULL && id == NULL
        && olcf->models_body.len)
    {
        return ngx_http_gpugate_send_json(r, NGX_HTTP_OK, &olcf->models_body);
    }

    for (i = 0; i < n; i++) {
        if (!m[i].prefix) {
            name = ngx_array_push(&names);
            if (name == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            *name = m[i].name;
        }
    }

    if (ngx_http_gpugate_models_merge(olcf, &names, names.nelts, &agents)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    name = names.elts;

    /* drop what the key may not use, and with an id all but that one */

    for (i = 0, j = 0; i < names.nelts; i++) {
        if (allowed
            && !gpugate_oai_model_allowed((char *) allowed->data,
                                          allowed->len,
                                          (char *) name[i].data,
                                          name[i].len))
        {
            continue;
        }

        if (id && !(id->len == name[i].len
                    && ngx_strncmp(id->data, name[i].data, id->len) == 0))
        {
            continue;
        }

        name[j++] = name[i];
    }

    names.nelts = j;

    if (id && names.nelts == 0) {
        ngx_http_gpugate_status_error(NGX_HTTP_NOT_FOUND, &err);
        err.type = NGX_HTTP_GPUGATE_ERR_INVALID;
        err.code = "model_not_found";
        err.param = "model";
        ngx_str_set(&err.message, "The model does not exist or you do not "
                                  "have access to it.");

        return ngx_http_gpugate_send_error(r, &err);
    }

    if (ngx_http_gpugate_models_json(r, olcf, &names, id, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_gpugate_send_json(r, NGX_HTTP_OK, &body);
}


/* a refusal naming the request's model ("fmt" has one %V for it) */

static ngx_int_t
ngx_http_gpugate_openai_model_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *fmt, ngx_str_t *model)
{
    ngx_http_gpugate_error_t  err;

    ngx_http_gpugate_status_error(status, &err);

    if (status == NGX_HTTP_NOT_FOUND) {
        err.type = NGX_HTTP_GPUGATE_ERR_INVALID;
    }

    err.code = code;
    err.param = "model";
    err.message.data = ngx_pnalloc(r->pool, model->len + 64);
    if (err.message.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    err.message.len = ngx_sprintf(err.message.data, fmt, model)
                      - err.message.data;

    return ngx_http_gpugate_send_error(r, &err);
}


/*
 * The checks every endpoint makes of ctx->model, JSON or multipart: the
 * key may use it (403), the location knows it (404); then its pool and
 * the name the runtime knows it by are set, and *m is its entry (NULL:
 * the location's own proxy_pass); then the request's priority
 * (ctx->priority; a bad X-Gpugate-Priority is a 400 before the limits
 * spend anything).  NGX_DECLINED: go on; else what to finalize with, the
 * refusal sent.
 */

ngx_int_t
ngx_http_gpugate_openai_check(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, ngx_http_gpugate_model_t **m)
{
    ngx_http_variable_value_t           *vv;
    ngx_http_gpugate_openai_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_openai_module);

    ctx->routed = 1;

    /* the key's model list, when auth set one */

    if (olcf->allowed_index != NGX_ERROR) {
        vv = ngx_http_get_indexed_variable(r, olcf->allowed_index);

        if (vv && !vv->not_found
            && !gpugate_oai_model_allowed((char *) vv->data, vv->len,
                                          (char *) ctx->model.data,
                                          ctx->model.len))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "gpugate openai: model \"%V\" not allowed for "
                          "this key", &ctx->model);

            return ngx_http_gpugate_openai_model_error(r,
                       NGX_HTTP_FORBIDDEN, "model_not_allowed",
                       "This API key may not use the model `%V`.",
                       &ctx->model);
        }
    }

    *m = ngx_http_gpugate_openai_find(olcf, &ctx->model);

    if (*m == NULL && olcf->models && olcf->models->nelts) {
        return ngx_http_gpugate_openai_model_error(r, NGX_HTTP_NOT_FOUND,
                   "model_not_found", "The model `%V` does not exist.",
                   &ctx->model);
    }

    ctx->target = ctx->model;

    if (*m) {
        ctx->pool = (*m)->pool;

        if ((*m)->target.len) {
            ctx->target = (*m)->target;
        }
    }

    return ngx_http_gpugate_openai_priority_check(r, ctx);
}


/*
 * The request's priority, for every routed request whatever its pool:
 * the one computation (ngx_http_gpugate_tunnel_request_priority(): the
 * key's default, X-Gpugate-Priority up to the key's maximum) that the
 * tunnel's wait queue, the runtime's body (priority=), $gpugate_priority
 * and the ledger then read from ctx->priority, so a plain upstream and a
 * tunnel pool log and validate it alike.  NGX_DECLINED: go on; else the
 * 400 sent.
 */

static ngx_int_t
ngx_http_gpugate_openai_priority_check(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx)
{
    ngx_str_t                 bad;
    ngx_http_gpugate_error_t  err;

    ngx_str_null(&bad);

    if (ngx_http_gpugate_tunnel_request_priority(r, &ctx->priority, &bad)
        == NGX_DECLINED)
    {
        ctx->priority = -1;

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate openai: 400: %V", &bad);

        ngx_http_gpugate_status_error(NGX_HTTP_BAD_REQUEST, &err);
        err.type = NGX_HTTP_GPUGATE_ERR_INVALID;
        err.code = "invalid_priority";
        err.message = bad;

        return ngx_http_gpugate_send_error(r, &err);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: priority %i, pool \"%V\"",
                   ctx->priority, &ctx->pool);

    return ngx_http_gpugate_openai_priority_header(r);
}


/*
 * X-Gpugate-Priority taken out of the request's headers once read, so
 * that proxy_pass does not forward the gateway's header to a plain
 * upstream (the tunnel, which takes ctx->priority, takes it out too).
 * NGX_DECLINED: go on; NGX_HTTP_INTERNAL_SERVER_ERROR: out of memory.
 */

static ngx_int_t
ngx_http_gpugate_openai_priority_header(ngx_http_request_t *r)
{
    ngx_uint_t        i, found;
    ngx_list_t        kept;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    found = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            found += ngx_http_gpugate_openai_is_priority(&h[i]);
        }
    }

    if (found == 0) {
        return NGX_DECLINED;
    }

    if (ngx_list_init(&kept, r->pool, 8, sizeof(ngx_table_elt_t)) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_gpugate_openai_is_priority(&h[i])) {
                continue;
            }

            nh = ngx_list_push(&kept);
            if (nh == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            *nh = h[i];
        }
    }

    r->headers_in.headers = kept;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: %ui X-Gpugate-Priority taken out",
                   found);

    return NGX_DECLINED;
}


ngx_http_gpugate_model_t *
ngx_http_gpugate_openai_find(ngx_http_gpugate_openai_loc_conf_t *olcf,
    ngx_str_t *model)
{
    ngx_uint_t                 i;
    ngx_http_gpugate_model_t  *m, *best;

    if (olcf->models == NULL) {
        return NULL;
    }

    m = olcf->models->elts;
    best = NULL;

    /* an exact name wins; otherwise the longest matching prefix */

    for (i = 0; i < olcf->models->nelts; i++) {

        if (!m[i].prefix) {
            if (m[i].name.len == model->len
                && ngx_strncmp(m[i].name.data, model->data, model->len) == 0)
            {
                return &m[i];
            }

            continue;
        }

        if (m[i].name.len <= model->len
            && ngx_strncmp(m[i].name.data, model->data, m[i].name.len) == 0
            && (best == NULL || m[i].name.len > best->name.len))
        {
            best = &m[i];
        }
    }

    return best;
}
