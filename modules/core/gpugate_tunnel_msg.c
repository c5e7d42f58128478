
/*
 * Copyright (C) gpugate authors
 */


#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gpugate_tunnel_msg.h"
#include "gpugate_tunnel_proto.h"


/*
 * Size then fill: bytes are counted always and copied only while the
 * whole message fits, which the builders know only at their end; so the
 * first byte that would not fit stops the copying for good.
 */

typedef struct {
    char    *buf;     /* the caller's buffer, NULL when measuring */
    size_t   size;    /* its size */
    size_t   len;     /* bytes the message takes so far */
} gpugate_tunnel_out_t;


static void gpugate_tunnel_put(gpugate_tunnel_out_t *o, const char *p,
    size_t n);
static void gpugate_tunnel_puts(gpugate_tunnel_out_t *o, const char *s);
static void gpugate_tunnel_putu(gpugate_tunnel_out_t *o, unsigned long v);
static void gpugate_tunnel_fields(gpugate_tunnel_out_t *o,
    const gg_http_head_t *h, const char *src,
    int (*hop)(const char *name, size_t len));
static void gpugate_tunnel_field(gpugate_tunnel_out_t *o, const char *src,
    const gg_http_header_t *hd);


/* a name and its length: the length is compared first, with no strlen() */
typedef struct {
    const char  *name;        /* lower case */
    size_t       len;         /* strlen(name) */
} gpugate_tunnel_name_t;

#define gpugate_tunnel_name(s)  { s, sizeof(s) - 1 }

static int gpugate_tunnel_name_in(const char *name, size_t len,
    const gpugate_tunnel_name_t *names);


static const gpugate_tunnel_name_t  gpugate_tunnel_hop_req[] = {
    gpugate_tunnel_name("host"),
    gpugate_tunnel_name("connection"),
    gpugate_tunnel_name("keep-alive"),
    gpugate_tunnel_name("proxy-connection"),
    gpugate_tunnel_name("te"),
    gpugate_tunnel_name("upgrade"),
    gpugate_tunnel_name("expect"),
    { NULL, 0 }
};

static const gpugate_tunnel_name_t  gpugate_tunnel_hop_resp[] = {
    gpugate_tunnel_name("connection"),
    gpugate_tunnel_name("keep-alive"),
    { NULL, 0 }
};


static void
gpugate_tunnel_put(gpugate_tunnel_out_t *o, const char *p, size_t n)
{
    if (o->buf != NULL && o->len + n <= o->size) {
        memcpy(o->buf + o->len, p, n);

    } else {
        o->buf = NULL;
    }

    o->len += n;
}


static void
gpugate_tunnel_puts(gpugate_tunnel_out_t *o, const char *s)
{
    gpugate_tunnel_put(o, s, strlen(s));
}


static void
gpugate_tunnel_putu(gpugate_tunnel_out_t *o, unsigned long v)
{
    char   num[24], *p;

    /* by hand: snprintf() cost 300 instructions per status line */

    p = num + sizeof(num);

    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    gpugate_tunnel_put(o, p, (size_t) (num + sizeof(num) - p));
}


size_t
gpugate_tunnel_hs_request(char *buf, size_t size,
    const gpugate_tunnel_hs_t *hs)
{
    gpugate_tunnel_out_t  o = { buf, size, 0 };

    gpugate_tunnel_puts(&o, "GET ");
    gpugate_tunnel_puts(&o, hs->path);
    gpugate_tunnel_puts(&o, " HTTP/1.1\r\nHost: ");
    gpugate_tunnel_puts(&o, hs->host);
    gpugate_tunnel_puts(&o, "\r\nUser-Agent: ");
    gpugate_tunnel_puts(&o, hs->user_agent);
    gpugate_tunnel_puts(&o, "\r\nAuthorization: SCRAM-SHA-256 ");

    if (hs->sid == NULL) {
        gpugate_tunnel_puts(&o, "data=");
        gpugate_tunnel_puts(&o, hs->data);
        gpugate_tunnel_puts(&o, "\r\n\r\n");
        return o.len;
    }

    gpugate_tunnel_puts(&o, "sid=");
    gpugate_tunnel_puts(&o, hs->sid);
    gpugate_tunnel_puts(&o, ", data=");
    gpugate_tunnel_puts(&o, hs->data);
    gpugate_tunnel_puts(&o, "\r\nConnection: Upgrade\r\n"
                            "Upgrade: " GPUGATE_TUNNEL_UPGRADE "\r\n"
                            "X-Gpugate-Instance: ");
    gpugate_tunnel_puts(&o, hs->instance);
    gpugate_tunnel_puts(&o, "\r\nX-Gpugate-Heartbeat: 1\r\n"
                            "X-Gpugate-Capacity: ");
    gpugate_tunnel_putu(&o, hs->capacity);
    gpugate_tunnel_puts(&o, "\r\nX-Gpugate-Models: ");
    gpugate_tunnel_puts(&o, hs->models);
    gpugate_tunnel_puts(&o, "\r\n");

    if (hs->endpoints && hs->endpoints[0]) {
        gpugate_tunnel_puts(&o, "X-Gpugate-Endpoints: ");
        gpugate_tunnel_puts(&o, hs->endpoints);
        gpugate_tunnel_puts(&o, "\r\n");
    }

    if (hs->region && hs->region[0]) {
        gpugate_tunnel_puts(&o, "X-Gpugate-Region: ");
        gpugate_tunnel_puts(&o, hs->region);
        gpugate_tunnel_puts(&o, "\r\n");
    }

    gpugate_tunnel_puts(&o, hs->load);
    gpugate_tunnel_puts(&o, hs->telemetry);
    gpugate_tunnel_puts(&o, "\r\n");

    return o.len;
}


