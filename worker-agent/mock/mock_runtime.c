
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: a MOCK OpenAI-compatible inference runtime.  No
 * model, no GPU: it answers from mock_gen.c, deterministically, with the
 * timing and failures a test asks for.  Used by t/, scripts/run.sh and
 * scripts/bench.sh in place of llama.cpp, vLLM or Ollama.
 *
 * One thread per connection with blocking sockets keeps the timing code
 * plain (sleep between tokens, poll for the client going away); a mock
 * serving a few thousand connections needs nothing more.
 */


#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "mock_gen.h"


#define MOCK_HEAD_MAX   65536
#define MOCK_BODY_MAX   (8 * 1024 * 1024)
#define MOCK_PATHS      8


typedef struct {
    char          *models[64];       /* served model names */
    int            nmodels;          /* entries in "models" */
    long           ttft_ms;          /* time to first token */
    long           token_delay_ms;   /* between tokens */
    long           tokens;           /* completion tokens per answer */
    int            fail_status;      /* 0: none */
    long           drop_after;       /* -1: never */
    long           max_concurrency;  /* 0: unlimited */
    int            embedding_dim;    /* floats per embedding */
    int            quiet;            /* only errors and disconnects */
} mock_conf_t;


typedef struct {
    int            fd;               /* the client socket */
    int            http11;           /* HTTP/1.1: chunked, keep-alive */
    int            keepalive;        /* keep the connection afterwards */
    int            chunked;          /* response body is chunked */
    char           method[16];       /* request method */
    char           path[256];        /* request path, no query */
    long           ttft_ms;          /* per-request timing and faults, */
    long           token_delay_ms;   /*   from the flags or X-Mock-* */
    long           tokens;
    int            fail_status;
    long           drop_after;
    long           stall_after;      /* -1: never */
    int            write_mode;       /* 0 normal, 1 byte, 2 bulk */
    long           byte_delay_us;    /* pause between bytes, byte mode */
} mock_req_ctx_t;


static mock_conf_t      mock_conf;
static FILE            *mock_log;
static pthread_mutex_t  mock_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long      mock_in_flight;
static atomic_long      mock_disconnects;
static atomic_long      mock_completion_tokens;
static volatile sig_atomic_t  mock_stop;

static struct {
    char   path[32];                 /* endpoint */
    int    status;                   /* HTTP status */
    long   count;                    /* requests answered */
} mock_counts[64];
static int              mock_ncounts;


static void
mock_logf(int always, const char *fmt, ...)
{
    va_list  ap;

    if (mock_conf.quiet && !always) {
        return;
    }

    pthread_mutex_lock(&mock_lock);
    fputs("gpugate-mock-runtime: ", mock_log);
    va_start(ap, fmt);
    vfprintf(mock_log, fmt, ap);
    va_end(ap);
    fputc('\n', mock_log);
    fflush(mock_log);
    pthread_mutex_unlock(&mock_lock);
}


static void
mock_count(const char *path, int status)
{
    int  i;

    pthread_mutex_lock(&mock_lock);

    for (i = 0; i < mock_ncounts; i++) {
        if (mock_counts[i].status == status
            && strcmp(mock_counts[i].path, path) == 0)
        {
            break;
        }
    }

    if (i == mock_ncounts && mock_ncounts < 64) {
        snprintf(mock_counts[i].path, sizeof(mock_counts[i].path), "%s",
                 path);
        mock_counts[i].status = status;
        mock_ncounts++;
    }

    if (i < 64) {
        mock_counts[i].count++;
    }

    pthread_mutex_unlock(&mock_lock);
}


/* write everything or fail: the stream is gone when this fails */

static int
mock_write(int fd, const char *p, size_t len)
{
    ssize_t  n;

    while (len) {
        n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }

        p += n;
        len -= n;
    }

    return 0;
}


/* one piece of body: chunk-framed for HTTP/1.1, byte by byte if asked */

static int
mock_body(mock_req_ctx_t *rc, const char *p, size_t len)
{
    char    head[32];
    size_t  i;
    int     n;

    if (len == 0) {
        return 0;
    }

    if (rc->write_mode == 1) {
        for (i = 0; i < len; i++) {
            if (rc->chunked) {
                n = snprintf(head, sizeof(head), "1\r\n%c\r\n", p[i]);
                if (mock_write(rc->fd, head, n) != 0) {
                    return -1;
                }

            } else if (mock_write(rc->fd, p + i, 1) != 0) {
                return -1;
            }

            if (rc->byte_delay_us) {
                usleep(rc->byte_delay_us);
            }
        }

        return 0;
    }

    if (!rc->chunked) {
        return mock_write(rc->fd, p, len);
    }

    n = snprintf(head, sizeof(head), "%zx\r\n", len);

    if (mock_write(rc->fd, head, n) != 0
        || mock_write(rc->fd, p, len) != 0
        || mock_write(rc->fd, "\r\n", 2) != 0)
    {
        return -1;
    }

    return 0;
}


