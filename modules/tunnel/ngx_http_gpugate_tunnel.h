
/*
 * Copyright (C) gpugate authors
 *
 * Reverse tunnel: agents on GPU hosts dial in, authenticate with
 * SCRAM-SHA-256 and are parked; an "upstream { gpugate_tunnel; }" block
 * hands the parked connections out like cached keepalive connections.
 * docs/tunnel-protocol.md is the wire contract.
 */


#ifndef _NGX_HTTP_GPUGATE_TUNNEL_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_TUNNEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "gpugate_tunnel_proto.h"
#include "gpugate_scram.h"
#include "ngx_http_gpugate_pg.h"
#include "ngx_http_gpugate_tunnel_api.h"
#include "ngx_http_gpugate_tunnel_affinity.h"


/* worker processes tracked in shared memory (old and new generations) */
#define NGX_HTTP_GPUGATE_TUNNEL_PROCS      64

#define NGX_HTTP_GPUGATE_TUNNEL_NAME_MAX   64

/* most agents one upstream choice looks at, and tries per request */
#define NGX_HTTP_GPUGATE_TUNNEL_TRIES      4

/*
 * Between the agent's heartbeats (CRLF) on a busy tunnel whose runtime
 * has not begun to answer: three per ping_timeout, the silence after which
 * such a tunnel is given up, as an idle one that does not answer a ping.
 */
#define ngx_http_gpugate_tunnel_heartbeat(conf)  ((conf)->ping_timeout / 3)

/* a ping's answer: status line, X-Gpugate-Inflight, -Load, -Telemetry */
#define NGX_HTTP_GPUGATE_TUNNEL_PONG_MAX   (GPUGATE_TUNNEL_TELEMETRY_MAX + 512)

/* client addresses whose handshake rate is tracked, direct-mapped */
#define NGX_HTTP_GPUGATE_TUNNEL_RATES      1024

/* a region's name: X-Gpugate-Region, "region =" of the agent */
#define NGX_HTTP_GPUGATE_REGION_MAX        32

/* request priorities: 0 (lowest) .. 9; a key without one gets 5 */
#define NGX_HTTP_GPUGATE_PRIO_MAX          9
#define NGX_HTTP_GPUGATE_PRIO_DEFAULT      5


/* per agent, per worker process: what that worker holds */
typedef struct {
    ngx_atomic_t      idle;        /* parked and free to hand out */
    ngx_atomic_t      busy;        /* carrying a request */
    ngx_atomic_t      conns;       /* all of its connections, any state;
                                      the agent slot is free when every
                                      worker's count is 0 */
} ngx_http_gpugate_tunnel_count_t;


