
/*
 * Copyright (C) gpugate authors
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gg_buf.h"


/*
 * Freed blocks of GG_BUF_BLOCK bytes are kept on a small shelf and given
 * to the next empty buffer that needs no more: the agent frees a tunnel's
 * buffers whenever it parks (so that parked tunnels hold none) and needs
 * them again at the next request, which without the shelf is four
 * malloc()/free() pairs per request.  What the shelf holds is bounded
 * (GG_BUF_SHELF blocks); it is per process, and the agent has one thread.
 */
static char    *gg_buf_shelf[GG_BUF_SHELF];   /* blocks ready for reuse */
static size_t   gg_buf_shelved;               /* how many of them */


int
gg_buf_reserve(gg_buf_t *b, size_t n)
{
    char    *p;
    size_t   len, cap;

    if (b->cap - b->end >= n) {
        return 0;
    }

    if (b->data == NULL && n <= GG_BUF_BLOCK && gg_buf_shelved) {
        b->data = gg_buf_shelf[--gg_buf_shelved];
        b->start = 0;
        b->end = 0;
        b->cap = GG_BUF_BLOCK;
        return 0;
    }

    len = b->end - b->start;

    /* sliding the live bytes down is cheaper than growing when it fits */
    if (b->start && b->cap - len >= n && len <= b->cap / 2) {
        memmove(b->data, b->data + b->start, len);
        b->start = 0;
        b->end = len;
        return 0;
    }

    if (len + n < len) {
        return -1;
    }

    cap = b->cap ? b->cap : 256;

    while (cap < len + n) {
        if (cap > ((size_t) -1) / 2) {
            return -1;
        }
        cap *= 2;
    }

    p = malloc(cap);
    if (p == NULL) {
        return -1;
    }

    if (len) {
        memcpy(p, b->data + b->start, len);
    }

    free(b->data);

    b->data = p;
    b->start = 0;
    b->end = len;
    b->cap = cap;

    return 0;
}


int
gg_buf_append(gg_buf_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }

    if (gg_buf_reserve(b, n) != 0) {
        return -1;
    }

    memcpy(b->data + b->end, p, n);
    b->end += n;

    return 0;
}


int
gg_buf_printf(gg_buf_t *b, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);

    if (n < 0 || gg_buf_reserve(b, (size_t) n + 1) != 0) {
        return -1;
    }

    va_start(ap, fmt);
    vsnprintf(b->data + b->end, (size_t) n + 1, fmt, ap);
    va_end(ap);

    b->end += n;

    return 0;
}


void
gg_buf_consume(gg_buf_t *b, size_t n)
{
    b->start += n;

    if (b->start >= b->end) {
        b->start = 0;
        b->end = 0;
    }
}


void
gg_buf_reset(gg_buf_t *b)
{
    b->start = 0;
    b->end = 0;
}


void
gg_buf_free(gg_buf_t *b)
{
    if (b->cap == GG_BUF_BLOCK && gg_buf_shelved < GG_BUF_SHELF) {
        gg_buf_shelf[gg_buf_shelved++] = b->data;

    } else {
        free(b->data);
    }

    b->data = NULL;
    b->start = 0;
    b->end = 0;
    b->cap = 0;
}


void
gg_buf_shelf_free(void)
{
    while (gg_buf_shelved) {
        free(gg_buf_shelf[--gg_buf_shelved]);
    }
}
