
/*
 * Copyright (C) gpugate authors
 *
 * Response filter of the OpenAI router.  A token stream must reach the
 * client event by event, while a non-streaming JSON answer gains from
 * nginx's ordinary buffering (the runtime connection is freed sooner).
 * "proxy_buffering off" cannot tell the two apart because the request
 * decides ("stream": true) and only the response says which it got, so
 * the decision is taken here, from the response's Content-Type, before
 * the upstream module picks its buffered or non-buffered path: that
 * choice is made right after the header filters run.
 *
 * The body filter then watches routed answers as they pass, without
 * holding or changing a byte: the first token event of a stream gives the
 * time to first token, the usage object the token counts (see
 * gpugate_sse.c and gpugate_oai_chunk.c).
 *
 * A stream for which the gateway asked for usage the client did not ask
 * for is the exception: it is copied into the filter's own buffers with
 * the usage-only chunk and the "usage": null members left out.  Only the
 * incomplete tail of the current event is held back; every event leaves
 * in the call it completed in.  The runtime's buffers are marked consumed
 * only once the copies are sent, so a slow client still holds the
 * runtime back instead of filling memory.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_openai.h"
#include "gpugate_oai_chunk.h"


static ngx_int_t ngx_http_gpugate_openai_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_openai_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static void ngx_http_gpugate_openai_answer(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx);
static void ngx_http_gpugate_openai_watch(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, u_char *p, size_t len);
static ngx_int_t ngx_http_gpugate_openai_strip(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, ngx_chain_t *in);
static ngx_chain_t *ngx_http_gpugate_openai_out_buf(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, size_t size);
static void ngx_http_gpugate_openai_record(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, gpugate_oai_chunk_t *c);
static void ngx_http_gpugate_openai_reasons(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, gpugate_oai_chunk_t *c);
static void ngx_http_gpugate_openai_hide(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_openai_filter_init(ngx_conf_t *cf);


static ngx_http_module_t  ngx_http_gpugate_openai_filter_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_gpugate_openai_filter_init,   /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_gpugate_openai_filter_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_openai_filter_module_ctx, /* module context */
    NULL,                                  /* module directives */
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


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_int_t
ngx_http_gpugate_openai_header_filter(ngx_http_request_t *r)
{
    u_char                              *hold;
    ngx_table_elt_t                     *h;
    ngx_http_upstream_t                 *u;
    ngx_http_gpugate_openai_ctx_t       *ctx;
    ngx_http_gpugate_openai_loc_conf_t  *olcf;

    u = r->upstream;

    if (u == NULL || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_openai_module);

    if (!olcf->enable) {
        return ngx_http_next_header_filter(r);
    }

    /*
     * An interim answer (a 101 above all) would reach the client as a
     * final one, and the bytes after it as a raw stream from the
     * runtime: the request fails as if the runtime had broken down.
     * (Client upgrades are refused before any runtime is asked.)
     */

    if (r->headers_out.status < NGX_HTTP_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate openai: the runtime answered %ui, which is "
                      "never passed to a client", r->headers_out.status);
        return NGX_HTTP_BAD_GATEWAY;
    }

    ngx_http_gpugate_openai_hide(r);

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (ctx && ctx->routed && r->headers_out.status == NGX_HTTP_OK) {
        /* a routed answer: its usage and first token are watched */
        ctx->observe = 1;
        ctx->event_stream = ngx_http_gpugate_is_event_stream(r);

        if (ctx->event_stream) {
            ctx->data = ngx_pnalloc(r->pool,
                                    NGX_HTTP_GPUGATE_EVENT_DATA_MAX);
            if (ctx->data == NULL) {
                return NGX_ERROR;
            }

            gpugate_sse_init(&ctx->sse, ctx->data,
                             NGX_HTTP_GPUGATE_EVENT_DATA_MAX);
        }

        if (ctx->event_stream && ctx->ask_usage) {
            hold = ngx_pnalloc(r->pool, NGX_HTTP_GPUGATE_HOLD_MIN);
            if (hold == NULL) {
                return NGX_ERROR;
            }

            gpugate_oai_strip_init(&ctx->strip, ctx->data,
                                   NGX_HTTP_GPUGATE_EVENT_DATA_MAX, hold,
                                   NGX_HTTP_GPUGATE_HOLD_MIN);
            ctx->stripping = 1;

            /* the client gets fewer bytes than the runtime sent */
            ngx_http_clear_content_length(r);
            ngx_http_clear_accept_ranges(r);
        }
    }

    if (ctx && ctx->routed && r->headers_out.status == NGX_HTTP_OK) {
        /* made as asked, unless a JSON answer lists them */
        ngx_http_gpugate_openai_images_made(r, ctx, -1);
    }

    if (ctx && ctx->routed && ctx->kind == GPUGATE_OAI_SPEECH) {
        /*
         * Audio plays as it arrives, like a token stream: every read from
         * the runtime goes out at once, and nothing of it is copied (its
         * characters were counted from the request).
         */

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate openai: speech answer passed unbuffered");

        u->buffering = 0;
        return ngx_http_next_header_filter(r);
    }

    if (!ngx_http_gpugate_is_event_stream(r)) {
        return ngx_http_next_header_filter(r);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate openai: event stream, buffering %s -> off",
                   u->buffering ? "on" : "off");

    /*
     * The upstream module reads u->buffering after ngx_http_send_header()
     * returns; clearing it here selects the non-buffered path, in which
     * every read from the runtime is flushed to the client at once.
     */

    u->buffering = 0;

    /*
     * Tell any nginx or CDN in front of us not to buffer either; the
     * runtime's own X-Accel-Buffering is hidden by proxy_hide_header.
     */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    return ngx_http_next_header_filter(r);
}