/*
 * Waits "ms" milliseconds (forever if ms < 0) unless the client goes away
 * first: returns 1 then.  Pipelined bytes do not count as going away.
 */

static int
mock_wait(int fd, long ms)
{
    int              rc;
    char             c;
    struct pollfd    pfd;
    struct timespec  start, now;
    long             left;

    clock_gettime(CLOCK_MONOTONIC, &start);

    for ( ;; ) {
        left = -1;

        if (ms >= 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            left = ms - ((now.tv_sec - start.tv_sec) * 1000
                         + (now.tv_nsec - start.tv_nsec) / 1000000);
            if (left <= 0) {
                return 0;
            }
        }

        pfd.fd = fd;
        pfd.events = POLLIN | POLLRDHUP;
        pfd.revents = 0;

        rc = poll(&pfd, 1, (int) (left < 0 ? 1000 : left));

        if (rc < 0 && errno != EINTR) {
            return 1;
        }

        if (mock_stop) {
            return 1;
        }

        if (rc <= 0) {
            continue;
        }

        if (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP)) {
            return 1;
        }

        if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
            return 1;
        }

        /* data from the client (pipelining): keep waiting, but slowly */
        if (ms < 0) {
            usleep(10000);
        } else {
            usleep(1000);
        }
    }
}


static int
mock_head(mock_req_ctx_t *rc, int status, const char *type, long length,
    const char *extra)
{
    int          n;
    char         buf[1024];
    const char  *reason;

    switch (status) {
    case 200: reason = "OK"; break;
    case 400: reason = "Bad Request"; break;
    case 404: reason = "Not Found"; break;
    case 405: reason = "Method Not Allowed"; break;
    case 413: reason = "Payload Too Large"; break;
    case 429: reason = "Too Many Requests"; break;
    case 500: reason = "Internal Server Error"; break;
    case 503: reason = "Service Unavailable"; break;
    default: reason = "Mock Status"; break;
    }

    rc->chunked = (length < 0 && rc->http11);

    if (length < 0 && !rc->http11) {
        rc->keepalive = 0;
    }

    n = snprintf(buf, sizeof(buf),
                 "HTTP/1.%d %d %s\r\nServer: gpugate-mock-runtime\r\n"
                 "Content-Type: %s\r\n%s%s%s",
                 rc->http11, status, reason, type,
                 rc->chunked ? "Transfer-Encoding: chunked\r\n" : "",
                 rc->keepalive
                 ? (rc->http11 ? "" : "Connection: keep-alive\r\n")
                 : "Connection: close\r\n",
                 extra ? extra : "");

    if (length >= 0) {
        n += snprintf(buf + n, sizeof(buf) - n, "Content-Length: %ld\r\n",
                      length);
    }

    n += snprintf(buf + n, sizeof(buf) - n, "\r\n");

    return mock_write(rc->fd, buf, n);
}


static int
mock_send(mock_req_ctx_t *rc, int status, const char *type, const char *body,
    const char *extra)
{
    size_t  len;

    len = strlen(body);

    mock_count(rc->path, status);

    if (mock_head(rc, status, type, (long) len + 1, extra) != 0
        || mock_write(rc->fd, body, len) != 0
        || mock_write(rc->fd, "\n", 1) != 0)
    {
        return -1;
    }

    return 0;
}


static int
mock_send_error(mock_req_ctx_t *rc, int status, const char *message,
    const char *type, const char *param, const char *code, const char *extra)
{
    int    r;
    char  *body;

    body = mock_error(message, type, param, code);
    if (body == NULL) {
        return -1;
    }

    r = mock_send(rc, status, "application/json", body, extra);
    free(body);

    return r;
}


static int
mock_served(const char *model)
{
    int  i;

    for (i = 0; i < mock_conf.nmodels; i++) {
        if (strcmp(mock_conf.models[i], model) == 0) {
            return 1;
        }
    }

    return 0;
}


static void
mock_disconnected(mock_req_ctx_t *rc, const mock_req_t *req, long sent,
    long n)
{
    atomic_fetch_add(&mock_disconnects, 1);
    rc->keepalive = 0;

    mock_logf(1, "client disconnected mid-stream path=%s model=%s "
              "sent=%ld/%ld tokens", rc->path, req->model, sent, n);
}


/* a stream event: "data: <json>\n\n" */

