
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
static void ngx_http_gpugate_openai_watch(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, u_char *p, size_t len);
static void ngx_http_gpugate_openai_chunk(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, u_char *data, size_t len);
static ngx_uint_t ngx_http_gpugate_is_event_stream(ngx_http_request_t *r);
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


static ngx_uint_t
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
 * buffers pass through as they came, so watching adds no latency.
 */

static ngx_int_t
ngx_http_gpugate_openai_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                      *b;
    ngx_chain_t                    *cl;
    gpugate_oai_chunk_t             c;
    ngx_http_gpugate_openai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (ctx == NULL || !ctx->observe || ctx->complete) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b) && b->last > b->pos) {
            ngx_http_gpugate_openai_watch(r, ctx, b->pos, b->last - b->pos);
        }

        if (b->last_buf && !ctx->event_stream && ctx->json) {
            gpugate_oai_chunk_classify(ctx->json->pos,
                                       ctx->json->last - ctx->json->pos, &c);

            if (c.usage) {
                ctx->usage = 1;
                ctx->prompt_tokens = c.prompt_tokens;
                ctx->completion_tokens = c.completion_tokens;
            }

            ctx->complete = 1;
        }
    }

    return ngx_http_next_body_filter(r, in);
}


static void
ngx_http_gpugate_openai_watch(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, u_char *p, size_t len)
{
    int      done;
    size_t   n, cap;

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
                ngx_http_gpugate_openai_chunk(r, ctx, ctx->data,
                                              ctx->sse.data_len);
            }

            gpugate_sse_next(&ctx->sse);
        }
    }
}


static void
ngx_http_gpugate_openai_chunk(ngx_http_request_t *r,
    ngx_http_gpugate_openai_ctx_t *ctx, u_char *data, size_t len)
{
    ngx_msec_int_t       ms;
    ngx_time_t          *tp;
    gpugate_oai_chunk_t  c;

    gpugate_oai_chunk_classify(data, len, &c);

    if (c.done) {
        ctx->complete = 1;
        return;
    }

    if (c.content) {
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

    if (c.usage) {
        ctx->usage = 1;
        ctx->prompt_tokens = c.prompt_tokens;
        ctx->completion_tokens = c.completion_tokens;
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
