
/*
 * Copyright (C) gpugate authors
 *
 * Multipart uploads (audio/transcriptions, audio/translations,
 * images/edits): the router needs the "model" field, which may come after
 * a file of any size.  A request body filter hands each piece of the
 * upload to the core's streaming scanner (gpugate_multipart.c) as nginx
 * reads it, while nginx keeps the body as usual: in memory up to
 * client_body_buffer_size, beyond that in a temp file, refused over
 * client_max_body_size.  When the body is complete the model is known
 * without reading the file back, and a model the runtime knows by another
 * name is replaced by splicing the body's buffer chain around the field's
 * value: the file's bytes are never copied.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_openai.h"
#include "ngx_http_gpugate_limits_api.h"


static ngx_int_t ngx_http_gpugate_openai_multipart_filter(
    ngx_http_request_t *r, ngx_chain_t *in);
static ngx_int_t ngx_http_gpugate_openai_splice(ngx_http_request_t *r,
    off_t start, off_t end, ngx_str_t *value);


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;


ngx_int_t
ngx_http_gpugate_openai_multipart_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter =
                                     ngx_http_gpugate_openai_multipart_filter;

    return NGX_OK;
}


/*
 * Before the body is read: the boundary from Content-Type and a fresh
 * scanner in ctx->mp.  ctx->mp NULL: refused, the return value is what
 * to finalize with.
 */

ngx_int_t
ngx_http_gpugate_openai_multipart_start(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx)
{
    size_t                    len;
    const char               *b;
    ngx_http_gpugate_error_t  err;

    if (r->headers_in.content_type == NULL
        || gpugate_mp_boundary((char *) r->headers_in.content_type->value.data,
                               r->headers_in.content_type->value.len, &b,
                               &len)
           != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate openai: \"%V\" needs multipart/form-data "
                      "with a boundary", &r->uri);

        ngx_http_gpugate_status_error(NGX_HTTP_BAD_REQUEST, &err);
        ngx_str_set(&err.message, "This endpoint takes a "
                    "multipart/form-data body with a boundary.");
        err.code = "invalid_content_type";

        return ngx_http_gpugate_send_error(r, &err);
    }

    ctx->mp = ngx_palloc(r->pool, sizeof(gpugate_mp_t));
    if (ctx->mp == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    gpugate_mp_init(ctx->mp, b, len);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: multipart upload, boundary of %uz bytes",
                   len);

    return NGX_OK;
}


/* each piece of the body as nginx reads it, before it is stored */

static ngx_int_t
ngx_http_gpugate_openai_multipart_filter(ngx_http_request_t *r,
    ngx_chain_t *in)
{
    ngx_buf_t                      *b;
    ngx_chain_t                    *cl;
    ngx_http_gpugate_openai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (ctx == NULL || ctx->mp == NULL || r != r->main) {
        return ngx_http_next_request_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        /* a failed scan stays failed; the error is answered at the end */

        if (ngx_buf_in_memory(b) && b->last > b->pos
            && ctx->mp->state != GPUGATE_MP_ERROR
            && gpugate_mp_feed(ctx->mp, b->pos, b->last - b->pos) != 0)
        {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "gpugate openai: multipart scan failed: %s",
                           ctx->mp->error);
        }
    }

    return ngx_http_next_request_body_filter(r, in);
}


/* the body read: its model checked and routed like a JSON body's */

ngx_int_t
ngx_http_gpugate_openai_multipart_route(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx)
{
    ngx_int_t                       rc;
    ngx_str_t                       target;
    gpugate_mp_t                   *mp;
    ngx_http_gpugate_error_t        err;
    ngx_http_gpugate_model_t       *m;
    ngx_http_gpugate_limits_req_t   lr;

    mp = ctx->mp;

    if (gpugate_mp_finish(mp) != 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate openai: bad multipart body: %s", mp->error);

        ngx_http_gpugate_status_error(NGX_HTTP_BAD_REQUEST, &err);
        err.message.data = (u_char *) mp->error;
        err.message.len = ngx_strlen(mp->error);
        err.param = mp->param;
        err.code = (mp->param && !mp->model_seen)
                   ? "missing_required_parameter" : "invalid_value";

        return ngx_http_gpugate_send_error(r, &err);
    }

    ctx->model.len = mp->model_len;
    ctx->model.data = ngx_pnalloc(r->pool, mp->model_len);
    if (ctx->model.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->model.data, mp->model, mp->model_len);
    ctx->stream = mp->stream;

    rc = ngx_http_gpugate_openai_check(r, ctx, &m);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* the limits, as for a JSON body: no text to estimate tokens from */

    ngx_str_null(&lr.body);
    lr.answers = 0;
    lr.stream = ctx->stream;
    lr.price_in = m ? m->price_in : 0;
    lr.price_out = m ? m->price_out : 0;

    if (ngx_http_gpugate_limits_admit(r, &lr, &rc) != NGX_OK) {
        return rc;
    }

    if (ctx->kind == GPUGATE_OAI_IMAGE_EDITS) {
        ngx_http_gpugate_openai_images_upload(r, ctx);
    }

    target = ctx->target;

    if (target.len != ctx->model.len
        || ngx_strncmp(target.data, ctx->model.data, target.len) != 0)
    {
        if (ngx_http_gpugate_openai_splice(r, mp->model_start, mp->model_end,
                                           &target)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate openai: model \"%V\" sent as \"%V\"",
                       &ctx->model, &target);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: upload for model \"%V\" -> pool \"%V\" "
                   "stream:%d", &ctx->model, &ctx->pool, ctx->stream);

    return NGX_DECLINED;
}