static int
mock_event(mock_req_ctx_t *rc, char *json, char **bulk, size_t *bulk_len)
{
    int     r;
    size_t  len;
    char   *p;

    if (json == NULL) {
        return -1;
    }

    len = strlen(json) + 8;

    if (bulk) {
        p = realloc(*bulk, *bulk_len + len + 1);
        if (p == NULL) {
            free(json);
            return -1;
        }

        *bulk = p;
        *bulk_len += sprintf(p + *bulk_len, "data: %s\n\n", json);
        free(json);
        return 0;
    }

    p = malloc(len + 1);
    if (p == NULL) {
        free(json);
        return -1;
    }

    len = sprintf(p, "data: %s\n\n", json);
    r = mock_body(rc, p, len);

    free(p);
    free(json);

    return r;
}


static int
mock_generate(mock_req_ctx_t *rc, mock_req_t *req)
{
    long         i, n, sent;
    char        *body, *bulk, **bp;
    size_t       bulk_len;
    const char  *finish;

    n = rc->tokens;
    finish = "stop";

    if (req->max_tokens >= 0 && req->max_tokens < n) {
        n = req->max_tokens;
        finish = "length";
    }

    if (!req->stream) {
        if (rc->ttft_ms > 0 || rc->token_delay_ms > 0) {
            if (mock_wait(rc->fd, rc->ttft_ms + n * rc->token_delay_ms)) {
                mock_disconnected(rc, req, 0, n);
                mock_count(rc->path, 499);
                return -1;
            }
        }

        body = mock_full(req, n, finish);
        if (body == NULL) {
            return -1;
        }

        atomic_fetch_add(&mock_completion_tokens, n);
        i = mock_send(rc, 200, "application/json", body, NULL);
        free(body);

        mock_logf(0, "%s %s 200 model=%s tokens=%ld+%ld", rc->method,
                  rc->path, req->model, req->prompt_tokens, n);
        return (int) i;
    }

    if (mock_head(rc, 200, "text/event-stream",
                  -1, "Cache-Control: no-cache\r\n") != 0)
    {
        return -1;
    }

    mock_count(rc->path, 200);

    bulk = NULL;
    bulk_len = 0;
    bp = (rc->write_mode == 2) ? &bulk : NULL;

    if (bp == NULL && rc->ttft_ms > 0 && mock_wait(rc->fd, rc->ttft_ms)) {
        mock_disconnected(rc, req, 0, n);
        return -1;
    }

    sent = 0;

    if (req->kind == MOCK_CHAT
        && mock_event(rc, mock_chunk(req, -1, n, NULL), bp, &bulk_len) != 0)
    {
        goto gone;
    }

    for (i = 0; i < n; i++) {
        if (bp == NULL && i > 0 && rc->token_delay_ms > 0
            && mock_wait(rc->fd, rc->token_delay_ms))
        {
            goto gone;
        }

        if (rc->drop_after >= 0 && i >= rc->drop_after) {
            /* an abrupt end: no last chunk, no [DONE] */
            if (bp && bulk) {
                (void) mock_body(rc, bulk, bulk_len);
            }
            free(bulk);
            mock_logf(1, "dropping the stream after %ld tokens "
                      "(drop-after) path=%s model=%s", i, rc->path,
                      req->model);
            rc->keepalive = 0;
            return -1;
        }

        if (rc->stall_after >= 0 && i >= rc->stall_after && bp == NULL) {
            mock_logf(0, "stalling after %ld tokens until the client "
                      "leaves", i);
            (void) mock_wait(rc->fd, -1);
            goto gone;
        }

        if (mock_event(rc, mock_chunk(req, i, n, NULL), bp, &bulk_len) != 0)
        {
            goto gone;
        }

        sent++;
        atomic_fetch_add(&mock_completion_tokens, 1);
    }

    if (mock_event(rc, mock_chunk(req, -2, n, finish), bp, &bulk_len) != 0) {
        goto gone;
    }

    if (req->include_usage
        && mock_event(rc, mock_chunk(req, -3, n, NULL), bp, &bulk_len) != 0)
    {
        goto gone;
    }

    if (bp) {
        char  *p = realloc(bulk, bulk_len + 32);

        if (p == NULL) {
            free(bulk);
            return -1;
        }

        bulk = p;
        bulk_len += sprintf(bulk + bulk_len, "data: [DONE]\n\n");

        if (rc->chunked) {
            char  head[32];
            int   hl = snprintf(head, sizeof(head), "%zx\r\n", bulk_len);
            char *all = malloc(hl + bulk_len + 7);

            if (all == NULL) {
                free(bulk);
                return -1;
            }

            memcpy(all, head, hl);
            memcpy(all + hl, bulk, bulk_len);
            memcpy(all + hl + bulk_len, "\r\n0\r\n\r\n", 7);

            i = mock_write(rc->fd, all, hl + bulk_len + 7);
            free(all);

        } else {
            i = mock_write(rc->fd, bulk, bulk_len);
        }

        free(bulk);

        if (i != 0) {
            goto gone;
        }

    } else {
        if (mock_body(rc, "data: [DONE]\n\n", 14) != 0) {
            goto gone;
        }

        if (rc->chunked && mock_write(rc->fd, "0\r\n\r\n", 5) != 0) {
            goto gone;
        }
    }

    mock_logf(0, "%s %s 200 stream model=%s tokens=%ld+%ld", rc->method,
              rc->path, req->model, req->prompt_tokens, n);

    return 0;

gone:

    free(bulk);
    mock_disconnected(rc, req, sent, n);
    return -1;
}


