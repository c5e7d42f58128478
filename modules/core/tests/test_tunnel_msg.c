
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests for gpugate_tunnel_msg.c, the agent's side of the tunnel's
 * messages, TAP output: each builder's exact bytes, size then fill at
 * every size below the message's, what the other side's parser reads
 * back, the hop-by-hop fields in any case, and the error answer's JSON
 * for every byte of a message.
 */


#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gpugate_tunnel_msg.h"
#include "gpugate_tunnel_proto.h"
#include "tap.h"


typedef size_t (*test_build_pt)(char *buf, size_t size, const void *arg);


/*
 * Builds with "build" at every size from 0 to the one returned: the same
 * length each time, and the message whole only at that size, with no
 * byte written past it.  Returns the message (static) or NULL.
 */

static const char *
test_sizes(test_build_pt build, const void *arg, size_t *len)
{
    size_t       n, size, got;
    static char  buf[65536 + 16];

    n = build(NULL, 0, arg);

    if (n == 0 || n > 65536) {
        return NULL;
    }

    for (size = 0; size < n; size++) {
        memset(buf, '#', n + 16);

        if (build(buf, size, arg) != n || buf[size] != '#') {
            return NULL;
        }
    }

    memset(buf, '#', n + 16);
    got = build(buf, n, arg);

    if (got != n || buf[n] != '#') {
        return NULL;
    }

    buf[n] = '\0';
    *len = n;

    return buf;
}


static size_t
test_hs(char *buf, size_t size, const void *arg)
{
    return gpugate_tunnel_hs_request(buf, size, arg);
}


typedef struct {
    unsigned     inflight;
    const char  *load;
    const char  *tel;
} test_pong_t;


static size_t
test_pong(char *buf, size_t size, const void *arg)
{
    const test_pong_t  *p = arg;

    return gpugate_tunnel_pong(buf, size, p->inflight, p->load, p->tel);
}


typedef struct {
    int          status;
    const char  *code;
    const char  *message;
} test_err_t;


static size_t
test_err(char *buf, size_t size, const void *arg)
{
    const test_err_t  *e = arg;

    return gpugate_tunnel_error_answer(buf, size, e->status, e->code,
                                       e->message);
}


