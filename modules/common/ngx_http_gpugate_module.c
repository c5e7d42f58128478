
/*
 * Copyright (C) gpugate authors
 *
 * The first module of ngx_http_gpugate_module.so (it names the .so).
 * It owns what every gpugate module shares: OpenAI-style error responses
 * and the "gpugate_error" directive, which turns nginx's own errors
 * (502 from a dead runtime, 413 from client_max_body_size, ...) into the
 * JSON that OpenAI SDKs understand, by way of error_page.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_gpugate.h"
#include "gpugate_oai_body.h"


typedef struct {
    ngx_uint_t   status;     /* fixed status, 0: the status error_page saw */
} ngx_http_gpugate_loc_conf_t;


static ngx_uint_t ngx_http_gpugate_has_retry_after(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_error_handler(ngx_http_request_t *r);
static void *ngx_http_gpugate_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_error(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_gpugate_commands[] = {

    { ngx_string("gpugate_error"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_gpugate_error,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_int_t ngx_http_gpugate_init(ngx_conf_t *cf);


static ngx_http_module_t  ngx_http_gpugate_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_gpugate_init,                 /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gpugate_create_loc_conf,      /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_gpugate_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_module_ctx,          /* module context */
    ngx_http_gpugate_commands,             /* module directives */
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


/*
 * The modules of this .so add some sixty variables to nginx's own: with
 * the default variables_hash_max_size (1024) nginx cannot build their
 * hash in 64-byte buckets and warns at every start.  2048 unless the
 * operator set more.
 */

static ngx_int_t
ngx_http_gpugate_init(ngx_conf_t *cf)
{
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    if (cmcf->variables_hash_max_size < 2048) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cf->log, 0,
                       "gpugate: variables_hash_max_size %ui -> 2048",
                       cmcf->variables_hash_max_size);
        cmcf->variables_hash_max_size = 2048;
    }

    return NGX_OK;
}


static ngx_str_t  ngx_http_gpugate_json_type =
    ngx_string("application/json");


ngx_int_t
ngx_http_gpugate_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_gpugate_json_type;
    r->headers_out.content_type_len = ngx_http_gpugate_json_type.len;
    r->headers_out.content_length_n = body->len;

    /*
     * A handler may run after an upstream already filled headers_out
     * (error_page after a proxied error); what it set no longer applies.
     */
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);
    ngx_http_clear_accept_ranges(r);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_uint_t
ngx_http_gpugate_has_retry_after(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        /* hash 0: a caller that knows there is no time to give */

        if (h[i].key.len == sizeof("Retry-After") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Retry-After",
                               sizeof("Retry-After") - 1) == 0)
        {
            return 1;
        }
    }
}


/*
 * Anthropic's SDKs read errors of /v1/messages in their own shape: the
 * gateway answers there as Anthropic does, whichever module refuses.
 */

static ngx_uint_t
ngx_http_gpugate_anthropic(ngx_http_request_t *r)
{
    size_t       len;
    const char  *id;

    return gpugate_oai_path((char *) r->uri.data, r->uri.len, &id, &len)
           == GPUGATE_OAI_PATH_MESSAGES;
}


/*
 * {"type":"error","error":{"type":...,"message":...}}: the type by
 * status as Anthropic names them; the param, which that shape has no
 * member for, leads the message.
 */

static ngx_int_t
ngx_http_gpugate_send_anthropic_error(ngx_http_request_t *r,
    ngx_http_gpugate_error_t *err)
{
    size_t       len;
    u_char      *p;
    ngx_str_t    body;
    const char  *type;

    switch (err->status) {
    case NGX_HTTP_UNAUTHORIZED:
        type = "authentication_error";
        break;
    case NGX_HTTP_FORBIDDEN:
        type = "permission_error";
        break;
    case NGX_HTTP_NOT_FOUND:
        type = "not_found_error";
        break;
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        type = "request_too_large";
        break;
    case NGX_HTTP_TOO_MANY_REQUESTS:
        type = "rate_limit_error";
        break;
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        type = "overloaded_error";
        break;
    default:
        type = err->status >= 500 ? "api_error" : "invalid_request_error";
    }

    len = sizeof("{\"type\":\"error\",\"error\":{\"type\":\"\","
                 "\"message\":\": \"}}\n") - 1
          + ngx_strlen(type)
          + (err->param ? ngx_strlen(err->param) : 0)
          + err->message.len
          + ngx_escape_json(NULL, err->message.data, err->message.len);

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body.data, "{\"type\":\"error\",\"error\":{\"type\":"
                    "\"%s\",\"message\":\"", type);

    /* the param is the gateway's own literal: no escaping needed */

    if (err->param) {
        p = ngx_sprintf(p, "%s: ", err->param);
    }

    p = (u_char *) ngx_escape_json(p, err->message.data, err->message.len);
    p = ngx_cpymem(p, "\"}}\n", sizeof("\"}}\n") - 1);

    body.len = p - body.data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate: %ui answered as Anthropic's %s", err->status,
                   type);

    return ngx_http_gpugate_send_json(r, err->status, &body);
}