static int
mock_metrics(mock_req_ctx_t *rc)
{
    int     i, r;
    char   *buf;
    size_t  size, off;

    size = 4096 + 128 * 64;
    buf = malloc(size);
    if (buf == NULL) {
        return -1;
    }

    off = snprintf(buf, size,
        "# HELP gpugate_mock_requests_total Requests answered by the mock.\n"
        "# TYPE gpugate_mock_requests_total counter\n");

    pthread_mutex_lock(&mock_lock);
    for (i = 0; i < mock_ncounts; i++) {
        off += snprintf(buf + off, size - off,
                        "gpugate_mock_requests_total{path=\"%s\","
                        "status=\"%d\"} %ld\n", mock_counts[i].path,
                        mock_counts[i].status, mock_counts[i].count);
    }
    pthread_mutex_unlock(&mock_lock);

    off += snprintf(buf + off, size - off,
        "# HELP gpugate_mock_requests_in_flight Inference requests in "
        "progress.\n"
        "# TYPE gpugate_mock_requests_in_flight gauge\n"
        "gpugate_mock_requests_in_flight %ld\n"
        "# HELP gpugate_mock_stream_disconnects_total Clients that left "
        "before the answer was complete.\n"
        "# TYPE gpugate_mock_stream_disconnects_total counter\n"
        "gpugate_mock_stream_disconnects_total %ld\n"
        "# HELP gpugate_mock_completion_tokens_total Tokens generated.\n"
        "# TYPE gpugate_mock_completion_tokens_total counter\n"
        "gpugate_mock_completion_tokens_total %ld\n",
        atomic_load(&mock_in_flight), atomic_load(&mock_disconnects),
        atomic_load(&mock_completion_tokens));

    buf[off > 0 ? off - 1 : 0] = '\0';     /* mock_send adds the newline */
    r = mock_send(rc, 200, "text/plain; version=0.0.4", buf, NULL);
    free(buf);

    return r;
}


static int
mock_models(mock_req_ctx_t *rc)
{
    int      i, r;
    char    *s;
    json_t  *data;

    data = json_array();

    for (i = 0; i < mock_conf.nmodels; i++) {
        json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}",
                              "id", mock_conf.models[i], "object", "model",
                              "created", MOCK_CREATED,
                              "owned_by", "gpugate-mock"));
    }

    s = json_dumps(json_pack("{s:s, s:o}", "object", "list", "data", data),
                   JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s == NULL) {
        return -1;
    }

    r = mock_send(rc, 200, "application/json", s, NULL);
    free(s);

    return r;
}


/* inference endpoints: validation, faults, then generation */

