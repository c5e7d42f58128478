
/*
 * Copyright (C) gpugate authors
 *
 * Request side of the OpenAI router.  In the precontent phase (after auth
 * has run in the access phase, before proxy_pass) the JSON body of a
 * chat/completions/embeddings request is read like ngx_http_mirror_module
 * reads it, checked, and its model resolved to a pool: the upstream named
 * by $gpugate_pool, so a location routes with
 *
 *     proxy_pass http://$gpugate_pool;
 *
 * A model the runtime knows under another name (target=) gets a rewritten
 * body, and so does a stream whose client did not ask for usage
 * ("gpugate_stream_usage": stream_options.include_usage is added, and the
 * response filter hides the usage from the client), and so does a request
 * to a model line with priority= (the request's priority in the
 * runtime's "priority" member).  Errors are answered here in OpenAI's
 * JSON and never reach a runtime.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_openai.h"
#include "ngx_http_gpugate_limits_api.h"
#include "ngx_http_gpugate_ledger_api.h"
#include "gpugate_oai_body.h"


static ngx_int_t ngx_http_gpugate_openai_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_openai_admit(ngx_http_request_t *r,
    ngx_http_gpugate_openai_loc_conf_t *olcf, gpugate_oai_kind_e *kind,
    ngx_int_t *sent);
static ngx_int_t ngx_http_gpugate_openai_refuse(ngx_http_request_t *r,
    ngx_uint_t status, const char *allow, const char *message,
    const char *code);
static ngx_uint_t ngx_http_gpugate_openai_raw_path(ngx_http_request_t *r);
static ngx_uint_t ngx_http_gpugate_openai_passthrough(
    ngx_http_gpugate_openai_loc_conf_t *olcf, ngx_str_t *uri);
static void ngx_http_gpugate_openai_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_openai_route(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx);
static ngx_int_t ngx_http_gpugate_openai_body(ngx_http_request_t *r,
    ngx_str_t *body);
static int ngx_http_gpugate_openai_priority(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, ngx_http_gpugate_model_t *m);
static ngx_int_t ngx_http_gpugate_openai_replace_body(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, gpugate_oai_body_t *body,
    const char *model, int priority);
static ngx_int_t ngx_http_gpugate_openai_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gpugate_openai_usage_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_gpugate_openai_reasons_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_gpugate_openai_vars[] = {

    { ngx_string("gpugate_model"), NULL, ngx_http_gpugate_openai_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_pool"), NULL, ngx_http_gpugate_openai_variable,
      1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_stream"), NULL, ngx_http_gpugate_openai_variable,
      2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("gpugate_prompt_tokens"), NULL,
      ngx_http_gpugate_openai_usage_variable, 0, NGX_HTTP_VAR_NOCACHEABLE,
      0 },

    { ngx_string("gpugate_completion_tokens"), NULL,
      ngx_http_gpugate_openai_usage_variable, 1, NGX_HTTP_VAR_NOCACHEABLE,
      0 },

    { ngx_string("gpugate_ttft_ms"), NULL,
      ngx_http_gpugate_openai_usage_variable, 2, NGX_HTTP_VAR_NOCACHEABLE,
      0 },

    { ngx_string("gpugate_usage_partial"), NULL,
      ngx_http_gpugate_openai_usage_variable, 3, NGX_HTTP_VAR_NOCACHEABLE,
      0 },

    { ngx_string("gpugate_finish_reasons"), NULL,
      ngx_http_gpugate_openai_reasons_variable, 0, NGX_HTTP_VAR_NOCACHEABLE,
      0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_gpugate_openai_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_gpugate_openai_vars; v->name.len; v++) {
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
ngx_http_gpugate_openai_route_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gpugate_openai_handler;

    return ngx_http_gpugate_openai_multipart_init(cf);
}


static ngx_int_t
ngx_http_gpugate_openai_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_gpugate_openai_ctx_t       *ctx;
    ngx_http_gpugate_openai_loc_conf_t  *olcf;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_gpugate_openai_module);

    if (data == 1 && (ctx == NULL || ctx->pool.len == 0)) {
        /* not routed by model (GET, other paths, no pool=): the default */
        olcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_openai_module);

        if (olcf->default_pool.len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = olcf->default_pool.data;
        v->len = olcf->default_pool.len;
        goto done;
    }

    if (ctx == NULL || !ctx->routed) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case 0:
        v->data = ctx->model.data;
        v->len = ctx->model.len;
        break;

    case 1:
        v->data = ctx->pool.data;
        v->len = ctx->pool.len;
        break;

    default:
        v->data = (u_char *) (ctx->stream ? "1" : "0");
        v->len = 1;
    }

