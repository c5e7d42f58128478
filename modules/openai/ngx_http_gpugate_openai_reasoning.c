
/*
 * Copyright (C) gpugate authors
 *
 * The reasoning split ("gpugate_reasoning split"): a runtime without a
 * reasoning parser sends a thinking model's "<think>...</think>" inline
 * at the start of the answer; clients that expect OpenAI's shape want it
 * in "reasoning_content".  This filter moves it there, in chat answers
 * (choices[].message) and in their streams (choices[0].delta), with the
 * state machine of gpugate_think.c.
 *
 * A stream is rewritten event by event, each event leaving in the call
 * that completes it, except while the answer so far is whitespace or a
 * beginning of the opening tag: those events wait, so that an answer
 * without reasoning reaches the client byte-identical.  An event whose
 * content was reasoning carries it in delta.reasoning_content instead;
 * one whose content was only markup carries an empty reasoning_content;
 * events without content pass untouched.  The runtime's buffers are
 * marked consumed only once our copies are sent (its flow control).
 *
 * A JSON answer is read whole (the upstream's non-buffered path, so it
 * never goes to a temporary file), up to NGX_HTTP_GPUGATE_JSON_MAX; a
 * longer one passes unchanged.
 *
 * The filter sits above the router's own filter, which then sees the
 * rewritten answer (its token count and usage stripping work on it
 * unchanged: a reasoning delta is a token event).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_openai.h"
#include "ngx_http_gpugate_ledger_api.h"
#include "ngx_http_gpugate_metrics.h"
#include "gpugate_think.h"
#include "ngx_http_gpugate_openai_reasoning.h"


/* raw bytes of one event kept for rewriting; a longer one passes as is */
#define NGX_HTTP_GPUGATE_REASONING_EVENT_MAX  (64 * 1024)

/* events waiting for the opening tag; past this, no reasoning */
#define NGX_HTTP_GPUGATE_REASONING_WAIT_MAX   (64 * 1024)

/* choices of a chat answer split */
#define NGX_HTTP_GPUGATE_REASONING_CHOICES    16


typedef struct {
    ngx_http_gpugate_reasoning_rule_t  *rule; /* the pool's rule */
    gpugate_think_t   think;       /* the split of choice 0 */
    gpugate_sse_t     sse;         /* framer of the stream */
    u_char            sse_data[1]; /* the framer's data buffer: the data
                                      is read from "ev", not from it */
    u_char           *ev;          /* raw bytes of the current event */
    size_t            ev_len;      /* its bytes so far */
    size_t            ev_cap;      /* the size of "ev" */
    u_char           *wait;        /* events waiting for the opening tag */
    size_t            wait_len;    /* their bytes */
    size_t            wait_cap;    /* the size of "wait" */
    u_char           *scratch;     /* reasoning and content of an event */
    size_t            scratch_cap; /* its size, halved between them */
    ngx_buf_t        *json;        /* the whole JSON answer so far */
    ngx_chain_t      *out;         /* output of the current call */
    ngx_chain_t     **last_out;    /* its end */
    ngx_buf_t        *cur;         /* its last buffer, being filled */
    ngx_chain_t      *free;        /* our output buffers to reuse */
    ngx_chain_t      *busy;        /* our output not yet sent */
    ngx_chain_t      *taken;       /* the runtime's buffers copied, kept
                                      unconsumed until "busy" is sent */
    ngx_int_t         events;      /* stream events that carried
                                      reasoning */
    ngx_int_t         reported;    /* reasoning_tokens the runtime
                                      reported; -1: none */
    ngx_int_t         estimated;   /* a JSON answer's estimate; -1 */
    unsigned          stream:1;    /* an event stream, else JSON */
    unsigned          passing:1;   /* the current event outgrew "ev" */
    unsigned          given_up:1;  /* the answer passes unchanged */
    unsigned          ended:1;     /* the last buffer was seen */
} ngx_http_gpugate_reasoning_ctx_t;


