
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-agent: holds tunnel connections to gateways and forwards the
 * requests nginx sends down them to the local runtime
 * (docs/tunnel-protocol.md).  One thread, one gg_event loop.
 *
 * The types every agent file shares, and each file's functions.  The
 * files stand in layers: a file calls only those below it, and tells
 * those above it what happened through ga_agent.on (ga_events_t).
 */


#ifndef _GA_AGENT_H_INCLUDED_
#define _GA_AGENT_H_INCLUDED_


#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "gg_buf.h"
#include "gg_event.h"
#include "gg_http_parse.h"
#include "gpugate_scram.h"
#include "gpugate_tunnel_msg.h"
#include "ga_conf.h"
#include "ga_trace.h"


#define GA_VERSION        "0.3.0"

/* the most a tunnel's output may hold before the runtime is not read */
#define GA_OUT_HIGH       (64 * 1024)
/* a request body this long or longer streams to the runtime as it comes
   (an upload), with at most GA_BODY_HIGH of it held here; a shorter one
   is held whole, so that it can be sent again on a fresh connection */
#define GA_BODY_STREAM    (256 * 1024)
#define GA_BODY_HIGH      (256 * 1024)

/* biggest request body the agent takes from nginx: 413 past it */
#define GA_REQUEST_MAX    (32 * 1024 * 1024)

/*
 * Biggest request head: 431 past it.  nginx forwards what
 * large_client_header_buffers let in (4 x 8k by default, some 33 KB with
 * the request line) with proxy_set_header's lines added; any number of
 * fields.  1 MiB leaves room for generous gateway settings.
 */
#define GA_REQUEST_HEAD_MAX  (1024 * 1024)

/* runtime response heads */
#define GA_HEAD_MAX       (64 * 1024)

#define GA_MAX_WORKERS    64

/* room for the X-Gpugate-Telemetry header line */
#define GA_TELEMETRY_HEADER  2112


typedef enum {
    GA_CONNECTING = 0,    /* TCP connect in progress */
    GA_TLS,               /* TLS handshake */
    GA_STEP1,             /* step 1 sent, reading the 401 */
    GA_STEP2,             /* step 2 sent, reading the 101 */
    GA_IDLE,              /* parked at the gateway, reading requests */
    GA_RELAY,             /* forwarding one request to the runtime */
    GA_CLOSING            /* flushing a last answer, then close */
} ga_state_e;


/*
 * A host and port resolved at start and on SIGHUP (ga_resolve_all()),
 * never while dialing or probing, where getaddrinfo() would block the
 * loop.
 */
typedef struct {
    struct sockaddr_storage  sa;     /* the first address of the name */
    socklen_t            len;        /* 0: it did not resolve */
    int                  gone;       /* the name does not resolve (not a
                                        lack of memory or a system error) */
    char                 err[128];   /* why not, from gai_strerror() */
    int                  retired;    /* a node of a gateway_nodes name
                                        that left its DNS answer: not
                                        dialed any more */
} ga_addr_t;


typedef struct ga_gateway_s  ga_gateway_t;
typedef struct ga_runtime_s  ga_runtime_t;
typedef struct ga_rconn_s    ga_rconn_t;


/* a connection to a runtime (ga_rconn.c) */
struct ga_rconn_s {
    gg_io_t              io;         /* the socket; io.data is the tunnel
                                        relaying on it, or this object
                                        while pooled */
    ga_runtime_t        *rt;         /* whose pool it belongs to */
    struct ga_rconn_s   *next;       /* pool (newest first) */
    struct ga_rconn_s   *prev;       /* pool */
    uint64_t             idle_since; /* us, when it was pooled */
    unsigned             requests;   /* requests sent on it */
    unsigned             connected:1; /* connect() has finished */
    unsigned             pooled:1;   /* in the idle pool */
    gg_defer_t           defer;      /* its free() after the batch */
};


