
/*
 * Copyright (C) gpugate authors
 *
 * Where an API key comes from in a request (Authorization: Bearer, or
 * the headers gpugate_auth_header names) and its removal after a grant,
 * so that no key reaches the runtime.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_auth.h"


static ngx_uint_t ngx_http_gpugate_auth_is_key_header(ngx_str_t *key,
    ngx_str_t *names, ngx_uint_t n, ngx_str_t *always);
static ngx_int_t ngx_http_gpugate_auth_bearer(ngx_str_t *value,
    ngx_str_t *key);
static ngx_int_t ngx_http_gpugate_auth_trim(ngx_str_t *value, ngx_str_t *key);


static ngx_uint_t
ngx_http_gpugate_auth_is_key_header(ngx_str_t *key, ngx_str_t *names,
    ngx_uint_t n, ngx_str_t *always)
{
    ngx_uint_t  i;

    for (i = 0; i < 2; i++) {
        if (key->len == always[i].len
            && ngx_strncasecmp(key->data, always[i].data, key->len) == 0)
        {
            return 1;
        }
    }

    for (i = 0; i < n; i++) {
        if (key->len == names[i].len
            && ngx_strncasecmp(key->data, names[i].data, key->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * A key must never reach the runtime, whatever the location's proxy,
 * fastcgi or grpc settings say: after a grant every header a key can come
 * in (the configured ones, Authorization and x-api-key) leaves the
 * request.  ngx_list_t has no delete and r->headers_in keeps pointers to
 * its elements, so the list is rebuilt without them; the old elements
 * stay in r->pool, so no pointer dangles.
 */

ngx_int_t
ngx_http_gpugate_auth_strip(ngx_http_request_t *r,
    ngx_http_gpugate_auth_loc_conf_t *alcf)
{
    ngx_str_t        *names;
    ngx_uint_t        i, j, n, total, drop;
    ngx_list_t        kept;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    static ngx_str_t  always[] = {
        ngx_string("authorization"),
        ngx_string("x-api-key")
    };

    names = alcf->headers->elts;
    n = alcf->headers->nelts;
    total = 0;
    drop = 0;

    /* two passes: most requests carry a key, so the first one counts */

    for (j = 0; j < 2; j++) {

        part = &r->headers_in.headers.part;
        h = part->elts;

        for (i = 0; /* void */ ; i++) {

            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                i = 0;
            }

            if (!ngx_http_gpugate_auth_is_key_header(&h[i].key, names, n,
                                                     always))
            {
                if (j == 0) {
                    total++;

                } else {
                    nh = ngx_list_push(&kept);
                    if (nh == NULL) {
                        return NGX_HTTP_INTERNAL_SERVER_ERROR;
                    }

                    *nh = h[i];
                }

                continue;
            }

            if (j == 0) {
                drop++;
            }
        }

        if (j == 0) {
            if (drop == 0) {
                return NGX_OK;
            }

            if (ngx_list_init(&kept, r->pool, total ? total : 1,
                              sizeof(ngx_table_elt_t))
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    r->headers_in.headers = kept;
    r->headers_in.authorization = NULL;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate auth: %ui key header(s) removed from the request",
                   drop);

    return NGX_OK;
}


ngx_int_t
ngx_http_gpugate_auth_read_key(ngx_http_request_t *r,
    ngx_http_gpugate_auth_loc_conf_t *alcf, ngx_str_t *key)
{
    ngx_str_t        *names;
    ngx_uint_t        i, j, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    names = alcf->headers->elts;
    n = alcf->headers->nelts;

    for (j = 0; j < n; j++) {

        /* nginx has already found Authorization: no list walk for it */

        if (names[j].len == sizeof("authorization") - 1
            && ngx_strncmp(names[j].data, "authorization", names[j].len) == 0)
        {
            h = r->headers_in.authorization;

            if (h && ngx_http_gpugate_auth_bearer(&h->value, key) == NGX_OK) {
                return NGX_OK;
            }

            continue;
        }

        part = &r->headers_in.headers.part;
        h = part->elts;

        for (i = 0; /* void */ ; i++) {

            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                i = 0;
            }

            if (h[i].key.len != names[j].len
                || ngx_strncasecmp(h[i].key.data, names[j].data,
                                   names[j].len) != 0)
            {
                continue;
            }

            /* other headers carry the bare key */

            if (ngx_http_gpugate_auth_trim(&h[i].value, key) == NGX_OK) {
                return NGX_OK;
            }
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_gpugate_auth_bearer(ngx_str_t *value, ngx_str_t *key)
{
    ngx_str_t  v;

    if (value->len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(value->data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1) != 0)
    {
        return NGX_DECLINED;
    }

    v.data = value->data + sizeof("Bearer ") - 1;
    v.len = value->len - (sizeof("Bearer ") - 1);

    return ngx_http_gpugate_auth_trim(&v, key);
}


static ngx_int_t
ngx_http_gpugate_auth_trim(ngx_str_t *value, ngx_str_t *key)
{
    u_char  *p, *last;

    p = value->data;
    last = value->data + value->len;

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    if (last == p) {
        return NGX_DECLINED;
    }

    key->data = p;
    key->len = last - p;

    return NGX_OK;
}
