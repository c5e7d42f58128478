
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of gg_http_parse: the same result however the bytes are
 * split, refusals of malformed and ambiguous input, limits.  Prints TAP.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gg_http_parse.h"
#include "tap.h"


/* parses "s" given in pieces of "step" bytes (0: all at once) */

static int
head_steps(gg_http_head_t *h, const char *s, size_t step, int response,
    size_t max)
{
    int     rc;
    size_t  len, n;

    gg_http_head_init(h, response, max);
    len = strlen(s);
    rc = GG_HTTP_AGAIN;

    for (n = step ? step : len; ; n += step ? step : len) {
        if (n > len) {
            n = len;
        }

        rc = gg_http_parse_head(h, s, n);

        if (rc != GG_HTTP_AGAIN || n == len) {
            return rc;
        }
    }
}


static int
head(const char *s)
{
    gg_http_head_t  h;

    return head_steps(&h, s, 0, 0, 65536);
}


static int
same_head(const gg_http_head_t *a, const gg_http_head_t *b)
{
    size_t  i;

    if (a->method != b->method || a->method_len != b->method_len
        || a->uri != b->uri || a->uri_len != b->uri_len
        || a->version != b->version || a->nheaders != b->nheaders
        || a->head_len != b->head_len
        || a->content_length != b->content_length
        || a->chunked != b->chunked || a->keep_alive != b->keep_alive
        || a->status != b->status || a->reason_len != b->reason_len)
    {
        return 0;
    }

    for (i = 0; i < a->nheaders; i++) {
        if (memcmp(&a->headers[i], &b->headers[i], sizeof(a->headers[i])))
        {
            return 0;
        }
    }

    return 1;
}


static int
value_is(gg_http_head_t *h, const char *buf, const char *name,
    const char *value)
{
    const gg_http_header_t  *hd;

    hd = gg_http_find_header(h, buf, name);

    return hd && hd->value_len == strlen(value)
           && memcmp(buf + hd->value, value, hd->value_len) == 0;
}


static void
test_request(void)
{
    int              rc, all_same;
    size_t           step, split;
    gg_http_head_t   h, g;
    const char      *req;

    req = "POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
          "Host: example\r\n"
          "Content-Length: 11\r\n"
          "X-Mock-Tokens:   7  \r\n"
          "Empty:\r\n"
          "\r\n"
          "{\"model\":1}";

    rc = head_steps(&h, req, 0, 0, 65536);
    tap_ok(rc == GG_HTTP_OK, "request head parses");
    tap_ok(h.method_len == 4 && memcmp(req + h.method, "POST", 4) == 0,
           "method");
    tap_ok(h.uri_len == 24
           && memcmp(req + h.uri, "/v1/chat/completions?x=1", 24) == 0,
           "target with query");
    tap_ok(h.version == 11 && h.keep_alive && !h.chunked,
           "HTTP/1.1: keep-alive by default");
    tap_ok(h.content_length == 11, "Content-Length");
    tap_ok(h.head_len == strlen(req) - 11, "head length stops at the body");
    tap_ok(h.nheaders == 4 && value_is(&h, req, "x-mock-tokens", "7"),
           "header lookup is case-insensitive, value OWS trimmed");
    tap_ok(value_is(&h, req, "EMPTY", ""), "empty value");
    tap_ok(gg_http_find_header(&h, req, "missing") == NULL,
           "absent header is NULL");

    all_same = 1;

    for (step = 1; step < strlen(req); step++) {
        rc = head_steps(&g, req, step, 0, 65536);
        if (rc != GG_HTTP_OK || !same_head(&h, &g)) {
            all_same = 0;
            printf("# differs with steps of %zu\n", step);
        }
    }

    tap_ok(all_same, "same result for every step size 1..%zu",
           strlen(req) - 1);

    /* two pieces, split at every byte position */
    all_same = 1;

    for (split = 1; split < h.head_len; split++) {
        gg_http_head_init(&g, 0, 65536);
        rc = gg_http_parse_head(&g, req, split);
        if (rc != GG_HTTP_AGAIN) {
            all_same = 0;
        }

        rc = gg_http_parse_head(&g, req, strlen(req));
        if (rc != GG_HTTP_OK || !same_head(&h, &g)) {
            all_same = 0;
            printf("# differs when split at %zu\n", split);
        }
    }

    tap_ok(all_same, "same result split in two at every byte");
}


