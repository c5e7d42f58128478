
/*
 * Copyright (C) gpugate authors
 *
 * A request's extra ledger fields (ngx_http_gpugate_ledger_api.h): set by
 * any module, read by the metrics module's log phase, copied into the
 * ledger's row and written as JSON keys of their own.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_ledger_row.h"


static void ngx_http_gpugate_ledger_extra_mark(void *data);
static int32_t ngx_http_gpugate_ledger_int32(ngx_int_t n);


/*
 * The cleanup only marks the fields: they are in the pool and go with
 * it.  Its handler is how the fields are found again.
 */

static void
ngx_http_gpugate_ledger_extra_mark(void *data)
{
}


ngx_http_gpugate_ledger_extra_t *
ngx_http_gpugate_ledger_extra_find(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = r->main->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_gpugate_ledger_extra_mark) {
            return cln->data;
        }
    }

    return NULL;
}


ngx_http_gpugate_ledger_extra_t *
ngx_http_gpugate_ledger_extra(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t               *cln;
    ngx_http_gpugate_ledger_extra_t  *x;

    x = ngx_http_gpugate_ledger_extra_find(r);

    if (x) {
        return x;
    }

    cln = ngx_pool_cleanup_add(r->main->pool,
                               sizeof(ngx_http_gpugate_ledger_extra_t));
    if (cln == NULL) {
        return NULL;
    }

    x = cln->data;
    ngx_memzero(x, sizeof(ngx_http_gpugate_ledger_extra_t));

    x->reasoning_tokens = -1;
    x->cache_read_tokens = -1;
    x->cache_write_tokens = -1;
    x->images = -1;
    x->priority = -1;

    cln->handler = ngx_http_gpugate_ledger_extra_mark;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate ledger: extra fields for the request's row");

    return x;
}


/* what other modules set (ngx_http_gpugate_ledger_api.h), or "none" */

void
ngx_http_gpugate_ledger_take_extra(ngx_http_gpugate_ledger_row_t *row,
    ngx_http_gpugate_ledger_extra_t *x)
{
    if (x == NULL) {
        row->trace_id_len = 0;
        row->batch_id_len = 0;
        row->region_len = 0;
        row->image_size_len = 0;
        row->reasoning = -1;
        row->cache_read = -1;
        row->cache_write = -1;
        row->images = -1;
        row->priority = -1;
        row->reasoning_estimated = 0;
        return;
    }

    ngx_http_gpugate_ledger_cut(row, trace_id, x->trace_id);
    ngx_http_gpugate_ledger_cut(row, batch_id, x->batch_id);
    ngx_http_gpugate_ledger_cut(row, region, x->region);
    ngx_http_gpugate_ledger_cut(row, image_size, x->image_size);

    /* the columns are integer and smallint: out of range is "none" */

    row->reasoning = ngx_http_gpugate_ledger_int32(x->reasoning_tokens);
    row->cache_read = ngx_http_gpugate_ledger_int32(x->cache_read_tokens);
    row->cache_write = ngx_http_gpugate_ledger_int32(x->cache_write_tokens);
    row->images = ngx_http_gpugate_ledger_int32(x->images);
    row->priority = (int16_t) ((x->priority >= 0 && x->priority <= 32767)
                               ? x->priority : -1);
    row->reasoning_estimated = x->reasoning_estimated;
}


static int32_t
ngx_http_gpugate_ledger_int32(ngx_int_t n)
{
    return (n >= 0 && n <= 0x7fffffff) ? (int32_t) n : -1;
}


/* the extras' keys, each only when set: absent is the column's NULL */

u_char *
ngx_http_gpugate_ledger_json_extra(u_char *p,
    ngx_http_gpugate_ledger_row_t *row)
{
    if (row->trace_id_len) {
        ngx_http_gpugate_ledger_str(p, ",\"tr\":", row->strings.trace_id,
                                    row->trace_id_len);
    }

    if (row->batch_id_len) {
        ngx_http_gpugate_ledger_str(p, ",\"b\":", row->strings.batch_id,
                                    row->batch_id_len);
    }

    if (row->region_len) {
        ngx_http_gpugate_ledger_str(p, ",\"rg\":", row->strings.region,
                                    row->region_len);
    }

    if (row->image_size_len) {
        ngx_http_gpugate_ledger_str(p, ",\"is\":", row->strings.image_size,
                                    row->image_size_len);
    }

    if (row->reasoning >= 0) {
        p = ngx_sprintf(p, ",\"rt\":%D,\"re\":%s", row->reasoning,
                        row->reasoning_estimated ? "true" : "false");
    }

    if (row->cache_read >= 0) {
        p = ngx_sprintf(p, ",\"cr\":%D", row->cache_read);
    }

    if (row->cache_write >= 0) {
        p = ngx_sprintf(p, ",\"cw\":%D", row->cache_write);
    }

    if (row->images >= 0) {
        p = ngx_sprintf(p, ",\"im\":%D", row->images);
    }

    if (row->priority >= 0) {
        p = ngx_sprintf(p, ",\"pr\":%d", (int) row->priority);
    }

    return p;
}
