
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-sse-bench: a load client for streaming (SSE) chat completions.
 * wrk and hey measure whole responses; an LLM gateway is judged by the
 * time to the first token and by the gaps between tokens, so this client
 * timestamps every event as it arrives.  One thread, epoll, N keep-alive
 * connections each running requests back to back.
 *
 *   gpugate-sse-bench -u http://127.0.0.1:8080/v1/chat/completions
 *       -c 64 -n 1000 [-d 10] [-b body.json] [-H 'Name: value']...
 *
 * Prints one JSON object: requests, errors, rps, and p50/p90/p99 of
 * latency, ttft and inter-event gap in milliseconds.
 */


#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define BENCH_BUF_SIZE     65536


typedef enum {
    BENCH_ST_WRITING = 0,
    BENCH_ST_HEADERS,
    BENCH_ST_CHUNK_SIZE,
    BENCH_ST_CHUNK_DATA,
    BENCH_ST_CHUNK_CRLF,
    BENCH_ST_BODY_LENGTH,
    BENCH_ST_BODY_CLOSE
} bench_state_e;


typedef struct {
    int             fd;          /* socket, -1 when closed */
    bench_state_e   state;       /* where the response parser is */
    size_t          sent;        /* bytes of the request written */
    char           *in;          /* response bytes not parsed yet */
    size_t          in_len;      /* bytes in "in" */
    uint64_t        chunk_left;  /* bytes left in the current chunk or body */
    int             status;      /* response status code */
    double          t_start;     /* request start, seconds */
    double          t_last_ev;   /* previous content event, 0: none yet */
    int             got_first;   /* first content event seen */
    int             ev_state;    /* SSE: consecutive '\n' seen */
    char            ev[512];     /* start of the current event's bytes */
    size_t          ev_len;      /* bytes kept in "ev" (capped) */
} bench_conn_t;


typedef struct {
    double         *v;           /* samples, milliseconds */
    size_t          n;           /* samples stored */
    size_t          cap;         /* capacity of "v" */
} bench_series_t;


static struct sockaddr_in   bench_addr;
static char                *bench_req;
static size_t               bench_req_len;
static long                 bench_total;
static long                 bench_started;
static long                 bench_done;
static long                 bench_errors;
static double               bench_deadline;
static int                  bench_ep;
static bench_series_t       bench_lat, bench_ttft, bench_gap;


static double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
bench_add(bench_series_t *s, double ms)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, s->cap * sizeof(double));
        if (s->v == NULL) {
            perror("gpugate-sse-bench: realloc");
            exit(1);
        }
    }

    s->v[s->n++] = ms;
}


static int
bench_cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static double
bench_pct(bench_series_t *s, double p)
{
    size_t  i;

    if (s->n == 0) {
        return -1;
    }

    i = (size_t) (p / 100.0 * (s->n - 1) + 0.5);
    return s->v[i];
}


static int
bench_start(bench_conn_t *c)
{
    int                 fd, one;
    struct epoll_event  ev;

    /* requests are only started while some remain and time is left */

    if ((bench_total && bench_started >= bench_total)
        || (bench_deadline && bench_now() >= bench_deadline))
    {
        return 0;
    }

    bench_started++;

    if (c->fd == -1) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd == -1) {
            perror("gpugate-sse-bench: socket");
            exit(1);
        }

        one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        if (connect(fd, (struct sockaddr *) &bench_addr, sizeof(bench_addr))
            == -1 && errno != EINPROGRESS)
        {
            perror("gpugate-sse-bench: connect");
            exit(1);
        }

        c->fd = fd;
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.ptr = c;
        epoll_ctl(bench_ep, EPOLL_CTL_ADD, fd, &ev);

    } else {
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.ptr = c;
        epoll_ctl(bench_ep, EPOLL_CTL_MOD, c->fd, &ev);
    }

    c->state = BENCH_ST_WRITING;
    c->sent = 0;
    c->in_len = 0;
    c->status = 0;
    c->t_start = bench_now();
    c->t_last_ev = 0;
    c->got_first = 0;
    c->ev_state = 0;
    c->ev_len = 0;

    return 1;
}


