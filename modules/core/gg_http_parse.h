
/*
 * Copyright (C) gpugate authors
 *
 * An incremental HTTP/1.x head parser (request or response) and a chunked
 * body decoder.  Pure: no I/O, no allocation, no nginx.  The caller owns
 * the bytes; the parser only records offsets into them, so the caller may
 * move or grow its buffer between calls as long as the bytes already
 * given keep their offsets from the start of the head.
 */


#ifndef _GG_HTTP_PARSE_H_INCLUDED_
#define _GG_HTTP_PARSE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define GG_HTTP_OK            0    /* head or body complete */
#define GG_HTTP_AGAIN         1    /* all input used, more is needed */
#define GG_HTTP_ERROR        -1    /* malformed: 400, then close */
#define GG_HTTP_TOO_LARGE    -2    /* over a limit: 431 or 413 */
#define GG_HTTP_UNSUPPORTED  -3    /* version or coding: 505 or 501 */
#define GG_HTTP_INVALID      -4    /* a field refused (bad byte, bad
                                      name): 400, but the head is whole
                                      and its framing known, so the
                                      connection may go on after the body */

/* fields kept in "headers"; any number more are checked and walked */
#define GG_HTTP_MAX_HEADERS   64

/* bits of gg_http_class[]: what a byte may be in a head */
#define GG_HTTP_C_TCHAR       0x01 /* RFC 9110 tchar: methods, names */
#define GG_HTTP_C_VCHAR       0x02 /* VCHAR or obs-text: 0x21-0xff but
                                      DEL; a target's bytes, a value's
                                      other than its spaces */
#define GG_HTTP_C_WS          0x04 /* SP, HTAB */
#define GG_HTTP_C_EOL         0x08 /* CR, LF */

extern const unsigned char  gg_http_class[256];


typedef struct {
    size_t        name;           /* offset of the field name */
    size_t        name_len;       /* its length */
    size_t        value;          /* offset of the value, OWS trimmed */
    size_t        value_len;      /* its length */
} gg_http_header_t;


typedef struct {
    /* set by gg_http_head_init() */
    int           response;       /* a status line, not a request line */
    size_t        max_head;       /* limit on the head's bytes */

    /* results, valid once gg_http_parse_head() returned GG_HTTP_OK */
    size_t        method;         /* request: offset of the method */
    size_t        method_len;     /* its length */
    size_t        uri;            /* request: offset of the target */
    size_t        uri_len;        /* its length */
    int           version;        /* 10 or 11 */
    int           status;         /* response: the status code */
    size_t        reason;         /* response: offset of the reason */
    size_t        reason_len;     /* its length, may be 0 */
    size_t        nheaders;       /* used entries in "headers" */
    size_t        nfields;        /* fields in the head, kept or not */
    size_t        invalid_at;     /* offset + 1 of the first byte that
                                     made the head GG_HTTP_INVALID; 0:
                                     none */
    size_t        head_len;       /* bytes up to and with the empty line */
    int64_t       content_length; /* -1: no Content-Length */
    unsigned      chunked:1;      /* Transfer-Encoding: chunked */
    unsigned      keep_alive:1;   /* the connection may be reused */
    unsigned      expect_continue:1;  /* Expect: 100-continue */

    /* parser state: where to resume, so that no byte is looked at twice */
    int           state;          /* position in the grammar */
    size_t        pos;            /* next byte to examine */
    size_t        mark;           /* start of the token being read */
    size_t        value_end;      /* end of the value without its OWS */
    gg_http_header_t  field;      /* the field being read */
    unsigned      field_bad:1;    /* it holds a byte not allowed */
    unsigned      te:1;           /* a Transfer-Encoding was seen */
    unsigned      conn_close:1;   /* Connection: close was seen */
    unsigned      conn_keep:1;    /* Connection: keep-alive was seen */
    int           framing;        /* GG_HTTP_OK, or the error a framing
                                     field caused: returned at the end */

    /* last, so that gg_http_head_init() leaves its 2 KiB alone: an entry
       is read only below "nheaders" */
    gg_http_header_t  headers[GG_HTTP_MAX_HEADERS];  /* the first ones,
                                                      in arrival order */
} gg_http_head_t;


typedef struct {
    int           state;          /* position in the chunked grammar */
    uint64_t      size;           /* data bytes left in this chunk */
    uint64_t      total;          /* data bytes decoded so far */
    uint64_t      max_size;       /* limit on "total" */
    size_t        line;           /* bytes in the current size line or
                                     trailers, bounded */
    unsigned      digits;         /* hex digits in the size so far */
} gg_http_chunked_t;


void gg_http_head_init(gg_http_head_t *h, int response, size_t max_head);

/*
 * Parses the head in buf[0, len), where len only ever grows between calls
 * and the bytes already seen do not change.  Returns GG_HTTP_OK when the
 * head is complete (h->head_len bytes; what follows is body or the next
 * message), GG_HTTP_AGAIN, or an error.  Framing (content_length, chunked,
 * keep_alive) is derived from every field, however many: a request with
 * both Content-Length and Transfer-Encoding, conflicting lengths, or a
 * coding other than "chunked" is refused.
 *
 * A field line that is well delimited but not allowed (a control byte in
 * its value, a byte outside tchar in its name, no colon, obs-fold) makes
 * the head GG_HTTP_INVALID rather than GG_HTTP_ERROR: the parser reads on
 * to the empty line, so head_len and the framing are valid and the caller
 * can refuse the message and still find where the next one starts.  Such
 * a field in Content-Length or Transfer-Encoding is GG_HTTP_ERROR.
 */
int gg_http_parse_head(gg_http_head_t *h, const char *buf, size_t len);

/*
 * The first header named "name" (case-insensitive), or NULL.  Past the
 * GG_HTTP_MAX_HEADERS kept ones, the head is walked: the result then
 * points into "h" and is valid until the next call.
 */
const gg_http_header_t *gg_http_find_header(gg_http_head_t *h,
    const char *buf, const char *name);

/*
 * Walks every field of a head that parsed GG_HTTP_OK: *pos is 0 at the
 * start, and each call fills "hd" and returns 1, or 0 after the last.
 */
int gg_http_header_next(const gg_http_head_t *h, const char *buf,
    size_t *pos, gg_http_header_t *hd);

/* 1 if the header is named "name" (case-insensitive). */
int gg_http_header_is(const gg_http_header_t *hd, const char *buf,
    const char *name);

void gg_http_chunked_init(gg_http_chunked_t *ck, uint64_t max_size);

/*
 * Decodes in[0, len) of a chunked body: the data bytes are written to
 * "out" (*out_len of them; out may be "in" itself: data never moves
 * forward), *used is set to the input bytes consumed.  Returns GG_HTTP_OK
 * once the last chunk and the trailers are consumed (bytes after *used
 * belong to the next message), GG_HTTP_AGAIN when all input was used, or
 * an error.  Trailer fields are skipped.
 */
int gg_http_parse_chunked(gg_http_chunked_t *ck, const char *in, size_t len,
    char *out, size_t *used, size_t *out_len);


#endif /* _GG_HTTP_PARSE_H_INCLUDED_ */