/*
 * Headers of the runtime that are not the client's business: nginx's own
 * control headers (X-Accel-*, already ignored by the upstream module in
 * these locations), the gateway's protocol (X-Gpugate-*) and cookies (a
 * runtime must not set state in the client of a gateway serving many).
 * Headers the location adds (add_header) come after this filter and
 * stay.
 */

static void
ngx_http_gpugate_openai_hide(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        if ((h[i].key.len > sizeof("X-Accel-") - 1
             && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Accel-",
                                sizeof("X-Accel-") - 1) == 0)
            || (h[i].key.len > sizeof("X-Gpugate-") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Gpugate-",
                                   sizeof("X-Gpugate-") - 1) == 0)
            || (h[i].key.len == sizeof("Set-Cookie") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Set-Cookie",
                                   sizeof("Set-Cookie") - 1) == 0))
        {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "gpugate openai: runtime header \"%V\" hidden",
                           &h[i].key);
            h[i].hash = 0;
        }
    }
}


ngx_uint_t
ngx_http_gpugate_is_event_stream(ngx_http_request_t *r)
{
    size_t   len;
    u_char  *p;

    static const char  type[] = "text/event-stream";

    /* the media type is matched without its parameters, ignoring case */

    len = sizeof(type) - 1;
    p = r->headers_out.content_type.data;

    if (r->headers_out.content_type.len < len
        || ngx_strncasecmp(p, (u_char *) type, len) != 0)
    {
        return 0;
    }

    if (r->headers_out.content_type.len == len) {
        return 1;
    }

    return p[len] == ';' || p[len] == ' ' || p[len] == '\t';
}


/*
 * Watches the answer on its way out without holding or changing a byte:
 * buffers pass through as they came, so watching adds no latency.  A
 * stripped stream goes through ngx_http_gpugate_openai_strip() instead.
 */

static ngx_int_t
ngx_http_gpugate_openai_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                      *b;
    ngx_chain_t                    *cl;
    ngx_http_gpugate_openai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (ctx == NULL || !ctx->observe) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ctx->stripping) {
        return ngx_http_gpugate_openai_strip(r, ctx, in);
    }

    if (ctx->complete) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ctx->kind == GPUGATE_OAI_SPEECH) {
            /* audio: only its end is watched */
            ctx->complete = b->last_buf;
            continue;
        }

        if (ngx_buf_in_memory(b) && b->last > b->pos) {
            ngx_http_gpugate_openai_watch(r, ctx, b->pos, b->last - b->pos);
        }

        if (b->last_buf && !ctx->event_stream && ctx->json) {
            ngx_http_gpugate_openai_answer(r, ctx);
        }
    }

    return ngx_http_next_body_filter(r, in);
}