static void
bench_close(bench_conn_t *c)
{
    if (c->fd != -1) {
        close(c->fd);
        c->fd = -1;
    }
}


static void
bench_finish(bench_conn_t *c, int ok, int keepalive)
{
    bench_done++;

    if (ok && c->status == 200) {
        bench_add(&bench_lat, (bench_now() - c->t_start) * 1000);

    } else {
        bench_errors++;
    }

    if (!ok || !keepalive) {
        bench_close(c);
    }

    bench_start(c);
}


/*
 * An event counts as a token when its data carries non-empty "content" or
 * "text": the role-only first chunk and the usage chunk do not.
 */

static void
bench_event(bench_conn_t *c)
{
    double       t;
    const char  *p;

    c->ev[c->ev_len < sizeof(c->ev) ? c->ev_len : sizeof(c->ev) - 1] = '\0';

    p = strstr(c->ev, "\"content\":\"");
    if (p == NULL) {
        p = strstr(c->ev, "\"text\":\"");
        if (p == NULL) {
            return;
        }
        p += sizeof("\"text\":\"") - 1;

    } else {
        p += sizeof("\"content\":\"") - 1;
    }

    if (*p == '"') {
        return;
    }

    t = bench_now();

    if (!c->got_first) {
        c->got_first = 1;
        bench_add(&bench_ttft, (t - c->t_start) * 1000);

    } else {
        bench_add(&bench_gap, (t - c->t_last_ev) * 1000);
    }

    c->t_last_ev = t;
}


static void
bench_body(bench_conn_t *c, const char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (c->ev_len < sizeof(c->ev) - 1) {
            c->ev[c->ev_len] = p[i];
        }
        c->ev_len++;

        if (p[i] == '\n') {
            if (++c->ev_state == 2) {
                bench_event(c);
                c->ev_len = 0;
                c->ev_state = 0;
            }

        } else if (p[i] != '\r') {
            c->ev_state = 0;
        }
    }
}


/* returns 0 while more input is needed, 1 when the response is done */

static int
bench_parse(bench_conn_t *c, int *keepalive)
{
    char      *p, *end, *eol, *h;
    size_t     n;
    uint64_t   size;

    p = c->in;
    end = c->in + c->in_len;

    for ( ;; ) {
        switch (c->state) {

        case BENCH_ST_HEADERS:
            eol = memmem(p, end - p, "\r\n\r\n", 4);
            if (eol == NULL) {
                goto more;
            }

            *eol = '\0';
            c->status = atoi(p + 9);
            *keepalive = strcasestr(p, "\r\nconnection: close") == NULL;

            if (strcasestr(p, "\r\ntransfer-encoding: chunked")) {
                c->state = BENCH_ST_CHUNK_SIZE;

            } else if ((h = strcasestr(p, "\r\ncontent-length:"))) {
                c->chunk_left = strtoull(h + 17, NULL, 10);
                c->state = BENCH_ST_BODY_LENGTH;

            } else {
                c->state = BENCH_ST_BODY_CLOSE;
                *keepalive = 0;
            }

            p = eol + 4;

            if (c->state == BENCH_ST_BODY_LENGTH && c->chunk_left == 0) {
                goto done;
            }

            break;

        case BENCH_ST_CHUNK_SIZE:
            eol = memmem(p, end - p, "\r\n", 2);
            if (eol == NULL) {
                goto more;
            }

            size = strtoull(p, NULL, 16);

            if (size == 0) {
                /* the last chunk: wait for the empty trailer's CRLF */
                if (end - (eol + 2) < 2) {
                    goto more;
                }

                p = eol + 4;
                goto done;
            }

            p = eol + 2;
            c->chunk_left = size;
            c->state = BENCH_ST_CHUNK_DATA;
            break;

        case BENCH_ST_CHUNK_DATA:
        case BENCH_ST_BODY_LENGTH:
            n = end - p;
            if (n > c->chunk_left) {
                n = c->chunk_left;
            }

            bench_body(c, p, n);
            p += n;
            c->chunk_left -= n;

            if (c->chunk_left) {
                goto more;
            }

            if (c->state == BENCH_ST_BODY_LENGTH) {
                goto done;
            }

            c->state = BENCH_ST_CHUNK_CRLF;
            break;

        case BENCH_ST_CHUNK_CRLF:
            if (end - p < 2) {
                goto more;
            }

            p += 2;
            c->state = BENCH_ST_CHUNK_SIZE;
            break;

        case BENCH_ST_BODY_CLOSE:
            bench_body(c, p, end - p);
            p = end;
            goto more;

        default:
            goto more;
        }
    }

done:

    n = end - p;
    memmove(c->in, p, n);
    c->in_len = n;

    return 1;

more:

    n = end - p;
    memmove(c->in, p, n);
    c->in_len = n;

    return 0;
}