/* the relay of one request on a tunnel (ga_relay.c) */
typedef struct {
    ga_rconn_t          *rc;         /* runtime connection, NULL if none */
    gg_buf_t             out;        /* the request for the runtime, kept
                                        whole until the answer is done so
                                        that it can be sent again */
    size_t               sent;       /* bytes of "out" written */
    unsigned             retried:1;  /* sent again once already */
    unsigned             keep:1;     /* nothing so far forbids reusing
                                        the runtime connection */
    unsigned             skipping:1; /* a refused request's body is being
                                        dropped: the refusal is answered
                                        after it, so that the tunnel
                                        stays in step and usable */
    unsigned             skip_chunked:1; /* by "skipck", not "skip" */
    gg_buf_t             in;         /* response bytes not yet handled; its
                                        head is parsed in the tunnel's
                                        ga_conn_t.head, idle while a
                                        request is relayed */
    int                  head_done;  /* head parsed and passed on */
    int                  head_req;   /* the request was HEAD: no body */
    gpugate_tunnel_frame_e  frame;   /* how the answer body ends */
    int64_t              left;       /* ..._FRAME_LENGTH: bytes to go */
    gg_http_chunked_t    chunk;      /* ..._FRAME_CHUNKED tracker */
    uint64_t             skip;       /* body bytes of a refused request
                                        still to drop (length framing) */
    gg_http_chunked_t    skipck;     /* the same for a chunked body */
    int                  refuse;     /* the status of that refusal */
    uint64_t             body_left;  /* bytes of a streamed request body
                                        still to come from the tunnel */
    ga_trace_span_t      trace;      /* the agent's span of it, when the
                                        gateway sent a traceparent */
} ga_relay_t;


/* one nginx worker process as seen through the handshake replies */
typedef struct {
    uint64_t             pid;        /* 0: entry free */
    uint64_t             generation; /* its reload generation */
    int                  conns;      /* our connections in it */
    int                  idle;       /* of which waiting for requests */
} ga_worker_t;


typedef struct ga_conn_s {
    ga_gateway_t        *gw;         /* the gateway dialed */
    struct ga_conn_s    *next;       /* in the gateway's list */
    struct ga_conn_s    *prev;
    gg_io_t              io;         /* tunnel socket */
    SSL                 *ssl;        /* NULL on plain http gateways */
    int                  state;      /* ga_state_e */
    int                  ssl_want_write; /* TLS needs the socket
                                            writable to go on reading */
    ga_worker_t         *worker;     /* where it landed, after 101 */
    gg_buf_t             in;         /* from nginx */
    gg_buf_t             out;        /* to nginx */
    gg_http_head_t      *head;       /* message being parsed: the gateway's
                                        answers in the handshake, then
                                        requests from "in" while idle and
                                        the runtime's answer (relay.in)
                                        while relaying; one parser, as
                                        the three never overlap, and none
                                        while parked with "in" empty
                                        (ga_conn_head()) */
    gg_timer_t           timer;      /* handshake deadline, idle timeout,
                                        drain */
    gpugate_scram_client_t *scram;   /* the exchange of this connection,
                                        from ga_handshake_start() to the
                                        101; NULL after */

    ga_relay_t           relay;      /* the request being relayed */
    uint64_t             up;         /* when the 101 came, us */
    uint64_t             heartbeat_us; /* between heartbeats (CRLF) while
                                        the runtime has not begun to
                                        answer, as the 101 asked; 0: none
                                        (an older gateway would take them
                                        for a broken answer) */
    unsigned             requests;   /* requests seen since the 101 */
    unsigned             models_gen; /* the runtime's model list it
                                        advertised (ga_runtime_t) */
    gg_defer_t           defer;      /* its free() after the epoll batch */
} ga_conn_t;


/*
 * The tunnels of one runtime to one gateway.  Each runtime of the agent
 * has its own (its own instance id, models and capacity at the gateway),
 * so that nginx counts every runtime's capacity apart and a request that
 * arrives on a tunnel belongs to that tunnel's runtime.
 */