static int
mock_inference(mock_req_ctx_t *rc, mock_kind_e kind, const char *body,
    size_t len)
{
    int           status, r;
    char         *out, msg[512];
    json_t       *root;
    mock_req_t    req;
    const char   *err, *param;
    json_error_t  jerr;

    if (mock_conf.max_concurrency
        && atomic_fetch_add(&mock_in_flight, 1) >= mock_conf.max_concurrency)
    {
        atomic_fetch_sub(&mock_in_flight, 1);
        return mock_send_error(rc, 429, "The mock runtime is at its "
                               "--max-concurrency limit.",
                               "rate_limit_error", NULL,
                               "too_many_requests", "Retry-After: 1\r\n");
    }

    if (!mock_conf.max_concurrency) {
        atomic_fetch_add(&mock_in_flight, 1);
    }

    root = json_loadb(body, len, 0, &jerr);

    if (root == NULL) {
        snprintf(msg, sizeof(msg), "We could not parse the JSON body of "
                 "your request: %s", jerr.text);
        r = mock_send_error(rc, 400, msg, "invalid_request_error", NULL,
                            "invalid_json", NULL);
        goto done;
    }

    if (rc->fail_status) {
        snprintf(msg, sizeof(msg), "Injected failure (status %d).",
                 rc->fail_status);
        r = mock_send_error(rc, rc->fail_status, msg, "server_error", NULL,
                            "mock_injected", NULL);
        goto done;
    }

    if (kind == MOCK_EMBEDDING) {
        json_t  *m = json_object_get(root, "model");

        if (!json_is_string(m)) {
            r = mock_send_error(rc, 400, "you must provide a model "
                                "parameter", "invalid_request_error",
                                "model", NULL, NULL);
            goto done;
        }

        if (!mock_served(json_string_value(m))) {
            goto not_found_embed;
        }

        out = mock_embeddings(root, json_string_value(m),
                              mock_conf.embedding_dim, &err);
        if (out == NULL) {
            r = mock_send_error(rc, 400, err, "invalid_request_error",
                                "input", NULL, NULL);
            goto done;
        }

        r = mock_send(rc, 200, "application/json", out, NULL);
        free(out);
        goto done;

    not_found_embed:

        snprintf(msg, sizeof(msg), "The model `%s` does not exist.",
                 json_string_value(m));
        r = mock_send_error(rc, 404, msg, "invalid_request_error", "model",
                            "model_not_found", NULL);
        goto done;
    }

    status = mock_parse_request(root, kind, &req, &err, &param);

    if (status) {
        r = mock_send_error(rc, status, err, "invalid_request_error", param,
                            NULL, NULL);
        goto done;
    }

    if (!mock_served(req.model)) {
        snprintf(msg, sizeof(msg), "The model `%s` does not exist.",
                 req.model);
        r = mock_send_error(rc, 404, msg, "invalid_request_error", "model",
                            "model_not_found", NULL);
        goto done;
    }

    r = mock_generate(rc, &req);

done:

    json_decref(root);
    atomic_fetch_sub(&mock_in_flight, 1);

    return r;
}


static long
mock_header_long(const char *value, long dflt)
{
    char  *end;
    long   v;

    v = strtol(value, &end, 10);

    return (end == value || v < 0) ? dflt : v;
}


/* reads exactly "len" bytes, some of which may already be in "buf" */

static int
mock_read_more(int fd, char *buf, size_t *have, size_t want)
{
    ssize_t  n;

    while (*have < want) {
        n = recv(fd, buf + *have, want - *have, 0);

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return -1;
        }

        *have += n;
    }

    return 0;
}


/* bytes [used, used + need) of the connection buffer, reading as needed */

static int
mock_need(int fd, char *buf, size_t *have, size_t *used, size_t need)
{
    ssize_t  n;

    if (*have - *used >= need) {
        return 0;
    }

    /* make room at the end: drop what was consumed */
    memmove(buf, buf + *used, *have - *used);
    *have -= *used;
    *used = 0;

    while (*have < need) {
        if (need > MOCK_HEAD_MAX) {
            return -1;
        }

        n = recv(fd, buf + *have, MOCK_HEAD_MAX - *have, 0);

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return -1;
        }

        *have += n;
    }

    return 0;
}


static int
mock_read_chunked(int fd, char *buf, size_t *have, size_t *used,
    char **body, size_t *body_len)
{
    char    *crlf, *p, *end;
    size_t   line, take, cap;
    long     size;

    cap = 0;

    for ( ;; ) {
        for (line = 3; ; line++) {
            if (mock_need(fd, buf, have, used, line) != 0) {
                return -1;
            }

            crlf = memmem(buf + *used, line, "\r\n", 2);
            if (crlf) {
                break;
            }
        }

        size = strtol(buf + *used, &end, 16);
        if (end == buf + *used || size < 0
            || *body_len + size > MOCK_BODY_MAX)
        {
            return -1;
        }

        *used = crlf - buf + 2;

        if (*body_len + size + 1 > cap) {
            cap = (*body_len + size + 1) * 2;
            p = realloc(*body, cap);
            if (p == NULL) {
                return -1;
            }
            *body = p;
        }

        /* the chunk's data: what is buffered, then straight from the socket */
        take = *have - *used < (size_t) size ? *have - *used : (size_t) size;
        memcpy(*body + *body_len, buf + *used, take);
        *used += take;

        if (take < (size_t) size) {
            size_t  got = take;

            if (mock_read_more(fd, *body + *body_len, &got, size) != 0) {
                return -1;
            }
        }

        *body_len += size;

        if (mock_need(fd, buf, have, used, 2) != 0
            || memcmp(buf + *used, "\r\n", 2) != 0)
        {
            return -1;
        }

        *used += 2;

        if (size == 0) {
            return 0;                /* trailers are not supported */
        }
    }
}


