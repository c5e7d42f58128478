
/*
 * Copyright (C) gpugate authors
 *
 * The messages of the tunnel (docs/tunnel-protocol.md) as the agent
 * writes and reads them: its two handshake requests, its answer to a
 * ping, its own error answers, the request it relays to the runtime and
 * the runtime's answer it relays to nginx, with the hop-by-hop fields
 * each hop drops and how an answer's body ends.  gpugate_tunnel_proto.h
 * holds the header values both sides parse; nginx reads the agent's
 * answers with gg_http_parse.h.  Nothing here allocates or does I/O.
 *
 * Every builder writes into the caller's buffer, size then fill: it
 * returns the bytes the message takes (no NUL is written), and the
 * message is in "buf" when that is at most "size" (when it is more, what
 * "buf" holds is of no use); NULL and 0 measure.  The agent measures,
 * makes room, then fills.
 */


#ifndef _GPUGATE_TUNNEL_MSG_H_INCLUDED_
#define _GPUGATE_TUNNEL_MSG_H_INCLUDED_


#include <stddef.h>

#include "gg_http_parse.h"


/* the request nginx sends down an idle tunnel; 204 is its only answer */
#define GPUGATE_TUNNEL_PING_PATH      "/gpugate/ping"

/* bytes of an error answer's message kept once JSON-escaped */
#define GPUGATE_TUNNEL_MESSAGE_MAX    592


/* one handshake request of the agent (both steps) */
typedef struct {
    const char  *path;        /* the gateway URL's path */
    const char  *host;        /* its host, for Host */
    const char  *user_agent;  /* User-Agent */
    const char  *data;        /* base64 SCRAM message */

    /* step 2 only: "sid" non-NULL makes the request the second step */
    const char  *sid;         /* the session id of the 401 */
    const char  *instance;    /* X-Gpugate-Instance */
    unsigned     capacity;    /* X-Gpugate-Capacity */
    const char  *models;      /* X-Gpugate-Models, may be empty */
    const char  *endpoints;   /* X-Gpugate-Endpoints; NULL or empty:
                                 not sent (every endpoint) */
    const char  *region;      /* X-Gpugate-Region; NULL or empty: not
                                 sent (no region) */
    const char  *load;        /* an X-Gpugate-Load line with its CRLF,
                                 or empty */
    const char  *telemetry;   /* an X-Gpugate-Telemetry line with its
                                 CRLF, or empty */
} gpugate_tunnel_hs_t;


/* how the body of an answer relayed to nginx ends */
typedef enum {
    GPUGATE_TUNNEL_FRAME_LENGTH = 0,  /* Content-Length bytes */
    GPUGATE_TUNNEL_FRAME_CHUNKED,     /* chunked, passed on as it is */
    GPUGATE_TUNNEL_FRAME_CLOSE,       /* at the runtime's close:
                                         re-framed chunked for nginx */
    GPUGATE_TUNNEL_FRAME_NONE         /* no body: HEAD, 1xx, 204, 304 */
} gpugate_tunnel_frame_e;


/*
 * Step 1 ("sid" NULL): GET with "Authorization: SCRAM-SHA-256 data=".
 * Step 2: the same with "sid=", the Upgrade to GPUGATE_TUNNEL_UPGRADE,
 * X-Gpugate-Instance, -Heartbeat, -Capacity, -Models, -Endpoints and
 * -Region (when given) and the load and telemetry lines.
 */
size_t gpugate_tunnel_hs_request(char *buf, size_t size,
    const gpugate_tunnel_hs_t *hs);

/*
 * The answer to a ping: "204 No Content" with X-Gpugate-Inflight and the
 * "load" and "telemetry" lines (each a whole field line or empty).
 */
size_t gpugate_tunnel_pong(char *buf, size_t size, unsigned inflight,
    const char *load, const char *telemetry);

/* whether a request head (parsed OK) is nginx's ping */
int gpugate_tunnel_is_ping(const gg_http_head_t *h, const char *buf);

/*
 * An OpenAI error answer of the agent's own, with Content-Length:
 * "invalid_request_error" for 4xx, "server_error" for the rest.  The
 * message is JSON-escaped (quotes, backslashes, control bytes and DEL)
 * and cut at GPUGATE_TUNNEL_MESSAGE_MAX escaped bytes, never inside an
 * escape; "code" must need no escaping.
 */
size_t gpugate_tunnel_error_answer(char *buf, size_t size, int status,
    const char *code, const char *message);

/*
 * The request nginx sent (its head "h" over "src", parsed OK), as the
 * runtime gets it: the request line in HTTP/1.1, every field but the
 * hop-by-hop ones (gpugate_tunnel_hop_request), "Host: <host>", and
 * "Connection: close" unless "keepalive"; then the empty line.  The body
 * is the caller's to append.
 */
size_t gpugate_tunnel_relay_request(char *buf, size_t size,
    const gg_http_head_t *h, const char *src, const char *host,
    int keepalive);

/*
 * The runtime's final answer head ("h" over "src", parsed OK) as nginx
 * gets it: the status line in HTTP/1.1, every field but the hop-by-hop
 * ones (gpugate_tunnel_hop_response), "Transfer-Encoding: chunked" when
 * the body is re-framed (GPUGATE_TUNNEL_FRAME_CLOSE), the empty line.
 */
size_t gpugate_tunnel_relay_answer(char *buf, size_t size,
    const gg_http_head_t *h, const char *src, gpugate_tunnel_frame_e frame);

/*
 * At least the bytes gpugate_tunnel_relay_request() (with a "host" of
 * "extra" bytes) or gpugate_tunnel_relay_answer() (with "extra" 0) takes
 * for the head "h": room for that much lets the caller fill at once,
 * without the measuring pass over the head.
 */
size_t gpugate_tunnel_relay_max(const gg_http_head_t *h, size_t extra);

/*
 * How the body of the runtime's answer "h" ends (RFC 9112 section 6.3),
 * "head_req" when it answers a HEAD request.
 */
gpugate_tunnel_frame_e gpugate_tunnel_answer_frame(const gg_http_head_t *h,
    int head_req);

/*
 * Fields that end at the agent: Host (set anew), Connection, Keep-Alive,
 * Proxy-Connection, TE, Upgrade, and Expect (the body is whole before the
 * runtime is dialed, so no "100 Continue" is wanted).
 */
int gpugate_tunnel_hop_request(const char *name, size_t len);

/* fields of the runtime's answer that end at the agent */
int gpugate_tunnel_hop_response(const char *name, size_t len);


#endif /* _GPUGATE_TUNNEL_MSG_H_INCLUDED_ */