/* one connected agent process (name + instance) */
typedef struct {
    ngx_uint_t        used;        /* 1 while any worker holds a
                                      connection of it; changed under the
                                      slab pool's lock */
    int64_t           agent_id;    /* agents.id in PostgreSQL */
    u_char            name[NGX_HTTP_GPUGATE_TUNNEL_NAME_MAX];
                                   /* agent name, the SCRAM user */
    size_t            name_len;    /* its length */
    u_char            instance[GPUGATE_TUNNEL_INSTANCE_MAX];
                                   /* random per agent process, so two
                                      processes sharing a name are told
                                      apart */
    size_t            instance_len; /* its length */
    u_char            models[GPUGATE_TUNNEL_MODELS_MAX];
                                   /* advertised models, as sent;
                                      written under the lock, read
                                      without it (a torn read only
                                      misroutes one request) */
    size_t            models_len;  /* its length; 0: any model */
    ngx_atomic_t      endpoints;   /* X-Gpugate-Endpoints: the router's
                                      endpoint kinds its runtime serves
                                      (gpugate_tunnel_endpoint_served());
                                      0: every one (no header) */
    ngx_atomic_t      capacity;    /* requests the agent takes at once */
    ngx_atomic_t      inflight;    /* requests on it, all workers */
    ngx_atomic_t      requests;    /* requests handed to it, ever */
    ngx_atomic_t      chosen;      /* shm->choices when the balancer last
                                      chose it: the least recently chosen
                                      wins a tie, so a newcomer does not
                                      take all traffic until its lifetime
                                      count catches up */
    ngx_atomic_t      heartbeats;  /* 1 once it sent a heartbeat or said
                                      at the handshake that it beats
                                      (X-Gpugate-Heartbeat): a busy
                                      tunnel of it that stays silent is
                                      given up (an agent that never does
                                      may be an older one) */
    time_t            reload_left; /* when a worker shutting down (reload)
                                      closed its last connection: requests
                                      wait for it to supply the new
                                      workers; 0: not so */
    ngx_atomic_t      queue;       /* X-Gpugate-Load: requests waiting
                                      in its runtime; 0 if not told */
    ngx_atomic_t      gpu_free_mb; /* X-Gpugate-Load: free GPU memory;
                                      0 if not told.  Both break ties
                                      of equal in-flight counts */
    ngx_atomic_t      kv_pct;      /* X-Gpugate-Load: the runtime's KV
                                      cache in use, per cent, plus 1;
                                      0 if not told.  Prefix affinity
                                      passes over a fuller one */
    ngx_atomic_t      hit_pct;     /* X-Gpugate-Load: its prefix cache
                                      hit rate, per cent, plus 1; 0 if
                                      not told (status and metrics) */
    ngx_atomic_t      revoked;     /* the agent was revoked (or must
                                      verify again): no new request, and
                                      each worker closes its connections
                                      when it sees them; a new handshake
                                      takes another slot */
    ngx_atomic_t      drained;     /* agents.drained_at is set (sql/006):
                                      its requests finish, the balancer
                                      sends it no new one; from the
                                      handshake and each re-check */
    time_t            since;       /* first connection of this process */
    u_char            region[NGX_HTTP_GPUGATE_REGION_MAX];
                                   /* X-Gpugate-Region at the handshake;
                                      written under the lock */
    size_t            region_len;  /* its length; 0: no region */
    ngx_atomic_t      ttft;        /* moving average of the time to the
                                      answer's first byte, ms (weight
                                      1/8 per request; updated by every
                                      worker without a lock: a lost
                                      sample only slows it) */
    ngx_atomic_t      errors;      /* moving average of failures, in
                                      thousandths (same weight) */
    ngx_atomic_t      fails;       /* failures in a row */
    ngx_atomic_t      cool_until;  /* ngx_current_msec (monotonic, the
                                      same in every worker) until which
                                      it takes nothing; after it, one
                                      request at a time until one
                                      succeeds; 0: not cooled */
    ngx_atomic_t      cooldowns;   /* times it was cooled down */
    time_t            telemetry_at; /* when "telemetry" was reported;
                                      0: never */
    gpugate_tunnel_telemetry_t       telemetry;
                                   /* X-Gpugate-Telemetry: the host and
                                      GPUs as the agent last saw them;
                                      copied under the slab pool's lock,
                                      for the status page */
    ngx_http_gpugate_tunnel_count_t  count[NGX_HTTP_GPUGATE_TUNNEL_PROCS];
                                   /* indexed by worker process slot */
} ngx_http_gpugate_tunnel_agent_t;


/* a worker process known to the zone */
typedef struct {
    ngx_pid_t         pid;         /* 0: slot free */
    ngx_uint_t        generation;  /* the reload it belongs to */
    ngx_atomic_t      waiting;     /* requests in its wait queue */
} ngx_http_gpugate_tunnel_proc_t;


/*
 * A verifier PostgreSQL gave lately, so that a known agent can handshake
 * while PostgreSQL is down (for the auth cache's ttl + stale after its
 * last confirmation).  Written and read under the slab pool's lock.
 */
