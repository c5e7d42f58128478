
/*
 * Copyright (C) gpugate authors
 *
 * What the router adds to a request's ledger row beyond its token counts
 * (ngx_http_gpugate_ledger_api.h): the images an images request made and
 * the size it asked for, and the prompt tokens the runtime read from or
 * wrote to its prompt cache.
 *
 * Images are counted from the answer's "data" array when the filter sees
 * a whole JSON answer; an answer that is an event stream, binary, or too
 * large to copy (base64 images) counts the "n" the client asked for.
 * The size is kept only when it is one of a fixed set
 * (gpugate_oai_image_size()): a client's string never reaches the ledger.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_openai.h"
#include "ngx_http_gpugate_ledger_api.h"


/* a routed images request: what it asked for, nothing made yet */

void
ngx_http_gpugate_openai_images_ask(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, long long n, const char *size)
{
    ngx_http_gpugate_ledger_extra_t  *x;

    ctx->images_asked = n;

    x = ngx_http_gpugate_ledger_extra(r);
    if (x == NULL) {
        return;
    }

    x->images = 0;

    if (size) {
        x->image_size.data = (u_char *) size;
        x->image_size.len = ngx_strlen(size);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: %L images asked, size \"%s\"",
                   (int64_t) n, size ? size : "(none or unknown)");
}


/* images/edits: "n" and "size" as the multipart scanner kept them */

void
ngx_http_gpugate_openai_images_upload(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx)
{
    size_t         i;
    long long      n;
    const char    *size;
    gpugate_mp_t  *mp;

    mp = ctx->mp;
    n = 0;

    if (mp->n_len && mp->n_len <= 4) {
        for (i = 0; i < mp->n_len; i++) {
            if (mp->n_val[i] < '0' || mp->n_val[i] > '9') {
                n = 0;
                break;
            }

            n = n * 10 + (mp->n_val[i] - '0');
        }
    }

    if (n < 1 || n > 1000) {
        n = 1;
    }

    size = NULL;

    if (mp->size_len && mp->size_len <= sizeof(mp->size_val)) {
        size = gpugate_oai_image_size(mp->size_val, mp->size_len);
    }

    ngx_http_gpugate_openai_images_ask(r, ctx, n, size);
}


/* a 200 answer: "made" images, or -1 when it does not say (all asked) */

void
ngx_http_gpugate_openai_images_made(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, long long made)
{
    ngx_http_gpugate_ledger_extra_t  *x;

    if (ctx->images_asked == 0) {
        return;
    }

    x = ngx_http_gpugate_ledger_extra(r);
    if (x == NULL) {
        return;
    }

    x->images = (made >= 0) ? made : ctx->images_asked;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: %i images made (%s)", x->images,
                   made >= 0 ? "the answer's data" : "as asked");
}


/*
 * A usage object's prompt-cache tokens.  Only those it reports change:
 * Anthropic's message_delta often repeats none of them.
 */

void
ngx_http_gpugate_openai_cache_usage(ngx_http_request_t *r,
    gpugate_oai_chunk_t *c)
{
    ngx_http_gpugate_ledger_extra_t  *x;

    if (c->cache_read_tokens < 0 && c->cache_write_tokens < 0) {
        return;
    }

    x = ngx_http_gpugate_ledger_extra(r);
    if (x == NULL) {
        return;
    }

    if (c->cache_read_tokens >= 0) {
        x->cache_read_tokens = (ngx_int_t) c->cache_read_tokens;
    }

    if (c->cache_write_tokens >= 0) {
        x->cache_write_tokens = (ngx_int_t) c->cache_write_tokens;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: prompt cache: %i read, %i written",
                   x->cache_read_tokens, x->cache_write_tokens);
}