ngx_int_t
ngx_http_gpugate_send_error(ngx_http_request_t *r,
    ngx_http_gpugate_error_t *err)
{
    size_t            len;
    u_char           *p;
    ngx_str_t         body;
    ngx_table_elt_t  *h;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        /* the connection is closed after this response anyway */
        r->keepalive = 0;
    }

    /* a caller that knows when capacity returns set its own */

    if ((err->status == NGX_HTTP_TOO_MANY_REQUESTS
         || err->status == NGX_HTTP_SERVICE_UNAVAILABLE)
        && !ngx_http_gpugate_has_retry_after(r))
    {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "1");
    }

    if (ngx_http_gpugate_anthropic(r)) {
        return ngx_http_gpugate_send_anthropic_error(r, err);
    }

    len = sizeof("{\"error\":{\"message\":\"\",\"type\":\"\","
                 "\"param\":\"\",\"code\":\"\"}}\n") - 1
          + err->message.len
          + ngx_escape_json(NULL, err->message.data, err->message.len)
          + ngx_strlen(err->type)
          + (err->param ? ngx_strlen(err->param) : sizeof("null") - 1)
          + (err->code ? ngx_strlen(err->code) : sizeof("null") - 1);

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body.data, "{\"error\":{\"message\":\"",
                   sizeof("{\"error\":{\"message\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, err->message.data, err->message.len);
    p = ngx_sprintf(p, "\",\"type\":\"%s\",\"param\":", err->type);

    /* param and code are the gateway's own literals: no escaping needed */

    if (err->param) {
        p = ngx_sprintf(p, "\"%s\",\"code\":", err->param);

    } else {
        p = ngx_cpymem(p, "null,\"code\":", sizeof("null,\"code\":") - 1);
    }

    if (err->code) {
        p = ngx_sprintf(p, "\"%s\"}}\n", err->code);

    } else {
        p = ngx_cpymem(p, "null}}\n", sizeof("null}}\n") - 1);
    }

    body.len = p - body.data;

    return ngx_http_gpugate_send_json(r, err->status, &body);
}


void
ngx_http_gpugate_status_error(ngx_uint_t status, ngx_http_gpugate_error_t *err)
{
    err->status = status;
    err->type = NGX_HTTP_GPUGATE_ERR_INVALID;
    err->code = NULL;
    err->param = NULL;

    switch (status) {

    case NGX_HTTP_BAD_REQUEST:
        ngx_str_set(&err->message, "The request could not be parsed.");
        err->code = "bad_request";
        break;

    case NGX_HTTP_UNAUTHORIZED:
        ngx_str_set(&err->message, "Authentication is required.");
        err->code = "invalid_api_key";
        break;

    case NGX_HTTP_FORBIDDEN:
        ngx_str_set(&err->message, "Access to this resource is denied.");
        err->type = NGX_HTTP_GPUGATE_ERR_PERMISSION;
        err->code = "forbidden";
        break;

    case NGX_HTTP_NOT_FOUND:
        ngx_str_set(&err->message, "Unknown endpoint.");
        err->type = NGX_HTTP_GPUGATE_ERR_NOT_FOUND;
        err->code = "unknown_url";
        break;

    case NGX_HTTP_NOT_ALLOWED:
        ngx_str_set(&err->message,
                    "This method is not allowed for this endpoint.");
        err->code = "method_not_allowed";
        break;

    case NGX_HTTP_REQUEST_TIME_OUT:
        ngx_str_set(&err->message,
                    "Timed out while reading the request.");
        err->code = "request_timeout";
        break;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        ngx_str_set(&err->message, "The request body is too large.");
        err->code = "request_too_large";
        break;

    case NGX_HTTP_TOO_MANY_REQUESTS:
        ngx_str_set(&err->message, "Too many requests; retry later.");
        err->type = NGX_HTTP_GPUGATE_ERR_RATE_LIMIT;
        err->code = "rate_limit_exceeded";
        break;

    case NGX_HTTP_BAD_GATEWAY:
        ngx_str_set(&err->message,
                    "The inference backend failed to answer.");
        err->type = NGX_HTTP_GPUGATE_ERR_SERVER;
        err->code = "upstream_error";
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        ngx_str_set(&err->message,
                    "No inference capacity is available; retry later.");
        err->type = NGX_HTTP_GPUGATE_ERR_SERVER;
        err->code = "no_capacity";
        break;

    case NGX_HTTP_GATEWAY_TIME_OUT:
        ngx_str_set(&err->message,
                    "The inference backend did not answer in time.");
        err->type = NGX_HTTP_GPUGATE_ERR_SERVER;
        err->code = "upstream_timeout";
        break;

    default:
        if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
            ngx_str_set(&err->message, "The gateway failed internally.");
            err->type = NGX_HTTP_GPUGATE_ERR_SERVER;
            err->code = "internal_error";

        } else {
            ngx_str_set(&err->message, "The request was rejected.");
        }
    }
}