struct ga_gateway_s {
    ga_url_t            *url;        /* from the configuration */
    ga_addr_t           *addr;       /* its address, in ga_agent */
    ga_runtime_t        *rt;         /* the runtime these tunnels serve */
    ga_conn_t           *conns;      /* all connections, any state */
    int                  nconns;     /* their number */
    int                  dialing;    /* connections not yet at 101 */
    int                  inflight;   /* requests of this gateway being
                                        relayed (rt->inflight counts all
                                        gateways'): its share and ping
                                        answers need it at once */
    int                  failures;   /* consecutive failures: backoff */
    int                  flaps;      /* tunnels dropped right after the
                                        101, in a row: backoff too */
    gg_timer_t           backoff;    /* armed while waiting to dial */
    unsigned             nworkers;   /* worker_processes, 0: unknown */
    uint64_t             generation; /* newest seen */
    ga_worker_t          workers[GA_MAX_WORKERS]; /* known workers */
    SSL_CTX             *ssl_ctx;    /* verifies this gateway */
    int                  reported_up; /* whether the log last said it
                                        holds tunnels: each change is
                                        logged once, with the counts */
};


/* the health and load probe of one runtime (ga_probe.c) */
typedef struct {
    gg_io_t              io;         /* the probe's socket, fd -1 if none */
    gg_timer_t           timer;      /* next probe, or this one's deadline */
    gg_buf_t             out;        /* request bytes not yet written */
    gg_buf_t             in;         /* the answer so far */
    gg_http_head_t       head;       /* its head */
    const char          *path;       /* what this probe asked for */
    int                  models;     /* it asks for the model list */
    unsigned             connected:1; /* connect() finished */
    unsigned             failing:1;  /* the last probe failed: logged once */
    unsigned             models_failing:1; /* discovery failed: logged
                                              once */
    unsigned             ticks;      /* probes since the models were read */
    unsigned             routes:1;   /* this probe asks for the route list
                                        (ga_openapi.c) */
    unsigned             routes_known:1; /* the route list was asked
                                            since the runtime came up */
    unsigned             routes_fresh:1; /* ...just now: the model list
                                            is read next, not it again */
} ga_probe_t;


/* a supervised runtime process (ga_super.c) */
typedef struct {
    int                  pid;        /* 0: not running */
    int                  restarts;   /* in a row, for the backoff */
    int                  stopping;   /* SIGTERM sent: do not restart */
    uint64_t             started;    /* us, when it was started */
    uint64_t             ready;      /* us, when it first listened */
    gg_timer_t           timer;      /* restart backoff, start deadline,
                                        stop deadline */
} ga_super_t;


struct ga_runtime_s {
    ga_rtconf_t         *conf;       /* its settings, in ga_agent.conf */
    char                 instance[33]; /* X-Gpugate-Instance of its
                                          tunnels: random per runtime */
    char                 models[1024]; /* advertised list */
    int                  models_known; /* models are configured or were
                                          read: tunnels may be dialed */
    unsigned             models_gen; /* grows when the list changes:
                                        tunnels of older lists close */
    int                  inflight;   /* requests being relayed to it */
    int                  known;      /* a probe has connected or been
                                        refused */
    int                  down;       /* nothing listens: no capacity is
                                        offered */
    ga_load_t            load;       /* its load, last read */
    uint64_t             load_at;    /* us when read; 0: never */
    int                  hit_pct;    /* prefix cache hit rate, per cent,
                                        plus 1, between the last reads
                                        that saw lookups; 0: none */
    ga_probe_t           probe;      /* health, load and models */
    ga_super_t           super;      /* the process, when supervised */

    /* kept-alive runtime connections (ga_relay.c) */
    ga_rconn_t          *pool;       /* idle ones, newest first */
    ga_rconn_t          *pool_tail;  /* the oldest */
    int                  pool_n;     /* their number */
    gg_timer_t           pool_timer; /* closes those idle too long */
    ga_addr_t            addr;       /* where it listens */
    char                 host[sizeof(((ga_rtconf_t *) 0)->url.host)
                              + sizeof(((ga_rtconf_t *) 0)->url.port) + 1];
                                     /* "host:port", the Host field of
                                        relayed requests, made at the
                                        first one instead of each */

    ga_gateway_t         links[GA_MAX_GATEWAYS]; /* one per gateway */
};


/*
 * What lower files report to the policy above them (ga_supply.c,
 * ga_runtime.c), wired by main(): calling through these keeps the files
 * in layers, each depending only on those below it.
 */