typedef struct {
    time_t            verified;    /* last confirmed by PostgreSQL;
                                      0: entry free */
    int64_t           agent_id;    /* agents.id */
    u_char            name[NGX_HTTP_GPUGATE_TUNNEL_NAME_MAX];
                                   /* agent name */
    size_t            name_len;    /* its length */
    u_char            salt[GPUGATE_SCRAM_SALT_MAX];
                                   /* the verifier's salt */
    size_t            salt_len;    /* its length */
    ngx_uint_t        iterations;  /* the verifier's iteration count */
    u_char            stored_key[GPUGATE_SCRAM_KEY_LEN];
                                   /* StoredKey */
    u_char            server_key[GPUGATE_SCRAM_KEY_LEN];
                                   /* ServerKey */
    ngx_uint_t        any_model;   /* allowed_models is NULL */
    size_t            allowed_len; /* length of allowed */
    u_char            allowed[GPUGATE_TUNNEL_MODELS_MAX];
                                   /* allowed_models, comma-joined */
    ngx_uint_t        drained;     /* drained when last confirmed: a
                                      handshake while PostgreSQL is down
                                      keeps it */
} ngx_http_gpugate_tunnel_verifier_t;


/* step-1 requests of one client address: a leaky bucket */
typedef struct {
    u_char            addr[16];    /* IPv4 or IPv6 address bytes */
    size_t            addr_len;    /* 4 or 16; 0: entry free */
    ngx_msec_t        last;        /* last request counted */
    ngx_uint_t        excess;      /* requests above the rate, in
                                      thousandths */
} ngx_http_gpugate_tunnel_rate_t;


typedef struct {
    ngx_atomic_t      generation;  /* grows with every reload */
    ngx_atomic_t      choices;     /* agents chosen by the balancer so
                                      far, all workers: the clock of
                                      "chosen" */
    ngx_atomic_t      spills;      /* requests served outside the
                                      client's region (no agent of it
                                      had room) */
    ngx_atomic_t      cooled;      /* agents cooled down, ever */
    ngx_atomic_t      bus_msgs;    /* "agent <name>" and "drain
                                      <name>" messages the workers got,
                                      ever: a handshake that read the
                                      verifier and drained state before
                                      one came holds what may be older
                                      than the re-check the message
                                      made, and asks again */
    u_char            secret[32];  /* key of the fake salts for unknown
                                      agents; random once, kept across
                                      reloads so salts stay stable */
    ngx_http_gpugate_tunnel_proc_t   procs[NGX_HTTP_GPUGATE_TUNNEL_PROCS];
                                   /* worker processes */
    ngx_http_gpugate_tunnel_verifier_t  *verifiers;
                                   /* "verifiers=" entries, in the zone */
    ngx_uint_t        nverifiers;  /* their number */
    ngx_http_gpugate_tunnel_rate_t      *rates;
                                   /* RATES entries, in the zone */
    ngx_uint_t        nagents;     /* agent slots that fit the zone */
    ngx_atomic_t      high;        /* one past the highest slot ever
                                      used: a 4 MB zone has ~1,300
                                      slots, and picking an agent for a
                                      request scans no further */
    ngx_http_gpugate_tunnel_agent_t  agents[1];
                                   /* nagents slots */
} ngx_http_gpugate_tunnel_shm_t;


/* "gpugate_tunnel_accept" location settings */
typedef struct {
    ngx_flag_t        enable;      /* agents are accepted here */
    ngx_msec_t        ping;        /* idle time before a ping */
    ngx_msec_t        ping_timeout; /* wait for the ping's answer */
    ngx_msec_t        step_timeout; /* between handshake steps */
    ngx_uint_t        rate;        /* step-1 requests per second and
                                      client address; 0: no limit */
    ngx_uint_t        burst;       /* requests above the rate let
                                      through at once */
    ngx_http_complex_value_t  *region; /* "gpugate_region": the client's
                                      region; NULL: none */
    ngx_array_t      *region_order; /* "gpugate_region_order": of
                                      ngx_str_t, the regions tried after
                                      the client's, in order; NULL:
                                      none */
} ngx_http_gpugate_tunnel_loc_conf_t;