static ngx_int_t
ngx_http_gpugate_error_handler(ngx_http_request_t *r)
{
    ngx_uint_t                    status;
    ngx_http_gpugate_error_t      err;
    ngx_http_gpugate_loc_conf_t  *glcf;

    glcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_module);

    /*
     * Reached through "error_page 502 @json" the original status is in
     * r->err_status; "error_page 502 = @json" clears it, which would turn
     * every error into a 500, so that form is documented as unsupported.
     */

    if (glcf->status) {
        status = glcf->status;

    } else if (r->err_status >= NGX_HTTP_BAD_REQUEST) {
        status = r->err_status;

    } else {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_gpugate_status_error(status, &err);

    return ngx_http_gpugate_send_error(r, &err);
}


static void *
ngx_http_gpugate_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    return conf;
}


static char *
ngx_http_gpugate_error(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_loc_conf_t *glcf = conf;

    ngx_int_t                  n;
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "conflicts with another content handler in this location";
    }

    if (cf->args->nelts == 2) {
        value = cf->args->elts;

        n = ngx_atoi(value[1].data, value[1].len);

        if (n < NGX_HTTP_BAD_REQUEST || n > 599) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid status \"%V\", expected 400..599",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        glcf->status = n;
    }

    clcf->handler = ngx_http_gpugate_error_handler;

    return NGX_CONF_OK;
}


u_char *
ngx_http_gpugate_prom_label(u_char *p, u_char *s, size_t len)
{
    while (len--) {
        if (*s == '\\' || *s == '"') {
            *p++ = '\\';
            *p++ = *s++;

        } else if (*s == '\n') {
            *p++ = '\\';
            *p++ = 'n';
            s++;

        } else {
            *p++ = *s++;
        }
    }

    return p;
}


void
ngx_http_gpugate_out_init(ngx_http_gpugate_out_t *out, ngx_pool_t *pool)
{
    out->pool = pool;
    out->first = NULL;
    out->last = &out->first;
    out->buf = NULL;
    out->failed = 0;
}