done:

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * What the filter saw of the answer, for the log phase.  Without a usage
 * object (a stream the client cut, or one without include_usage) the
 * completion count is the number of token events seen, and the prompt
 * count is unknown.  "partial": the answer did not reach its end ([DONE]
 * or the end of the JSON).
 */

static ngx_int_t
ngx_http_gpugate_openai_usage_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                         *p;
    int64_t                         n;
    ngx_http_gpugate_openai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_gpugate_openai_module);

    if (ctx == NULL || !ctx->observe) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case 0:
        if (!ctx->usage) {
            v->not_found = 1;
            return NGX_OK;
        }
        n = ctx->prompt_tokens;
        break;

    case 1:
        n = ctx->usage ? ctx->completion_tokens
                       : (int64_t) ctx->token_events;
        break;

    case 2:
        if (!ctx->first_token) {
            v->not_found = 1;
            return NGX_OK;
        }
        n = (int64_t) ctx->ttft;
        break;

    default:
        n = ctx->complete ? 0 : 1;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%L", n) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* the answer's distinct finish reasons, comma-separated */

static ngx_int_t
ngx_http_gpugate_openai_reasons_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                         *p;
    size_t                          size;
    ngx_http_gpugate_openai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_gpugate_openai_module);

    if (ctx == NULL || ctx->reasons.n == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    size = GPUGATE_OAI_REASONS * (GPUGATE_OAI_REASON_MAX + 1);

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = gpugate_oai_reasons_join(&ctx->reasons, (char *) p, size);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static gpugate_oai_kind_e
ngx_http_gpugate_openai_kind(ngx_http_request_t *r)
{
    size_t       len;
    const char  *id;

    return (gpugate_oai_kind_e) gpugate_oai_path_kind(
               gpugate_oai_path((char *) r->uri.data, r->uri.len, &id, &len));
}


static ngx_int_t
ngx_http_gpugate_openai_handler(ngx_http_request_t *r)
{
    ngx_int_t                            rc, sent;
    gpugate_oai_kind_e                   kind;
    ngx_http_gpugate_openai_ctx_t       *ctx;
    ngx_http_gpugate_openai_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_openai_module);

    /*
     * Internal redirects come from the configuration only (error_page,
     * try_files; a runtime's X-Accel-Redirect is ignored in these
     * locations): they were admitted, or are the gateway's own answers.
     */

    if (!olcf->enable || r != r->main || r->internal) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (ctx) {
        return ctx->status;
    }

    rc = ngx_http_gpugate_openai_admit(r, olcf, &kind, &sent);

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (rc == NGX_DONE) {
        ngx_http_finalize_request(r, sent);
        return NGX_DONE;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_gpugate_openai_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->status = NGX_DONE;
    ctx->kind = kind;
    ctx->priority = -1;
    ngx_http_set_ctx(r, ctx, ngx_http_gpugate_openai_module);

    if (gpugate_oai_multipart(kind)) {
        rc = ngx_http_gpugate_openai_multipart_start(r, ctx);

        if (ctx->mp == NULL) {
            /* refused: rc is what the refusal returned */
            ngx_http_finalize_request(r, rc);
            return NGX_DONE;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: reading the body of a kind %d request",
                   (int) kind);

    /* one buffer when it fits client_body_buffer_size: no copy to parse;
       an upload is scanned as it comes and may go to a temp file */
    r->request_body_in_single_buf = !gpugate_oai_multipart(kind);

    rc = ngx_http_read_client_request_body(r,
                                        ngx_http_gpugate_openai_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    /* the body handler runs (now or later) and resumes the phases */
    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


/*
 * Nothing reaches a runtime from a gpugate_openai location unless the
 * router understands it (the endpoints it routes by model, checked) or
 * the operator named its path with gpugate_passthrough: anything else
 * would escape the key's model list and the usage ledger.  NGX_OK: an
 * endpoint to route, its kind in *kind; NGX_DECLINED: passed through;
 * NGX_DONE: answered here (the model list, or an error), *sent is what
 * to finalize the request with.
 */

static ngx_int_t
ngx_http_gpugate_openai_admit(ngx_http_request_t *r,
    ngx_http_gpugate_openai_loc_conf_t *olcf, gpugate_oai_kind_e *kind,
    ngx_int_t *sent)
{
    size_t              id_len;
    ngx_str_t           id;
    const char         *idp;
    gpugate_oai_path_e  path;

    /*
     * A runtime answering 101 to an upgrade would turn the connection
     * into a raw pipe to the runtime (or the agent's tunnel): unmetered,
     * unchecked.  The inference API has no use for it.
     */

    if (r->headers_in.upgrade) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate openai: protocol upgrade to \"%V\" refused",
                      &r->headers_in.upgrade->value);

        *sent = ngx_http_gpugate_openai_refuse(r, NGX_HTTP_BAD_REQUEST, NULL,
                    "Protocol upgrades are not accepted on this endpoint.",
                    "upgrade_not_allowed");
        return NGX_DONE;
    }

    idp = NULL;
    id_len = 0;

    path = gpugate_oai_path((char *) r->uri.data, r->uri.len, &idp,
                            &id_len);

    /* the model list is the gateway's, filtered by the key: never the
       runtime's own */

    if (path == GPUGATE_OAI_PATH_MODELS || path == GPUGATE_OAI_PATH_MODEL) {

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            *sent = ngx_http_gpugate_openai_refuse(r, NGX_HTTP_NOT_ALLOWED,
                        "GET, HEAD", "Only GET is allowed on /v1/models.",
                        "method_not_allowed");
            return NGX_DONE;
        }

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            *sent = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DONE;
        }

        id.data = (u_char *) idp;
        id.len = id_len;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate openai: model list answered here, id \"%V\"",
                       &id);

        *sent = ngx_http_gpugate_models_answer(r, olcf,
                                               idp ? &id : NULL);
        return NGX_DONE;
    }

    /*
     * What the runtime is sent is the raw path when nginx still has it:
     * "%2F", "//", "/./" or a different case would make the router check
     * one endpoint and the runtime serve another.  Refused, not guessed.
     */

    if (!ngx_http_gpugate_openai_raw_path(r)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate openai: path \"%V\" is not sent as \"%V\", "
                      "refused", &r->unparsed_uri, &r->uri);

        *sent = ngx_http_gpugate_openai_refuse(r, NGX_HTTP_BAD_REQUEST, NULL,
                    "The request path must be sent as it is: without "
                    "percent-encoding, empty segments or dot segments.",
                    "invalid_path");
        return NGX_DONE;
    }

    switch (path) {

    case GPUGATE_OAI_PATH_CHAT:
    case GPUGATE_OAI_PATH_COMPLETIONS:
    case GPUGATE_OAI_PATH_EMBEDDINGS:
    case GPUGATE_OAI_PATH_MESSAGES:
    case GPUGATE_OAI_PATH_RESPONSES:
    case GPUGATE_OAI_PATH_RERANK:
    case GPUGATE_OAI_PATH_SCORE:
    case GPUGATE_OAI_PATH_IMAGES:
    case GPUGATE_OAI_PATH_SPEECH:
    case GPUGATE_OAI_PATH_TRANSCRIPTIONS:
    case GPUGATE_OAI_PATH_TRANSLATIONS:
    case GPUGATE_OAI_PATH_IMAGE_EDITS:

        if (r->method != NGX_HTTP_POST) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "gpugate openai: method \"%V\" refused on \"%V\"",
                          &r->method_name, &r->uri);

            *sent = ngx_http_gpugate_openai_refuse(r, NGX_HTTP_NOT_ALLOWED,
                        "POST", "Only POST is allowed on this endpoint.",
                        "method_not_allowed");
            return NGX_DONE;
        }

        *kind = ngx_http_gpugate_openai_kind(r);
        return NGX_OK;

    default:
        break;
    }

    if (ngx_http_gpugate_openai_passthrough(olcf, &r->uri)) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate openai: %V \"%V\" passed through",
                       &r->method_name, &r->uri);
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gpugate openai: %V \"%V\" is not an endpoint here "
                  "(gpugate_passthrough names extra paths)",
                  &r->method_name, &r->uri);

    *sent = ngx_http_gpugate_openai_refuse(r, NGX_HTTP_NOT_FOUND, NULL, NULL,
                                           NULL);
    return NGX_DONE;
}


