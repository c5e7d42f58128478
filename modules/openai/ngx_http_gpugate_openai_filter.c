
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
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_openai.h"


static ngx_int_t ngx_http_gpugate_openai_header_filter(ngx_http_request_t *r);
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


static ngx_int_t
ngx_http_gpugate_openai_header_filter(ngx_http_request_t *r)
{
    ngx_table_elt_t                     *h;
    ngx_http_upstream_t                 *u;
    ngx_http_gpugate_openai_loc_conf_t  *olcf;

    u = r->upstream;

    if (u == NULL || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_gpugate_openai_module);

    if (!olcf->enable || !ngx_http_gpugate_is_event_stream(r)) {
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


static ngx_int_t
ngx_http_gpugate_openai_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_gpugate_openai_header_filter;

    return NGX_OK;
}