static ngx_int_t ngx_http_gpugate_reasoning_event(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, u_char *ev, size_t len);
static ngx_int_t ngx_http_gpugate_reasoning_write(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, u_char *p, size_t len);
static ngx_int_t ngx_http_gpugate_reasoning_buf(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, size_t size);
static ngx_int_t ngx_http_gpugate_reasoning_give_up(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx);
static ngx_int_t ngx_http_gpugate_reasoning_flush_wait(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, ngx_uint_t as_reasoning);
static void ngx_http_gpugate_reasoning_account(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_int_t
ngx_http_gpugate_reasoning_header_filter(ngx_http_request_t *r)
{
    ngx_http_gpugate_openai_ctx_t       *octx;
    ngx_http_gpugate_reasoning_ctx_t    *ctx;
    ngx_http_gpugate_reasoning_rule_t   *rule;

    if (r->upstream == NULL || r != r->main
        || r->headers_out.status != NGX_HTTP_OK)
    {
        return ngx_http_next_header_filter(r);
    }

    octx = ngx_http_get_module_ctx(r, ngx_http_gpugate_openai_module);

    if (octx == NULL || !octx->routed || octx->kind != GPUGATE_OAI_CHAT) {
        return ngx_http_next_header_filter(r);
    }

    rule = ngx_http_gpugate_reasoning_rule(r, &octx->pool);

    if (rule == NULL || !rule->split) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_gpugate_reasoning_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->rule = rule;
    ctx->reported = -1;
    ctx->estimated = -1;
    ctx->stream = ngx_http_gpugate_is_event_stream(r);
    ctx->last_out = &ctx->out;

    gpugate_think_init(&ctx->think, (char *) rule->open.data, rule->open.len,
                       (char *) rule->close.data, rule->close.len);

    if (ctx->stream) {
        gpugate_sse_init(&ctx->sse, ctx->sse_data, sizeof(ctx->sse_data));

    } else {
        /* read whole in memory: never a temporary file */
        r->upstream->buffering = 0;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_gpugate_reasoning_module);

    /* the client gets other bytes than the runtime sent */
    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate reasoning: split on for pool \"%V\", %s",
                   &octx->pool, ctx->stream ? "stream" : "JSON answer");

    return ngx_http_next_header_filter(r);
}


/* room for the reasoning and the content of a string of "len" bytes */

static ngx_int_t
ngx_http_gpugate_reasoning_scratch(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, size_t len)
{
    size_t  need;

    need = 2 * gpugate_think_out_max(&ctx->think, len);

    if (ctx->scratch_cap >= need) {
        return NGX_OK;
    }

    need = ngx_max(need, 2048);

    ctx->scratch = ngx_pnalloc(r->pool, need);
    if (ctx->scratch == NULL) {
        return NGX_ERROR;
    }

    ctx->scratch_cap = need;

    return NGX_OK;
}


/*
 * Appends to a growing buffer ("wait" or "ev"), up to "max"; NGX_DECLINED
 * when it would pass that.
 */

