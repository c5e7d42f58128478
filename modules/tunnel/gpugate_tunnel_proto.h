
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
    unsigned     has_queue:1; /* "queue" was given */
    unsigned     has_gpu:1;   /* "gpu_free_mb" was given */
} gpugate_tunnel_load_t;


/*
 * X-Gpugate-Load: "queue=<n>, gpu_free_mb=<n>", either or both, in any
 * order; decimal without sign or leading zero, up to 2^32-1; keys this
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


#endif /* _GPUGATE_TUNNEL_PROTO_H_INCLUDED_ */