static void
test_handshake(void)
{
    size_t               len;
    const char          *m;
    gpugate_tunnel_hs_t  hs;

    memset(&hs, 0, sizeof(hs));
    hs.path = "/gpugate/tunnel";
    hs.host = "gw.example";
    hs.user_agent = "gpugate-agent/1.0";
    hs.data = "biwsbj1hLHI9eA==";

    m = test_sizes(test_hs, &hs, &len);
    tap_ok(m != NULL && strcmp(m, "GET /gpugate/tunnel HTTP/1.1\r\n"
           "Host: gw.example\r\nUser-Agent: gpugate-agent/1.0\r\n"
           "Authorization: SCRAM-SHA-256 data=biwsbj1hLHI9eA==\r\n\r\n")
           == 0, "step 1: exact bytes, size then fill at every size");

    hs.sid = "0123456789abcdef0123456789abcdef";
    hs.data = "Yz1iaXdz";
    hs.instance = "00112233445566778899aabbccddeeff";
    hs.capacity = 65535;
    hs.models = "llama-3, qwen";
    hs.load = "X-Gpugate-Load: queue=3\r\n";
    hs.telemetry = "";

    m = test_sizes(test_hs, &hs, &len);
    tap_ok(m != NULL && strcmp(m, "GET /gpugate/tunnel HTTP/1.1\r\n"
           "Host: gw.example\r\nUser-Agent: gpugate-agent/1.0\r\n"
           "Authorization: SCRAM-SHA-256 "
           "sid=0123456789abcdef0123456789abcdef, data=Yz1iaXdz\r\n"
           "Connection: Upgrade\r\nUpgrade: gpugate-tunnel/1\r\n"
           "X-Gpugate-Instance: 00112233445566778899aabbccddeeff\r\n"
           "X-Gpugate-Heartbeat: 1\r\nX-Gpugate-Capacity: 65535\r\n"
           "X-Gpugate-Models: llama-3, qwen\r\n"
           "X-Gpugate-Load: queue=3\r\n\r\n") == 0,
           "step 2: exact bytes, size then fill at every size");

    {
        gg_http_head_t           h;
        const gg_http_header_t  *a;
        gpugate_tunnel_auth_t    auth;

        gg_http_head_init(&h, 0, 8192);
        tap_ok(m != NULL && gg_http_parse_head(&h, m, len) == GG_HTTP_OK
               && h.head_len == len, "step 2: nginx's parser reads it whole");

        a = m ? gg_http_find_header(&h, m, "authorization") : NULL;
        tap_ok(a != NULL && gpugate_tunnel_parse_auth(m + a->value,
               a->value_len, 1, &auth) == 0 && auth.sid != NULL
               && auth.data_len == 8, "step 2: its Authorization parses");
    }

    hs.models = "";
    hs.load = "";
    hs.telemetry = "X-Gpugate-Telemetry: cpu_pct=1\r\n";
    m = test_sizes(test_hs, &hs, &len);
    tap_ok(m != NULL && strstr(m, "X-Gpugate-Models: \r\n"
           "X-Gpugate-Telemetry: cpu_pct=1\r\n\r\n") != NULL,
           "step 2: empty model list, telemetry line last");

    hs.endpoints = "embeddings, rerank";
    m = test_sizes(test_hs, &hs, &len);
    tap_ok(m != NULL && strstr(m, "X-Gpugate-Models: \r\n"
           "X-Gpugate-Endpoints: embeddings, rerank\r\n"
           "X-Gpugate-Telemetry: cpu_pct=1\r\n\r\n") != NULL,
           "step 2: X-Gpugate-Endpoints after the models");

    {
        uint32_t                 mask;
        gg_http_head_t           h;
        const gg_http_header_t  *e;

        gg_http_head_init(&h, 0, 8192);
        e = m && gg_http_parse_head(&h, m, len) == GG_HTTP_OK
            ? gg_http_find_header(&h, m, "x-gpugate-endpoints") : NULL;
        tap_ok(e != NULL && gpugate_tunnel_parse_endpoints(m + e->value,
               e->value_len, &mask) == 0
               && mask == (GPUGATE_TUNNEL_ENDPOINTS_TOLD | 1u << 2
                           | 1u << 5), "step 2: its endpoints parse");
    }

    hs.endpoints = "";
    m = test_sizes(test_hs, &hs, &len);
    tap_ok(m != NULL && strstr(m, "X-Gpugate-Endpoints") == NULL,
           "step 2: no X-Gpugate-Endpoints for an empty set");
    tap_ok(m != NULL && strstr(m, "X-Gpugate-Region") == NULL,
           "step 2: no X-Gpugate-Region without a region");

    hs.region = "eu-west.1";
    m = test_sizes(test_hs, &hs, &len);
    tap_ok(m != NULL && strstr(m, "X-Gpugate-Models: \r\n"
           "X-Gpugate-Region: eu-west.1\r\n"
           "X-Gpugate-Telemetry: cpu_pct=1\r\n\r\n") != NULL,
           "step 2: X-Gpugate-Region after the models and endpoints");

    {
        static const char  *good[] = { "a", "eu-west", "US_East.2",
            "0123456789012345678901234567890" };
        static const char  *bad[] = { "", "eu west", "eu/west", "eu,west",
            "\xc3\xa9u", "eu\"", "01234567890123456789012345678901" };
        size_t  i;
        int     ok;

        for (ok = 1, i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
            ok &= gpugate_tunnel_check_region(good[i], strlen(good[i])) == 0;
        }

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            ok &= gpugate_tunnel_check_region(bad[i], strlen(bad[i])) == -1;
        }

        tap_ok(ok, "region names: 1-31 of A-Z a-z 0-9 . _ -, nothing "
               "else (space, slash, comma, UTF-8, quote, 32 bytes)");
    }
}