u_char *
ngx_http_gpugate_out_room(ngx_http_gpugate_out_t *out, size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (out->failed) {
        return NULL;
    }

    if (out->buf && (size_t) (out->buf->end - out->buf->last) >= size) {
        return out->buf->last;
    }

    /* a page is usually a few tens of KB: a few buffers */

    b = ngx_create_temp_buf(out->pool, ngx_max(size, 32768));
    cl = ngx_alloc_chain_link(out->pool);

    if (b == NULL || cl == NULL) {
        out->failed = 1;
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;
    *out->last = cl;
    out->last = &cl->next;
    out->buf = b;

    return b->last;
}


void
ngx_http_gpugate_out_buf(ngx_http_gpugate_out_t *out, ngx_buf_t *b)
{
    ngx_chain_t  *cl;

    if (out->failed) {
        return;
    }

    cl = ngx_alloc_chain_link(out->pool);
    if (cl == NULL) {
        out->failed = 1;
        return;
    }

    cl->buf = b;
    cl->next = NULL;
    *out->last = cl;
    out->last = &cl->next;

    /* what it has left at its end is used by the next writes */
    out->buf = b;
}


void ngx_cdecl
ngx_http_gpugate_out_printf(ngx_http_gpugate_out_t *out, const char *fmt,
    ...)
{
    u_char   *p;
    va_list   args;

    p = ngx_http_gpugate_out_room(out, NGX_HTTP_GPUGATE_OUT_LINE);

    if (p == NULL) {
        return;
    }

    va_start(args, fmt);
    out->buf->last = ngx_vslprintf(p, p + NGX_HTTP_GPUGATE_OUT_LINE, fmt,
                                   args);
    va_end(args);
}


void
ngx_http_gpugate_prom_family(ngx_http_gpugate_out_t *out, const char *name,
    const char *type, const char *help)
{
    ngx_http_gpugate_out_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
                                name, help, name, type);
}


ngx_uint_t
ngx_http_gpugate_conf_param(ngx_str_t *arg, const char *name,
    ngx_str_t *val)
{
    size_t  len;

    len = ngx_strlen(name);

    if (arg->len > len && ngx_strncmp(arg->data, name, len) == 0
        && arg->data[len] == '=')
    {
        val->data = arg->data + len + 1;
        val->len = arg->len - len - 1;
        return 1;
    }

    return 0;
}


static ngx_int_t
ngx_http_gpugate_conf_time(ngx_conf_t *cf, ngx_str_t *arg, ngx_str_t *val,
    ngx_uint_t is_sec, ngx_int_t min)
{
    ngx_int_t  n;

    n = ngx_parse_time(val, is_sec);

    if (n == NGX_ERROR || n < min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid time in \"%V\"",
                           arg);
        return NGX_ERROR;
    }

    return n;
}


char *
ngx_http_gpugate_conf_msec(ngx_conf_t *cf, ngx_str_t *arg, ngx_str_t *val,
    ngx_msec_t min, ngx_msec_t *out)
{
    ngx_int_t  n;

    n = ngx_http_gpugate_conf_time(cf, arg, val, 0, (ngx_int_t) min);

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    *out = (ngx_msec_t) n;

    return NGX_CONF_OK;
}


char *
ngx_http_gpugate_conf_sec(ngx_conf_t *cf, ngx_str_t *arg, ngx_str_t *val,
    time_t min, time_t *out)
{
    ngx_int_t  n;

    n = ngx_http_gpugate_conf_time(cf, arg, val, 1, (ngx_int_t) min);

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    *out = (time_t) n;

    return NGX_CONF_OK;
}


/*
 * The named query arguments of a request, URI-unescaped, as a JSON object
 * of strings (jansson escapes them on output): the input of the admin
 * API's and the batch API's list functions.  NGX_DECLINED: a value is
 * not valid UTF-8 or holds a NUL byte; NGX_ERROR: out of memory.
 */

ngx_int_t
ngx_http_gpugate_query_json(ngx_http_request_t *r, const char *const *names,
    ngx_uint_t n, json_t **out)
{
    u_char      *dst, *src;
    json_t      *obj, *s;
    ngx_str_t    val;
    ngx_uint_t   i;

    obj = json_object();
    if (obj == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_arg(r, (u_char *) names[i], ngx_strlen(names[i]), &val)
            != NGX_OK)
        {
            continue;
        }

        dst = ngx_pnalloc(r->pool, val.len);
        if (dst == NULL) {
            json_decref(obj);
            return NGX_ERROR;
        }

        src = val.data;
        val.data = dst;
        ngx_unescape_uri(&dst, &src, val.len, NGX_UNESCAPE_URI);
        val.len = dst - val.data;

        /*
         * %00 would reach PostgreSQL as \u0000, which jsonb refuses: the
         * function would fail, and the client get a 503 for its typo
         */
        if (ngx_strlchr(val.data, val.data + val.len, '\0') != NULL) {
            json_decref(obj);
            return NGX_DECLINED;
        }

        s = json_stringn((const char *) val.data, val.len);

        if (s == NULL || json_object_set_new(obj, names[i], s) != 0) {
            json_decref(obj);
            return NGX_DECLINED;
        }
    }

    *out = obj;

    return NGX_OK;
}
