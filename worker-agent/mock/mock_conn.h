
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime connections (mock_conn.c): accepting, reading and
 * parsing requests, framing and writing responses.  The bottom of the
 * request path: what answers a request is above it, and reached only
 * through the hooks of mock_conn_ops_t given to mock_listen_start().
 */


#ifndef _MOCK_CONN_H_INCLUDED_
#define _MOCK_CONN_H_INCLUDED_


#include <stdint.h>

#include <jansson.h>

#include "gg_buf.h"
#include "gg_event.h"
#include "gg_http_parse.h"
#include "mock_req.h"


#define MOCK_HEAD_MAX      (1024 * 1024)
#define MOCK_BODY_MAX      (32 * 1024 * 1024)

/* output beyond this stops generation until the client reads */
#define MOCK_OUT_HIGH      65536


typedef enum {
    MOCK_WRITE_NORMAL = 0,           /* one write per event */
    MOCK_WRITE_BYTE,                 /* one write per body byte */
    MOCK_WRITE_BULK                  /* the whole stream in one write */
} mock_write_mode_e;


/*
 * X-Mock-Stray-Kind: what a misbehaving runtime sends on a kept-alive
 * connection after a complete answer, unasked (X-Mock-Stray-Ms later)
 */
typedef enum {
    MOCK_STRAY_RESPONSE = 1,         /* a whole second response */
    MOCK_STRAY_BYTE,                 /* one byte, 'X' */
    MOCK_STRAY_HEAD                  /* a status line, no more */
} mock_stray_e;


typedef enum {
    MOCK_READ_HEAD = 0,              /* waiting for a request head */
    MOCK_READ_BODY,                  /* Content-Length body */
    MOCK_READ_CHUNKED,               /* chunked body */
    MOCK_BUSY,                       /* answering; input is only watched */
    MOCK_LINGER                      /* answered, closing: draining input */
} mock_state_e;


typedef enum {
    MOCK_PH_TTFT = 0,                /* before anything is generated */
    MOCK_PH_ROLE,                    /* chat: the role chunk */
    MOCK_PH_TOKEN,                   /* the content chunks */
    MOCK_PH_FINISH,                  /* the chunk with finish_reason */
    MOCK_PH_USAGE,                   /* include_usage: the usage chunk */
    MOCK_PH_DONE,                    /* data: [DONE] */
    MOCK_PH_END                      /* all generated */
} mock_phase_e;


typedef struct mock_conn_s  mock_conn_t;

struct mock_conn_s {
    gg_io_t             io;          /* the socket; this struct owns fd */
    gg_timer_t          gen_timer;   /* generation delays; linger limit */
    gg_timer_t          drip_timer;  /* byte mode: the next byte */
    gg_timer_t          stray_timer; /* stray test mode: when to send */
    int                 stray_send;  /* the kind it sends, 0: none */
    mock_conn_t        *prev;        /* all connections, so that exit */
    mock_conn_t        *next;        /*   can free them */
    mock_state_e        state;       /* where the connection is */

    gg_buf_t            in;          /* received, not yet parsed bytes */
    gg_buf_t            out;         /* framed bytes not yet sent */
    gg_buf_t            body;        /* the request body */
    gg_buf_t            pend;        /* response body not yet framed */
    gg_buf_t            drip;        /* byte mode: body bytes to send */
    gg_http_head_t      head;        /* request head parser */
    gg_http_chunked_t   chunked;     /* request body decoder */

    /* the current request; reset by mock_conn_reset() */
    char                method[16];  /* request method */
    char                path[64];    /* endpoint, no query; "other" when
                                        longer (only for logs/metrics) */
    int                 http11;      /* client speaks HTTP/1.1 */
    int                 keepalive;   /* reuse after this response */
    int                 status;      /* response status, for metrics */
    int                 chunked_out; /* response body is chunk-framed */
    int                 body_ended;  /* response body fully generated */
    int                 last_chunk;  /* "0\r\n\r\n" still to queue */
    int                 drop;        /* close abruptly once flushed */
    int                 dead;        /* free at the end of this entry */
    int                 gen_blocked; /* generation waits for "out" */
    int                 drip_blocked; /* byte mode waits for "out" */
    int                 in_paused;   /* EPOLLIN off: too much pipelined */
    int                 want_out;    /* EPOLLOUT needed */
    const char         *header_error; /* bad X-Mock-* header, or NULL */
    int                 anthropic_version; /* the request had an
                                        anthropic-version header */
    char                content_type[128]; /* its Content-Type, cut */

    long                ttft_ms;     /* per-request timing and faults, */
    long                token_delay_ms; /* from the flags or X-Mock-* */
    long                tokens;
    int                 fail_status;
    long                drop_after;
    long                stall_after; /* -1: never */
    long                cache_read;  /* X-Mock-Cache-Read, 0: none */
    long                cache_write; /* X-Mock-Cache-Write, 0: none */
    mock_write_mode_e   write_mode;
    long                byte_delay_us; /* byte mode: pause between bytes */
    long                stray_ms;    /* test mode: send unsolicited bytes
                                        this long after the answer; -1:
                                        never */
    int                 stray_kind;  /* what they are: mock_stray_e */
    long                think;       /* X-Mock-Think*: inline reasoning, */
    long                think_bytes; /*   see mock_req_t */
    long                think_report;

    /* generation, while "active" */
    int                 active;      /* an accepted inference request:
                                        counted in flight, owns "json" */
    json_t             *json;        /* the request body; req.model
                                        points into it */
    mock_req_t          req;         /* the digested request */
    mock_phase_e        phase;       /* next step of the stream */
    long                n;           /* tokens this answer has */
    long                tok;         /* next token index */
    long                sent;        /* content events generated */
    int                 delayed;     /* the delay before "tok" passed */
    int                 stalled;     /* X-Mock-Stall-After reached */
    const char         *finish;      /* "stop" or "length" */
};


/*
 * What the connections call above them: the request layer hands these to
 * mock_listen_start(), so that this file calls no file above it.
 */
typedef struct {
    void  (*dispatch)(mock_conn_t *c);   /* a whole request was read:
                                            answer it */
    void  (*resume)(mock_conn_t *c);     /* the generation timer fired, or
                                            output held back drained */
    void  (*release)(mock_conn_t *c, int completed); /* the request is
                                            over: 1 answered, 0 the client
                                            left, -1 exit */
} mock_conn_ops_t;


int mock_listen_start(int fd, const mock_conn_ops_t *ops);
void mock_conns_free(void);
void mock_head(mock_conn_t *c, int status, const char *type, long length,
    const char *extra);
void mock_body_add(mock_conn_t *c, const char *p, size_t len);
void mock_body_commit(mock_conn_t *c);
void mock_body_end(mock_conn_t *c, int last_chunk);
void mock_respond(mock_conn_t *c, int status, const char *type,
    const char *body, const char *extra);
void mock_respond_error(mock_conn_t *c, int status, const char *message,
    const char *type, const char *param, const char *code,
    const char *extra);
void mock_conn_fail(mock_conn_t *c);


#endif /* _MOCK_CONN_H_INCLUDED_ */