static void
test_pong_and_ping(void)
{
    size_t          len;
    const char     *m, *req;
    test_pong_t     p = { 0, "", "" };
    gg_http_head_t  h;

    m = test_sizes(test_pong, &p, &len);
    tap_ok(m != NULL && strcmp(m, "HTTP/1.1 204 No Content\r\n"
           "X-Gpugate-Inflight: 0\r\n\r\n") == 0, "pong: bare");

    p.inflight = 4294967295u;
    p.load = "X-Gpugate-Load: queue=7, gpu_free_mb=100\r\n";
    p.tel = "X-Gpugate-Telemetry: cpu_pct=5\r\n";
    m = test_sizes(test_pong, &p, &len);
    tap_ok(m != NULL && strcmp(m, "HTTP/1.1 204 No Content\r\n"
           "X-Gpugate-Inflight: 4294967295\r\n"
           "X-Gpugate-Load: queue=7, gpu_free_mb=100\r\n"
           "X-Gpugate-Telemetry: cpu_pct=5\r\n\r\n") == 0,
           "pong: inflight, load and telemetry lines");

    gg_http_head_init(&h, 1, 4096);
    tap_ok(m != NULL && gg_http_parse_head(&h, m, len) == GG_HTTP_OK
           && h.status == 204 && h.version == 11 && h.head_len == len,
           "pong: nginx's parser reads a whole 204 and nothing after");

    /* nginx's ping request, and what is not one */

    {
        static const struct {
            const char  *req;
            int          ping;
        } cases[] = {
            { "GET /gpugate/ping HTTP/1.1\r\nHost: gpugate\r\n\r\n", 1 },
            { "GET /gpugate/ping HTTP/1.0\r\n\r\n", 1 },
            { "POST /gpugate/ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
              0 },
            { "HEAD /gpugate/ping HTTP/1.1\r\n\r\n", 0 },
            { "get /gpugate/ping HTTP/1.1\r\n\r\n", 0 },
            { "GET /gpugate/pings HTTP/1.1\r\n\r\n", 0 },
            { "GET /gpugate/pin HTTP/1.1\r\n\r\n", 0 },
            { "GET /gpugate/ping?x HTTP/1.1\r\n\r\n", 0 },
            { "GET /GPUGATE/PING HTTP/1.1\r\n\r\n", 0 },
            { "GET /v1/models HTTP/1.1\r\n\r\n", 0 },
        };
        size_t  i;

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            req = cases[i].req;
            gg_http_head_init(&h, 0, 4096);
            tap_ok(gg_http_parse_head(&h, req, strlen(req)) == GG_HTTP_OK
                   && gpugate_tunnel_is_ping(&h, req) == cases[i].ping,
                   "is_ping %d: %.*s", cases[i].ping,
                   (int) strcspn(req, "\r"), req);
        }
    }
}


/* the error answer: a valid JSON body whose message reads back as given */

static int
test_err_check(int status, const char *code, const char *message,
    size_t expect_len)
{
    int             ok;
    size_t          len;
    json_t         *j, *e;
    const char     *m, *msg;
    test_err_t      a = { status, code, message };
    gg_http_head_t  h;
    json_error_t    jerr;

    m = test_sizes(test_err, &a, &len);

    if (m == NULL) {
        return 0;
    }

    gg_http_head_init(&h, 1, 4096);

    if (gg_http_parse_head(&h, m, len) != GG_HTTP_OK || h.status != status
        || h.content_length != (int64_t) (len - h.head_len))
    {
        return 0;
    }

    j = json_loadb(m + h.head_len, len - h.head_len, 0, &jerr);
    e = json_object_get(j, "error");
    msg = json_string_value(json_object_get(e, "message"));

    ok = msg != NULL && strlen(msg) == expect_len
         && memcmp(msg, message, expect_len) == 0
         && strcmp(json_string_value(json_object_get(e, "code")), code) == 0
         && strcmp(json_string_value(json_object_get(e, "type")),
                   status < 500 ? "invalid_request_error" : "server_error")
            == 0
         && json_is_null(json_object_get(e, "param"));

    json_decref(j);

    return ok;
}