/* "gpugate_tunnel" in an upstream block */
typedef struct {
    ngx_http_upstream_srv_conf_t  *upstream; /* the block */
    ngx_uint_t        queue;       /* waiting requests per worker */
    ngx_msec_t        queue_timeout; /* how long one waits */
    ngx_msec_t        aging;       /* "aging=": the wait that raises a
                                      request's priority by one */
    ngx_msec_t        ttft_step;   /* "ttft_step=": this much average
                                      TTFT weighs as one request in
                                      flight */
    ngx_uint_t        error_weight; /* "error_weight=": in-flight
                                      requests an agent failing every
                                      request weighs */
    ngx_uint_t        failures;    /* "failures=": failures in a row
                                      that cool an agent down; 0: never */
    ngx_msec_t        cooldown;    /* "cooldown=": how long */
    ngx_http_gpugate_affinity_conf_t  *affinity;
                                   /* "gpugate_prefix_affinity"; NULL:
                                      the choice is by load alone */
} ngx_http_gpugate_tunnel_srv_conf_t;


typedef struct {
    ngx_shm_zone_t   *zone;        /* agent registry */
    ssize_t           zone_size;   /* "gpugate_tunnel_zone" */
    ngx_array_t       upstreams;   /* of ..._tunnel_srv_conf_t * */
    ngx_flag_t        accept;      /* some location accepts agents */
    ngx_uint_t        verifiers;   /* "verifiers=": agents whose
                                      verifier is kept for outages */
    ngx_msec_t        recheck;     /* "recheck=": how often a worker asks
                                      PostgreSQL whether the agents it
                                      holds are still valid */
} ngx_http_gpugate_tunnel_main_conf_t;


typedef enum {
    NGX_HTTP_GPUGATE_TC_DETACHING = 0, /* 101 being written */
    NGX_HTTP_GPUGATE_TC_IDLE,          /* parked, in the idle list */
    NGX_HTTP_GPUGATE_TC_PING,          /* a ping is on the wire */
    NGX_HTTP_GPUGATE_TC_RESERVED,      /* promised to a waiting request */
    NGX_HTTP_GPUGATE_TC_BUSY           /* owned by an upstream request */
} ngx_http_gpugate_tc_state_e;


typedef struct ngx_http_gpugate_tunnel_ctx_s  ngx_http_gpugate_tunnel_ctx_t;


/*
 * A tunnel connection after 101.  Allocated with ngx_alloc and freed when
 * the connection closes; the connection itself (and its TLS state and
 * accept-time pool) is ours except while BUSY, when the upstream module
 * uses it and hands it back through peer.free.
 */
typedef struct {
    ngx_connection_t                *connection; /* the agent's socket */
    ngx_uint_t                       agent;  /* slot in the zone */
    ngx_uint_t                       state;  /* ..._tc_state_e */
    ngx_queue_t                      queue;  /* in the worker's idle list
                                                of the agent while IDLE */
    ngx_event_t                      timer;  /* next ping, or the ping's
                                                deadline, or the write of
                                                the 101 */
    ngx_log_t                       *log;    /* the accept-time log,
                                                restored when the upstream
                                                gives the connection back */
    ngx_http_gpugate_tunnel_loc_conf_t *conf; /* ping settings */
    ngx_http_gpugate_tunnel_ctx_t   *reserved; /* the waiting request it is
                                                  promised to */
    ngx_http_request_t              *request; /* the handshake request,
                                                 until it is freed */
    ngx_queue_t                      all;    /* in the worker's list of
                                                tunnel connections */
    u_char                          *out;    /* bytes still to write: 101
                                                or ping */
    size_t                           out_len; /* their number */
    size_t                           in_len; /* ping answer bytes read */
    u_char                          *in;     /* ping answer head, allocated
                                                (PONG_MAX) while a ping is
                                                out: parked connections
                                                hold no buffer */
    u_char                           head[512]; /* the 101 response */
} ngx_http_gpugate_tunnel_conn_t;