/* an OpenAI error answer; message NULL: the status's usual one */

static ngx_int_t
ngx_http_gpugate_openai_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *allow, const char *message, const char *code)
{
    ngx_table_elt_t           *h;
    ngx_http_gpugate_error_t   err;

    if (allow) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        h->value.data = (u_char *) allow;
        h->value.len = ngx_strlen(allow);
    }

    ngx_http_gpugate_status_error(status, &err);

    if (message) {
        err.message.data = (u_char *) message;
        err.message.len = ngx_strlen(message);
        err.code = code;
    }

    return ngx_http_gpugate_send_error(r, &err);
}


/*
 * 1 if the runtime is sent the path the router classified: nginx sends
 * the raw request path as long as the configuration did not rewrite the
 * URI (then it sends the normalised one, escaped), so the raw path must
 * be the normalised one byte for byte.
 */

static ngx_uint_t
ngx_http_gpugate_openai_raw_path(ngx_http_request_t *r)
{
    size_t   len;
    u_char  *q;

    if (!r->valid_unparsed_uri) {
        return 1;
    }

    len = r->unparsed_uri.len;
    q = ngx_strlchr(r->unparsed_uri.data, r->unparsed_uri.data + len, '?');

    if (q) {
        len = q - r->unparsed_uri.data;
    }

    return len == r->uri.len
           && ngx_strncmp(r->unparsed_uri.data, r->uri.data, len) == 0;
}