typedef struct {
    void               (*supply)(ga_gateway_t *gw);
                                     /* a tunnel closed or was handed a
                                        request: dial if a worker lacks
                                        idle ones */
    void               (*handshake_done)(ga_gateway_t *gw);
                                     /* a tunnel reached its 101 */
    void               (*handshake_failed)(ga_gateway_t *gw);
                                     /* a dial or handshake failed */
    void               (*tunnel_dropped)(ga_gateway_t *gw);
                                     /* closed right after its 101 */
    void               (*runtime_down)(ga_runtime_t *rt, int down,
                                       const char *why);
                                     /* it stopped or began listening */
    void               (*runtime_models)(ga_runtime_t *rt,
                                         const char *models);
                                     /* its model list was read */
    void               (*runtime_endpoints)(ga_runtime_t *rt,
                                            const char *endpoints);
                                     /* its route list was read */
} ga_events_t;


typedef struct {
    ga_conf_t            conf;       /* settings */
    gg_loop_t            loop;       /* the event loop */
    ga_runtime_t         runtimes[GA_MAX_RUNTIMES]; /* conf.nruntimes */
    char                *token;      /* the secret, from file or env */
    size_t               token_len;  /* its length */
    gpugate_scram_keys_t scram_keys; /* derived from the token for the
                                        gateway's salt: as secret */
    int                  inflight;   /* requests being relayed, all
                                        runtimes */
    int                  draining;   /* SIGTERM seen */
    uint64_t             drain_deadline; /* us, when draining */
    uint64_t             served;     /* requests relayed, ever */
    char                 telemetry[GA_TELEMETRY_HEADER];
                                     /* "X-Gpugate-Telemetry: ...\r\n"
                                        from the last reading, or "" */
    uint64_t             gpu_free_mb; /* the GPU with the most free
                                         memory, last reading; 0: none */
    ga_events_t          on;         /* notifications going up */
    ga_addr_t            gateway_addr[GA_MAX_GATEWAYS]; /* each gateway
                                        node's address, shared by the
                                        runtimes' links to it */
    ga_url_t            *node_url[GA_MAX_GATEWAYS]; /* the configuration
                                        line each node comes from: a
                                        "gateway", or one of the
                                        addresses of a "gateway_nodes" */
    SSL_CTX             *node_ctx[GA_MAX_GATEWAYS]; /* verifies it; NULL
                                        on plain http */
    int                  nnodes;     /* gateway nodes dialed: the
                                        "gateway" lines and the addresses
                                        of the "gateway_nodes" names */
} ga_agent_t;


/* every tunnel pool: runtime r, gateway g */
#define ga_for_each_link(r, g, gw)                                            \
    for (r = 0; r < ga_agent.conf.nruntimes; r++)                             \
        for (g = 0; g < ga_agent.nnodes                                       \
                    && ((gw) = &ga_agent.runtimes[r].links[g]); g++)


extern ga_agent_t  ga_agent;


/* ga_agent.c: the log, addresses, and what every layer reads of a
   gateway link (its share of the capacity, whether it is up, its load
   header), below the connection layer and the policy alike */
void ga_resolve_all(void);
int ga_resolve_addr(const ga_url_t *url, ga_addr_t *a, int n);
void ga_dead_io(gg_io_t *io, uint32_t revents);
void ga_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *ga_gateway_header(ga_gateway_t *gw, char *buf, size_t size);
int ga_gateway_inflight(ga_gateway_t *gw);
int ga_gateway_up(ga_gateway_t *gw);
int ga_gateway_share(ga_gateway_t *gw);

/* ga_dns.c */
int ga_dns_expand(void);
void ga_dns_reload(void);

#define GA_ERROR  0
#define GA_WARN   1
#define GA_INFO   2
#define GA_DEBUG  3


/*
 * What the connection layer (ga_conn.c) asks of the layers above it,
 * given once by main() (ga_conn_init()): the handshake (ga_handshake.c)
 * and the relay (ga_relay.c).  The int handlers return 0 to go on, 1
 * when they closed the connection, -1 to have it closed.
 */