static void
test_error_answer(void)
{
    int         b, bad;
    char        one[4], big[2000];
    size_t      len;
    const char  *m;
    test_err_t  a = { 413, "request_too_large", "too large" };

    m = test_sizes(test_err, &a, &len);
    tap_ok(m != NULL && strncmp(m, "HTTP/1.1 413 Content Too Large\r\n"
           "Content-Type: application/json\r\nContent-Length: 105\r\n\r\n"
           "{\"error\":{\"message\":\"too large\",\"type\":"
           "\"invalid_request_error\",\"param\":null,\"code\":"
           "\"request_too_large\"}}\n", len) == 0 && len == 87 + 105,
           "413: exact bytes");

    tap_ok(test_err_check(400, "invalid_header", "bad", 3)
           && test_err_check(431, "header_too_large", "x", 1)
           && test_err_check(501, "invalid_request", "x", 1)
           && test_err_check(502, "runtime_unavailable", "y", 1)
           && test_err_check(503, "agent_busy", "agent at capacity", 17),
           "every status the agent answers: valid JSON, right type");

    /* every byte as a message: JSON stays valid and says the same */

    bad = 0;

    for (b = 1; b < 256; b++) {
        one[0] = 'a';
        one[1] = (char) b;
        one[2] = 'z';
        one[3] = '\0';

        if (b >= 0x80) {
            continue;   /* alone, not UTF-8: jansson refuses it */
        }

        if (!test_err_check(502, "runtime_unavailable", one, 3)) {
            bad = b;
            break;
        }
    }

    tap_ok(bad == 0, "bytes 0x01..0x7f in a message read back exactly "
           "(first wrong: 0x%02x)", bad);

    tap_ok(test_err_check(502, "runtime_unavailable",
                          "caf\xc3\xa9 \xe2\x82\xac", 9),
           "UTF-8 passes through");

    /* a long message is cut, never inside an escape */

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    tap_ok(test_err_check(502, "runtime_unavailable", big,
                          GPUGATE_TUNNEL_MESSAGE_MAX),
           "long message cut at GPUGATE_TUNNEL_MESSAGE_MAX");

    memset(big, '\x01', sizeof(big) - 1);
    tap_ok(test_err_check(502, "runtime_unavailable", big,
                          GPUGATE_TUNNEL_MESSAGE_MAX / 6),
           "long message of escapes cut between escapes");

    memset(big, 'x', sizeof(big) - 1);
    big[GPUGATE_TUNNEL_MESSAGE_MAX - 1] = '"';
    tap_ok(test_err_check(502, "runtime_unavailable", big,
                          GPUGATE_TUNNEL_MESSAGE_MAX - 1),
           "an escape that would cross the limit is left out whole");
}


static void
test_hop(void)
{
    size_t  i;

    static const char  *req_hop[] = {
        "Host", "host", "HOST", "Connection", "connection", "Keep-Alive",
        "keep-alive", "Proxy-Connection", "TE", "te", "Upgrade", "Expect",
        "EXPECT"
    };
    static const char  *req_keep[] = {
        "Content-Length", "Transfer-Encoding", "Authorization", "Hosts",
        "Hos", "T", "Trailer", "X-Connection", "Connection-X",
        "Content-Type", "X-Gpugate-Request"
    };
    static const char  *resp_hop[] = {
        "Connection", "CONNECTION", "Keep-Alive", "keep-alive"
    };
    static const char  *resp_keep[] = {
        "Host", "TE", "Upgrade", "Expect", "Transfer-Encoding",
        "Content-Length", "Proxy-Connection", "Set-Cookie"
    };

    for (i = 0; i < sizeof(req_hop) / sizeof(req_hop[0]); i++) {
        tap_ok(gpugate_tunnel_hop_request(req_hop[i], strlen(req_hop[i])),
               "request hop-by-hop: %s", req_hop[i]);
    }

    for (i = 0; i < sizeof(req_keep) / sizeof(req_keep[0]); i++) {
        tap_ok(!gpugate_tunnel_hop_request(req_keep[i], strlen(req_keep[i])),
               "request end-to-end: %s", req_keep[i]);
    }

    for (i = 0; i < sizeof(resp_hop) / sizeof(resp_hop[0]); i++) {
        tap_ok(gpugate_tunnel_hop_response(resp_hop[i], strlen(resp_hop[i])),
               "answer hop-by-hop: %s", resp_hop[i]);
    }

    for (i = 0; i < sizeof(resp_keep) / sizeof(resp_keep[0]); i++) {
        tap_ok(!gpugate_tunnel_hop_response(resp_keep[i],
                                            strlen(resp_keep[i])),
               "answer end-to-end: %s", resp_keep[i]);
    }
}