static ngx_uint_t
ngx_http_gpugate_openai_passthrough(ngx_http_gpugate_openai_loc_conf_t *olcf,
    ngx_str_t *uri)
{
    ngx_uint_t                i;
    ngx_http_gpugate_path_t  *p;

    if (olcf->passthrough == NULL) {
        return 0;
    }

    p = olcf->passthrough->elts;

    for (i = 0; i < olcf->passthrough->nelts; i++) {
        if ((p[i].prefix ? uri->len >= p[i].path.len
                         : uri->len == p[i].path.len)
            && ngx_strncmp(uri->data, p[i].path.data, p[i].path.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static void
ngx_http_gpugate_openai_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_http_gpugate_openai_ctx_t    *ctx;
    ngx_http_gpugate_ledger_extra_t  *x;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    rc = ngx_http_gpugate_openai_route(r, ctx);

    if (rc == NGX_DECLINED) {
        /* the ledger's priority on every pool, not only where the
           tunnel's balancer serves it (which writes the same value) */
        x = ngx_http_gpugate_ledger_extra(r);
        if (x) {
            x->priority = ctx->priority;
        }

        /* routed: proxy_pass reads the (possibly rewritten) body kept */
        ctx->status = NGX_DECLINED;
        r->preserve_body = 1;
        r->write_event_handler = ngx_http_core_run_phases;
        ngx_http_core_run_phases(r);
        return;
    }

    /* an error answer was sent (or could not be) */
    ctx->status = NGX_DONE;
    ngx_http_finalize_request(r, rc);
}


/* a body the router refuses, with what the scanner found wrong */

static ngx_int_t
ngx_http_gpugate_openai_body_error(ngx_http_request_t *r,
    gpugate_oai_body_t *b)
{
    ngx_http_gpugate_error_t  err;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "gpugate openai: bad request body: %s", b->error);

    ngx_http_gpugate_status_error(NGX_HTTP_BAD_REQUEST, &err);
    err.message.data = (u_char *) b->error;
    err.message.len = ngx_strlen(b->error);
    err.code = b->code;
    err.param = b->param;

    return ngx_http_gpugate_send_error(r, &err);
}


/*
 * NGX_DECLINED: routed, go on; anything else: the response was sent and
 * this is what to finalize the request with.
 */

static ngx_int_t
ngx_http_gpugate_openai_route(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx)
{
    int                                  priority;
    u_char                              *target;
    ngx_int_t                            rc;
    ngx_str_t                            body, model;
    long long                            images;
    const char                          *size;
    gpugate_oai_body_t                   b;
    ngx_http_gpugate_model_t            *m;
    ngx_http_gpugate_limits_req_t        lr;
    ngx_http_gpugate_openai_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_openai_module);

    if (gpugate_oai_multipart(ctx->kind)) {
        return ngx_http_gpugate_openai_multipart_route(r, ctx);
    }

    rc = ngx_http_gpugate_openai_body(r, &body);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (gpugate_oai_body_parse(&b, (char *) body.data, body.len,
                               ngx_http_gpugate_openai_kind(r))
        != 0)
    {
        rc = ngx_http_gpugate_openai_body_error(r, &b);
        gpugate_oai_body_free(&b);
        return rc;
    }

    model.len = b.model_len;
    model.data = ngx_pnalloc(r->pool, model.len);
    if (model.data == NULL) {
        gpugate_oai_body_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(model.data, b.model, model.len);

    ctx->model = model;
    ctx->stream = b.stream;

    /* a bad X-Gpugate-Priority is refused here, before the limits */
    rc = ngx_http_gpugate_openai_check(r, ctx, &m);

    if (rc != NGX_DECLINED) {
        gpugate_oai_body_free(&b);
        return rc;
    }

    priority = ngx_http_gpugate_openai_priority(r, ctx, m);

    /*
     * The key's and tenant's limits, on every JSON endpoint: the estimate
     * is reserved now, or the request is refused before it reaches a
     * runtime.  Uploads pass the same call in
     * ngx_http_gpugate_openai_multipart_route().
     */

    lr.body = body;
    lr.answers = (ctx->kind == GPUGATE_OAI_CHAT
                  || ctx->kind == GPUGATE_OAI_COMPLETIONS
                  || ctx->kind == GPUGATE_OAI_MESSAGES
                  || ctx->kind == GPUGATE_OAI_RESPONSES);
    lr.stream = b.stream;
    lr.price_in = m ? m->price_in : 0;
    lr.price_out = m ? m->price_out : 0;

    if (ngx_http_gpugate_limits_admit(r, &lr, &rc) != NGX_OK) {
        gpugate_oai_body_free(&b);
        return rc;
    }

    /* prefix affinity's keys: a hint, without them it goes by load */
    (void) ngx_http_gpugate_tunnel_affinity_keys(r, &ctx->pool,
               m && m->target.len ? &m->target : &model, ctx->kind, &body,
               &ctx->affinity);

    target = NULL;

    if (m && m->target.len
        && !(m->target.len == b.model_len
             && ngx_strncmp(m->target.data, b.model, b.model_len) == 0))
    {
        /* the rewrite wants a C string for the new name */
        target = ngx_pnalloc(r->pool, m->target.len + 1);
        if (target == NULL) {
            gpugate_oai_body_free(&b);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(target, m->target.data, m->target.len);
        target[m->target.len] = '\0';
    }

    /*
     * A stream the client did not ask usage for: the runtime is asked
     * anyway, so the log has real counts, and the filter hides the
     * answer's traces of it from the client.
     */

    ctx->ask_usage = (olcf->stream_usage && b.stream && !b.include_usage
                      && (ctx->kind == GPUGATE_OAI_CHAT
                          || ctx->kind == GPUGATE_OAI_COMPLETIONS));

    if (ctx->kind == GPUGATE_OAI_IMAGES) {
        gpugate_oai_images_asked(body.data, body.len, &images, &size);
        ngx_http_gpugate_openai_images_ask(r, ctx, images, size);
    }

    /* speech is counted in characters of input: the runtime says
       nothing of it, and its answer is audio */

    if (ctx->kind == GPUGATE_OAI_SPEECH && b.need_start) {
        ctx->usage = 1;
        ctx->prompt_tokens = (int64_t) gpugate_oai_string_chars(
                                 b.need_start, b.need_end);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate openai: speech of %L characters",
                       ctx->prompt_tokens);
    }

    if (target || ctx->ask_usage || priority >= 0) {
        rc = ngx_http_gpugate_openai_replace_body(r, ctx, &b,
                                                  (char *) target, priority);

        if (rc != NGX_OK) {
            gpugate_oai_body_free(&b);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    gpugate_oai_body_free(&b);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: model \"%V\" -> pool \"%V\" stream:%d",
                   &ctx->model, &ctx->pool, ctx->stream);

    return NGX_DECLINED;
}


/* the whole body in one piece: memory buffers joined, or the temp file */

static ngx_int_t
ngx_http_gpugate_openai_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *buf;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        buf = cl->buf;
        len += buf->in_file ? (size_t) (buf->file_last - buf->file_pos)
                            : (size_t) (buf->last - buf->pos);
    }

    p = ngx_pnalloc(r->pool, len ? len : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        buf = cl->buf;

        if (buf->in_file) {
            n = ngx_read_file(buf->file, p, buf->file_last - buf->file_pos,
                              buf->file_pos);

            if (n != buf->file_last - buf->file_pos) {
                return NGX_ERROR;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, buf->pos, buf->last - buf->pos);
        }
    }

    return NGX_OK;
}


/*
 * The "priority" the runtime gets (-1: none) for a model line with
 * priority=, on the endpoints whose requests that runtime reads a
 * priority member of (gpugate_oai_priority_takes()): ctx->priority in
 * the runtime's order.
 */

static int
ngx_http_gpugate_openai_priority(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, ngx_http_gpugate_model_t *m)
{
    int  priority;

    if (m == NULL || !gpugate_oai_priority_takes(m->priority, ctx->kind)) {
        return -1;
    }

    priority = gpugate_oai_priority_for(m->priority, (int) ctx->priority);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: priority %i sent to the runtime as %d",
                   ctx->priority, priority);

    return priority;
}


