
/*
 * Copyright (C) gpugate authors
 *
 * Header values of the tunnel handshake (docs/tunnel-protocol.md), parsed
 * without nginx so that the gateway and the agent read them with the same
 * code, and so that the parsers have their own unit tests and fuzz target.
 * Nothing here allocates; results point into the input.
 */


#ifndef _GPUGATE_TUNNEL_PROTO_H_INCLUDED_
#define _GPUGATE_TUNNEL_PROTO_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define GPUGATE_TUNNEL_UPGRADE        "gpugate-tunnel/1"
#define GPUGATE_TUNNEL_SID_LEN        32
#define GPUGATE_TUNNEL_INSTANCE_MIN   16
#define GPUGATE_TUNNEL_INSTANCE_MAX   32
#define GPUGATE_TUNNEL_CAPACITY_MAX   65535
#define GPUGATE_TUNNEL_MODELS_MAX     1024   /* X-Gpugate-Models, bytes */
#define GPUGATE_TUNNEL_MODEL_MAX      256    /* one model id, bytes */


typedef struct {
    const char  *sid;         /* NULL when absent */
    size_t       sid_len;
    const char  *data;        /* base64, NULL when absent */
    size_t       data_len;
} gpugate_tunnel_auth_t;


typedef struct {
    unsigned     slot;        /* nginx worker number */
    unsigned     workers;     /* worker_processes */
    uint64_t     pid;         /* the worker's process id */
    uint64_t     generation;  /* grows with every reload */
    uint64_t     heartbeat;   /* ms between the agent's heartbeats while
                                 its runtime has not begun to answer;
                                 0: the gateway wants none */
} gpugate_tunnel_worker_t;


/*
 * "SCRAM-SHA-256 sid=..., data=..." (Authorization, WWW-Authenticate) when
 * "scheme" is set, or "sid=..., data=..." (Authentication-Info) when not.
 * Parameters in any order, separated by "," and optional spaces; unknown
 * parameters are skipped, a repeated one is refused.  A sid must be
 * GPUGATE_TUNNEL_SID_LEN lower-case hex characters; data must be non-empty
 * base64 characters.  Returns 0 or -1.
 */
int gpugate_tunnel_parse_auth(const char *p, size_t len, int scheme,
    gpugate_tunnel_auth_t *out);

/* "slot=0, pid=123, workers=4, generation=7"; all four needed; 0 or -1 */
int gpugate_tunnel_parse_worker(const char *p, size_t len,
    gpugate_tunnel_worker_t *out);

/* X-Gpugate-Instance: 16..32 hex characters; 0 or -1 */
int gpugate_tunnel_check_instance(const char *p, size_t len);

/* X-Gpugate-Capacity: decimal 1..65535 without sign or leading zero */
int gpugate_tunnel_parse_capacity(const char *p, size_t len,
    unsigned *capacity);

/*
 * X-Gpugate-Models: ids separated by "," and optional spaces, each 1..256
 * printable ASCII characters other than "," and space, at most
 * GPUGATE_TUNNEL_MODELS_MAX bytes in all; empty means any model.  Returns
 * the number of ids, or -1.
 */
int gpugate_tunnel_check_models(const char *p, size_t len);

typedef struct {
    uint64_t     queue;       /* requests waiting in the runtime */
    uint64_t     gpu_free_mb; /* free GPU memory, MiB */
    uint64_t     capacity;    /* requests this gateway may hand the agent
                                 at once now: its share of the agent's
                                 capacity when the agent serves several
                                 gateways (0..65535) */
    uint64_t     kv_pct;      /* KV cache in use, percent (0..100) */
    uint64_t     hit_pct;     /* prefix cache hits, percent of the
                                 prompt tokens (blocks) looked up */
    unsigned     has_queue:1; /* "queue" was given */
    unsigned     has_gpu:1;   /* "gpu_free_mb" was given */
    unsigned     has_capacity:1; /* "capacity" was given */
    unsigned     has_kv:1;    /* "kv_pct" was given */
    unsigned     has_hit:1;   /* "hit_pct" was given */
} gpugate_tunnel_load_t;


/*
 * X-Gpugate-Load: "queue=<n>, gpu_free_mb=<n>, capacity=<n>, kv_pct=<n>,
 * hit_pct=<n>", any of them, in any order; decimal without sign or
 * leading zero, up to 2^32-1 (capacity up to GPUGATE_TUNNEL_CAPACITY_MAX,
 * 0 allowed; the percentages up to 100); keys this
 * version does not know are skipped, a repeated one is refused.  0 or -1.
 */
int gpugate_tunnel_parse_load(const char *p, size_t len,
    gpugate_tunnel_load_t *out);

/*
 * Whether "model" is one of the ids in a list that passed
 * gpugate_tunnel_check_models(); an empty list serves any model.
 */
int gpugate_tunnel_models_has(const char *list, size_t list_len,
    const char *model, size_t model_len);


#define GPUGATE_TUNNEL_ENDPOINTS_MAX  512    /* X-Gpugate-Endpoints, bytes */
#define GPUGATE_TUNNEL_ENDPOINT_MAX   32     /* one endpoint name, bytes */