static void
bench_io(bench_conn_t *c, uint32_t events)
{
    int      keepalive;
    ssize_t  n;

    if (c->state == BENCH_ST_WRITING && (events & EPOLLOUT)) {
        n = write(c->fd, bench_req + c->sent, bench_req_len - c->sent);

        if (n == -1 && errno != EAGAIN) {
            bench_finish(c, 0, 0);
            return;
        }

        if (n > 0) {
            c->sent += n;
        }

        if (c->sent == bench_req_len) {
            struct epoll_event  ev;

            ev.events = EPOLLIN;
            ev.data.ptr = c;
            epoll_ctl(bench_ep, EPOLL_CTL_MOD, c->fd, &ev);
            c->state = BENCH_ST_HEADERS;
        }

        return;
    }

    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        return;
    }

    for ( ;; ) {
        n = read(c->fd, c->in + c->in_len, BENCH_BUF_SIZE - c->in_len);

        if (n == -1 && errno == EAGAIN) {
            return;
        }

        if (n <= 0) {
            /* a close-delimited body ends here; anything else failed */
            bench_finish(c, c->state == BENCH_ST_BODY_CLOSE, 0);
            return;
        }

        c->in_len += n;
        keepalive = 1;

        if (c->state == BENCH_ST_WRITING) {
            continue;
        }

        if (bench_parse(c, &keepalive)) {
            bench_finish(c, 1, keepalive);
            return;
        }

        if (c->in_len == BENCH_BUF_SIZE) {
            fprintf(stderr, "gpugate-sse-bench: response head too large\n");
            bench_finish(c, 0, 0);
            return;
        }
    }
}


static void
bench_usage(void)
{
    fprintf(stderr,
        "usage: gpugate-sse-bench -u http://HOST:PORT/PATH [-c CONNS]\n"
        "           [-n REQUESTS] [-d SECONDS] [-b BODY_FILE]\n"
        "           [-H 'Name: value']... [-l LABEL]\n"
        "  POSTs BODY_FILE (default: a streaming chat completion for\n"
        "  model \"mock-model\") over CONNS keep-alive connections and\n"
        "  prints latency, time-to-first-token and inter-token gaps.\n");
    exit(2);
}


static char *
bench_read_file(const char *path, size_t *len)
{
    FILE    *f;
    char    *buf;
    long     n;

    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
        perror(path);
        exit(2);
    }

    rewind(f);
    buf = malloc(n + 1);
    if (buf == NULL || fread(buf, 1, n, f) != (size_t) n) {
        perror(path);
        exit(2);
    }

    fclose(f);
    buf[n] = '\0';
    *len = n;

    return buf;
}


