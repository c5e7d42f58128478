
/*
 * Copyright (C) gpugate authors
 */


#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "gg_http_parse.h"


#define GG_CHUNK_LINE_MAX    4096
#define GG_TRAILERS_MAX      8192


enum {
    gg_st_start = 0,
    gg_st_method,
    gg_st_uri,
    gg_st_req_version,
    gg_st_resp_version,
    gg_st_status,
    gg_st_reason,
    gg_st_line_lf,
    gg_st_hdr_start,
    gg_st_hdr_name,
    gg_st_hdr_ows,
    gg_st_hdr_value,
    gg_st_hdr_lf,
    gg_st_hdr_skip,
    gg_st_end_lf
};


enum {
    gg_ck_size = 0,
    gg_ck_ext,
    gg_ck_size_lf,
    gg_ck_data,
    gg_ck_data_cr,
    gg_ck_data_lf,
    gg_ck_trailer_start,
    gg_ck_trailer,
    gg_ck_trailer_lf,
    gg_ck_end_lf
};


/*
 * Byte classes (GG_HTTP_C_*): one lookup per byte where the tests of
 * tchar took up to a strchr() each, and the runs of plain bytes in a
 * head are skipped with it in tight loops.
 */

const unsigned char  gg_http_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 8, 0, 0, 8, 0, 0,  /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 10 */
    4, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2,  /* 20 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,  /* 30 */
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* 40 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3,  /* 50 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* 60 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0,  /* 70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* a0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* b0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* c0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* d0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* e0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2   /* f0 */
};


#define gg_http_is(c, cls)  (gg_http_class[(unsigned char) (c)] & (cls))

/* RFC 9110 tchar: the bytes of methods and field names */
#define gg_http_tchar(c)    gg_http_is(c, GG_HTTP_C_TCHAR)

/* field-value bytes: VCHAR, obs-text, SP, HTAB */
#define gg_http_vchar(c)    gg_http_is(c, GG_HTTP_C_VCHAR | GG_HTTP_C_WS)


static int
gg_http_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


void
gg_http_head_init(gg_http_head_t *h, int response, size_t max_head)
{
    /* "headers" is not cleared: 2 KiB per message for nothing */
    memset(h, 0, offsetof(gg_http_head_t, headers));

    h->response = response;
    h->max_head = max_head;
    h->content_length = -1;
    h->state = gg_st_start;
}


/* "HTTP/1.x": returns 10 or 11, 0 for another major version, -1 for junk */

static int
gg_http_version(const char *p, size_t len)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.'
        || p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
    {
        return -1;
    }

    if (p[5] != '1') {
        return 0;
    }

    return p[7] == '0' ? 10 : 11;
}


/* 1 if the comma-separated list "p" holds the token "tok" */

