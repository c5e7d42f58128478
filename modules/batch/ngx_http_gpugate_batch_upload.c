
/*
 * Copyright (C) gpugate authors
 *
 * POST /v1/files: the multipart form OpenAI's SDKs send ("purpose" and
 * "file"), and the JSONL file checked line by line before it is stored,
 * so that a batch never starts on a line the runner could not send: each
 * line is a JSON object with a unique "custom_id", "method": "POST", a
 * "url" the router serves and a "body" object that does not stream.  The
 * first bad line is named in the 400 answer.  OpenAI's optional
 * "expires_after[anchor]" ("created_at") and "expires_after[seconds]"
 * (3600 to 2592000) give the file an expiry.  The body's size is bounded
 * by client_max_body_size; a body nginx kept in a temporary file is read
 * back from it (a local file, as nginx reads static files).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_batch.h"
#include "gpugate_multipart.h"
#include "gpugate_utf8.h"


/* the part of a form the upload reads */
typedef struct {
    ngx_str_t   name;       /* form-data name */
    ngx_str_t   filename;   /* form-data filename, "" if none */
    ngx_str_t   data;       /* the content */
} ngx_http_gpugate_batch_part_t;


/* the fields of the form, in the order of ngx_http_gpugate_batch_fields */
enum {
    NGX_HTTP_GPUGATE_BATCH_PURPOSE = 0,
    NGX_HTTP_GPUGATE_BATCH_FILE,
    NGX_HTTP_GPUGATE_BATCH_ANCHOR,
    NGX_HTTP_GPUGATE_BATCH_SECONDS,
    NGX_HTTP_GPUGATE_BATCH_NFIELDS
};


/* the shortest and longest expires_after[seconds] (OpenAI's) */
#define NGX_HTTP_GPUGATE_BATCH_EXPIRES_MIN  3600
#define NGX_HTTP_GPUGATE_BATCH_EXPIRES_MAX  2592000


static ngx_int_t ngx_http_gpugate_batch_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_gpugate_batch_parts(ngx_str_t *body,
    ngx_str_t *boundary, ngx_http_gpugate_batch_part_t *form,
    const char **why);
static ngx_int_t ngx_http_gpugate_batch_expiry(
    ngx_http_gpugate_batch_part_t *form, ngx_uint_t *expires,
    const char **why);
static void ngx_http_gpugate_batch_disposition(u_char *p, u_char *last,
    ngx_http_gpugate_batch_part_t *part);
static ngx_int_t ngx_http_gpugate_batch_lines(ngx_str_t *data,
    char *why, size_t size);
static ngx_int_t ngx_http_gpugate_batch_bad(ngx_http_request_t *r,
    const char *msg, ngx_int_t *rc);
static ngx_int_t ngx_http_gpugate_batch_refuse(ngx_http_request_t *r,
    const char *code, const char *param, const char *msg, ngx_int_t *rc);


/* the URLs a line may name: the router's JSON endpoints */
static const char  *ngx_http_gpugate_batch_urls[] = {
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings",
    "/v1/responses", "/v1/messages", "/v1/rerank", "/v1/score",
    "/v1/moderations", NULL
};


/* the form-data names of the fields, indexed as the enum above */
static ngx_str_t  ngx_http_gpugate_batch_fields[] = {
    ngx_string("purpose"),
    ngx_string("file"),
    ngx_string("expires_after[anchor]"),
    ngx_string("expires_after[seconds]")
};