/*
 * Appends to *ll buffers that point at the bytes [from, to) of the chain
 * "in" (memory or temp file ranges alike), and returns the new tail.
 */

static ngx_chain_t **
ngx_http_gpugate_openai_slice(ngx_http_request_t *r, ngx_chain_t *in,
    off_t from, off_t to, ngx_chain_t **ll)
{
    off_t         at, len, a, z;
    ngx_buf_t    *b, *nb;
    ngx_chain_t  *cl;

    at = 0;

    for (cl = in; cl && at < to; cl = cl->next, at += len) {
        b = cl->buf;
        len = b->in_file ? b->file_last - b->file_pos : b->last - b->pos;

        a = ngx_max(from, at) - at;
        z = ngx_min(to, at + len) - at;

        if (a >= z) {
            continue;
        }

        nb = ngx_calloc_buf(r->pool);
        if (nb == NULL) {
            return NULL;
        }

        *nb = *b;
        nb->last_buf = 0;
        nb->last_in_chain = 0;

        if (b->in_file) {
            nb->file_last = b->file_pos + z;
            nb->file_pos = b->file_pos + a;

        } else {
            nb->last = b->pos + z;
            nb->pos = b->pos + a;
        }

        *ll = ngx_alloc_chain_link(r->pool);
        if (*ll == NULL) {
            return NULL;
        }

        (*ll)->buf = nb;
        (*ll)->next = NULL;
        ll = &(*ll)->next;
    }

    return ll;
}


/*
 * The body's buffers with the bytes [start, end) replaced by "value":
 * new buffers that point into the old ones, the file's bytes staying
 * where they are; proxy_pass sends the chain and the new length.
 */

static ngx_int_t
ngx_http_gpugate_openai_splice(ngx_http_request_t *r, off_t start,
    off_t end, ngx_str_t *value)
{
    off_t         total;
    ngx_buf_t    *vb;
    ngx_chain_t  *out, **ll, *cl, *last;

    total = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        total += cl->buf->in_file ? cl->buf->file_last - cl->buf->file_pos
                                  : cl->buf->last - cl->buf->pos;
    }

    out = NULL;

    ll = ngx_http_gpugate_openai_slice(r, r->request_body->bufs, 0, start,
                                       &out);
    if (ll == NULL) {
        return NGX_ERROR;
    }

    vb = ngx_calloc_buf(r->pool);
    *ll = ngx_alloc_chain_link(r->pool);
    if (vb == NULL || *ll == NULL) {
        return NGX_ERROR;
    }

    vb->pos = value->data;
    vb->last = value->data + value->len;
    vb->memory = 1;
    (*ll)->buf = vb;
    (*ll)->next = NULL;
    ll = &(*ll)->next;

    ll = ngx_http_gpugate_openai_slice(r, r->request_body->bufs, end, total,
                                       ll);
    if (ll == NULL) {
        return NGX_ERROR;
    }

    for (last = out; last->next; last = last->next) { /* void */ }

    last->buf->last_buf = 1;
    last->buf->last_in_chain = 1;

    r->request_body->bufs = out;
    total += (off_t) value->len - (end - start);
    r->headers_in.content_length_n = total;

    if (r->headers_in.content_length) {
        r->headers_in.content_length->value.data =
                                        ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
        if (r->headers_in.content_length->value.data == NULL) {
            return NGX_ERROR;
        }

        r->headers_in.content_length->value.len =
            ngx_sprintf(r->headers_in.content_length->value.data, "%O", total)
            - r->headers_in.content_length->value.data;
    }

    return NGX_OK;
}