typedef struct {
    const gg_http_head_t  *h;
    const char            *src;
    const char            *host;
    int                    keepalive;
    gpugate_tunnel_frame_e  frame;
} test_relay_t;


static size_t
test_relay_req(char *buf, size_t size, const void *arg)
{
    const test_relay_t  *r = arg;

    return gpugate_tunnel_relay_request(buf, size, r->h, r->src, r->host,
                                        r->keepalive);
}


static size_t
test_relay_ans(char *buf, size_t size, const void *arg)
{
    const test_relay_t  *r = arg;

    return gpugate_tunnel_relay_answer(buf, size, r->h, r->src, r->frame);
}


static void
test_relay(void)
{
    char            *many, *p;
    size_t           len, i;
    const char      *m, *src;
    test_relay_t     r;
    gg_http_head_t   h, h2;

    src = "POST /v1/chat/completions HTTP/1.1\r\n"
          "Host: nginx-upstream\r\n"
          "connection: keep-alive\r\n"
          "Content-Type: application/json\r\n"
          "Keep-Alive: timeout=5\r\n"
          "TE: trailers\r\n"
          "Proxy-Connection: x\r\n"
          "Upgrade: h2c\r\n"
          "EXPECT: 100-continue\r\n"
          "X-Gpugate-Request: abc\r\n"
          "Content-Length: 2\r\n\r\n";

    gg_http_head_init(&h, 0, 8192);
    tap_ok(gg_http_parse_head(&h, src, strlen(src)) == GG_HTTP_OK,
           "relay request: the source parses");

    r.h = &h;
    r.src = src;
    r.host = "127.0.0.1:8000";
    r.keepalive = 1;
    r.frame = GPUGATE_TUNNEL_FRAME_LENGTH;

    m = test_sizes(test_relay_req, &r, &len);
    tap_ok(m != NULL && strcmp(m, "POST /v1/chat/completions HTTP/1.1\r\n"
           "Content-Type: application/json\r\n"
           "X-Gpugate-Request: abc\r\n"
           "Content-Length: 2\r\n"
           "Host: 127.0.0.1:8000\r\n\r\n") == 0,
           "relay request: hop-by-hop fields out, Host set, keep-alive");

    r.keepalive = 0;
    m = test_sizes(test_relay_req, &r, &len);
    tap_ok(m != NULL && len > 43
           && strcmp(m + len - 43, "Host: 127.0.0.1:8000\r\n"
                     "Connection: close\r\n\r\n") == 0,
           "relay request: Connection: close without keep-alive");

    /* a head of 990 fields (past the 64 kept) is relayed whole */

    many = malloc(990 * 24 + 64);
    p = many + sprintf(many, "GET /v1/models HTTP/1.0\r\n");

    for (i = 0; i < 990; i++) {
        p += sprintf(p, "%s-%04zu: v%zu\r\n", i % 7 ? "X-F" : "Connection",
                     i, i);
    }

    p += sprintf(p, "\r\n");

    gg_http_head_init(&h, 0, 1 << 20);
    tap_ok(gg_http_parse_head(&h, many, (size_t) (p - many)) == GG_HTTP_OK,
           "990 fields parse");

    r.src = many;
    r.keepalive = 1;
    m = test_sizes(test_relay_req, &r, &len);
    gg_http_head_init(&h2, 0, 1 << 20);
    tap_ok(m != NULL && strncmp(m, "GET /v1/models HTTP/1.1\r\n", 25) == 0
           && gg_http_parse_head(&h2, m, len) == GG_HTTP_OK
           && h2.nfields == 990 + 1 && strstr(m, "Connection-0000") != NULL
           && strstr(m, "X-F-0989: v989\r\n") != NULL,
           "990 fields relayed (names that only begin like a hop field "
           "kept), HTTP/1.1");
    free(many);

    /* the answer */

    src = "HTTP/1.0 200 Fine Thanks\r\n"
          "Content-Type: text/event-stream\r\n"
          "Connection: keep-alive\r\n"
          "keep-alive: timeout=5\r\n"
          "X-Runtime: 1\r\n\r\n";

    gg_http_head_init(&h, 1, 8192);
    tap_ok(gg_http_parse_head(&h, src, strlen(src)) == GG_HTTP_OK,
           "relay answer: the source parses");

    r.h = &h;
    r.src = src;
    r.frame = gpugate_tunnel_answer_frame(&h, 0);
    tap_ok(r.frame == GPUGATE_TUNNEL_FRAME_CLOSE,
           "no length, not chunked: until close");

    m = test_sizes(test_relay_ans, &r, &len);
    tap_ok(m != NULL && strcmp(m, "HTTP/1.1 200 Fine Thanks\r\n"
           "Content-Type: text/event-stream\r\n"
           "X-Runtime: 1\r\n"
           "Transfer-Encoding: chunked\r\n\r\n") == 0,
           "relay answer: HTTP/1.1, hop fields out, re-framed chunked");

    src = "HTTP/1.1 204 \r\nX-A: b\r\n\r\n";
    gg_http_head_init(&h, 1, 8192);
    (void) gg_http_parse_head(&h, src, strlen(src));
    r.src = src;
    r.frame = gpugate_tunnel_answer_frame(&h, 0);
    m = test_sizes(test_relay_ans, &r, &len);
    tap_ok(r.frame == GPUGATE_TUNNEL_FRAME_NONE && m != NULL
           && strcmp(m, "HTTP/1.1 204 \r\nX-A: b\r\n\r\n") == 0,
           "204: no body, empty reason kept");
}


