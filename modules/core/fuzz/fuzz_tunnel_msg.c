
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: the agent's side of the tunnel's messages
 * (gpugate_tunnel_msg.c).  The first byte chooses: bit 0 a response head
 * (else a request head), bit 1 a HEAD request, bits 2-4 the status of an
 * error answer; the rest is the head, and also the error answer's
 * message.  A head that parses is relayed as the agent relays it, size
 * then fill: both calls must agree and stay within relay_max (what the
 * agent reserves), and nginx's parser must read the result back whole,
 * with the same status or request line and the fields that were not
 * hop-by-hop.  The error answer must parse, its
 * Content-Length must be its body, and its body hold no control byte
 * but the last newline.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_tunnel_msg.h"


#define FUZZ_MAX  65536


static size_t
fuzz_kept(const gg_http_head_t *h, const char *buf,
    int (*hop)(const char *name, size_t len))
{
    size_t            pos, n;
    gg_http_header_t  hd;

    pos = 0;
    n = 0;

    while (gg_http_header_next(h, buf, &pos, &hd)) {
        n += !hop(buf + hd.name, hd.name_len);
    }

    return n;
}


static void
fuzz_request(const gg_http_head_t *h, const char *buf, int keepalive)
{
    char            *out;
    size_t           n, kept;
    gg_http_head_t   r;

    (void) gpugate_tunnel_is_ping(h, buf);

    n = gpugate_tunnel_relay_request(NULL, 0, h, buf, "127.0.0.1:8000",
                                     keepalive);

    /* the agent reserves this much and fills at once */
    if (n > gpugate_tunnel_relay_max(h, sizeof("127.0.0.1:8000") - 1)) {
        abort();
    }

    out = malloc(n);

    if (out == NULL
        || gpugate_tunnel_relay_request(out, n, h, buf, "127.0.0.1:8000",
                                        keepalive) != n)
    {
        abort();
    }

    kept = fuzz_kept(h, buf, gpugate_tunnel_hop_request);

    gg_http_head_init(&r, 0, 2 * FUZZ_MAX);

    if (gg_http_parse_head(&r, out, n) != GG_HTTP_OK || r.head_len != n
        || r.version != 11 || r.method_len != h->method_len
        || memcmp(out + r.method, buf + h->method, h->method_len) != 0
        || r.nfields != kept + 1 + !keepalive)
    {
        abort();
    }

    free(out);
}


static void
fuzz_answer(const gg_http_head_t *h, const char *buf, int head_req)
{
    char                    *out;
    size_t                   n;
    gg_http_head_t           r;
    gpugate_tunnel_frame_e   frame;

    frame = gpugate_tunnel_answer_frame(h, head_req);

    n = gpugate_tunnel_relay_answer(NULL, 0, h, buf, frame);

    if (n > gpugate_tunnel_relay_max(h, 0)) {
        abort();
    }

    out = malloc(n);

    if (out == NULL
        || gpugate_tunnel_relay_answer(out, n, h, buf, frame) != n)
    {
        abort();
    }

    gg_http_head_init(&r, 1, 2 * FUZZ_MAX);

    if (gg_http_parse_head(&r, out, n) != GG_HTTP_OK || r.head_len != n
        || r.status != h->status
        || r.nfields != fuzz_kept(h, buf, gpugate_tunnel_hop_response)
                        + (frame == GPUGATE_TUNNEL_FRAME_CLOSE))
    {
        abort();
    }

    free(out);
}


static void
fuzz_error(int status, const char *msg)
{
    char            *out;
    size_t           n, i;
    gg_http_head_t   r;

    n = gpugate_tunnel_error_answer(NULL, 0, status, "fuzz", msg);
    out = malloc(n);

    if (out == NULL
        || gpugate_tunnel_error_answer(out, n, status, "fuzz", msg) != n)
    {
        abort();
    }

    gg_http_head_init(&r, 1, 4096);

    if (gg_http_parse_head(&r, out, n) != GG_HTTP_OK || r.status != status
        || r.content_length != (int64_t) (n - r.head_len)
        || out[n - 1] != '\n')
    {
        abort();
    }

    for (i = r.head_len; i < n - 1; i++) {
        if ((unsigned char) out[i] < 0x20 || out[i] == 0x7f) {
            abort();
        }
    }

    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc;
    char            *buf;
    gg_http_head_t   h;

    static const int  status[8] = { 400, 413, 431, 501, 502, 503, 404,
                                    500 };

    if (size < 1 || size > FUZZ_MAX) {
        return 0;
    }

    /* a NUL-terminated copy: the message is a C string */

    buf = malloc(size);

    if (buf == NULL) {
        return 0;
    }

    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';

    gg_http_head_init(&h, data[0] & 1, FUZZ_MAX);
    rc = gg_http_parse_head(&h, buf, size - 1);

    if (rc == GG_HTTP_OK) {
        if (data[0] & 1) {
            fuzz_answer(&h, buf, data[0] & 2);

        } else {
            fuzz_request(&h, buf, data[0] & 2);
        }
    }

    fuzz_error(status[(data[0] >> 2) & 7], buf);

    free(buf);

    return 0;
}