ngx_int_t
ngx_http_gpugate_batch_upload(ngx_http_request_t *r, char **content,
    ngx_str_t *filename, ngx_uint_t *expires, ngx_int_t *rc)
{
    char                            why[160];
    const char                     *msg, *b;
    size_t                          blen;
    ngx_str_t                       body, boundary;
    ngx_http_gpugate_batch_part_t   form[NGX_HTTP_GPUGATE_BATCH_NFIELDS];
    ngx_http_gpugate_batch_part_t  *purpose, *file;

    if (r->headers_in.content_type == NULL
        || gpugate_mp_boundary((const char *)
                                   r->headers_in.content_type->value.data,
                               r->headers_in.content_type->value.len,
                               &b, &blen) != 0)
    {
        return ngx_http_gpugate_batch_bad(r, "POST /v1/files takes "
                   "multipart/form-data with \"purpose\" and \"file\"", rc);
    }

    boundary.data = (u_char *) b;
    boundary.len = blen;

    if (ngx_http_gpugate_batch_body(r, &body) != NGX_OK) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    msg = NULL;

    if (ngx_http_gpugate_batch_parts(&body, &boundary, form, &msg)
        != NGX_OK)
    {
        return ngx_http_gpugate_batch_bad(r, msg, rc);
    }

    purpose = &form[NGX_HTTP_GPUGATE_BATCH_PURPOSE];
    file = &form[NGX_HTTP_GPUGATE_BATCH_FILE];

    if (purpose->data.len != 5
        || ngx_strncmp(purpose->data.data, "batch", 5) != 0)
    {
        return ngx_http_gpugate_batch_bad(r, "purpose must be \"batch\": "
                   "the only files this gateway keeps are batch inputs",
                   rc);
    }

    if (ngx_http_gpugate_batch_expiry(form, expires, &msg) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate batch: upload refused: %s", msg);
        return ngx_http_gpugate_batch_refuse(r, "invalid_value",
                   "expires_after", msg, rc);
    }

    if (ngx_http_gpugate_batch_lines(&file->data, why, sizeof(why))
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate batch: upload of %uz bytes refused: %s",
                      file->data.len, why);
        return ngx_http_gpugate_batch_bad(r, why, rc);
    }

    *content = ngx_alloc(file->data.len + 1, r->connection->log);
    if (*content == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    ngx_memcpy(*content, file->data.data, file->data.len);
    (*content)[file->data.len] = '\0';

    if (file->filename.len == 0) {
        ngx_str_set(&file->filename, "batch.jsonl");
    }

    *filename = file->filename;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate batch: upload \"%V\", %uz bytes accepted, "
                   "expires after %uis", filename, file->data.len,
                   *expires);

    return NGX_OK;
}


/* the whole body in one piece of memory (r->pool) */

static ngx_int_t
ngx_http_gpugate_batch_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *buf;
    ngx_chain_t  *cl;

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    body->data = ngx_pnalloc(r->pool, len + 1);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        buf = cl->buf;

        if (ngx_buf_in_memory(buf)) {
            p = ngx_cpymem(p, buf->pos, buf->last - buf->pos);
            continue;
        }

        n = ngx_read_file(buf->file, p, buf->file_last - buf->file_pos,
                          buf->file_pos);

        if (n != buf->file_last - buf->file_pos) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "gpugate batch: the upload's temporary file "
                          "could not be read back");
            return NGX_ERROR;
        }

        p += n;
    }

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * The "purpose" and "file" parts of the form (RFC 7578): each part's
 * headers end at an empty line and its content at CRLF "--" boundary.
 */