/*
 * A parsed X-Gpugate-Endpoints: bit k for the router's endpoint kind k
 * (gpugate_oai_kind_e), and GPUGATE_TUNNEL_ENDPOINTS_TOLD once the header
 * came; 0 (no header) serves every endpoint.
 */
#define GPUGATE_TUNNEL_ENDPOINTS_ANY   0u
#define GPUGATE_TUNNEL_ENDPOINTS_TOLD  0x80000000u

/*
 * X-Gpugate-Endpoints: names separated by "," and optional spaces, each
 * 1..GPUGATE_TUNNEL_ENDPOINT_MAX of [a-z0-9_.], at least one; the names
 * are the metrics' "endpoint" label (gpugate_oai_kind_name(): "chat",
 * "completions", ...).  A name this version does not know is skipped (a
 * newer agent may serve more), so the mask may be TOLD alone.  0 and
 * *mask set, or -1.
 */
int gpugate_tunnel_parse_endpoints(const char *p, size_t len,
    uint32_t *mask);

/* 1 if an agent of "mask" serves endpoint kind "kind" (< 0: any path) */
int gpugate_tunnel_endpoint_served(uint32_t mask, int kind);

/* the name of kind "kind" as X-Gpugate-Endpoints says it, NULL if none */
const char *gpugate_tunnel_endpoint_name(int kind);

/*
 * The mask written out, names in kind order joined by ", " into "buf"
 * ("*" for GPUGATE_TUNNEL_ENDPOINTS_ANY, "" when none is known); the
 * length, cut at "size" - 1.
 */
size_t gpugate_tunnel_endpoints_print(uint32_t mask, char *buf,
    size_t size);


#define GPUGATE_TUNNEL_REGION_MAX     31     /* X-Gpugate-Region, bytes */

/*
 * A region's name (X-Gpugate-Region, the agent's "region =", the
 * gateway's gpugate_region): 1..GPUGATE_TUNNEL_REGION_MAX of
 * [A-Za-z0-9._-].  0 or -1.
 */
int gpugate_tunnel_check_region(const char *p, size_t len);


#define GPUGATE_TUNNEL_TELEMETRY_MAX  2048   /* X-Gpugate-Telemetry, bytes */
#define GPUGATE_TUNNEL_GPUS_MAX       8      /* GPU sections kept */
#define GPUGATE_TUNNEL_GPU_NAME_MAX   63     /* a GPU name, bytes */


typedef struct {
    uint32_t     index;        /* gpu=, the agent's NVML index */
    uint32_t     util_pct;     /* busy, percent */
    uint32_t     mem_used_mb;  /* MiB */
    uint32_t     mem_total_mb; /* MiB */
    uint32_t     temp_c;       /* core temperature */
    uint32_t     power_w;      /* board power draw */
    size_t       name_len;     /* 1..GPUGATE_TUNNEL_GPU_NAME_MAX */
    char         name[GPUGATE_TUNNEL_GPU_NAME_MAX + 1];
                               /* a copy, NUL-terminated: the result
                                  outlives the request (shared memory) */
    unsigned     has_util:1;      /* util_pct was given */
    unsigned     has_mem_used:1;  /* mem_used_mb was given */
    unsigned     has_mem_total:1; /* mem_total_mb was given */
    unsigned     has_temp:1;      /* temp_c was given */
    unsigned     has_power:1;     /* power_w was given */
} gpugate_tunnel_gpu_t;


typedef struct {
    uint32_t              cpu_pct;      /* 0..100 */
    uint32_t              cpus;         /* online CPUs */
    uint32_t              mem_used_mb;  /* host memory in use, MiB */
    uint32_t              mem_total_mb; /* host memory, MiB */
    uint32_t              gpus;         /* GPUs the agent announced */
    unsigned              ngpus;        /* sections kept in gpu[]: gpus, at
                                           most GPUGATE_TUNNEL_GPUS_MAX */
    gpugate_tunnel_gpu_t  gpu[GPUGATE_TUNNEL_GPUS_MAX];
} gpugate_tunnel_telemetry_t;


/*
 * X-Gpugate-Telemetry:
 *
 *   cpu_pct=<n>, cpus=<n>, mem_used_mb=<n>, mem_total_mb=<n>, gpus=<n>
 *   [; gpu=<i>, name="<name>", util_pct=<n>, mem_used_mb=<n>,
 *      mem_total_mb=<n>, temp_c=<n>, power_w=<n>]...
 *
 * Sections separated by ";", keys by ",", both with optional spaces, keys
 * in any order.  The five host keys are needed, and gpu= and name= in a
 * GPU section; other keys this version does not know are skipped (their
 * value a token or a quoted string), a repeated one is refused.  Numbers
 * as in X-Gpugate-Load, cpu_pct at most 100; a name is 1..63 printable
 * ASCII characters other than '"' and '\' in double quotes.  There must
 * be as many GPU sections as gpus= says; all are checked, the first
 * GPUGATE_TUNNEL_GPUS_MAX kept.  At most GPUGATE_TUNNEL_TELEMETRY_MAX
 * bytes.  Unlike the other parsers this one copies what it keeps.  0 or
 * -1 (then "out" holds nothing useful).
 */
int gpugate_tunnel_parse_telemetry(const char *p, size_t len,
    gpugate_tunnel_telemetry_t *out);


#endif /* _GPUGATE_TUNNEL_PROTO_H_INCLUDED_ */