/*
 * A whole non-streaming answer: its usage; an image model that reports
 * none is counted in images (as completion units), so the ledger still
 * says what was made.
 */

static void
ngx_http_gpugate_openai_answer(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx)
{
    size_t               len;
    long long            n;
    gpugate_oai_chunk_t  c;

    len = ctx->json->last - ctx->json->pos;

    gpugate_oai_chunk_classify(ctx->json->pos, len, &c);
    ngx_http_gpugate_openai_reasons(r, ctx, &c);

    n = -1;

    if (ctx->images_asked) {
        n = gpugate_oai_images_count(ctx->json->pos, len);

        if (n >= 0) {
            ngx_http_gpugate_openai_images_made(r, ctx, n);
        }
    }

    if (c.usage) {
        ctx->usage = 1;
        ctx->prompt_tokens = c.prompt_tokens;
        ctx->completion_tokens = c.completion_tokens;
        ngx_http_gpugate_openai_cache_usage(r, &c);

    } else if (ctx->kind == GPUGATE_OAI_IMAGES
               || ctx->kind == GPUGATE_OAI_IMAGE_EDITS)
    {
        if (n >= 0) {
            ctx->usage = 1;
            ctx->prompt_tokens = 0;
            ctx->completion_tokens = n;

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "gpugate openai: %L images, no usage reported",
                           (int64_t) n);
        }
    }

    ctx->complete = 1;
}


static void
ngx_http_gpugate_openai_watch(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, u_char *p, size_t len)
{
    int                  done;
    size_t               n, cap;
    gpugate_oai_chunk_t  c;

    if (!ctx->event_stream) {
        /* the answer's usage is at its end: keep a bounded copy */

        if (ctx->json == NULL) {
            cap = r->headers_out.content_length_n > 0
                  ? (size_t) r->headers_out.content_length_n : 4096;
            cap = ngx_min(cap, NGX_HTTP_GPUGATE_JSON_MAX);

            ctx->json = ngx_create_temp_buf(r->pool, cap);
            if (ctx->json == NULL) {
                ctx->observe = 0;
                return;
            }
        }

        if ((size_t) (ctx->json->end - ctx->json->last) < len) {
            cap = (ctx->json->last - ctx->json->pos) + len;

            if (cap > NGX_HTTP_GPUGATE_JSON_MAX) {
                ctx->observe = 0;       /* too big to look into */
                return;
            }

            cap = ngx_max(cap, 2 * (size_t) (ctx->json->end
                                             - ctx->json->start));
            cap = ngx_min(cap, NGX_HTTP_GPUGATE_JSON_MAX);

            n = ctx->json->last - ctx->json->pos;
            ctx->json->start = ngx_pnalloc(r->pool, cap);
            if (ctx->json->start == NULL) {
                ctx->observe = 0;
                return;
            }

            ngx_memcpy(ctx->json->start, ctx->json->pos, n);
            ctx->json->pos = ctx->json->start;
            ctx->json->last = ctx->json->start + n;
            ctx->json->end = ctx->json->start + cap;
        }

        ctx->json->last = ngx_cpymem(ctx->json->last, p, len);
        return;
    }

    while (len) {
        n = gpugate_sse_feed(&ctx->sse, p, len, &done);
        p += n;
        len -= n;

        if (done) {
            if (ctx->sse.has_data && !ctx->sse.overflow) {
                gpugate_oai_chunk_classify(ctx->data, ctx->sse.data_len,
                                           &c);
                ngx_http_gpugate_openai_record(r, ctx, &c);
            }

            gpugate_sse_next(&ctx->sse);
        }
    }
}


/*
 * One memory buffer of the answer through the stripper into "ob"; the
 * events it completes are recorded, and an event that outgrows the hold
 * buffer is passed on as it is.
 */