typedef struct {
    int                (*hello)(ga_conn_t *c);
                                     /* TLS is up (or not wanted): the
                                        handshake's first request into
                                        c->out */
    int                (*step1)(ga_conn_t *c);
                                     /* bytes in c->in while at step 1:
                                        the gateway's 401 */
    int                (*step2)(ga_conn_t *c);
                                     /* ...at step 2: the 101, and
                                        GA_HANDSHAKE_UP once it is read */
    int                (*request)(ga_conn_t *c);
                                     /* bytes in c->in while idle: a
                                        request, a ping */
    int                (*skip)(ga_conn_t *c);
                                     /* drops a refused request's body
                                        from c->in: a GG_HTTP_ code */
    int                (*body)(ga_conn_t *c);
                                     /* bytes in c->in while relaying:
                                        the request body */
    int                (*body_full)(ga_conn_t *c);
                                     /* whether the body may not grow:
                                        the tunnel is not read */
    void               (*update)(ga_conn_t *c);
                                     /* the tunnel's events were set or
                                        its output drained: the runtime
                                        side follows */
    void               (*end)(ga_conn_t *c, int clean);
                                     /* the tunnel closes mid-relay */
} ga_conn_ops_t;


/* ga_conn.c */
void ga_conn_init(const ga_conn_ops_t *ops);
int ga_conn_dial(ga_gateway_t *gw);
void ga_conn_close(ga_conn_t *c, const char *why);
void ga_conn_drain(ga_conn_t *c);
void ga_conn_update(ga_conn_t *c);
int ga_conn_head(ga_conn_t *c, int response, size_t max);
int ga_conn_flush(ga_conn_t *c);
SSL_CTX *ga_tls_ctx(const ga_conf_t *cf);
/* SSL_CTX_free() and the session it kept to resume */
void ga_tls_ctx_free(SSL_CTX *ctx);

/* a closed connection: its handlers do nothing until it is freed */
#define ga_conn_dead(c)  ((c)->io.handler == ga_dead_io)

/* ga_handshake.c: 0 (or GA_HANDSHAKE_UP) on success, -1 closes */
#define GA_HANDSHAKE_UP  2
int ga_handshake_start(ga_conn_t *c);
int ga_handshake_step1(ga_conn_t *c);
int ga_handshake_step2(ga_conn_t *c);

/* ga_rconn.c */
ga_rconn_t *ga_rconn_get(ga_runtime_t *rt, int fresh, char *err,
    size_t size, int *gone);
void ga_rconn_put(ga_rconn_t *rc);
void ga_rconn_close(ga_rconn_t *rc);
void ga_rconn_pool_close(ga_runtime_t *rt);

/* idle connections kept: "runtime_keepalive", -1 meaning "capacity" */
#define ga_runtime_keepalive(rt)                                              \
    ((rt)->conf->keepalive < 0 ? (rt)->conf->capacity : (rt)->conf->keepalive)

/* ga_relay.c */
int ga_serve(ga_conn_t *c);
int ga_serve_skip(ga_conn_t *c);
void ga_relay_end(ga_conn_t *c, int clean);
int ga_relay_body(ga_conn_t *c);
int ga_relay_body_full(ga_conn_t *c);
void ga_relay_update(ga_conn_t *c);

/* ga_probe.c */
void ga_probe_now(ga_runtime_t *rt);
void ga_probe_stop(ga_runtime_t *rt);

/* ga_super.c */
int ga_super_init(void);
void ga_super_start(ga_runtime_t *rt);
void ga_super_ready(ga_runtime_t *rt);
void ga_super_stop_all(void);
int ga_super_running(void);

/* ga_supply.c */
void ga_supply_init(ga_gateway_t *gw);
void ga_supply(ga_gateway_t *gw);
void ga_supply_runtime(ga_runtime_t *rt);
void ga_supply_log(ga_gateway_t *gw, int force);
void ga_handshake_failed(ga_gateway_t *gw);
void ga_handshake_done(ga_gateway_t *gw);
void ga_tunnel_dropped(ga_gateway_t *gw);

/* ga_runtime.c */
void ga_runtime_init(ga_runtime_t *rt, ga_rtconf_t *conf, SSL_CTX **ctx);
void ga_runtime_down(ga_runtime_t *rt, int down, const char *why);
void ga_runtime_models(ga_runtime_t *rt, const char *models);
void ga_runtime_endpoints(ga_runtime_t *rt, const char *endpoints);
void ga_close_idle(ga_runtime_t *rt, int stale_only);


#endif /* _GA_AGENT_H_INCLUDED_ */