/* per request that goes to a tunnel upstream */
struct ngx_http_gpugate_tunnel_ctx_s {
    ngx_http_request_t              *request; /* owner */
    ngx_http_gpugate_tunnel_srv_conf_t *conf; /* the upstream */
    ngx_str_t                        model;  /* runtime model name; empty:
                                                any agent */
    ngx_int_t                        endpoint; /* the router's endpoint
                                                kind, -1: a path it does
                                                not route (any agent) */
    ngx_http_gpugate_tunnel_conn_t  *tc;     /* reserved connection */
    ngx_queue_t                      queue;  /* in the wait queue */
    ngx_event_t                      timer;  /* queue deadline */
    ngx_event_t                      resume; /* posted to run the phases
                                                again outside the caller
                                                that freed a connection */
    ngx_msec_t                       queued; /* when it began to wait */
    ngx_uint_t                       tried[NGX_HTTP_GPUGATE_TUNNEL_TRIES];
                                             /* agent slots already tried */
    ngx_uint_t                       ntried; /* their number */
    ngx_http_gpugate_tunnel_keys_t   keys;   /* prefix and session, from
                                                the router */
    ngx_http_gpugate_tunnel_conn_t  *current; /* connection handed out */
    ngx_recv_pt                      recv;   /* its own recv while the
                                                heartbeats before the
                                                answer are dropped; NULL
                                                once the answer began */
    ngx_event_t                      watch;  /* gives up on the agent when
                                                it stays silent */
    ngx_msec_t                       heard;  /* when the agent last sent a
                                                byte for this request */
    ngx_int_t                        priority; /* 0..9, as the key and
                                                X-Gpugate-Priority set
                                                it */
    ngx_msec_int_t                   rank;   /* the queue's order: when
                                                it began to wait less
                                                "aging" per priority
                                                level, smallest first */
    ngx_str_t                        region; /* the client's region (the
                                                pinned one if pinned);
                                                "": none */
    ngx_array_t                     *order;  /* neighbours to try after
                                                "region" (location's
                                                gpugate_region_order) */
    ngx_str_t                        served; /* region of the agent
                                                handed out: $gpugate_
                                                region */
    ngx_msec_t                       handed; /* when the connection was
                                                handed out (for TTFT) */
    ngx_str_t                        bad;    /* why the request's priority
                                                or region header is
                                                refused; "": fine */
    unsigned                         pinned:1; /* no agent outside
                                                  "region" */
    unsigned                         classified:1; /* priority and
                                                      region read */
    unsigned                         answered:1; /* the answer's first
                                                    byte came */
    unsigned                         waiting:1; /* in the wait queue */
    unsigned                         checked:1; /* the phase handler ran */
};


extern ngx_module_t  ngx_http_gpugate_tunnel_module;


/* the agent registry in the zone (..._tunnel_registry.c) */

ngx_int_t ngx_http_gpugate_tunnel_registry_init(ngx_cycle_t *cycle,
    ngx_http_gpugate_tunnel_main_conf_t *tmcf);
void ngx_http_gpugate_tunnel_registry_exit(ngx_cycle_t *cycle);
ngx_http_gpugate_tunnel_shm_t *ngx_http_gpugate_tunnel_shm(void);
ngx_uint_t ngx_http_gpugate_tunnel_generation(void);

/*
 * A handshaken connection of this worker counts in the slot of its
 * agent instance, a new one if needed; the slot index, or NGX_ERROR when
 * the zone is full.  Release undoes it; the last connection frees the
 * slot.
 */
ngx_int_t ngx_http_gpugate_tunnel_register(ngx_str_t *name,
    int64_t agent_id, ngx_str_t *instance, ngx_str_t *models,
    ngx_uint_t capacity);
void ngx_http_gpugate_tunnel_release(ngx_uint_t agent);

/*
 * The endpoints agent instance "name"/"instance" serves, as its last
 * handshake said (after _attach(): the slot exists).
 */
void ngx_http_gpugate_tunnel_set_endpoints(ngx_str_t *name,
    ngx_str_t *instance, uint32_t endpoints);

/* what the agent last reported of its load (handshake or ping) */
void ngx_http_gpugate_tunnel_set_load(ngx_http_gpugate_tunnel_agent_t *a,
    gpugate_tunnel_load_t *load);