static void *
mock_connection(void *arg)
{
    int              fd, chunked_req;
    long             clen;
    char            *buf, *body, *eol, *line, *p, *hdr_end, *colon;
    size_t           have, head_len, body_len, used;
    ssize_t          n;
    mock_req_ctx_t   rc;

    fd = (int) (intptr_t) arg;

    buf = malloc(MOCK_HEAD_MAX + 1);
    body = NULL;
    if (buf == NULL) {
        close(fd);
        return NULL;
    }

    have = 0;

    for ( ;; ) {
        /* request head */

        hdr_end = NULL;

        while ((hdr_end = (have ? memmem(buf, have, "\r\n\r\n", 4) : NULL))
               == NULL)
        {
            if (have == MOCK_HEAD_MAX) {
                goto close;
            }

            n = recv(fd, buf + have, MOCK_HEAD_MAX - have, 0);

            if (n <= 0) {
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                goto close;
            }

            have += n;
        }

        head_len = hdr_end - buf + 4;
        *hdr_end = '\0';

        memset(&rc, 0, sizeof(rc));
        rc.fd = fd;
        rc.ttft_ms = mock_conf.ttft_ms;
        rc.token_delay_ms = mock_conf.token_delay_ms;
        rc.tokens = mock_conf.tokens;
        rc.fail_status = mock_conf.fail_status;
        rc.drop_after = mock_conf.drop_after;
        rc.stall_after = -1;
        rc.byte_delay_us = 200;

        line = buf;
        eol = strstr(line, "\r\n");
        if (eol) {
            *eol = '\0';
        }

        if (sscanf(line, "%15s %255s HTTP/1.%d", rc.method, rc.path,
                   &rc.http11) != 3)
        {
            rc.http11 = 0;
            rc.keepalive = 0;
            snprintf(rc.path, sizeof(rc.path), "?");
            (void) mock_send_error(&rc, 400, "Malformed request line.",
                                   "invalid_request_error", NULL, NULL,
                                   NULL);
            goto close;
        }

        rc.http11 = rc.http11 == 1;
        rc.keepalive = rc.http11;

        p = strchr(rc.path, '?');
        if (p) {
            *p = '\0';
        }

        clen = 0;
        chunked_req = 0;

        for (line = eol ? eol + 2 : NULL; line && *line; line = eol + 2) {
            eol = strstr(line, "\r\n");
            if (eol) {
                *eol = '\0';
            }

            colon = strchr(line, ':');
            if (colon) {
                *colon = '\0';
                p = colon + 1;
                while (*p == ' ' || *p == '\t') {
                    p++;
                }

                if (strcasecmp(line, "Content-Length") == 0) {
                    clen = mock_header_long(p, -1);
                } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
                    chunked_req = strcasestr(p, "chunked") != NULL;
                } else if (strcasecmp(line, "Connection") == 0) {
                    if (strcasestr(p, "close")) {
                        rc.keepalive = 0;
                    } else if (strcasestr(p, "keep-alive")) {
                        rc.keepalive = 1;
                    }
                } else if (strcasecmp(line, "X-Mock-TTFT-Ms") == 0) {
                    rc.ttft_ms = mock_header_long(p, rc.ttft_ms);
                } else if (strcasecmp(line, "X-Mock-Token-Delay-Ms") == 0) {
                    rc.token_delay_ms = mock_header_long(p,
                                                         rc.token_delay_ms);
                } else if (strcasecmp(line, "X-Mock-Tokens") == 0) {
                    rc.tokens = mock_header_long(p, rc.tokens);
                } else if (strcasecmp(line, "X-Mock-Fail-Status") == 0) {
                    rc.fail_status = (int) mock_header_long(p, 0);
                } else if (strcasecmp(line, "X-Mock-Drop-After") == 0) {
                    rc.drop_after = mock_header_long(p, -1);
                } else if (strcasecmp(line, "X-Mock-Stall-After") == 0) {
                    rc.stall_after = mock_header_long(p, -1);
                } else if (strcasecmp(line, "X-Mock-Write-Mode") == 0) {
                    rc.write_mode = strcmp(p, "byte") == 0 ? 1
                                    : strcmp(p, "bulk") == 0 ? 2 : 0;
                } else if (strcasecmp(line, "X-Mock-Byte-Delay-Us") == 0) {
                    rc.byte_delay_us = mock_header_long(p, 200);
                }
            }

            if (eol == NULL) {
                break;
            }
        }

        if (rc.fail_status && (rc.fail_status < 400 || rc.fail_status > 599))
        {
            rc.fail_status = 500;
        }

        /* request body */

        used = head_len;
        body_len = 0;

        if (chunked_req) {
            if (mock_read_chunked(fd, buf, &have, &used, &body, &body_len)
                != 0)
            {
                rc.keepalive = 0;
                (void) mock_send_error(&rc, 400, "Bad chunked body (or "
                                       "larger than 8 MiB).",
                                       "invalid_request_error", NULL, NULL,
                                       NULL);
                goto close;
            }

        } else if (clen > 0) {
            if (clen > MOCK_BODY_MAX) {
                rc.keepalive = 0;
                (void) mock_send_error(&rc, 413, "Request too large.",
                                       "invalid_request_error", NULL, NULL,
                                       NULL);
                goto close;
            }

            body = realloc(body, clen + 1);
            if (body == NULL) {
                goto close;
            }

            body_len = clen;

            if (have - used >= (size_t) clen) {
                memcpy(body, buf + used, clen);
                used += clen;

            } else {
                size_t  got = have - used;

                memcpy(body, buf + used, got);

                if (mock_read_more(fd, body, &got, clen) != 0) {
                    goto close;
                }

                used = have;
            }
        }

        /* keep pipelined bytes for the next request */
        memmove(buf, buf + used, have - used);
        have -= used;

        /* dispatch */

        if (strcmp(rc.path, "/v1/chat/completions") == 0
            || strcmp(rc.path, "/v1/completions") == 0
            || strcmp(rc.path, "/v1/embeddings") == 0)
        {
            if (strcmp(rc.method, "POST") != 0) {
                n = mock_send_error(&rc, 405, "Use POST.",
                                    "invalid_request_error", NULL, NULL,
                                    "Allow: POST\r\n");

            } else {
                n = mock_inference(&rc,
                        rc.path[4] == 'c' && rc.path[5] == 'h' ? MOCK_CHAT
                        : rc.path[4] == 'c' ? MOCK_COMPLETION
                        : MOCK_EMBEDDING,
                        body ? body : "", body_len);
            }

        } else if (strcmp(rc.path, "/v1/models") == 0) {
            n = mock_models(&rc);

        } else if (strcmp(rc.path, "/health") == 0) {
            n = mock_send(&rc, 200, "application/json",
                          "{\"status\":\"ok\"}", NULL);

        } else if (strcmp(rc.path, "/metrics") == 0) {
            n = mock_metrics(&rc);

        } else {
            n = mock_send_error(&rc, 404, "Unknown endpoint.",
                                "invalid_request_error", NULL,
                                "unknown_url", NULL);
        }

        if (n != 0 || !rc.keepalive || mock_stop) {
            break;
        }
    }

