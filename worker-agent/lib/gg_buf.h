
/*
 * Copyright (C) gpugate authors
 *
 * A growable byte buffer with a read position: bytes are appended at the
 * end and consumed from the front, as socket input and output need.
 */


#ifndef _GG_BUF_H_INCLUDED_
#define _GG_BUF_H_INCLUDED_


#include <stddef.h>


/* the size of socket buffers, which gg_buf_free() keeps for reuse */
#define GG_BUF_BLOCK  16384

/* at most this many freed blocks are kept (512 KiB) */
#define GG_BUF_SHELF  32


typedef struct {
    char          *data;          /* malloc()ed storage, NULL until used */
    size_t         start;         /* first unconsumed byte */
    size_t         end;           /* one past the last byte */
    size_t         cap;           /* size of "data" */
} gg_buf_t;


#define gg_buf_len(b)    ((b)->end - (b)->start)
#define gg_buf_pos(b)    ((b)->data + (b)->start)
#define gg_buf_last(b)   ((b)->data + (b)->end)
#define gg_buf_room(b)   ((b)->cap - (b)->end)


/* Makes room for "n" more bytes at the end.  0, or -1 on ENOMEM. */
int gg_buf_reserve(gg_buf_t *b, size_t n);

int gg_buf_append(gg_buf_t *b, const void *p, size_t n);

int gg_buf_printf(gg_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void gg_buf_consume(gg_buf_t *b, size_t n);

/* Drops the contents; keeps the storage for reuse. */
void gg_buf_reset(gg_buf_t *b);

/*
 * Gives the storage back: a block of GG_BUF_BLOCK bytes goes to a small
 * shelf of the process, where the next empty buffer that needs no more
 * than that takes it instead of calling malloc().
 */
void gg_buf_free(gg_buf_t *b);

/* Frees the shelved blocks (at exit, for leak checkers). */
void gg_buf_shelf_free(void);


#endif /* _GG_BUF_H_INCLUDED_ */