/* what the agent last reported of its host and GPUs */
void ngx_http_gpugate_tunnel_set_telemetry(
    ngx_http_gpugate_tunnel_agent_t *a, gpugate_tunnel_telemetry_t *t);

/* the zone's lock, for readers of whole agent slots (status) */
ngx_slab_pool_t *ngx_http_gpugate_tunnel_shpool(void);

/* the agent slot of a tunnel connection */
ngx_http_gpugate_tunnel_agent_t *ngx_http_gpugate_tunnel_agent(
    ngx_http_gpugate_tunnel_conn_t *tc);

/* state changes keep the shared counts right */
void ngx_http_gpugate_tunnel_set_state(ngx_http_gpugate_tunnel_conn_t *tc,
    ngx_uint_t state);

/* this worker's wait queue grew or shrank (for metrics) */
void ngx_http_gpugate_tunnel_waiting(ngx_int_t delta);

/* marks the slots of "name" (name NULL: of "agent_id") revoked */
void ngx_http_gpugate_tunnel_revoke_slots(ngx_str_t *name,
    int64_t agent_id);

/* one more request in flight on the agent unless it is at capacity */
ngx_int_t ngx_http_gpugate_tunnel_take(ngx_http_gpugate_tunnel_agent_t *a);

/* a tunnel pool by name (us NULL) or by upstream block (name NULL) */
ngx_http_gpugate_tunnel_srv_conf_t *ngx_http_gpugate_tunnel_find(
    ngx_str_t *name, ngx_http_upstream_srv_conf_t *us);


/* this worker's parked connections (..._tunnel_conn.c) */

ngx_int_t ngx_http_gpugate_tunnel_init_worker(ngx_cycle_t *cycle,
    ngx_http_gpugate_tunnel_main_conf_t *tmcf);
void ngx_http_gpugate_tunnel_exit_worker(ngx_cycle_t *cycle);

/* a connection that finished its handshake joins the pool */
ngx_int_t ngx_http_gpugate_tunnel_attach(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_loc_conf_t *conf, ngx_str_t *name,
    int64_t agent_id, ngx_str_t *instance, ngx_str_t *models,
    ngx_uint_t capacity, gpugate_tunnel_load_t *load,
    gpugate_tunnel_telemetry_t *telemetry, ngx_str_t *head,
    ngx_uint_t heartbeats);

/* the worker's idle connections of agent slot "i" (a queue of tc) */
ngx_queue_t *ngx_http_gpugate_tunnel_idle(ngx_uint_t i);

/* back from an upstream request, or a ping answered: park or hand on */
void ngx_http_gpugate_tunnel_park(ngx_http_gpugate_tunnel_conn_t *tc);

/*
 * What the connections tell the balancer above them (..._tunnel_peer.c):
 * it sets these at the worker's start (ngx_http_gpugate_tunnel_queue_
 * init()), so that the connection code calls up through pointers and does
 * not depend on the balancer's file.
 */
typedef struct {
    ngx_int_t  (*offer)(ngx_http_gpugate_tunnel_conn_t *tc);
                                  /* an idle connection for a waiting
                                     request; NGX_OK if one took it */
    void       (*unreserve)(ngx_http_gpugate_tunnel_ctx_t *ctx);
                                  /* the connection promised to "ctx"
                                     closed: it must choose again */
} ngx_http_gpugate_tunnel_conn_on_t;

extern ngx_http_gpugate_tunnel_conn_on_t  ngx_http_gpugate_tunnel_conn_on;

/* closes a connection we own and forgets it */
void ngx_http_gpugate_tunnel_close(ngx_http_gpugate_tunnel_conn_t *tc);

/*
 * Marks the agent slots named "name" (or, name NULL, of "agent_id")
 * revoked and closes this worker's connections of revoked slots; returns
 * how many it closed or cut.
 */
ngx_uint_t ngx_http_gpugate_tunnel_revoke(ngx_str_t *name, int64_t agent_id);

/* this worker's distinct agent ids, at most "n" of them */
ngx_uint_t ngx_http_gpugate_tunnel_held(int64_t *ids, ngx_uint_t n);


