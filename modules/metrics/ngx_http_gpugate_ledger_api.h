
/*
 * Copyright (C) gpugate authors
 *
 * What other modules add to a request's usage_events row, beyond what
 * the metrics module reads from variables: the trace id (tracing), the
 * reasoning and prompt-cache token counts (the router), images made, the
 * batch or job that sent the request, the region and priority it was
 * served at.  A module that knows one of these sets it at any time before
 * the log phase; whatever nobody sets stays NULL in the row.
 *
 * The fields live in a pool cleanup of the main request, not in a module
 * context: a context is wiped by an internal redirect, a cleanup is not.
 * Strings must stay valid until the log phase (request pool memory, or
 * configuration); the ledger copies and cuts them there.
 */


#ifndef _NGX_HTTP_GPUGATE_LEDGER_API_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_LEDGER_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct {
    ngx_str_t         trace_id;    /* W3C trace id, 32 lowercase hex
                                      digits; "": none */
    ngx_str_t         batch_id;    /* the batch or job whose line this
                                      request ran; "": an interactive
                                      request */
    ngx_str_t         region;      /* region of the agent that served it;
                                      "": none known */
    ngx_str_t         image_size;  /* images' size as asked ("1024x1024");
                                      "": none */
    ngx_int_t         reasoning_tokens;   /* -1: not known */
    ngx_int_t         cache_read_tokens;  /* prompt tokens read from the
                                             runtime's prompt cache; -1 */
    ngx_int_t         cache_write_tokens; /* prompt tokens written to it
                                             (Anthropic's cache creation);
                                             -1 */
    ngx_int_t         images;      /* images made; -1: not an image
                                      request */
    ngx_int_t         priority;    /* priority it was served at; -1 */
    unsigned          reasoning_estimated:1; /* reasoning_tokens counted
                                                by the gateway, not
                                                reported by the runtime */
} ngx_http_gpugate_ledger_extra_t;


/*
 * The request's extra fields, made with every field "none" on first use;
 * NULL only when memory runs out (the row then goes without them).
 */
ngx_http_gpugate_ledger_extra_t *ngx_http_gpugate_ledger_extra(
    ngx_http_request_t *r);

/* the same, but NULL when no module has set any field */
ngx_http_gpugate_ledger_extra_t *ngx_http_gpugate_ledger_extra_find(
    ngx_http_request_t *r);


#endif /* _NGX_HTTP_GPUGATE_LEDGER_API_H_INCLUDED_ */