static void
test_request_forms(void)
{
    gg_http_head_t   h;
    const char      *s;

    s = "\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    tap_ok(head_steps(&h, s, 1, 0, 65536) == GG_HTTP_OK
           && h.uri_len == 1, "empty lines before the request line");

    s = "GET /a HTTP/1.0\nHost: x\n\n";
    tap_ok(head_steps(&h, s, 0, 0, 65536) == GG_HTTP_OK && h.version == 10
           && !h.keep_alive && h.content_length == -1,
           "bare LF line ends; HTTP/1.0 closes by default");

    s = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    tap_ok(head_steps(&h, s, 0, 0, 65536) == GG_HTTP_OK && h.keep_alive,
           "HTTP/1.0 with Connection: keep-alive");

    s = "GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n";
    tap_ok(head_steps(&h, s, 0, 0, 65536) == GG_HTTP_OK && !h.keep_alive,
           "HTTP/1.1 with close in a Connection list");

    s = "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n"
        "Expect: 100-continue\r\n\r\n";
    tap_ok(head_steps(&h, s, 0, 0, 65536) == GG_HTTP_OK && h.chunked
           && h.expect_continue, "chunked and Expect: 100-continue");

    s = "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
    tap_ok(head_steps(&h, s, 0, 0, 65536) == GG_HTTP_OK
           && h.content_length == 5, "repeated equal Content-Length");
}


static void
test_malformed(void)
{
    size_t           i;
    gg_http_head_t   h;
    char            *big;

    static const struct {
        const char  *req;
        int          rc;
        const char  *what;
    } bad[] = {
        { "G(T / HTTP/1.1\r\n\r\n", GG_HTTP_ERROR, "bad method byte" },
        { "GET  / HTTP/1.1\r\n\r\n", GG_HTTP_ERROR, "empty target" },
        { "GET / HTTP/1.1 \r\n\r\n", GG_HTTP_ERROR, "junk after version" },
        { "GET / FOO/1.1\r\n\r\n", GG_HTTP_ERROR, "not HTTP" },
        { "GET / HTTP/2.0\r\n\r\n", GG_HTTP_UNSUPPORTED, "HTTP/2.0" },
        { "GET /\x01 HTTP/1.1\r\n\r\n", GG_HTTP_ERROR, "control in target" },
        { "GET / HTTP/1.1\rX\n\r\n", GG_HTTP_ERROR, "CR without LF" },
        { "GET / HTTP/1.1\r\nA : b\r\n\r\n", GG_HTTP_INVALID,
          "space before colon" },
        { "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", GG_HTTP_INVALID,
          "obs-fold" },
        { "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", GG_HTTP_INVALID,
          "DEL in value" },
        { "GET / HTTP/1.1\r\n: b\r\n\r\n", GG_HTTP_INVALID,
          "empty name" },
        { "GET / HTTP/1.1\r\nNo-Colon\r\n\r\n", GG_HTTP_INVALID,
          "no colon" },
        { "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", GG_HTTP_ERROR,
          "CR without LF in a value" },
        { "POST / HTTP/1.1\r\nContent-Length: 1\x01\r\n\r\n",
          GG_HTTP_ERROR, "control byte in Content-Length" },
        { "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\x7f\r\n\r\n",
          GG_HTTP_ERROR, "control byte in Transfer-Encoding" },
        { "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", GG_HTTP_ERROR,
          "non-digit Content-Length" },
        { "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", GG_HTTP_ERROR,
          "negative Content-Length" },
        { "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
          GG_HTTP_ERROR, "conflicting Content-Length" },
        { "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
          GG_HTTP_TOO_LARGE, "huge Content-Length" },
        { "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
          "Transfer-Encoding: chunked\r\n\r\n", GG_HTTP_ERROR,
          "Content-Length with Transfer-Encoding" },
        { "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
          GG_HTTP_UNSUPPORTED, "coding other than chunked" },
        { "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n", GG_HTTP_UNSUPPORTED,
          "chunked twice" },
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tap_ok(head(bad[i].req) == bad[i].rc, "refused: %s", bad[i].what);
    }

    big = malloc(70000);
    memset(big, 'a', 70000);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    big[69999] = '\0';
    tap_ok(head_steps(&h, big, 1000, 0, 65536) == GG_HTTP_TOO_LARGE,
           "head over the limit");

    gg_http_head_init(&h, 0, 64);
    tap_ok(gg_http_parse_head(&h, big, 63) == GG_HTTP_AGAIN
           && gg_http_parse_head(&h, big, 64) == GG_HTTP_TOO_LARGE,
           "limit reached exactly");

    free(big);
}