static ngx_int_t
ngx_http_gpugate_reasoning_append(ngx_http_request_t *r, u_char **buf,
    size_t *len, size_t *cap, size_t max, u_char *p, size_t n)
{
    size_t   size;
    u_char  *nb;

    if (*len + n > *cap) {
        if (*len + n > max) {
            return NGX_DECLINED;
        }

        size = ngx_min(ngx_max(2 * *cap, ngx_max(*len + n, 1024)), max);

        nb = ngx_pnalloc(r->pool, size);
        if (nb == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(nb, *buf, *len);
        *buf = nb;
        *cap = size;
    }

    ngx_memcpy(*buf + *len, p, n);
    *len += n;

    return NGX_OK;
}


/*
 * The JSON of an event: a single "data" line (after line ends left over
 * from the last event) and nothing but line ends after it.
 */

static u_char *
ngx_http_gpugate_reasoning_event_json(u_char *ev, size_t len, u_char **end)
{
    u_char  *p, *last, *e;

    last = ev + len;

    for (p = ev; p < last && (*p == '\r' || *p == '\n'); p++) {
        /* void */
    }

    if (last - p < 5 || ngx_strncmp(p, "data:", 5) != 0) {
        return NULL;
    }

    p += 5;

    if (p < last && *p == ' ') {
        p++;
    }

    for (e = p; e < last && *e != '\r' && *e != '\n'; e++) {
        /* void */
    }

    *end = e;

    for ( /* void */ ; e < last; e++) {
        if (*e != '\r' && *e != '\n') {
            return NULL;
        }
    }

    return p;
}


/*
 * Writes "ev" with its content member replaced: reasoning (NULL: left
 * out) and content (NULL: left out).
 */

static ngx_int_t
ngx_http_gpugate_reasoning_replace(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, u_char *ev, size_t len,
    u_char *name, u_char *after, u_char *reason, size_t rlen, u_char *content,
    size_t clen)
{
    ngx_buf_t  *b;

    if (ngx_http_gpugate_reasoning_write(r, ctx, ev, name - ev) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the new member is written in place: room for it in one buffer */

    b = ctx->cur;

    if (b == NULL || (size_t) (b->end - b->last) < rlen + clen + 40) {
        if (ngx_http_gpugate_reasoning_buf(r, ctx, rlen + clen + 40)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        b = ctx->cur;
    }

    b->last += gpugate_think_member(b->last, reason, rlen, content, clen);

    return ngx_http_gpugate_reasoning_write(r, ctx, after, ev + len - after);
}


/* the content string of choice 0 of an event; NULL: none */

static u_char *
ngx_http_gpugate_reasoning_locate(u_char *ev, size_t len,
    gpugate_think_loc_t *out, ngx_int_t *reported)
{
    int                   i, n;
    u_char               *json, *end;
    long long             v;
    gpugate_think_loc_t   loc[4];

    json = ngx_http_gpugate_reasoning_event_json(ev, len, &end);
    if (json == NULL) {
        return NULL;
    }

    v = gpugate_think_reported(json, end - json);
    if (v >= 0) {
        *reported = (ngx_int_t) v;
    }

    n = gpugate_think_locate(json, end - json, "delta", loc, 4);

    for (i = 0; i < n; i++) {
        if (loc[i].index == 0) {
            *out = loc[i];
            return json;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_gpugate_reasoning_event(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, u_char *ev, size_t len)
{
    size_t                rlen, clen;
    u_char               *json, *reason, *content;
    ngx_int_t             rc;
    gpugate_think_loc_t   loc;

    json = ngx_http_gpugate_reasoning_locate(ev, len, &loc, &ctx->reported);

    if (json == NULL || loc.value_len == 0 || ctx->given_up) {
        /* no content: untouched, after the events waiting */

        if (ctx->wait_len == 0) {
            return ngx_http_gpugate_reasoning_write(r, ctx, ev, len);
        }

        goto wait;
    }

    if (ngx_http_gpugate_reasoning_scratch(r, ctx, loc.value_len) != NGX_OK) {
        return NGX_ERROR;
    }

    reason = ctx->scratch;
    content = ctx->scratch + ctx->scratch_cap / 2;
    rlen = 0;
    clen = 0;

    gpugate_think_feed(&ctx->think, json + loc.value, loc.value_len,
                       reason, &rlen, content, &clen);

    if (gpugate_think_undecided(&ctx->think)) {
        goto wait;
    }

    if (!gpugate_think_opened(&ctx->think)) {
        /* no reasoning: everything as it came */

        if (ngx_http_gpugate_reasoning_flush_wait(r, ctx, 0) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_gpugate_reasoning_write(r, ctx, ev, len);
    }

    if (ngx_http_gpugate_reasoning_flush_wait(r, ctx, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rlen == 0 && clen == loc.value_len) {
        /* the final answer, as it came */
        return ngx_http_gpugate_reasoning_write(r, ctx, ev, len);
    }

    if (rlen) {
        ctx->events++;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate reasoning: event split, %uz reasoning, "
                   "%uz content bytes", rlen, clen);

    return ngx_http_gpugate_reasoning_replace(r, ctx, ev, len,
                                              json + loc.name,
                                              json + loc.end,
                                              (rlen || !clen) ? reason : NULL,
                                              rlen, clen ? content : NULL,
                                              clen);

wait:

    rc = ngx_http_gpugate_reasoning_append(r, &ctx->wait, &ctx->wait_len,
                                           &ctx->wait_cap,
                                           NGX_HTTP_GPUGATE_REASONING_WAIT_MAX,
                                           ev, len);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* too long a wait: the answer is taken as one without reasoning */

    if (ngx_http_gpugate_reasoning_give_up(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_gpugate_reasoning_write(r, ctx, ev, len);
}


/*
 * No more waiting for the opening tag (the wait or an event grew too
 * long): the answer passes as it came from here on, the waiting events
 * first.
 */

static ngx_int_t
ngx_http_gpugate_reasoning_give_up(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx)
{
    size_t  clen;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate reasoning: %uz bytes of events without the "
                   "opening tag, no reasoning", ctx->wait_len);

    /* the held bytes are in the waiting events: only the state matters */

    clen = 0;
    gpugate_think_give_up(&ctx->think, ctx->scratch, &clen);
    ctx->given_up = 1;

    return ngx_http_gpugate_reasoning_flush_wait(r, ctx, 0);
}


/*
 * The events that waited for the opening tag: as they came (there was
 * none), or with their markup-only content as empty reasoning.
 */

static ngx_int_t
ngx_http_gpugate_reasoning_flush_wait(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, ngx_uint_t as_reasoning)
{
    int                   done;
    size_t                n, len;
    u_char               *p, *ev, *json;
    ngx_int_t             reported;
    gpugate_sse_t         sse;
    gpugate_think_loc_t   loc;

    if (ctx->wait_len == 0) {
        return NGX_OK;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate reasoning: %uz bytes of waiting events sent%s",
                   ctx->wait_len, as_reasoning ? " as reasoning" : "");

    p = ctx->wait;
    len = ctx->wait_len;
    ctx->wait_len = 0;

    if (!as_reasoning) {
        return ngx_http_gpugate_reasoning_write(r, ctx, p, len);
    }

    gpugate_sse_init(&sse, ctx->sse_data, sizeof(ctx->sse_data));

    while (len) {
        ev = p;
        n = gpugate_sse_feed(&sse, p, len, &done);
        p += n;
        len -= n;
        gpugate_sse_next(&sse);

        json = ngx_http_gpugate_reasoning_locate(ev, p - ev, &loc,
                                                 &reported);

        if (json == NULL || loc.value_len == 0) {
            if (ngx_http_gpugate_reasoning_write(r, ctx, ev, p - ev)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (ngx_http_gpugate_reasoning_replace(r, ctx, ev, p - ev,
                                               json + loc.name,
                                               json + loc.end,
                                               (u_char *) "", 0, NULL, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* appends bytes to this call's output */

static ngx_int_t
ngx_http_gpugate_reasoning_write(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, u_char *p, size_t len)
{
    size_t      n;
    ngx_buf_t  *b;

    while (len) {
        b = ctx->cur;

        if (b && b->end > b->last) {
            n = ngx_min(len, (size_t) (b->end - b->last));
            b->last = ngx_cpymem(b->last, p, n);
            p += n;
            len -= n;
            continue;
        }

        if (ngx_http_gpugate_reasoning_buf(r, ctx, len) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a new output buffer of at least "size" bytes: a free one, or made */

static ngx_int_t
ngx_http_gpugate_reasoning_buf(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl, **ll;

    cl = NULL;

    for (ll = &ctx->free; *ll; ll = &(*ll)->next) {
        if ((size_t) ((*ll)->buf->end - (*ll)->buf->start) >= size) {
            cl = *ll;
            *ll = cl->next;
            break;
        }
    }

    if (cl == NULL) {
        cl = ngx_alloc_chain_link(r->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        /* rounded up, so that buffers fit later calls too */

        b = ngx_create_temp_buf(r->pool, ngx_align(ngx_max(size, 4096),
                                                   1024));
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->tag = (ngx_buf_tag_t) &ngx_http_gpugate_reasoning_module;
        cl->buf = b;
    }

    b = cl->buf;
    b->pos = b->start;
    b->last = b->start;
    b->flush = 0;
    b->last_buf = 0;
    b->last_in_chain = 0;

    cl->next = NULL;
    *ctx->last_out = cl;
    ctx->last_out = &cl->next;
    ctx->cur = b;

    return NGX_OK;
}


/* one memory buffer of a stream, event by event */

static ngx_int_t
ngx_http_gpugate_reasoning_stream(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, u_char *p, size_t len)
{
    int        done;
    size_t     n;
    ngx_int_t  rc;

    while (len) {
        n = gpugate_sse_feed(&ctx->sse, p, len, &done);

        if (ctx->passing) {
            /* an event too long to rewrite: its bytes go as they come */
            rc = ngx_http_gpugate_reasoning_write(r, ctx, p, n);

        } else {
            rc = ngx_http_gpugate_reasoning_append(r, &ctx->ev, &ctx->ev_len,
                                      &ctx->ev_cap,
                                      NGX_HTTP_GPUGATE_REASONING_EVENT_MAX,
                                      p, n);

            if (rc == NGX_DECLINED) {
                ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                               "gpugate reasoning: event too long, passed "
                               "as it is");

                ctx->passing = 1;

                rc = ctx->wait_len
                     ? ngx_http_gpugate_reasoning_give_up(r, ctx) : NGX_OK;

                if (rc == NGX_OK) {
                    rc = ngx_http_gpugate_reasoning_write(r, ctx, ctx->ev,
                                                          ctx->ev_len);
                }

                if (rc == NGX_OK) {
                    rc = ngx_http_gpugate_reasoning_write(r, ctx, p, n);
                }

                ctx->ev_len = 0;
            }
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        p += n;
        len -= n;

        if (!done) {
            continue;
        }

        gpugate_sse_next(&ctx->sse);

        if (!ctx->passing
            && ngx_http_gpugate_reasoning_event(r, ctx, ctx->ev, ctx->ev_len)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        ctx->ev_len = 0;
        ctx->passing = 0;
    }

    return NGX_OK;
}


/* the end of a stream: what is held goes as it came */

static ngx_int_t
ngx_http_gpugate_reasoning_stream_end(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx)
{
    size_t  rlen, clen;

    rlen = 0;
    clen = 0;

    if (ngx_http_gpugate_reasoning_scratch(r, ctx, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    /* held markup of an unfinished tag is dropped with it */
    gpugate_think_end(&ctx->think, ctx->scratch, &rlen,
                      ctx->scratch + ctx->scratch_cap / 2, &clen);

    if (ngx_http_gpugate_reasoning_flush_wait(r, ctx, 0) != NGX_OK
        || ngx_http_gpugate_reasoning_write(r, ctx, ctx->ev, ctx->ev_len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->ev_len = 0;

    return NGX_OK;
}


/* a whole JSON answer: every choice's message split */

static ngx_int_t
ngx_http_gpugate_reasoning_answer(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx)
{
    int                   i, n;
    size_t                rlen, clen, len;
    u_char               *json, *from, *reason, *content;
    long long             v;
    gpugate_think_t       think;
    gpugate_think_loc_t   loc[NGX_HTTP_GPUGATE_REASONING_CHOICES];

    json = ctx->json->pos;
    len = ctx->json->last - json;

    v = gpugate_think_reported(json, len);
    ctx->reported = v >= 0 ? (ngx_int_t) v : -1;

    n = gpugate_think_locate(json, len, "message", loc,
                             NGX_HTTP_GPUGATE_REASONING_CHOICES);
    from = json;

    for (i = 0; i < n; i++) {
        gpugate_think_init(&think, (char *) ctx->rule->open.data,
                           ctx->rule->open.len, (char *) ctx->rule->close.data,
                           ctx->rule->close.len);

        reason = ngx_pnalloc(r->pool, 2 * loc[i].value_len + 2);
        if (reason == NULL) {
            return NGX_ERROR;
        }

        content = reason + loc[i].value_len + 1;
        rlen = 0;
        clen = 0;

        gpugate_think_feed(&think, json + loc[i].value, loc[i].value_len,
                           reason, &rlen, content, &clen);
        gpugate_think_end(&think, reason, &rlen, content, &clen);

        if (!gpugate_think_opened(&think)) {
            continue;
        }

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate reasoning: choice %l split, %uz reasoning, "
                       "%uz content bytes", loc[i].index, rlen, clen);

        /* a quarter of the bytes: a token's usual length in English */
        ctx->estimated = ngx_max(ctx->estimated, 0)
                         + (ngx_int_t) ((rlen + 3) / 4);

        if (ngx_http_gpugate_reasoning_replace(r, ctx, from,
                                               json + loc[i].end - from,
                                               json + loc[i].name,
                                               json + loc[i].end,
                                               reason, rlen, content, clen)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        from = json + loc[i].end;
    }

    return ngx_http_gpugate_reasoning_write(r, ctx, from,
                                            ctx->json->last - from);
}


/* a JSON answer is kept whole until its end; a longer one passes */

static ngx_int_t
ngx_http_gpugate_reasoning_collect(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, u_char *p, size_t len)
{
    size_t      size, grown;
    ngx_buf_t  *b;

    if (ctx->given_up) {
        return ngx_http_gpugate_reasoning_write(r, ctx, p, len);
    }

    b = ctx->json;

    if (b == NULL || (size_t) (b->end - b->last) < len) {
        size = (b ? (size_t) (b->last - b->pos) : 0) + len;

        if (size > NGX_HTTP_GPUGATE_JSON_MAX) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "gpugate reasoning: answer longer than %uz bytes, "
                          "passed without the split",
                          (size_t) NGX_HTTP_GPUGATE_JSON_MAX);

            ctx->given_up = 1;

            if (b && ngx_http_gpugate_reasoning_write(r, ctx, b->pos,
                                                      b->last - b->pos)
                     != NGX_OK)
            {
                return NGX_ERROR;
            }

            return ngx_http_gpugate_reasoning_write(r, ctx, p, len);
        }

        grown = b ? 2 * (size_t) (b->end - b->start) : 8192;
        size = ngx_max(size, grown);
        size = ngx_min(size, (size_t) NGX_HTTP_GPUGATE_JSON_MAX);

        ctx->json = ngx_create_temp_buf(r->pool, size);
        if (ctx->json == NULL) {
            return NGX_ERROR;
        }

        if (b) {
            ctx->json->last = ngx_cpymem(ctx->json->last, b->pos,
                                         b->last - b->pos);
        }

        b = ctx->json;
    }

    b->last = ngx_cpymem(b->last, p, len);

    return NGX_OK;
}


/* the input's flags on the last buffer of our output, made if none */

static ngx_int_t
ngx_http_gpugate_reasoning_flags(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx, ngx_uint_t flush,
    ngx_uint_t last_buf, ngx_uint_t last_in_chain)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ctx->cur;

    if (b == NULL && !last_buf && !last_in_chain) {
        /* nothing to send: a flush alone has nothing to push */
        return NGX_OK;
    }

    if (b == NULL) {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_ERROR;
        }

        cl = ngx_alloc_chain_link(r->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = b;
        cl->next = NULL;
        *ctx->last_out = cl;
        ctx->last_out = &cl->next;
        ctx->cur = b;
    }

    b->flush = flush;
    b->last_buf = last_buf;
    b->last_in_chain = last_in_chain;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_reasoning_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in)
{
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_uint_t                         flush, last, last_buf,
                                       last_in_chain;
    ngx_chain_t                       *cl, *tl;
    ngx_http_gpugate_reasoning_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_gpugate_reasoning_module);

    if (ctx == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx->out = NULL;
    ctx->last_out = &ctx->out;
    ctx->cur = NULL;
    flush = 0;
    last_buf = 0;
    last_in_chain = 0;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        flush |= b->flush;
        last_buf |= b->last_buf;
        last_in_chain |= b->last_in_chain;

        if (!ngx_buf_in_memory(b)) {
            if (b->in_file) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              "gpugate reasoning: file buffer in a split "
                              "answer");
                return NGX_ERROR;
            }

            continue;
        }

        if (b->last == b->pos || ctx->ended) {
            continue;
        }

        rc = ctx->stream
             ? ngx_http_gpugate_reasoning_stream(r, ctx, b->pos,
                                                 b->last - b->pos)
             : ngx_http_gpugate_reasoning_collect(r, ctx, b->pos,
                                                  b->last - b->pos);
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        /* consumed, but released only once our copy is sent */

        tl = ngx_alloc_chain_link(r->pool);
        if (tl == NULL) {
            return NGX_ERROR;
        }

        tl->buf = b;
        tl->next = ctx->taken;
        ctx->taken = tl;
    }

    last = last_buf || last_in_chain;

    if (last && !ctx->ended) {
        ctx->ended = 1;

        if (ctx->stream) {
            rc = ngx_http_gpugate_reasoning_stream_end(r, ctx);

        } else if (ctx->json && !ctx->given_up) {
            rc = ngx_http_gpugate_reasoning_answer(r, ctx);

        } else {
            rc = NGX_OK;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_gpugate_reasoning_account(r, ctx);
    }

    if (ngx_http_gpugate_reasoning_flags(r, ctx, flush, last_buf,
                                         last_in_chain)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_next_body_filter(r, ctx->out);

    ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &ctx->out,
                            (ngx_buf_tag_t)
                                &ngx_http_gpugate_reasoning_module);

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


/* the answer's reasoning tokens into the ledger row and /metrics */

static void
ngx_http_gpugate_reasoning_account(ngx_http_request_t *r,
    ngx_http_gpugate_reasoning_ctx_t *ctx)
{
    ngx_int_t                         n;
    ngx_uint_t                        estimated;
    ngx_http_gpugate_ledger_extra_t  *extra;

    if (ctx->reported >= 0) {
        n = ctx->reported;
        estimated = 0;

    } else if (ctx->stream && gpugate_think_opened(&ctx->think)) {
        n = ctx->events;
        estimated = 1;

    } else if (!ctx->stream && ctx->estimated >= 0) {
        n = ctx->estimated;
        estimated = 1;

    } else {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate reasoning: %i reasoning tokens%s", n,
                   estimated ? ", estimated" : "");

    extra = ngx_http_gpugate_ledger_extra(r);
    if (extra == NULL) {
        return;
    }

    extra->reasoning_tokens = n;
    extra->reasoning_estimated = estimated;

    ngx_http_gpugate_metrics_reasoning(r, n, estimated);
}


ngx_int_t
ngx_http_gpugate_reasoning_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_gpugate_reasoning_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_gpugate_reasoning_body_filter;

    return NGX_OK;
}