/*
 * The rewritten head the same whether the parser kept every field (up
 * to GG_HTTP_MAX_HEADERS, read from h->headers) or not (walked in the
 * bytes), and never longer than gpugate_tunnel_relay_max(), which the
 * agent reserves before it fills: tightest sources (LF only, no space
 * after the colon, empty values, no reason) and every framing.
 */

static void
test_relay_max(void)
{
    int                      c, resp, lf, all, bound;
    char                    *src, *want, *p, *q, *out;
    size_t                   i, k, n, len, max;
    gg_http_head_t           h;
    gpugate_tunnel_frame_e   frame;

    static const size_t  counts[] = { 0, 1, 2, 63, 64, 65, 66, 300 };

    src = malloc(64 * 1024);
    want = malloc(64 * 1024);
    out = malloc(64 * 1024);
    all = 1;
    bound = 1;

    /* every request and answer, LF or CRLF, field count and framing */

    for (c = 0; c < 2 * 2 * 8 * 4; c++) {
        resp = c & 1;
        lf = (c >> 1) & 1;
        k = (c >> 2) & 7;
        frame = (gpugate_tunnel_frame_e) (c >> 5);

        if (!resp && frame != GPUGATE_TUNNEL_FRAME_LENGTH) {
            continue;
        }

        p = src;
        q = want;

        if (resp) {
            p += sprintf(p, "HTTP/1.0 200%s", lf ? "\n" : "\r\n");
            q += sprintf(q, "HTTP/1.1 200 \r\n");

        } else {
            p += sprintf(p, "GET /m HTTP/1.0%s", lf ? "\n" : "\r\n");
            q += sprintf(q, "GET /m HTTP/1.1\r\n");
        }

        for (i = 0; i < counts[k]; i++) {
            /* every 5th a hop-by-hop field, every 3rd an empty value */
            if (i % 5 == 4) {
                p += sprintf(p, "%s:x%s", resp ? "connection" : "te",
                             lf ? "\n" : "\r\n");
                continue;
            }

            p += sprintf(p, "f%zu:%s%s", i, i % 3 ? "v" : "",
                         lf ? "\n" : "\r\n");
            q += sprintf(q, "f%zu: %s\r\n", i, i % 3 ? "v" : "");
        }

        p += sprintf(p, "%s", lf ? "\n" : "\r\n");

        if (resp) {
            q += sprintf(q, "%s\r\n",
                         frame == GPUGATE_TUNNEL_FRAME_CLOSE
                         ? "Transfer-Encoding: chunked\r\n" : "");

        } else {
            q += sprintf(q, "Host: h:1\r\nConnection: close\r\n\r\n");
        }

        gg_http_head_init(&h, resp, 1 << 20);

        if (gg_http_parse_head(&h, src, (size_t) (p - src)) != GG_HTTP_OK) {
            all = 0;
            continue;
        }

        max = gpugate_tunnel_relay_max(&h, resp ? 0 : 3);
        n = resp ? gpugate_tunnel_relay_answer(out, 64 * 1024, &h, src,
                                               frame)
                 : gpugate_tunnel_relay_request(out, 64 * 1024, &h, src,
                                                "h:1", 0);
        len = (size_t) (q - want);

        if (n != len || memcmp(out, want, len) != 0) {
            printf("# %s, %s, %zu fields, frame %d: differs\n",
                   resp ? "answer" : "request", lf ? "LF" : "CRLF",
                   counts[k], (int) frame);
            all = 0;
        }

        if (n > max) {
            printf("# %zu bytes over relay_max %zu\n", n, max);
            bound = 0;
        }
    }

    tap_ok(all, "relayed heads: the same with the fields kept (<= 64) "
           "and walked (more)");
    tap_ok(bound, "relayed heads: never over gpugate_tunnel_relay_max()");

    free(src);
    free(want);
    free(out);
}