/*
 * What nginx passes on must not break the head: any byte but NUL, CR and
 * LF in a value (nginx 1.22 ngx_http_parse_header_line), any number of
 * fields.  Control bytes make the head INVALID (a 400 for the message)
 * with the head's end and framing still known.
 */

static void
test_invalid_fields(void)
{
    int              c, all;
    size_t           i, pos, n;
    gg_http_head_t   h;
    gg_http_header_t hd;
    char             req[256], *big;

    all = 1;

    for (c = 0x01; c < 0x100; c++) {
        if (c == '\r' || c == '\n') {
            continue;
        }

        n = (size_t) snprintf(req, sizeof(req), "POST /v1/x HTTP/1.1\r\n"
                              "X-A: a%cb\r\nContent-Length: 2\r\n\r\nok",
                              c);

        if (head_steps(&h, req, c % 7, 0, 65536)
            != ((c < 0x20 && c != '\t') || c == 0x7f ? GG_HTTP_INVALID
                                                      : GG_HTTP_OK)
            || h.head_len != n - 2 || h.content_length != 2)
        {
            printf("# value byte 0x%02x\n", c);
            all = 0;
        }
    }

    tap_ok(all, "every value byte: control bytes INVALID, the rest OK, "
           "head end and Content-Length known either way");

    all = 1;

    for (c = 0x01; c < 0x100; c++) {
        if (c == '\r' || c == '\n' || c == ':') {
            continue;
        }

        n = (size_t) snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n"
                              "X%cY: 1\r\nContent-Length: 0\r\n\r\n", c);

        if (head_steps(&h, req, c % 5, 0, 65536)
            != (strchr("!#$%&'*+-.^_`|~", c) || (c >= '0' && c <= '9')
                || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
                ? GG_HTTP_OK : GG_HTTP_INVALID)
            || h.head_len != n || h.content_length != 0)
        {
            printf("# name byte 0x%02x\n", c);
            all = 0;
        }
    }

    tap_ok(all, "every name byte: outside tchar INVALID, head end known");

    tap_ok(head_steps(&h, "GET / HTTP/1.1\r\nA: \x01\r\n"
                      "Content-Length: 5\r\n\r\n", 1, 0, 65536)
           == GG_HTTP_INVALID && h.invalid_at == 20,
           "the first bad byte's offset is kept for the log");

    /* 1,000 fields: more than are kept, all walked, framing from the last */

    big = malloc(20000);
    strcpy(big, "POST / HTTP/1.1\r\n");

    for (i = 0; i < 1000; i++) {
        sprintf(big + strlen(big), "X-%zu: v%zu\r\n", i, i);
    }

    strcat(big, "Content-Length: 7\r\nConnection: close\r\n\r\n");

    tap_ok(head_steps(&h, big, 0, 0, 65536) == GG_HTTP_OK
           && h.nfields == 1002 && h.nheaders == GG_HTTP_MAX_HEADERS
           && h.content_length == 7 && !h.keep_alive,
           "1,002 fields: parsed, framing from fields past the kept ones");
    tap_ok(value_is(&h, big, "x-999", "v999")
           && value_is(&h, big, "X-0", "v0"),
           "a field past the kept ones is found");

    pos = 0;
    n = 0;
    all = 1;

    while (gg_http_header_next(&h, big, &pos, &hd)) {
        if (n < 1000) {
            snprintf(req, sizeof(req), "X-%zu", n);
            all &= (hd.name_len == strlen(req)
                    && memcmp(big + hd.name, req, hd.name_len) == 0);
        }

        n++;
    }

    tap_ok(all && n == 1002 && pos == h.head_len,
           "gg_http_header_next walks every field in order");

    tap_ok(head_steps(&h, "HTTP/1.1 200 OK\r\nA:  1 \r\nB:\r\n\r\n", 0,
                      1, 65536) == GG_HTTP_OK
           && (pos = 0, gg_http_header_next(&h, "HTTP/1.1 200 OK\r\n"
                                            "A:  1 \r\nB:\r\n\r\n",
                                            &pos, &hd))
           && hd.value_len == 1, "walk: a response, values OWS trimmed");

    /* the same bytes with an LF-only head, and with one control byte */

    strcpy(big, "POST / HTTP/1.1\n");

    for (i = 0; i < 200; i++) {
        sprintf(big + strlen(big), "X-%zu: v\n", i);
    }

    strcat(big, "X-Bad: \x01\nContent-Length: 3\n\n");
    tap_ok(head_steps(&h, big, 3, 0, 65536) == GG_HTTP_INVALID
           && h.content_length == 3 && h.head_len == strlen(big),
           "bare LF lines, 202 fields, a control byte: INVALID, framed");

    free(big);
}