close:

    free(buf);
    free(body);
    close(fd);

    return NULL;
}


static void
mock_on_signal(int signo)
{
    (void) signo;
    mock_stop = 1;
}


static void
mock_usage(int code)
{
    fprintf(code ? stderr : stdout,
"gpugate-mock-runtime: a MOCK OpenAI-compatible inference runtime (no model;\n"
"deterministic answers) for gpugate's tests, demo and benchmarks.\n"
"\n"
"usage: gpugate-mock-runtime [options]\n"
"  --listen ADDR:PORT     listen address (default 127.0.0.1:8000; port 0:\n"
"                         any free port)\n"
"  --port-file FILE       write the bound port to FILE once listening\n"
"  --models a,b,c         served models (default mock-model)\n"
"  --ttft-ms N            time to first token (default 0)\n"
"  --token-delay-ms N     delay between tokens (default 0)\n"
"  --tokens N             completion tokens per answer (default 16;\n"
"                         max_tokens in the request caps it)\n"
"  --fail-status CODE     answer every inference request with CODE\n"
"  --drop-after N         cut streams after N tokens (no [DONE])\n"
"  --max-concurrency N    429 beyond N requests in flight (0: no limit)\n"
"  --embedding-dim N      embedding size (default 8)\n"
"  --log-file FILE        log here instead of stderr\n"
"  --quiet                log only errors and disconnects\n"
"\n"
"Per-request overrides (request headers): X-Mock-TTFT-Ms,\n"
"X-Mock-Token-Delay-Ms, X-Mock-Tokens, X-Mock-Fail-Status,\n"
"X-Mock-Drop-After, X-Mock-Stall-After (send N tokens, then hold the\n"
"stream until the client leaves), X-Mock-Write-Mode: byte|bulk (every\n"
"body byte a separate write / the whole stream in one write),\n"
"X-Mock-Byte-Delay-Us.\n"
"Endpoints: GET /v1/models, POST /v1/chat/completions, /v1/completions,\n"
"/v1/embeddings, GET /health, GET /metrics.  Every client that leaves\n"
"before its answer is complete is logged as \"client disconnected\n"
"mid-stream\".\n");
    exit(code);
}


static long
mock_arg_long(const char *flag, const char *v, long min, long max)
{
    char  *end;
    long   n;

    errno = 0;
    n = strtol(v, &end, 10);

    if (errno || *v == '\0' || *end != '\0' || n < min || n > max) {
        fprintf(stderr, "gpugate-mock-runtime: invalid %s \"%s\": expected "
                "an integer in %ld..%ld\n", flag, v, min, max);
        exit(2);
    }

    return n;
}


