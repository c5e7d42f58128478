
/*
 * Copyright (C) gpugate authors
 *
 * A streaming multipart/form-data scanner (RFC 7578, RFC 2046 section
 * 5.1), independent of nginx: it takes an upload in pieces split
 * anywhere, as they arrive, and keeps only what the router needs: the
 * "model" field's value and where it lies in the body (for a rewrite),
 * the "stream" field, and an images request's "n" and "size".  Files
 * pass through it without being kept: its memory is this struct,
 * whatever the upload's size.
 */


#ifndef _GPUGATE_MULTIPART_H_INCLUDED_
#define _GPUGATE_MULTIPART_H_INCLUDED_


#include <stddef.h>


#define GPUGATE_MP_BOUNDARY_MAX  70      /* RFC 2046 */
#define GPUGATE_MP_LINE_MAX      1024    /* one part header line */
#define GPUGATE_MP_MODEL_MAX     256


typedef enum {
    GPUGATE_MP_PREAMBLE = 0,       /* before the first delimiter */
    GPUGATE_MP_AFTER_DELIM,        /* a delimiter: "--" or CRLF follows */
    GPUGATE_MP_AFTER_DELIM_DASH,   /* "-" of the closing "--" seen */
    GPUGATE_MP_AFTER_DELIM_PAD,    /* white space before its CRLF */
    GPUGATE_MP_AFTER_DELIM_CR,     /* its CR seen */
    GPUGATE_MP_HEADERS,            /* a part's header lines */
    GPUGATE_MP_HEADER_CR,          /* a header line's CR seen */
    GPUGATE_MP_DATA,               /* a part's content */
    GPUGATE_MP_EPILOGUE,           /* after the closing delimiter */
    GPUGATE_MP_ERROR
} gpugate_mp_state_e;


typedef struct {
    gpugate_mp_state_e  state;     /* where the scan is */
    unsigned char       delim[4 + GPUGATE_MP_BOUNDARY_MAX];
                                   /* CRLF "--" boundary */
    size_t              delim_len; /* its length */
    size_t              matched;   /* bytes of delim matched so far */
    long long           offset;    /* body bytes consumed */
    char                line[GPUGATE_MP_LINE_MAX];
                                   /* the current header line */
    size_t              line_len;  /* its length */
    unsigned            parts;     /* parts begun */
    unsigned            part_model:1;  /* this part is the model field */
    unsigned            part_stream:1; /* this part is the stream field */
    unsigned            part_named:1;  /* it had a form-data name */
    unsigned            part_n:1;      /* this part is the n field */
    unsigned            part_size:1;   /* this part is the size field */
    char                model[GPUGATE_MP_MODEL_MAX + 1];
                                   /* the model field's value */
    size_t              model_len; /* its length */
    int                 model_seen;  /* a model field was read */
    long long           model_start; /* its value's first body byte */
    long long           model_end;   /* just past its last one */
    char                stream_val[8]; /* the stream field's value */
    size_t              stream_len;  /* its length (capped) */
    int                 stream;    /* "stream" is "true" */
    char                n_val[8];  /* the n field's value */
    size_t              n_len;     /* its length, counted past the
                                      array: longer is not a count */
    char                size_val[16]; /* the size field's value */
    size_t              size_len;  /* its length, likewise */
    const char         *error;     /* why the body is refused */
    const char         *param;     /* the field at fault, or NULL */
} gpugate_mp_t;


/*
 * The boundary parameter of a Content-Type value (quoted or not); 0 and
 * *b, *len set, or -1 when the type is not multipart/form-data or has no
 * valid boundary.
 */
int gpugate_mp_boundary(const char *ctype, size_t ctype_len,
    const char **b, size_t *len);

/* Starts a scan for that boundary (1..70 bytes, checked by the above). */
void gpugate_mp_init(gpugate_mp_t *mp, const char *boundary, size_t len);

/*
 * Scans the next bytes of the body.  0, or -1 with mp->error (and
 * mp->param) set: the body is malformed, has two model fields, or a
 * model value that is empty, too long or not printable ASCII.  Once -1,
 * it stays so.
 */
int gpugate_mp_feed(gpugate_mp_t *mp, const unsigned char *p, size_t len);

/*
 * At the end of the body: 0 when it was a whole multipart body with a
 * model field, else -1 with mp->error (and mp->param) set.
 */
int gpugate_mp_finish(gpugate_mp_t *mp);


#endif /* _GPUGATE_MULTIPART_H_INCLUDED_ */