/*
 * gg_http_class[] against the grammar's own words (RFC 9110 5.6.2 tchar,
 * 5.5 field-vchar), and the parser's runs over it: every byte in a
 * method, a target and a reason, values with OWS inside and around, the
 * head split at every step, and max_head at every offset.
 */

static int
ref_tchar(int c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
           || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}


static void
test_classes(void)
{
    int              c, all, want, rc;
    size_t           i, step, max, len;
    gg_http_head_t   h;
    char             req[256];
    const char      *s;

    all = 1;

    for (c = 0; c < 256; c++) {
        want = (ref_tchar(c) ? GG_HTTP_C_TCHAR : 0)
               | (c > 0x20 && c != 0x7f ? GG_HTTP_C_VCHAR : 0)
               | (c == ' ' || c == '\t' ? GG_HTTP_C_WS : 0)
               | (c == '\r' || c == '\n' ? GG_HTTP_C_EOL : 0);

        if (gg_http_class[c] != want) {
            printf("# class of 0x%02x: %d, not %d\n", c, gg_http_class[c],
                   want);
            all = 0;
        }
    }

    tap_ok(all, "gg_http_class: tchar, vchar, SP/HTAB, CR/LF for all 256");

    all = 1;

    for (c = 1; c < 256; c++) {
        if (c == ' ') {
            continue;
        }

        /* the byte inside the method, then inside the target */

        snprintf(req, sizeof(req), "PO%cST / HTTP/1.1\r\n\r\n", c);
        want = ref_tchar(c) ? GG_HTTP_OK : GG_HTTP_ERROR;

        for (step = 0; step < 4; step++) {
            rc = head_steps(&h, req, step, 0, 65536);
            all &= (rc == want
                    && (rc != GG_HTTP_OK || h.method_len == 5));
        }

        snprintf(req, sizeof(req), "GET /a%cb HTTP/1.1\r\n\r\n", c);
        want = (c > 0x20 && c != 0x7f) ? GG_HTTP_OK : GG_HTTP_ERROR;

        for (step = 0; step < 4; step++) {
            rc = head_steps(&h, req, step, 0, 65536);
            all &= (rc == want && (rc != GG_HTTP_OK || h.uri_len == 4));
        }

        if (c == '\r' || c == '\n') {
            continue;
        }

        snprintf(req, sizeof(req), "HTTP/1.1 200 O%cK\r\n\r\n", c);
        want = (c >= 0x20 && c != 0x7f) || c == '\t' ? GG_HTTP_OK
                                                       : GG_HTTP_ERROR;

        for (step = 0; step < 4; step++) {
            rc = head_steps(&h, req, step, 1, 65536);
            all &= (rc == want && (rc != GG_HTTP_OK || h.reason_len == 3));
        }

        if (!all) {
            printf("# method, target or reason byte 0x%02x\n", c);
            break;
        }
    }

    tap_ok(all, "every byte in a method, a target and a reason, whole and "
           "in steps of 1-3");

    /* OWS: trimmed at both ends, kept inside, however the bytes come */

    s = "GET / HTTP/1.1\r\nA: \t x \t y\t \r\nB:z\r\nC: \t \r\n"
        "D:\t\tw w  \nE: e\r\n\r\n";
    all = 1;

    for (step = 0; step <= strlen(s); step++) {
        all &= (head_steps(&h, s, step, 0, 65536) == GG_HTTP_OK
                && h.nheaders == 5
                && value_is(&h, s, "a", "x \t y")
                && value_is(&h, s, "b", "z") && value_is(&h, s, "c", "")
                && value_is(&h, s, "d", "w w") && value_is(&h, s, "e", "e"));
    }

    tap_ok(all, "values: OWS trimmed at both ends and kept inside, at "
           "every step");

    /* the limit: a head of head_len bytes is OK iff it fits in max */

    s = "POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        "X-Long: aaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbb\r\n\r\n";
    len = strlen(s);
    all = 1;

    for (max = 1; max <= len + 1; max++) {
        for (step = 0; step < 3; step++) {
            rc = head_steps(&h, s, step, 0, max);

            if (rc != (len <= max ? GG_HTTP_OK : GG_HTTP_TOO_LARGE)) {
                printf("# max_head %zu, step %zu: %d\n", max, step, rc);
                all = 0;
            }
        }
    }

    tap_ok(all, "max_head: OK exactly when the head fits, at every limit");

    /* gg_http_head_init() leaves "headers" alone: nothing stale is read */

    memset(&h, 0x5a, sizeof(h));
    s = "HTTP/1.1 204 No Content\r\nA: 1\r\n\r\n";
    all = (head_steps(&h, s, 0, 1, 4096) == GG_HTTP_OK && h.nheaders == 1
           && h.nfields == 1 && h.invalid_at == 0 && h.content_length == -1
           && value_is(&h, s, "a", "1")
           && gg_http_find_header(&h, s, "b") == NULL);

    for (i = 0; i < 3; i++) {
        all &= (head_steps(&h, "GET / HTTP/1.1\r\n\r\n", 0, 0, 4096)
                == GG_HTTP_OK && h.nheaders == 0
                && gg_http_find_header(&h, "GET / HTTP/1.1\r\n\r\n", "a")
                   == NULL);
    }

    tap_ok(all, "a parser reused over junk: only what this head set is read");
}