/* the balancer's choice (..._tunnel_pick.c), below the wait queue */

/*
 * The idle connection of the best suitable agent in this worker, its
 * place on the agent taken; NULL if none.  "exists" tells whether any
 * suitable agent is connected, or coming back after a reload.
 */
ngx_http_gpugate_tunnel_conn_t *ngx_http_gpugate_tunnel_pick(
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_uint_t *exists);

/*
 * The agent in slot "slot" takes the request, its place already taken
 * (by _pick(), or by an offer to a waiting request): to the back of the
 * ties, and remembered for the request's affinity keys.
 */
void ngx_http_gpugate_tunnel_chosen(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_uint_t slot);


/* prefix and session affinity (..._tunnel_affinity.c), below the choice */

/*
 * The slot the balancer takes instead of "best" (the least loaded,
 * "best_load" in flight), or "best"; and what was chosen, remembered for
 * the next request with these keys.
 */
ngx_uint_t ngx_http_gpugate_tunnel_affinity_pick(
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_uint_t best,
    ngx_atomic_uint_t best_load);
void ngx_http_gpugate_tunnel_affinity_record(
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_uint_t slot);

/* the runtimes' cache figures and the pools' affinity counters, for the
   Prometheus page; a pool's settings and counters for /status */
void ngx_http_gpugate_tunnel_affinity_prometheus(
    ngx_http_gpugate_out_t *out, ngx_http_gpugate_tunnel_shm_t *shm);
u_char *ngx_http_gpugate_tunnel_affinity_json(u_char *p,
    ngx_http_gpugate_affinity_conf_t *ac);

/* what a pool's "affinity" member in /status takes at most */
#define NGX_HTTP_GPUGATE_AFFINITY_JSON  384


/* the balancer and the wait queue (..._tunnel_peer.c) */

ngx_int_t ngx_http_gpugate_tunnel_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
ngx_int_t ngx_http_gpugate_tunnel_wait_handler(ngx_http_request_t *r);

/* the worker's wait queue, and the balancer's hooks in the connections */
void ngx_http_gpugate_tunnel_queue_init(void);


/*
 * Priorities and regions of requests, the agents' scores and cooldown
 * (ngx_http_gpugate_tunnel_score.c, ngx_http_gpugate_tunnel_prio.c)
 */

/* the request's priority and region, once; NGX_ERROR: out of memory */
ngx_int_t ngx_http_gpugate_tunnel_classify(ngx_http_gpugate_tunnel_ctx_t *ctx);

/* puts a waiting request into the queue by its rank */
void ngx_http_gpugate_tunnel_enqueue(ngx_queue_t *waiting,
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_msec_t aging);

/* 0: the client's region, 1..n: its neighbours in order, n + 1: others;
   -1: not allowed (pinned elsewhere) */
ngx_int_t ngx_http_gpugate_tunnel_region_rank(
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_http_gpugate_tunnel_agent_t *a);

/* 1 if the agent in slot "i" (connected or not) may take this request:
   not tried yet, serves the model and the endpoint, not drained, of a
   region the request may use */
ngx_int_t ngx_http_gpugate_tunnel_suits(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_uint_t i, ngx_http_gpugate_tunnel_agent_t *a);

/* the agent's load as the balancer weighs it: smaller is better */
ngx_uint_t ngx_http_gpugate_tunnel_score(ngx_http_gpugate_tunnel_srv_conf_t
    *conf, ngx_http_gpugate_tunnel_agent_t *a);

/* requests the agent may take at once now: 0 cooled down, 1 on trial
   (_registry.c, beside _take()) */
ngx_uint_t ngx_http_gpugate_tunnel_room(ngx_http_gpugate_tunnel_agent_t *a);

/* a place on a cooled agent up to its capacity: the last resort */
ngx_int_t ngx_http_gpugate_tunnel_take_cooled(
    ngx_http_gpugate_tunnel_agent_t *a);