static void
test_frames(void)
{
    size_t  i;

    static const struct {
        const char              *head;
        int                      head_req;
        gpugate_tunnel_frame_e   frame;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0,
          GPUGATE_TUNNEL_FRAME_LENGTH },
        { "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0,
          GPUGATE_TUNNEL_FRAME_LENGTH },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
          GPUGATE_TUNNEL_FRAME_CHUNKED },
        { "HTTP/1.1 200 OK\r\n\r\n", 0, GPUGATE_TUNNEL_FRAME_CLOSE },
        { "HTTP/1.1 500 Oops\r\n\r\n", 0, GPUGATE_TUNNEL_FRAME_CLOSE },
        { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 1,
          GPUGATE_TUNNEL_FRAME_NONE },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1,
          GPUGATE_TUNNEL_FRAME_NONE },
        { "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0,
          GPUGATE_TUNNEL_FRAME_NONE },
        { "HTTP/1.1 304 Not Modified\r\n\r\n", 0,
          GPUGATE_TUNNEL_FRAME_NONE },
        { "HTTP/1.1 101 Switching\r\n\r\n", 0, GPUGATE_TUNNEL_FRAME_NONE },
        { "HTTP/1.1 205 Reset\r\n\r\n", 0, GPUGATE_TUNNEL_FRAME_CLOSE },
    };
    gg_http_head_t  h;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gg_http_head_init(&h, 1, 4096);
        tap_ok(gg_http_parse_head(&h, cases[i].head, strlen(cases[i].head))
               == GG_HTTP_OK
               && gpugate_tunnel_answer_frame(&h, cases[i].head_req)
                  == cases[i].frame,
               "frame %d for %.*s%s", (int) cases[i].frame,
               (int) strcspn(cases[i].head + 9, "\r"), cases[i].head + 9,
               cases[i].head_req ? " (HEAD)" : "");
    }
}


int
main(void)
{
    test_handshake();
    test_pong_and_ping();
    test_error_answer();
    test_hop();
    test_relay();
    test_relay_max();
    test_frames();

    return tap_done();
}