static void
test_response(void)
{
    gg_http_head_t   h;
    const char      *s;

    s = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    tap_ok(head_steps(&h, s, 1, 1, 65536) == GG_HTTP_OK && h.status == 200
           && h.reason_len == 2 && memcmp(s + h.reason, "OK", 2) == 0
           && h.chunked, "response head, byte by byte");

    s = "HTTP/1.0 204\r\n\r\n";
    tap_ok(head_steps(&h, s, 0, 1, 65536) == GG_HTTP_OK && h.status == 204
           && h.reason_len == 0 && h.version == 10,
           "status line without a reason");

    tap_ok(head_steps(&h, "HTTP/1.1 20 OK\r\n\r\n", 0, 1, 65536)
           == GG_HTTP_ERROR, "two-digit status refused");
    tap_ok(head_steps(&h, "HTTP/1.1 2000 OK\r\n\r\n", 0, 1, 65536)
           == GG_HTTP_ERROR, "four-digit status refused");
    tap_ok(head_steps(&h, "HTTP/1.1 099 X\r\n\r\n", 0, 1, 65536)
           == GG_HTTP_ERROR, "status below 100 refused");
}


/* decodes "s" fed in pieces of "step" bytes, as a connection would */

static int
chunked_steps(const char *s, size_t step, uint64_t max, char *out,
    size_t *out_len, size_t *rest)
{
    int                 rc;
    char                buf[1024];
    size_t              len, have, fed, used, n;
    gg_http_chunked_t   ck;

    gg_http_chunked_init(&ck, max);
    len = strlen(s);
    have = 0;
    fed = 0;
    *out_len = 0;

    for ( ;; ) {
        n = step ? step : len;
        if (n > len - fed) {
            n = len - fed;
        }

        memcpy(buf + have, s + fed, n);
        have += n;
        fed += n;

        /* in place, as mock_conn.c does */
        rc = gg_http_parse_chunked(&ck, buf, have, buf, &used, &n);

        memcpy(out + *out_len, buf, n);
        *out_len += n;
        memmove(buf, buf + used, have - used);
        have -= used;

        if (rc != GG_HTTP_AGAIN || fed == len) {
            *rest = have + (len - fed);
            return rc;
        }
    }
}