size_t
gpugate_tunnel_pong(char *buf, size_t size, unsigned inflight,
    const char *load, const char *telemetry)
{
    gpugate_tunnel_out_t  o = { buf, size, 0 };

    gpugate_tunnel_puts(&o, "HTTP/1.1 204 No Content\r\n"
                            "X-Gpugate-Inflight: ");
    gpugate_tunnel_putu(&o, inflight);
    gpugate_tunnel_puts(&o, "\r\n");
    gpugate_tunnel_puts(&o, load);
    gpugate_tunnel_puts(&o, telemetry);
    gpugate_tunnel_puts(&o, "\r\n");

    return o.len;
}


int
gpugate_tunnel_is_ping(const gg_http_head_t *h, const char *buf)
{
    return h->method_len == 3 && memcmp(buf + h->method, "GET", 3) == 0
           && h->uri_len == sizeof(GPUGATE_TUNNEL_PING_PATH) - 1
           && memcmp(buf + h->uri, GPUGATE_TUNNEL_PING_PATH, h->uri_len)
              == 0;
}


size_t
gpugate_tunnel_error_answer(char *buf, size_t size, int status,
    const char *code, const char *message)
{
    char                  esc[GPUGATE_TUNNEL_MESSAGE_MAX], one[8];
    size_t                n, i, k, body;
    const char           *reason, *type;
    unsigned char         ch;
    gpugate_tunnel_out_t  o = { buf, size, 0 };

    switch (status) {
    case 400:
        reason = "Bad Request";
        break;
    case 413:
        reason = "Content Too Large";
        break;
    case 431:
        reason = "Request Header Fields Too Large";
        break;
    case 501:
        reason = "Not Implemented";
        break;
    case 502:
        reason = "Bad Gateway";
        break;
    default:
        reason = "Service Unavailable";
        break;
    }

    /* the message may quote strerror() or a host name: keep JSON valid */

    n = 0;

    for (i = 0; message[i] != '\0'; i++) {
        ch = (unsigned char) message[i];

        if (ch == '"' || ch == '\\') {
            one[0] = '\\';
            one[1] = (char) ch;
            k = 2;

        } else if (ch < 0x20 || ch == 0x7f) {
            k = (size_t) snprintf(one, sizeof(one), "\\u%04x", ch);

        } else {
            one[0] = (char) ch;
            k = 1;
        }

        if (n + k > sizeof(esc)) {
            break;
        }

        memcpy(esc + n, one, k);
        n += k;
    }

    type = status < 500 ? "invalid_request_error" : "server_error";

    body = sizeof("{\"error\":{\"message\":\"") - 1 + n
           + sizeof("\",\"type\":\"") - 1 + strlen(type)
           + sizeof("\",\"param\":null,\"code\":\"") - 1 + strlen(code)
           + sizeof("\"}}\n") - 1;

    gpugate_tunnel_puts(&o, "HTTP/1.1 ");
    gpugate_tunnel_putu(&o, (unsigned long) status);
    gpugate_tunnel_puts(&o, " ");
    gpugate_tunnel_puts(&o, reason);
    gpugate_tunnel_puts(&o, "\r\nContent-Type: application/json\r\n"
                            "Content-Length: ");
    gpugate_tunnel_putu(&o, body);
    gpugate_tunnel_puts(&o, "\r\n\r\n{\"error\":{\"message\":\"");
    gpugate_tunnel_put(&o, esc, n);
    gpugate_tunnel_puts(&o, "\",\"type\":\"");
    gpugate_tunnel_puts(&o, type);
    gpugate_tunnel_puts(&o, "\",\"param\":null,\"code\":\"");
    gpugate_tunnel_puts(&o, code);
    gpugate_tunnel_puts(&o, "\"}}\n");

    return o.len;
}


/* every field of "h" that "hop" does not claim, as "name: value" lines */