/*
 * The body rewritten (gpugate_oai_body_rewrite) straight into a pool
 * buffer: "model" the alias target or NULL, ctx->ask_usage, "priority"
 * the runtime's value or -1.
 */

static ngx_int_t
ngx_http_gpugate_openai_replace_body(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, gpugate_oai_body_t *body,
    const char *model, int priority)
{
    size_t        len;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = gpugate_oai_body_rewrite_len(body, model, ctx->ask_usage,
                                       priority);
    if (len == 0) {
        return NGX_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = b->pos + gpugate_oai_body_rewrite(body, model, ctx->ask_usage,
                                                priority, (char *) b->pos);
    b->last_buf = 1;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    if (model) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate openai: model \"%V\" sent as \"%s\"",
                       &ctx->model, model);
    }

    if (ctx->ask_usage) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate openai: include_usage added for the "
                       "runtime");
    }

    /*
     * proxy_pass sends r->request_body->bufs and takes the upstream
     * Content-Length from content_length_n; a temp file written for the
     * original body is simply no longer referenced.
     */

    r->request_body->bufs = cl;
    r->request_body->temp_file = NULL;
    r->headers_in.content_length_n = len;

    if (r->headers_in.content_length) {
        r->headers_in.content_length->value.data =
                                        ngx_pnalloc(r->pool, NGX_SIZE_T_LEN);
        if (r->headers_in.content_length->value.data == NULL) {
            return NGX_ERROR;
        }

        r->headers_in.content_length->value.len =
            ngx_sprintf(r->headers_in.content_length->value.data, "%uz", len)
            - r->headers_in.content_length->value.data;
    }

    return NGX_OK;
}