static int
gg_http_list_has(const char *p, size_t len, const char *tok)
{
    size_t  i, start, end, tlen;

    tlen = strlen(tok);
    i = 0;

    while (i < len) {
        while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == ',')) {
            i++;
        }

        start = i;

        while (i < len && p[i] != ',') {
            i++;
        }

        end = i;

        while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t')) {
            end--;
        }

        if (end - start == tlen && strncasecmp(p + start, tok, tlen) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * One complete field: kept while there is room, and its framing meaning
 * taken at once, so that fields past the kept ones count just the same.
 * A bad byte in a framing field is an error (the body cannot be found);
 * elsewhere the field is only left out, the head being INVALID already.
 */

static void
gg_http_field(gg_http_head_t *h, const char *buf)
{
    size_t             k;
    int64_t            n;
    const char        *v;
    gg_http_header_t  *hd;

    hd = &h->field;
    v = buf + hd->value;

    h->nfields++;

    if (h->field_bad) {
        if (gg_http_header_is(hd, buf, "content-length")
            || gg_http_header_is(hd, buf, "transfer-encoding"))
        {
            h->framing = GG_HTTP_ERROR;
        }

        return;
    }

    if (h->nheaders < GG_HTTP_MAX_HEADERS) {
        h->headers[h->nheaders++] = *hd;
    }

    if (h->framing != GG_HTTP_OK) {
        return;
    }

    if (gg_http_header_is(hd, buf, "content-length")) {
        if (hd->value_len == 0 || hd->value_len > 18) {
            h->framing = hd->value_len > 18 ? GG_HTTP_TOO_LARGE
                                            : GG_HTTP_ERROR;
            return;
        }

        n = 0;

        for (k = 0; k < hd->value_len; k++) {
            if (v[k] < '0' || v[k] > '9') {
                h->framing = GG_HTTP_ERROR;
                return;
            }

            n = n * 10 + (v[k] - '0');
        }

        /* repeated lengths must agree, or the body is ambiguous */
        if (h->content_length >= 0 && h->content_length != n) {
            h->framing = GG_HTTP_ERROR;
            return;
        }

        h->content_length = n;

    } else if (gg_http_header_is(hd, buf, "transfer-encoding")) {
        if (h->te || hd->value_len != 7 || strncasecmp(v, "chunked", 7) != 0)
        {
            h->framing = GG_HTTP_UNSUPPORTED;
            return;
        }

        h->te = 1;

    } else if (gg_http_header_is(hd, buf, "connection")) {
        h->conn_close |= gg_http_list_has(v, hd->value_len, "close");
        h->conn_keep |= gg_http_list_has(v, hd->value_len, "keep-alive");

    } else if (gg_http_header_is(hd, buf, "expect")) {
        h->expect_continue = (hd->value_len == 12
                              && strncasecmp(v, "100-continue", 12) == 0);
    }
}


/* a field line refused: the head is INVALID, the line is read to its end */

static void
gg_http_invalid(gg_http_head_t *h, size_t p)
{
    if (h->invalid_at == 0) {
        h->invalid_at = p + 1;
    }
}


/* framing from the complete head: the checks that keep bodies unambiguous */

static int
gg_http_framing(gg_http_head_t *h)
{
    if (h->framing != GG_HTTP_OK) {
        return h->framing;
    }

    /* both framings at once is the request smuggling vector: refuse it */
    if (h->te && h->content_length >= 0) {
        return GG_HTTP_ERROR;
    }

    h->chunked = h->te;
    h->keep_alive = !h->conn_close && (h->version == 11 || h->conn_keep);

    return h->invalid_at ? GG_HTTP_INVALID : GG_HTTP_OK;
}


/*
 * The end of the run of bytes of class "cls" that starts at p, at most
 * "end": the states that read a token, a target or a value skip their
 * plain bytes with it instead of going round the switch for each.
 */

static size_t
gg_http_run(const char *buf, size_t p, size_t end, unsigned cls)
{
    while (p < end && gg_http_is(buf[p], cls)) {
        p++;
    }

    return p;
}


int
gg_http_parse_head(gg_http_head_t *h, const char *buf, size_t len)
{
    int              v;
    size_t           p, q, end;
    unsigned char    c;

    /* a byte at max_head or past it makes the head too large */
    end = len < h->max_head ? len : h->max_head;

    for (p = h->pos; p < end; p++) {
        c = (unsigned char) buf[p];

        switch (h->state) {

        case gg_st_start:
            /* RFC 9112 2.2: empty lines before the start line are ignored */
            if (c == '\r' || c == '\n') {
                break;
            }

            h->mark = p;

            if (h->response) {
                h->state = gg_st_resp_version;
                p--;
                break;
            }

            if (!gg_http_tchar(c)) {
                return GG_HTTP_ERROR;
            }

            h->state = gg_st_method;
            break;

        case gg_st_method:
            if (c == ' ') {
                h->method = h->mark;
                h->method_len = p - h->mark;
                h->mark = p + 1;
                h->state = gg_st_uri;
                break;
            }

            if (!gg_http_tchar(c)) {
                return GG_HTTP_ERROR;
            }

            /* the for's p++ goes to the byte that ends the run */
            p = gg_http_run(buf, p + 1, end, GG_HTTP_C_TCHAR) - 1;
            break;

        case gg_st_uri:
            if (c == ' ') {
                if (p == h->mark) {
                    return GG_HTTP_ERROR;
                }

                h->uri = h->mark;
                h->uri_len = p - h->mark;
                h->mark = p + 1;
                h->state = gg_st_req_version;
                break;
            }

            if (!gg_http_is(c, GG_HTTP_C_VCHAR)) {
                return GG_HTTP_ERROR;
            }

            p = gg_http_run(buf, p + 1, end, GG_HTTP_C_VCHAR) - 1;
            break;

        case gg_st_req_version:
            if (c != '\r' && c != '\n') {
                if (p - h->mark >= 8) {
                    return GG_HTTP_ERROR;
                }
                break;
            }

            v = gg_http_version(buf + h->mark, p - h->mark);

            if (v <= 0) {
                return v == 0 ? GG_HTTP_UNSUPPORTED : GG_HTTP_ERROR;
            }

            h->version = v;
            h->state = (c == '\r') ? gg_st_line_lf : gg_st_hdr_start;
            break;

        case gg_st_resp_version:
            if (c != ' ') {
                if (p - h->mark >= 8) {
                    return GG_HTTP_ERROR;
                }
                break;
            }

            v = gg_http_version(buf + h->mark, p - h->mark);

            if (v <= 0) {
                return v == 0 ? GG_HTTP_UNSUPPORTED : GG_HTTP_ERROR;
            }

            h->version = v;
            h->mark = p + 1;
            h->state = gg_st_status;
            break;

        case gg_st_status:
            if (p - h->mark < 3) {
                if (c < '0' || c > '9') {
                    return GG_HTTP_ERROR;
                }

                h->status = h->status * 10 + (c - '0');
                break;
            }

            if (h->status < 100) {
                return GG_HTTP_ERROR;
            }

            h->reason = p + 1;

            if (c == ' ') {
                h->state = gg_st_reason;
                break;
            }

            /* "HTTP/1.1 200" with no reason at all is seen in the wild */
            h->reason = p;

            if (c == '\r') {
                h->state = gg_st_line_lf;

            } else if (c == '\n') {
                h->state = gg_st_hdr_start;

            } else {
                return GG_HTTP_ERROR;
            }

            break;

        case gg_st_reason:
            if (c == '\r' || c == '\n') {
                h->reason_len = p - h->reason;
                h->state = (c == '\r') ? gg_st_line_lf : gg_st_hdr_start;
                break;
            }

            if (!gg_http_vchar(c)) {
                return GG_HTTP_ERROR;
            }

            p = gg_http_run(buf, p + 1, end,
                            GG_HTTP_C_VCHAR | GG_HTTP_C_WS) - 1;
            break;

        case gg_st_line_lf:
            if (c != '\n') {
                return GG_HTTP_ERROR;
            }

            h->state = gg_st_hdr_start;
            break;

        case gg_st_hdr_start:
            if (c == '\r') {
                h->state = gg_st_end_lf;
                break;
            }

            if (c == '\n') {
                goto done;
            }

            h->mark = p;
            h->field_bad = 0;

            /*
             * obs-fold (a continuation line) and an empty name are
             * refused, as RFC 9112 lets; the line still ends where it ends
             */
            if (!gg_http_tchar(c)) {
                gg_http_invalid(h, p);
                h->state = gg_st_hdr_skip;
                break;
            }

            h->state = gg_st_hdr_name;
            break;

        case gg_st_hdr_name:
            if (c == ':') {
                h->field.name = h->mark;
                h->field.name_len = p - h->mark;
                h->state = gg_st_hdr_ows;
                break;
            }

            /* no space before the colon: RFC 9112 5.1 says reject */
            if (!gg_http_tchar(c)) {
                gg_http_invalid(h, p);
                h->state = gg_st_hdr_skip;
                p--;
                break;
            }

            p = gg_http_run(buf, p + 1, end, GG_HTTP_C_TCHAR) - 1;
            break;

        case gg_st_hdr_ows:
            if (c == ' ' || c == '\t') {
                break;
            }

            h->field.value = p;
            h->value_end = p;
            h->state = gg_st_hdr_value;

            /* fall through */

        case gg_st_hdr_value:
            if (c == '\r' || c == '\n') {
                h->field.value_len = h->value_end - h->field.value;
                gg_http_field(h, buf);
                h->state = (c == '\r') ? gg_st_hdr_lf : gg_st_hdr_start;
                break;
            }

            /*
             * nginx passes on any byte but NUL, CR and LF in a value;
             * RFC 9110 5.5 allows no other control byte: refused, but
             * the field is read to its end, so the head stays whole
             */
            if (!gg_http_vchar(c)) {
                gg_http_invalid(h, p);
                h->field_bad = 1;
            }

            if (c != ' ' && c != '\t') {
                /* to the line's end or a bad byte, then back over OWS
                   (which stops at c at the latest) */
                q = gg_http_run(buf, p + 1, end,
                                GG_HTTP_C_VCHAR | GG_HTTP_C_WS);
                p = q - 1;

                while (gg_http_is(buf[q - 1], GG_HTTP_C_WS)) {
                    q--;
                }

                h->value_end = q;
            }

            break;

        case gg_st_hdr_skip:
            if (c == '\r') {
                h->state = gg_st_hdr_lf;

            } else if (c == '\n') {
                h->state = gg_st_hdr_start;
            }

            break;

        case gg_st_hdr_lf:
            if (c != '\n') {
                return GG_HTTP_ERROR;
            }

            h->state = gg_st_hdr_start;
            break;

        case gg_st_end_lf:
            if (c != '\n') {
                return GG_HTTP_ERROR;
            }

            goto done;
        }
    }

    h->pos = p;

    return len >= h->max_head ? GG_HTTP_TOO_LARGE : GG_HTTP_AGAIN;

done:

    h->pos = p + 1;
    h->head_len = p + 1;

    return gg_http_framing(h);
}


int
gg_http_header_is(const gg_http_header_t *hd, const char *buf,
    const char *name)
{
    size_t  n;

    n = strlen(name);

    return hd->name_len == n && strncasecmp(buf + hd->name, name, n) == 0;
}


const gg_http_header_t *
gg_http_find_header(gg_http_head_t *h, const char *buf, const char *name)
{
    size_t  i, pos;

    for (i = 0; i < h->nheaders; i++) {
        if (gg_http_header_is(&h->headers[i], buf, name)) {
            return &h->headers[i];
        }
    }

    if (h->nfields <= h->nheaders) {
        return NULL;
    }

    pos = 0;
    i = 0;

    while (gg_http_header_next(h, buf, &pos, &h->field)) {
        if (++i > h->nheaders && gg_http_header_is(&h->field, buf, name)) {
            return &h->field;
        }
    }

    return NULL;
}


int
gg_http_header_next(const gg_http_head_t *h, const char *buf, size_t *pos,
    gg_http_header_t *hd)
{
    size_t  p, end, colon;

    p = *pos;

    if (p == 0) {
        /* past the start line (and the empty lines RFC 9112 lets lead) */
        while (p < h->head_len && (buf[p] == '\r' || buf[p] == '\n')) {
            p++;
        }

        while (p < h->head_len && buf[p] != '\n') {
            p++;
        }

        p++;
    }

    for ( ;; ) {
        if (p >= h->head_len || buf[p] == '\r' || buf[p] == '\n') {
            *pos = h->head_len;
            return 0;
        }

        end = p;

        while (buf[end] != '\n') {
            end++;
        }

        *pos = end + 1;

        if (end > p && buf[end - 1] == '\r') {
            end--;
        }

        /* a head that parsed OK has a colon in every line */
        colon = p;

        while (colon < end && buf[colon] != ':') {
            colon++;
        }

        if (colon == end) {
            p = *pos;
            continue;
        }

        hd->name = p;
        hd->name_len = colon - p;

        p = colon + 1;

        while (p < end && (buf[p] == ' ' || buf[p] == '\t')) {
            p++;
        }

        while (end > p && (buf[end - 1] == ' ' || buf[end - 1] == '\t')) {
            end--;
        }

        hd->value = p;
        hd->value_len = end - p;

        return 1;
    }
}


void
gg_http_chunked_init(gg_http_chunked_t *ck, uint64_t max_size)
{
    memset(ck, 0, sizeof(gg_http_chunked_t));

    ck->max_size = max_size;
    ck->state = gg_ck_size;
}


int
gg_http_parse_chunked(gg_http_chunked_t *ck, const char *in, size_t len,
    char *out, size_t *used, size_t *out_len)
{
    int            d, rc;
    size_t         p, o, take;
    unsigned char  c;

    p = 0;
    o = 0;
    rc = GG_HTTP_AGAIN;

    while (p < len) {

        if (ck->state == gg_ck_data) {
            take = len - p;
            if (take > ck->size) {
                take = (size_t) ck->size;
            }

            /* out <= in + p always holds, so memmove is enough in place */
            memmove(out + o, in + p, take);
            o += take;
            p += take;
            ck->size -= take;

            if (ck->size == 0) {
                ck->state = gg_ck_data_cr;
            }

            continue;
        }

        c = (unsigned char) in[p++];

        switch (ck->state) {

        case gg_ck_size:
            d = gg_http_hex(c);

            if (d >= 0) {
                /* 15 hex digits are 2^60: far past any limit we allow */
                if (++ck->digits > 15) {
                    rc = GG_HTTP_TOO_LARGE;
                    goto out;
                }

                ck->size = ck->size * 16 + d;
                break;
            }

            if (ck->digits == 0) {
                rc = GG_HTTP_ERROR;
                goto out;
            }

            if (ck->size > ck->max_size - ck->total) {
                rc = GG_HTTP_TOO_LARGE;
                goto out;
            }

            ck->line = 0;

            if (c == ';' || c == ' ' || c == '\t') {
                ck->state = gg_ck_ext;

            } else if (c == '\r') {
                ck->state = gg_ck_size_lf;

            } else if (c == '\n') {
                goto size_done;

            } else {
                rc = GG_HTTP_ERROR;
                goto out;
            }

            break;

        case gg_ck_ext:
            /* chunk extensions carry nothing we use: bounded and skipped */
            if (++ck->line > GG_CHUNK_LINE_MAX) {
                rc = GG_HTTP_TOO_LARGE;
                goto out;
            }

            if (c == '\r') {
                ck->state = gg_ck_size_lf;

            } else if (c == '\n') {
                goto size_done;

            } else if (!gg_http_vchar(c)) {
                rc = GG_HTTP_ERROR;
                goto out;
            }

            break;

        case gg_ck_size_lf:
            if (c != '\n') {
                rc = GG_HTTP_ERROR;
                goto out;
            }

        size_done:

            ck->total += ck->size;
            ck->digits = 0;

            if (ck->size == 0) {
                ck->line = 0;
                ck->state = gg_ck_trailer_start;

            } else {
                ck->state = gg_ck_data;
            }

            break;

        case gg_ck_data_cr:
            if (c == '\r') {
                ck->state = gg_ck_data_lf;

            } else if (c == '\n') {
                ck->state = gg_ck_size;

            } else {
                rc = GG_HTTP_ERROR;
                goto out;
            }

            break;

        case gg_ck_data_lf:
            if (c != '\n') {
                rc = GG_HTTP_ERROR;
                goto out;
            }

            ck->state = gg_ck_size;
            break;

        case gg_ck_trailer_start:
            if (c == '\r') {
                ck->state = gg_ck_end_lf;
                break;
            }

            if (c == '\n') {
                rc = GG_HTTP_OK;
                goto out;
            }

            if (!gg_http_tchar(c)) {
                rc = GG_HTTP_ERROR;
                goto out;
            }

            ck->state = gg_ck_trailer;

            /* fall through */

        case gg_ck_trailer:
            if (++ck->line > GG_TRAILERS_MAX) {
                rc = GG_HTTP_TOO_LARGE;
                goto out;
            }

            if (c == '\r') {
                ck->state = gg_ck_trailer_lf;

            } else if (c == '\n') {
                ck->state = gg_ck_trailer_start;

            } else if (!gg_http_vchar(c)) {
                rc = GG_HTTP_ERROR;
                goto out;
            }

            break;

        case gg_ck_trailer_lf:
            if (c != '\n') {
                rc = GG_HTTP_ERROR;
                goto out;
            }

            ck->state = gg_ck_trailer_start;
            break;

        case gg_ck_end_lf:
            if (c != '\n') {
                rc = GG_HTTP_ERROR;
                goto out;
            }

            rc = GG_HTTP_OK;
            goto out;
        }
    }

out:

    *used = p;
    *out_len = o;

    return rc;
}