/* a request was handed to, answered by, or ended on an agent */
void ngx_http_gpugate_tunnel_handed(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_tunnel_agent_t *a);
void ngx_http_gpugate_tunnel_first_byte(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_tunnel_agent_t *a);
void ngx_http_gpugate_tunnel_outcome(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_tunnel_agent_t *a, ngx_uint_t failed);

/* the agent's region, as its handshake said */
void ngx_http_gpugate_tunnel_set_region(ngx_str_t *name,
    ngx_str_t *instance, ngx_str_t *region);

/* the status page's part: an agent's, a pool's (at most this long) */
#define NGX_HTTP_GPUGATE_TUNNEL_SCORE_JSON  512
u_char *ngx_http_gpugate_tunnel_score_json(u_char *p,
    ngx_http_gpugate_tunnel_agent_t *a);
u_char *ngx_http_gpugate_tunnel_pool_json(u_char *p,
    ngx_http_gpugate_tunnel_srv_conf_t *conf);

/* the Prometheus page's part: regions, spills, cooldowns, averages */
ngx_int_t ngx_http_gpugate_tunnel_score_prom(ngx_http_gpugate_out_t *out);

/* "gpugate_tunnel" parameters of this file; NGX_DECLINED: not one */
ngx_int_t ngx_http_gpugate_tunnel_score_param(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_http_gpugate_tunnel_srv_conf_t *tscf);

/* 400 for ctx->bad; the no-capacity reason naming a pinned region */
ngx_int_t ngx_http_gpugate_tunnel_bad_request(ngx_http_request_t *r,
    ngx_http_gpugate_tunnel_ctx_t *ctx);
const char *ngx_http_gpugate_tunnel_region_why(
    ngx_http_gpugate_tunnel_ctx_t *ctx, const char *why);

/* the directives and variables of priorities and regions */
char *ngx_http_gpugate_tunnel_region_conf(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_gpugate_tunnel_region_order(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_gpugate_tunnel_add_variables(ngx_conf_t *cf);


/* "gpugate_tunnel_status" (ngx_http_gpugate_tunnel_status.c) */
ngx_int_t ngx_http_gpugate_tunnel_status_handler(ngx_http_request_t *r);


/* revocation by message (ngx_http_gpugate_tunnel_verifier.c) */
/*
 * "agent <name>" was published on the invalidation channel (revoked, or
 * its allowed models changed): its tunnel connections in this worker are
 * closed, so that it handshakes again and PostgreSQL decides.  Returns
 * the number of connections closed.  Given to the auth module, which
 * carries the channel, by ngx_http_gpugate_auth_on_agent().
 */
ngx_uint_t ngx_http_gpugate_tunnel_invalidate(ngx_str_t *name);

/* asks PostgreSQL about this worker's agents now (or after the query out) */
void ngx_http_gpugate_tunnel_recheck_now(void);

/*
 * The same, when an "agent" or "drain" message came since the zone's
 * bus_msgs was "msgs": a handshake read its agent's state at step 1, and
 * the agent is attached in this worker now.
 */
void ngx_http_gpugate_tunnel_recheck_since(ngx_atomic_uint_t msgs);


/* draining (ngx_http_gpugate_tunnel_drain.c, sql/006_drain.sql) */

/*
 * PostgreSQL says agent "agent_id" is drained (or not): its slots and its
 * cached verifier follow.
 */
void ngx_http_gpugate_tunnel_drain_set(int64_t agent_id, ngx_uint_t drained);

/*
 * "drain <name>" was published: this worker asks PostgreSQL about its
 * agents at once.  Given to the auth module by
 * ngx_http_gpugate_auth_on_drain(); returns 0.
 */
ngx_uint_t ngx_http_gpugate_tunnel_drain_message(ngx_str_t *name);


/* the handshake location (..._tunnel_module.c, ..._handshake.c) */
ngx_int_t ngx_http_gpugate_tunnel_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_gpugate_tunnel_handshake_init(ngx_cycle_t *cycle);
void ngx_http_gpugate_tunnel_handshake_exit(void);


#endif /* _NGX_HTTP_GPUGATE_TUNNEL_H_INCLUDED_ */