int
main(int argc, char **argv)
{
    int                 i, ls, fd, one, port;
    char               *listen_addr, *port_file, *models, *p, *tok, tmp[512];
    FILE               *f;
    socklen_t           slen;
    pthread_t           tid;
    pthread_attr_t      attr;
    struct sigaction    sa;
    struct sockaddr_in  sin;

    listen_addr = "127.0.0.1:8000";
    port_file = NULL;
    models = "mock-model";
    mock_log = stderr;
    mock_conf.tokens = 16;
    mock_conf.drop_after = -1;
    mock_conf.embedding_dim = 8;

    for (i = 1; i < argc; i++) {
        const char  *a = argv[i];
        const char  *v = (i + 1 < argc) ? argv[i + 1] : NULL;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            mock_usage(0);
        }

        if (strcmp(a, "--quiet") == 0) {
            mock_conf.quiet = 1;
            continue;
        }

        if (v == NULL) {
            fprintf(stderr, "gpugate-mock-runtime: %s needs a value "
                    "(see --help)\n", a);
            return 2;
        }

        i++;

        if (strcmp(a, "--listen") == 0) {
            listen_addr = (char *) v;
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = (char *) v;
        } else if (strcmp(a, "--models") == 0) {
            models = (char *) v;
        } else if (strcmp(a, "--ttft-ms") == 0) {
            mock_conf.ttft_ms = mock_arg_long(a, v, 0, 3600000);
        } else if (strcmp(a, "--token-delay-ms") == 0) {
            mock_conf.token_delay_ms = mock_arg_long(a, v, 0, 600000);
        } else if (strcmp(a, "--tokens") == 0) {
            mock_conf.tokens = mock_arg_long(a, v, 0, 1000000);
        } else if (strcmp(a, "--fail-status") == 0) {
            mock_conf.fail_status = (int) mock_arg_long(a, v, 400, 599);
        } else if (strcmp(a, "--drop-after") == 0) {
            mock_conf.drop_after = mock_arg_long(a, v, 0, 1000000);
        } else if (strcmp(a, "--max-concurrency") == 0) {
            mock_conf.max_concurrency = mock_arg_long(a, v, 0, 1000000);
        } else if (strcmp(a, "--embedding-dim") == 0) {
            mock_conf.embedding_dim = (int) mock_arg_long(a, v, 1, 65536);
        } else if (strcmp(a, "--log-file") == 0) {
            mock_log = fopen(v, "a");
            if (mock_log == NULL) {
                fprintf(stderr, "gpugate-mock-runtime: %s: %s\n", v,
                        strerror(errno));
                return 2;
            }
        } else {
            fprintf(stderr, "gpugate-mock-runtime: unknown option %s "
                    "(see --help)\n", a);
            return 2;
        }
    }

    for (p = models; (tok = strsep(&p, ",")) != NULL; ) {
        if (*tok == '\0' || mock_conf.nmodels == 64) {
            fprintf(stderr, "gpugate-mock-runtime: invalid --models\n");
            return 2;
        }
        mock_conf.models[mock_conf.nmodels++] = tok;
    }

    snprintf(tmp, sizeof(tmp), "%s", listen_addr);
    p = strrchr(tmp, ':');

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;

    if (p == NULL || inet_pton(AF_INET, (*p = '\0', tmp), &sin.sin_addr) != 1)
    {
        fprintf(stderr, "gpugate-mock-runtime: invalid --listen \"%s\": "
                "expected IPV4:PORT\n", listen_addr);
        return 2;
    }

    sin.sin_port = htons((uint16_t) mock_arg_long("--listen port", p + 1, 0,
                                                  65535));

    ls = socket(AF_INET, SOCK_STREAM, 0);
    one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    if (ls < 0 || bind(ls, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || listen(ls, 4096) != 0)
    {
        fprintf(stderr, "gpugate-mock-runtime: cannot listen on %s: %s\n",
                listen_addr, strerror(errno));
        return 1;
    }

    slen = sizeof(sin);
    getsockname(ls, (struct sockaddr *) &sin, &slen);
    port = ntohs(sin.sin_port);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = mock_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    mock_logf(1, "listening on %s:%d (a mock: no model behind it)", tmp,
              port);

    if (port_file) {
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0
            || rename(tmp, port_file) != 0)
        {
            fprintf(stderr, "gpugate-mock-runtime: cannot write %s\n",
                    port_file);
            return 1;
        }
    }

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);

    while (!mock_stop) {
        fd = accept(ls, NULL, NULL);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE) {
                usleep(10000);
                continue;
            }
            break;
        }

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        if (pthread_create(&tid, &attr, mock_connection,
                           (void *) (intptr_t) fd) != 0)
        {
            close(fd);
        }
    }

    close(ls);
    mock_logf(1, "stopping");

    return 0;
}