int
main(int argc, char **argv)
{
    int                  opt, conns, i, n;
    char                 host[256], path[1024], headers[4096];
    char                *url, *body, *label;
    size_t               body_len, hl;
    double               t0, elapsed, seconds;
    bench_conn_t        *cs;
    struct epoll_event   evs[256];
    unsigned             port;

    url = NULL;
    body = NULL;
    label = "";
    conns = 1;
    seconds = 0;
    hl = 0;
    headers[0] = '\0';

    while ((opt = getopt(argc, argv, "u:c:n:d:b:H:l:")) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'c': conns = atoi(optarg); break;
        case 'n': bench_total = atol(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'b': body = bench_read_file(optarg, &body_len); break;
        case 'l': label = optarg; break;
        case 'H':
            n = snprintf(headers + hl, sizeof(headers) - hl, "%s\r\n",
                         optarg);
            if (n < 0 || (size_t) n >= sizeof(headers) - hl) {
                bench_usage();
            }
            hl += n;
            break;
        default: bench_usage();
        }
    }

    if (url == NULL || conns < 1 || (bench_total <= 0 && seconds <= 0)) {
        bench_usage();
    }

    port = 80;
    if (sscanf(url, "http://%255[^:/]:%u%1023s", host, &port, path) != 3
        && sscanf(url, "http://%255[^:/]%1023s", host, path) != 2)
    {
        bench_usage();
    }

    memset(&bench_addr, 0, sizeof(bench_addr));
    bench_addr.sin_family = AF_INET;
    bench_addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &bench_addr.sin_addr) != 1) {
        fprintf(stderr, "gpugate-sse-bench: host must be an IPv4 address\n");
        return 2;
    }

    if (body == NULL) {
        body = "{\"model\":\"mock-model\",\"stream\":true,"
               "\"messages\":[{\"role\":\"user\","
               "\"content\":\"Say hello to the benchmark\"}]}";
        body_len = strlen(body);
    }

    bench_req = malloc(body_len + sizeof(headers) + 2048);
    if (bench_req == NULL) {
        return 1;
    }

    bench_req_len = sprintf(bench_req,
                            "POST %s HTTP/1.1\r\nHost: %s:%u\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: %zu\r\n%s\r\n",
                            path, host, port, body_len, headers);
    memcpy(bench_req + bench_req_len, body, body_len);
    bench_req_len += body_len;

    bench_ep = epoll_create1(0);
    cs = calloc(conns, sizeof(bench_conn_t));
    if (bench_ep == -1 || cs == NULL) {
        perror("gpugate-sse-bench");
        return 1;
    }

    t0 = bench_now();
    bench_deadline = seconds > 0 ? t0 + seconds : 0;

    for (i = 0; i < conns; i++) {
        cs[i].fd = -1;
        cs[i].in = malloc(BENCH_BUF_SIZE);
        if (cs[i].in == NULL) {
            return 1;
        }
        bench_start(&cs[i]);
    }

    while (bench_done < bench_started) {
        n = epoll_wait(bench_ep, evs, 256, 1000);

        for (i = 0; i < n; i++) {
            bench_io(evs[i].data.ptr, evs[i].events);
        }
    }

    elapsed = bench_now() - t0;

    qsort(bench_lat.v, bench_lat.n, sizeof(double), bench_cmp);
    qsort(bench_ttft.v, bench_ttft.n, sizeof(double), bench_cmp);
    qsort(bench_gap.v, bench_gap.n, sizeof(double), bench_cmp);

    printf("{\"label\":\"%s\",\"connections\":%d,\"requests\":%ld,"
           "\"errors\":%ld,\"seconds\":%.3f,\"rps\":%.1f,"
           "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f},"
           "\"ttft_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f},"
           "\"gap_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f}}\n",
           label, conns, bench_done, bench_errors, elapsed,
           (bench_done - bench_errors) / elapsed,
           bench_pct(&bench_lat, 50), bench_pct(&bench_lat, 90),
           bench_pct(&bench_lat, 99),
           bench_pct(&bench_ttft, 50), bench_pct(&bench_ttft, 90),
           bench_pct(&bench_ttft, 99),
           bench_pct(&bench_gap, 50), bench_pct(&bench_gap, 90),
           bench_pct(&bench_gap, 99));

    return bench_errors ? 1 : 0;
}