static ngx_int_t
ngx_http_gpugate_openai_strip_buf(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, ngx_buf_t *b, ngx_buf_t *ob)
{
    int                   what;
    size_t                len, cap;
    u_char               *p, *hold;
    ngx_chain_t          *tl;
    gpugate_oai_chunk_t   c;

    for (p = b->pos; p < b->last; /* void */) {
        len = ob->last - ob->pos;

        p += gpugate_oai_strip_feed(&ctx->strip, p, b->last - p,
                                    ob->pos, &len, &c, &what);

        ob->last = ob->pos + len;

        if (what == GPUGATE_OAI_STRIP_EVENT) {
            if (!ctx->complete) {
                ngx_http_gpugate_openai_record(r, ctx, &c);
            }

        } else if (what == GPUGATE_OAI_STRIP_FULL) {

            if (ctx->strip.hold_cap < NGX_HTTP_GPUGATE_HOLD_MAX) {
                cap = ngx_min(2 * ctx->strip.hold_cap,
                              NGX_HTTP_GPUGATE_HOLD_MAX);

                hold = ngx_pnalloc(r->pool, cap);
                if (hold == NULL) {
                    return NGX_ERROR;
                }

                gpugate_oai_strip_grow(&ctx->strip, hold, cap);

            } else {
                ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log,
                               0, "gpugate openai: event too long to "
                               "strip, passed as it is");

                len = ob->last - ob->pos;
                gpugate_oai_strip_pass(&ctx->strip, ob->pos, &len);
                ob->last = ob->pos + len;
            }
        }
    }

    if (b->last > b->pos) {
        /* consumed, but released only once our copy is sent */

        tl = ngx_alloc_chain_link(r->pool);
        if (tl == NULL) {
            return NGX_ERROR;
        }

        tl->buf = b;
        tl->next = ctx->taken;
        ctx->taken = tl;
    }

    return NGX_OK;
}


/*
 * The stripped stream: every byte of "in" goes through the stripper into
 * one output buffer of ours (nothing is added, so held bytes plus input
 * bound its size); the input buffers' flags follow the data.
 */

static ngx_int_t
ngx_http_gpugate_openai_strip(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, ngx_chain_t *in)
{
    size_t        size, len;
    ngx_int_t     rc;
    ngx_buf_t    *b, *ob;
    ngx_uint_t    flush, last_buf, last_in_chain, last_special;
    ngx_chain_t  *cl, *ocl, *tl, *out, *special, **ll, **sl;

    size = ctx->strip.held;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            size += b->last - b->pos;

        } else if (b->in_file) {
            /* event streams take the non-buffered path: never on disk */
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "gpugate openai: file buffer in a stripped "
                          "event stream");
            return NGX_ERROR;
        }
    }

    ocl = NULL;
    ob = NULL;

    if (size) {
        ocl = ngx_http_gpugate_openai_out_buf(r, ctx, size);
        if (ocl == NULL) {
            return NGX_ERROR;
        }

        ob = ocl->buf;
    }

    flush = 0;
    last_buf = 0;
    last_in_chain = 0;
    last_special = 0;
    special = NULL;
    sl = &special;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (!ngx_buf_in_memory(b)) {
            /* flush, sync or last: passed on as it is, after the data */

            last_special |= b->last_buf | b->last_in_chain;

            *sl = ngx_alloc_chain_link(r->pool);
            if (*sl == NULL) {
                return NGX_ERROR;
            }

            (*sl)->buf = b;
            sl = &(*sl)->next;
            continue;
        }

        flush |= b->flush;
        last_buf |= b->last_buf;
        last_in_chain |= b->last_in_chain;

        if (ngx_http_gpugate_openai_strip_buf(r, ctx, b, ob) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if ((last_buf || last_in_chain || last_special) && ctx->strip.held) {
        /* the end of the answer: an incomplete event goes as it came */

        len = ob->last - ob->pos;
        gpugate_oai_strip_pass(&ctx->strip, ob->pos, &len);
        ob->last = ob->pos + len;
    }

    out = NULL;
    ll = &out;

    if (ob && ob->last > ob->pos) {
        ob->flush = flush;
        ob->last_buf = last_buf;
        ob->last_in_chain = last_in_chain;

        *ll = ocl;
        ll = &ocl->next;

    } else {
        if (ocl) {
            /* nothing to send yet: the buffer is free again */
            ocl->next = ctx->free;
            ctx->free = ocl;
        }

        if (last_buf || last_in_chain) {
            b = ngx_calloc_buf(r->pool);
            if (b == NULL) {
                return NGX_ERROR;
            }

            b->last_buf = last_buf;
            b->last_in_chain = last_in_chain;

            *ll = ngx_alloc_chain_link(r->pool);
            if (*ll == NULL) {
                return NGX_ERROR;
            }

            (*ll)->buf = b;
            ll = &(*ll)->next;
        }
    }

    *ll = special;
    *sl = NULL;

    rc = ngx_http_next_body_filter(r, out);

    ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &out,
                            (ngx_buf_tag_t)
                                &ngx_http_gpugate_openai_filter_module);

    if (ctx->busy == NULL) {
        /* all sent: the runtime's buffers may be reused */

        while (ctx->taken) {
            tl = ctx->taken;
            ctx->taken = tl->next;

            tl->buf->pos = tl->buf->last;
            ngx_free_chain(r->pool, tl);
        }
    }

    return rc;
}


