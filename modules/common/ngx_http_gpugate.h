
/*
 * Copyright (C) gpugate authors
 *
 * Shared declarations of the gpugate modules.  Everything here lives in the
 * one ngx_http_gpugate_module.so; modules exchange per-request data through
 * nginx variables and request ctx, and share only helpers declared here.
 * What one module offers another is in that module's _api.h
 * (ngx_http_gpugate_auth_api.h, ngx_http_gpugate_tunnel_api.h).
 */


#ifndef _NGX_HTTP_GPUGATE_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* OpenAI error "type" values used by the gateway */
#define NGX_HTTP_GPUGATE_ERR_INVALID      "invalid_request_error"
#define NGX_HTTP_GPUGATE_ERR_PERMISSION   "permission_error"
#define NGX_HTTP_GPUGATE_ERR_NOT_FOUND    "not_found_error"
#define NGX_HTTP_GPUGATE_ERR_RATE_LIMIT   "rate_limit_error"
#define NGX_HTTP_GPUGATE_ERR_SERVER       "server_error"


typedef struct {
    ngx_uint_t   status;     /* HTTP status of the error response */
    const char  *type;       /* OpenAI error type, one of the above */
    const char  *code;       /* OpenAI error code, NULL gives JSON null */
    const char  *param;      /* offending request field, NULL: null */
    ngx_str_t    message;    /* human-readable message, JSON-escaped here */
} ngx_http_gpugate_error_t;


/*
 * Sends a complete OpenAI-style error response:
 *     {"error":{"message":...,"type":...,"param":null,"code":...}}
 * The request body is discarded first so that keepalive stays usable.
 * Returns what a content handler should return.
 */
ngx_int_t ngx_http_gpugate_send_error(ngx_http_request_t *r,
    ngx_http_gpugate_error_t *err);

/* The error the gateway reports for a bare HTTP status. */
void ngx_http_gpugate_status_error(ngx_uint_t status,
    ngx_http_gpugate_error_t *err);

/*
 * A Prometheus label value into "p": backslash, quote and newline
 * escaped (at most 2 * len bytes).  Returns the end.
 */
u_char *ngx_http_gpugate_prom_label(u_char *p, u_char *s, size_t len);

/*
 * A page written in pieces (the Prometheus page): buffers from "pool"
 * join a chain as they fill, so the page has no size to guess and no
 * line is dropped for want of room.  A failed allocation sets "failed";
 * later writes do nothing, and the writer checks it once at the end.
 */
typedef struct {
    ngx_pool_t    *pool;     /* where buffers and links come from */
    ngx_chain_t   *first;    /* the chain, NULL while nothing is written */
    ngx_chain_t  **last;     /* where the next link goes */
    ngx_buf_t     *buf;      /* the buffer being filled, NULL: none yet */
    ngx_uint_t     failed;   /* an allocation failed: the page is lost */
} ngx_http_gpugate_out_t;

/* the most one ngx_http_gpugate_out_printf() writes */
#define NGX_HTTP_GPUGATE_OUT_LINE  4096

void ngx_http_gpugate_out_init(ngx_http_gpugate_out_t *out,
    ngx_pool_t *pool);

/* "size" bytes of room at out->buf->last, which the caller then moves;
   NULL when out of memory */
u_char *ngx_http_gpugate_out_room(ngx_http_gpugate_out_t *out,
    size_t size);

/* a buffer written elsewhere joins the chain as it is */
void ngx_http_gpugate_out_buf(ngx_http_gpugate_out_t *out, ngx_buf_t *b);

void ngx_cdecl ngx_http_gpugate_out_printf(ngx_http_gpugate_out_t *out,
    const char *fmt, ...);

/* a Prometheus family's HELP and TYPE lines */
void ngx_http_gpugate_prom_family(ngx_http_gpugate_out_t *out,
    const char *name, const char *type, const char *help);

/* Sends a JSON body (already serialised) with the given status. */
ngx_int_t ngx_http_gpugate_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *body);

/*
 * Directive parameters, one parser for every module.  A "name=value"
 * parameter: 1 and the value in "val" (possibly empty) when "arg" is
 * "name=...", else 0.
 */
ngx_uint_t ngx_http_gpugate_conf_param(ngx_str_t *arg, const char *name,
    ngx_str_t *val);

/*
 * A time value "val" of the parameter "arg" in nginx's syntax (500ms,
 * 10s, 1m), in milliseconds or seconds and at least "min"; anything else
 * is logged as invalid naming "arg", and NGX_CONF_ERROR returned.
 */
char *ngx_http_gpugate_conf_msec(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_str_t *val, ngx_msec_t min, ngx_msec_t *out);
char *ngx_http_gpugate_conf_sec(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_str_t *val, time_t min, time_t *out);


/* named query arguments as a JSON object of strings (jansson's json_t) */
struct json_t;
ngx_int_t ngx_http_gpugate_query_json(ngx_http_request_t *r,
    const char *const *names, ngx_uint_t n, struct json_t **out);


#endif /* _NGX_HTTP_GPUGATE_H_INCLUDED_ */