static void
test_chunked(void)
{
    int          rc, ok;
    char         out[1024];
    size_t       step, n, rest;
    const char  *s;

    s = "4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks."
        "\r\n0\r\nTrailer: yes\r\n\r\nNEXT";

    rc = chunked_steps(s, 0, 1024, out, &n, &rest);
    tap_ok(rc == GG_HTTP_OK && n == 23
           && memcmp(out, "Wikipedia in\r\n\r\nchunks.", 23) == 0
           && rest == 4, "chunked body with extension and trailer");

    ok = 1;

    for (step = 1; step < strlen(s); step++) {
        rc = chunked_steps(s, step, 1024, out, &n, &rest);
        if (rc != GG_HTTP_OK || n != 23 || rest != 4
            || memcmp(out, "Wikipedia in\r\n\r\nchunks.", 23) != 0)
        {
            ok = 0;
            printf("# differs with steps of %zu\n", step);
        }
    }

    tap_ok(ok, "same body for every step size");

    rc = chunked_steps("3\nabc\n0\n\n", 0, 1024, out, &n, &rest);
    tap_ok(rc == GG_HTTP_OK && n == 3 && rest == 0, "bare LF accepted");

    rc = chunked_steps("3\r\nabc\r\n", 0, 1024, out, &n, &rest);
    tap_ok(rc == GG_HTTP_AGAIN && n == 3, "incomplete body: AGAIN");

    tap_ok(chunked_steps("x\r\n", 0, 1024, out, &n, &rest) == GG_HTTP_ERROR,
           "non-hex size refused");
    tap_ok(chunked_steps("\r\n", 0, 1024, out, &n, &rest) == GG_HTTP_ERROR,
           "empty size refused");
    tap_ok(chunked_steps("3\r\nabcX\r\n", 0, 1024, out, &n, &rest)
           == GG_HTTP_ERROR, "missing CRLF after data refused");
    tap_ok(chunked_steps("3\r\nabc\r\n0\r\n\rX", 0, 1024, out, &n, &rest)
           == GG_HTTP_ERROR, "bad end refused");
    tap_ok(chunked_steps("401\r\n", 0, 1024, out, &n, &rest)
           == GG_HTTP_TOO_LARGE, "chunk over the limit");
    tap_ok(chunked_steps("200\r\n", 0, 1024, out, &n, &rest)
           == GG_HTTP_AGAIN, "chunk at the limit accepted");
    tap_ok(chunked_steps("1000000000000000\r\n", 0, (uint64_t) -1, out, &n,
                         &rest) == GG_HTTP_TOO_LARGE, "16 hex digits refused");
    tap_ok(chunked_steps("3\r\nabc\r\n3\r\ndef\r\n", 0, 5, out, &n, &rest)
           == GG_HTTP_TOO_LARGE, "limit counts all chunks");
}


int
main(void)
{
    test_request();
    test_request_forms();
    test_malformed();
    test_invalid_fields();
    test_classes();
    test_response();
    test_chunked();

    return tap_done();
}