/* a free output buffer of at least "size" bytes, ours to reuse */

static ngx_chain_t *
ngx_http_gpugate_openai_out_buf(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl, **ll;

    for (ll = &ctx->free; *ll; ll = &(*ll)->next) {
        b = (*ll)->buf;

        if ((size_t) (b->end - b->start) >= size) {
            cl = *ll;
            *ll = cl->next;
            cl->next = NULL;
            return cl;
        }
    }

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NULL;
    }

    /* rounded up, so that buffers fit later calls too */

    b = ngx_create_temp_buf(r->pool, ngx_align(size, 1024));
    if (b == NULL) {
        return NULL;
    }

    b->tag = (ngx_buf_tag_t) &ngx_http_gpugate_openai_filter_module;

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/* the chunk's finish reasons join the request's (at most a few) */

static void
ngx_http_gpugate_openai_reasons(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, gpugate_oai_chunk_t *c)
{
    unsigned  n;

    if (c->reasons.n == 0) {
        return;
    }

    n = ctx->reasons.n;

    gpugate_oai_reasons_merge(&ctx->reasons, &c->reasons);

    if (ctx->reasons.n != n) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate openai: finish reason \"%*s\"",
                       (size_t) ctx->reasons.len[n],
                       ctx->reasons.s[n]);
    }
}


static void
ngx_http_gpugate_openai_record(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, gpugate_oai_chunk_t *c)
{
    ngx_msec_int_t   ms;
    ngx_time_t      *tp;

    if (c->done) {
        ctx->complete = 1;
        return;
    }

    ngx_http_gpugate_openai_reasons(r, ctx, c);

    if (c->content) {
        ctx->token_events++;

        if (!ctx->first_token) {
            ctx->first_token = 1;

            tp = ngx_timeofday();
            ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                                   + (tp->msec - r->start_msec));
            ctx->ttft = (ngx_msec_t) ngx_max(ms, 0);

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "gpugate openai: first token after %M ms",
                           ctx->ttft);
        }
    }

    if (c->usage) {
        ctx->usage = 1;
        ctx->prompt_tokens = c->prompt_tokens;
        ctx->completion_tokens = c->completion_tokens;
        ngx_http_gpugate_openai_cache_usage(r, c);

    } else if (c->usage_out && ctx->usage) {
        /* Anthropic's message_delta: the output so far, input kept from
           message_start */
        ctx->completion_tokens = c->completion_tokens;
    }

    if (c->final) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate openai: the stream's final event");
        ctx->complete = 1;
    }
}


static ngx_int_t
ngx_http_gpugate_openai_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_gpugate_openai_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_gpugate_openai_body_filter;

    return NGX_OK;
}
