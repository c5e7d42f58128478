
/*
 * Copyright (C) gpugate authors
 *
 * Incremental text/event-stream framing (WHATWG SSE), independent of nginx
 * so it is unit-tested and fuzzed on its own.  The response filter feeds
 * every buffer of a stream through it: events may be split at any byte,
 * and the filter needs to know where each event ends (to forward it, or to
 * drop the usage chunk the client did not ask for) and what its data is.
 *
 * Line ends are LF, CRLF or a lone CR.  An event ends at an empty line,
 * and is reported at that byte, never later: a CR that ends an event is
 * not held back to see whether an LF follows (that would delay the event
 * until the next one); the LF, if it comes, is then counted as the first
 * byte of the next event and is not taken for an empty line.
 */


#ifndef _GPUGATE_SSE_H_INCLUDED_
#define _GPUGATE_SSE_H_INCLUDED_


#include <stddef.h>


typedef struct {
    unsigned char  *data;          /* caller's buffer for the data field */
    size_t          data_cap;      /* its size */
    size_t          data_len;      /* data of the current event so far,
                                      lines joined with "\n" */
    size_t          event_bytes;   /* stream bytes of the current event */
    unsigned        state:2;       /* where in the current line */
    unsigned        skip_lf:1;     /* the last byte was a CR */
    unsigned        data_line:1;   /* this line is a "data" field */
    unsigned        has_field:1;   /* a non-comment line was seen */
    unsigned        has_data:1;    /* a "data" line was seen */
    unsigned        overflow:1;    /* data did not fit in "data" */
    unsigned        name_len:3;    /* bytes of the field name so far (the
                                      only name that matters is "data") */
    unsigned        name_data:1;   /* the name so far is a prefix of
                                      "data" */
} gpugate_sse_t;


/* Starts a stream; "data" receives each event's data, up to "cap" bytes. */
void gpugate_sse_init(gpugate_sse_t *s, unsigned char *data, size_t cap);

/*
 * Consumes bytes of p[0..len) up to the end of the next complete event and
 * returns how many; *done is 1 if an event ended there (its fields are in
 * "s" until gpugate_sse_next()), 0 if all of p was consumed without one.
 */
size_t gpugate_sse_feed(gpugate_sse_t *s, const unsigned char *p,
    size_t len, int *done);

/* Forgets the event just reported, keeping the stream's line state. */
void gpugate_sse_next(gpugate_sse_t *s);


#endif /* _GPUGATE_SSE_H_INCLUDED_ */