static ngx_int_t
ngx_http_gpugate_batch_parts(ngx_str_t *body, ngx_str_t *boundary,
    ngx_http_gpugate_batch_part_t *form, const char **why)
{
    u_char                         *p, *last, *e, *h, *next;
    u_char                          delim[4 + GPUGATE_MP_BOUNDARY_MAX];
    size_t                          dlen;
    ngx_uint_t                      i;
    ngx_http_gpugate_batch_part_t   part;

    ngx_memzero(form,
                NGX_HTTP_GPUGATE_BATCH_NFIELDS * sizeof(*form));

    delim[0] = CR;
    delim[1] = LF;
    delim[2] = '-';
    delim[3] = '-';
    ngx_memcpy(delim + 4, boundary->data, boundary->len);
    dlen = 4 + boundary->len;

    p = body->data;
    last = body->data + body->len;

    /* the first delimiter may open the body without its CRLF */
    if ((size_t) (last - p) >= dlen - 2
        && ngx_memcmp(p, delim + 2, dlen - 2) == 0)
    {
        p += dlen - 2;

    } else {
        p = memmem(p, last - p, delim, dlen);
        if (p == NULL) {
            *why = "the multipart body has no part";
            return NGX_ERROR;
        }

        p += dlen;
    }

    for ( ;; ) {
        if (last - p >= 2 && p[0] == '-' && p[1] == '-') {
            break;
        }

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (last - p < 2 || p[0] != CR || p[1] != LF) {
            *why = "the multipart body is malformed";
            return NGX_ERROR;
        }

        p += 2;

        e = memmem(p, last - p, "\r\n\r\n", 4);
        if (e == NULL) {
            *why = "a part of the multipart body has no end of headers";
            return NGX_ERROR;
        }

        ngx_memzero(&part, sizeof(part));

        /* the header lines; only Content-Disposition matters */
        for (h = p; h < e + 2; h = next + 2) {
            next = memmem(h, e + 2 - h, "\r\n", 2);

            if (next - h > 20
                && ngx_strncasecmp(h, (u_char *) "content-disposition:", 20)
                   == 0)
            {
                ngx_http_gpugate_batch_disposition(h + 20, next, &part);
            }
        }

        p = e + 4;
        e = memmem(p, last - p, delim, dlen);

        if (e == NULL) {
            *why = "a part of the multipart body has no end";
            return NGX_ERROR;
        }

        part.data.data = p;
        part.data.len = e - p;

        for (i = 0; i < NGX_HTTP_GPUGATE_BATCH_NFIELDS; i++) {
            if (part.name.len == ngx_http_gpugate_batch_fields[i].len
                && ngx_strncmp(part.name.data,
                               ngx_http_gpugate_batch_fields[i].data,
                               part.name.len) == 0)
            {
                form[i] = part;
                break;
            }
        }

        p = e + dlen;
    }

    if (form[NGX_HTTP_GPUGATE_BATCH_PURPOSE].name.len == 0
        || form[NGX_HTTP_GPUGATE_BATCH_FILE].name.len == 0)
    {
        *why = "the form needs a \"purpose\" and a \"file\" field";
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * OpenAI's expires_after: "anchor" must be "created_at" and "seconds"
 * 3600 to 2592000, both given or neither; "expires" is 0 without them.
 */

static ngx_int_t
ngx_http_gpugate_batch_expiry(ngx_http_gpugate_batch_part_t *form,
    ngx_uint_t *expires, const char **why)
{
    ngx_int_t                       n;
    ngx_http_gpugate_batch_part_t  *anchor, *seconds;

    anchor = &form[NGX_HTTP_GPUGATE_BATCH_ANCHOR];
    seconds = &form[NGX_HTTP_GPUGATE_BATCH_SECONDS];
    *expires = 0;

    if (anchor->name.len == 0 && seconds->name.len == 0) {
        return NGX_OK;
    }

    if (anchor->data.len != sizeof("created_at") - 1
        || ngx_strncmp(anchor->data.data, "created_at",
                       sizeof("created_at") - 1) != 0)
    {
        *why = "expires_after[anchor] must be \"created_at\"";
        return NGX_ERROR;
    }

    n = (seconds->data.len > 0 && seconds->data.len <= 7)
        ? ngx_atoi(seconds->data.data, seconds->data.len) : NGX_ERROR;

    if (n < NGX_HTTP_GPUGATE_BATCH_EXPIRES_MIN
        || n > NGX_HTTP_GPUGATE_BATCH_EXPIRES_MAX)
    {
        *why = "expires_after[seconds] must be 3600 to 2592000";
        return NGX_ERROR;
    }

    *expires = n;

    return NGX_OK;
}


/* name="..." and filename="..." of a Content-Disposition value */

static void
ngx_http_gpugate_batch_disposition(u_char *p, u_char *last,
    ngx_http_gpugate_batch_part_t *part)
{
    u_char     *s;
    ngx_str_t  *to;

    while (p < last) {
        while (p < last && (*p == ' ' || *p == ';' || *p == '\t')) {
            p++;
        }

        to = NULL;

        if (last - p > 5 && ngx_strncasecmp(p, (u_char *) "name=", 5) == 0)
        {
            to = &part->name;
            p += 5;

        } else if (last - p > 9
                   && ngx_strncasecmp(p, (u_char *) "filename=", 9) == 0)
        {
            to = &part->filename;
            p += 9;
        }

        if (to && p < last && *p == '"') {
            s = ++p;

            while (p < last && *p != '"') {
                p++;
            }

            to->data = s;
            to->len = p - s;

            p++;
            continue;
        }

        while (p < last && *p != ';') {
            p++;
        }
    }
}


/* every line of the JSONL file; the first bad one is described in "why" */

static ngx_int_t
ngx_http_gpugate_batch_lines(ngx_str_t *data, char *why, size_t size)
{
    u_char        *p, *last, *e, *s;
    json_t        *j, *v, *ids;
    const char   **u, *msg;
    ngx_uint_t     n, lines, bad;
    json_error_t   err;

    if (!gpugate_utf8_valid(data->data, data->len)
        || ngx_strlchr(data->data, data->data + data->len, '\0'))
    {
        ngx_snprintf((u_char *) why, size, "the file is not UTF-8 text%Z");
        return NGX_ERROR;
    }

    ids = json_object();
    if (ids == NULL) {
        ngx_snprintf((u_char *) why, size, "out of memory%Z");
        return NGX_ERROR;
    }

    p = data->data;
    last = data->data + data->len;
    lines = 0;
    bad = 0;
    msg = NULL;

    for (n = 1; p < last; n++, p = e + 1) {
        e = ngx_strlchr(p, last, LF);
        if (e == NULL) {
            e = last;
        }

        for (s = p; s < e && (*s == ' ' || *s == '\t' || *s == CR); s++) {
            /* void */
        }

        if (s == e) {
            continue;
        }

        if (++lines > NGX_HTTP_GPUGATE_BATCH_LINES_MAX) {
            msg = "more than 50000 requests in one file";
            bad = n;
            break;
        }

        j = json_loadb((const char *) p, e - p, 0, &err);

        if (j == NULL || !json_is_object(j)) {
            msg = "not a JSON object";

        } else if (!json_is_string(v = json_object_get(j, "custom_id"))
                   || json_string_length(v) == 0
                   || json_string_length(v) > 512)
        {
            msg = "\"custom_id\" must be a string of 1 to 512 characters";

        } else if (json_object_get(ids, json_string_value(v))) {
            msg = "\"custom_id\" is not unique in the file";

        } else if (json_object_set_new(ids, json_string_value(v),
                                       json_true()) != 0)
        {
            msg = "out of memory";

        } else if (!json_is_string(v = json_object_get(j, "method"))
                   || ngx_strcmp(json_string_value(v), "POST") != 0)
        {
            msg = "\"method\" must be \"POST\"";

        } else if (!json_is_object(json_object_get(j, "body"))) {
            msg = "\"body\" must be a JSON object";

        } else if (json_is_true(json_object_get(json_object_get(j, "body"),
                                                "stream")))
        {
            msg = "\"stream\": true is not supported in a batch";

        } else {
            v = json_object_get(j, "url");

            for (u = ngx_http_gpugate_batch_urls; *u; u++) {
                if (json_is_string(v)
                    && ngx_strcmp(json_string_value(v), *u) == 0)
                {
                    break;
                }
            }

            if (*u == NULL) {
                msg = "\"url\" must be one of /v1/chat/completions, "
                      "/v1/completions, /v1/embeddings, /v1/responses, "
                      "/v1/messages, /v1/rerank, /v1/score, "
                      "/v1/moderations";
            }
        }

        if (j) {
            json_decref(j);
        }

        if (msg) {
            bad = n;
            break;
        }

        if (e == last) {
            break;
        }
    }

    json_decref(ids);

    if (msg) {
        ngx_snprintf((u_char *) why, size, "line %ui: %s%Z", bad, msg);
        return NGX_ERROR;
    }

    if (lines == 0) {
        ngx_snprintf((u_char *) why, size, "the file has no request%Z");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_batch_bad(ngx_http_request_t *r, const char *msg,
    ngx_int_t *rc)
{
    return ngx_http_gpugate_batch_refuse(r, "invalid_file", "file", msg, rc);
}


/* a 400 answer naming the form field at fault */

static ngx_int_t
ngx_http_gpugate_batch_refuse(ngx_http_request_t *r, const char *code,
    const char *param, const char *msg, ngx_int_t *rc)
{
    ngx_http_gpugate_error_t  err;

    err.status = NGX_HTTP_BAD_REQUEST;
    err.type = NGX_HTTP_GPUGATE_ERR_INVALID;
    err.code = code;
    err.param = param;
    err.message.data = (u_char *) msg;
    err.message.len = ngx_strlen(msg);

    *rc = ngx_http_gpugate_send_error(r, &err);

    return NGX_DECLINED;
}