static void
gpugate_tunnel_fields(gpugate_tunnel_out_t *o, const gg_http_head_t *h,
    const char *src, int (*hop)(const char *name, size_t len))
{
    size_t                   i, pos;
    gg_http_header_t         hd;
    const gg_http_header_t  *kept;

    if (h->nfields <= h->nheaders) {
        /* the parser kept them all: no second walk of the head's bytes */

        for (i = 0; i < h->nheaders; i++) {
            kept = &h->headers[i];

            if (!hop(src + kept->name, kept->name_len)) {
                gpugate_tunnel_field(o, src, kept);
            }
        }

        return;
    }

    /* every field, however many: nginx sets no limit on their number */

    pos = 0;

    while (gg_http_header_next(h, src, &pos, &hd)) {

        if (!hop(src + hd.name, hd.name_len)) {
            gpugate_tunnel_field(o, src, &hd);
        }
    }
}


static void
gpugate_tunnel_field(gpugate_tunnel_out_t *o, const char *src,
    const gg_http_header_t *hd)
{
    gpugate_tunnel_put(o, src + hd->name, hd->name_len);
    gpugate_tunnel_put(o, ": ", 2);
    gpugate_tunnel_put(o, src + hd->value, hd->value_len);
    gpugate_tunnel_put(o, "\r\n", 2);
}


size_t
gpugate_tunnel_relay_max(const gg_http_head_t *h, size_t extra)
{
    /*
     * Each field line grows by 2 at most ("a:b\n" to "a: b\r\n"), the
     * start line by 3 ("HTTP/1.1 200\n" to "HTTP/1.1 200 \r\n"); the
     * rest is what the builders add: Host and Connection: close, or
     * Transfer-Encoding: chunked, and the empty line.
     */
    return h->head_len + 2 * h->nfields + 3
           + sizeof("Host: \r\nConnection: close\r\n\r\n")
           + sizeof("Transfer-Encoding: chunked\r\n") + extra;
}


size_t
gpugate_tunnel_relay_request(char *buf, size_t size, const gg_http_head_t *h,
    const char *src, const char *host, int keepalive)
{
    gpugate_tunnel_out_t  o = { buf, size, 0 };

    gpugate_tunnel_put(&o, src + h->method, h->method_len);
    gpugate_tunnel_puts(&o, " ");
    gpugate_tunnel_put(&o, src + h->uri, h->uri_len);
    gpugate_tunnel_puts(&o, " HTTP/1.1\r\n");

    gpugate_tunnel_fields(&o, h, src, gpugate_tunnel_hop_request);

    gpugate_tunnel_puts(&o, "Host: ");
    gpugate_tunnel_puts(&o, host);
    gpugate_tunnel_puts(&o, keepalive ? "\r\n\r\n"
                                      : "\r\nConnection: close\r\n\r\n");

    return o.len;
}


size_t
gpugate_tunnel_relay_answer(char *buf, size_t size, const gg_http_head_t *h,
    const char *src, gpugate_tunnel_frame_e frame)
{
    gpugate_tunnel_out_t  o = { buf, size, 0 };

    gpugate_tunnel_puts(&o, "HTTP/1.1 ");
    gpugate_tunnel_putu(&o, (unsigned long) h->status);
    gpugate_tunnel_puts(&o, " ");
    gpugate_tunnel_put(&o, src + h->reason, h->reason_len);
    gpugate_tunnel_puts(&o, "\r\n");

    gpugate_tunnel_fields(&o, h, src, gpugate_tunnel_hop_response);

    if (frame == GPUGATE_TUNNEL_FRAME_CLOSE) {
        gpugate_tunnel_puts(&o, "Transfer-Encoding: chunked\r\n");
    }

    gpugate_tunnel_puts(&o, "\r\n");

    return o.len;
}


gpugate_tunnel_frame_e
gpugate_tunnel_answer_frame(const gg_http_head_t *h, int head_req)
{
    if (head_req || h->status < 200 || h->status == 204 || h->status == 304)
    {
        return GPUGATE_TUNNEL_FRAME_NONE;
    }

    if (h->chunked) {
        return GPUGATE_TUNNEL_FRAME_CHUNKED;
    }

    if (h->content_length >= 0) {
        return GPUGATE_TUNNEL_FRAME_LENGTH;
    }

    return GPUGATE_TUNNEL_FRAME_CLOSE;
}


static int
gpugate_tunnel_name_in(const char *name, size_t len,
    const gpugate_tunnel_name_t *names)
{
    for ( /* void */ ; names->name != NULL; names++) {
        if (names->len == len && strncasecmp(name, names->name, len) == 0) {
            return 1;
        }
    }

    return 0;
}


int
gpugate_tunnel_hop_request(const char *name, size_t len)
{
    return gpugate_tunnel_name_in(name, len, gpugate_tunnel_hop_req);
}


int
gpugate_tunnel_hop_response(const char *name, size_t len)
{
    return gpugate_tunnel_name_in(name, len, gpugate_tunnel_hop_resp);
}
