
/*
 * Copyright (C) gpugate authors
 *
 * The agent's span of a relayed request (ga_trace.c): when the gateway
 * sends a W3C traceparent, the agent gives the runtime its own span as
 * the parent instead, and exports that span ("relay", kind CLIENT, the
 * runtime's time to first byte) over OTLP/HTTP JSON to otlp_endpoint,
 * in batches, from the event loop.  Sampled as the gateway decided (the
 * traceparent's flag), errors always.
 */


#ifndef _GA_TRACE_H_INCLUDED_
#define _GA_TRACE_H_INCLUDED_


#include <stdint.h>

#include "gpugate_trace.h"


typedef struct {
    uint8_t   trace_id[GPUGATE_TRACE_ID_SIZE];  /* the gateway's trace */
    uint8_t   parent[GPUGATE_SPAN_ID_SIZE];     /* the gateway's span */
    uint8_t   span_id[GPUGATE_SPAN_ID_SIZE];    /* ours: the runtime's
                                                   parent */
    uint8_t   flags;                            /* as the gateway sent */
    uint64_t  start_ns;                         /* Unix time, ns */
    uint64_t  start_us;                         /* monotonic, us */
    uint64_t  ttfb_us;                          /* runtime's first byte
                                                   after start; 0: none */
    int       status;                           /* the runtime's answer
                                                   status, kept at its
                                                   head: the tunnel's one
                                                   head parser is reused
                                                   after; 0: none */
    unsigned  active:1;                         /* a span is open */
} ga_trace_span_t;


struct ga_conn_s;

int ga_trace_init(void);
/* the request head "buf" (c->head) was relayed into c->relay.out */
void ga_trace_start(struct ga_conn_s *c, const char *buf);
void ga_trace_first_byte(struct ga_conn_s *c);
void ga_trace_end(struct ga_conn_s *c, int clean);


#endif /* _GA_TRACE_H_INCLUDED_ */
