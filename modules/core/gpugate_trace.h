
/*
 * Copyright (C) gpugate authors
 *
 * Tracing's nginx-free half, shared by the gateway and the agent: the
 * W3C Trace Context headers (traceparent parsed strictly, tracestate
 * checked and bounded), trace and span ids from a cheap per-process
 * generator, and one span as OTLP/JSON (the body of POST /v1/traces),
 * every string escaped: model, agent and tenant names come from clients
 * and runtimes.
 */


#ifndef _GPUGATE_TRACE_H_INCLUDED_
#define _GPUGATE_TRACE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define GPUGATE_TRACE_ID_SIZE       16
#define GPUGATE_SPAN_ID_SIZE        8

/* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define GPUGATE_TRACEPARENT_LEN     55

/* the longest tracestate passed on; W3C asks for at least 512 */
#define GPUGATE_TRACESTATE_MAX      512

#define GPUGATE_TRACE_SAMPLED       0x01


/* why a traceparent was refused (gpugate_traceparent_error() names it) */
typedef enum {
    GPUGATE_TRACE_OK = 0,
    GPUGATE_TRACE_E_LENGTH,        /* not 55 bytes (version 00) */
    GPUGATE_TRACE_E_FORMAT,        /* a dash out of place */
    GPUGATE_TRACE_E_HEX,           /* not lowercase hex */
    GPUGATE_TRACE_E_VERSION,       /* ff, the forbidden version */
    GPUGATE_TRACE_E_ZERO_TRACE,    /* trace id all zeros */
    GPUGATE_TRACE_E_ZERO_PARENT    /* parent id all zeros */
} gpugate_trace_rc_e;


typedef struct {
    uint8_t   trace_id[GPUGATE_TRACE_ID_SIZE];  /* the whole trace's */
    uint8_t   span_id[GPUGATE_SPAN_ID_SIZE];    /* the caller's span: the
                                                   parent of ours */
    uint8_t   flags;                            /* trace-flags as sent */
} gpugate_trace_ctx_t;


/* xoshiro256** state: ids need to be unique, not secret */
typedef struct {
    uint64_t  s[4];                             /* never all zero */
} gpugate_trace_rng_t;


int gpugate_traceparent_parse(const char *s, size_t len,
    gpugate_trace_ctx_t *tc);
const char *gpugate_traceparent_error(int rc);

/* writes GPUGATE_TRACEPARENT_LEN bytes (no NUL) with version 00 */
void gpugate_traceparent_format(char *out, const uint8_t *trace_id,
    const uint8_t *span_id, uint8_t flags);

/* 1 when "s" is a tracestate list W3C allows, at most
   GPUGATE_TRACESTATE_MAX bytes and 32 members */
int gpugate_tracestate_valid(const char *s, size_t len);

/* lowercase hex of n bytes into 2 * n chars (no NUL) */
void gpugate_trace_hex(char *out, const uint8_t *b, size_t n);

/* "seed" is 32 bytes from a CSPRNG */
void gpugate_trace_rng_seed(gpugate_trace_rng_t *rng, const uint8_t *seed);
/* n random bytes, never all zero (an id of zeros is invalid) */
void gpugate_trace_rng_id(gpugate_trace_rng_t *rng, uint8_t *out, size_t n);
/* uniform in [0, 1) */
double gpugate_trace_rng_unit(gpugate_trace_rng_t *rng);


/* OTLP/JSON */

typedef enum {
    GPUGATE_OTLP_STR = 0,
    GPUGATE_OTLP_INT,
    GPUGATE_OTLP_BOOL,
    GPUGATE_OTLP_DOUBLE,
    GPUGATE_OTLP_STRS              /* array of strings, separated by
                                      commas in "s" */
} gpugate_otlp_type_e;


typedef struct {
    const char       *key;         /* a constant: written as it is */
    int               type;        /* gpugate_otlp_type_e */
    const char       *s;           /* STR, STRS: escaped when written */
    size_t            len;         /* of s */
    int64_t           i;           /* INT, BOOL */
    double            d;           /* DOUBLE */
} gpugate_otlp_attr_t;


typedef struct {
    const uint8_t        *trace_id;   /* GPUGATE_TRACE_ID_SIZE bytes */
    const uint8_t        *span_id;    /* GPUGATE_SPAN_ID_SIZE bytes */
    const uint8_t        *parent_id;  /* NULL: a root span */
    const char           *name;       /* escaped when written */
    size_t                name_len;
    int                   kind;       /* OTLP SpanKind: 2 server,
                                         3 client */
    uint64_t              start_ns;   /* Unix epoch, nanoseconds */
    uint64_t              end_ns;
    int                   error;      /* status ERROR, else UNSET */
    const char           *tracestate; /* NULL: none; checked already */
    size_t                tracestate_len;
    gpugate_otlp_attr_t  *attrs;
    size_t                nattrs;
} gpugate_otlp_span_t;


/*
 * One span object of OTLP/JSON's "spans" array into out[0..size).
 * Returns the length it needs: the span was written only when that is
 * at most "size" (out may be NULL with size 0 to measure).
 */
size_t gpugate_otlp_span_json(char *out, size_t size,
    const gpugate_otlp_span_t *sp);

/*
 * The body around a batch of spans: the head names the service
 * (escaped), the spans follow separated by commas, then the tail.
 * Same return convention as above.
 */
size_t gpugate_otlp_head(char *out, size_t size, const char *service,
    size_t service_len);
#define GPUGATE_OTLP_TAIL  "]}]}]}"

/* a JSON string body: quotes, backslashes, control bytes escaped,
   invalid UTF-8 as U+FFFD; returns the length it needs */
size_t gpugate_otlp_escape(char *out, size_t size, const char *s,
    size_t len);


#endif /* _GPUGATE_TRACE_H_INCLUDED_ */
