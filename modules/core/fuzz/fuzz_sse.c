
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target for the SSE framer: events must tile the input (their
 * lengths add up to the bytes fed) whether the input arrives whole or in
 * two pieces split anywhere; every event's data goes through the chunk
 * classifier too.
 */


#include <stdint.h>
#include <string.h>

#include "gpugate_sse.h"
#include "gpugate_oai_chunk.h"


static size_t
frame(const uint8_t *data, size_t size, size_t split, size_t *ends,
    size_t max)
{
    int                  done;
    size_t               off, used, n, total, piece_end;
    unsigned char        buf[256];
    gpugate_sse_t        s;
    gpugate_oai_chunk_t  c;

    gpugate_sse_init(&s, buf, sizeof(buf));
    off = 0;
    n = 0;
    total = 0;

    while (off < size) {
        piece_end = off < split ? split : size;

        used = gpugate_sse_feed(&s, data + off, piece_end - off, &done);
        off += used;

        if (done) {
            total += s.event_bytes;

            if (total != off) {
                __builtin_trap();       /* events must tile the stream */
            }

            if (n < max) {
                ends[n] = off;
            }

            n++;
            gpugate_oai_chunk_classify(buf, s.data_len, &c);
            gpugate_sse_next(&s);
        }
    }

    return n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t  a[64], b[64], na, nb, split, i;

    if (size == 0) {
        return 0;
    }

    split = data[0] % size;

    na = frame(data, size, size, a, 64);
    nb = frame(data, size, split, b, 64);

    if (na != nb) {
        __builtin_trap();
    }

    for (i = 0; i < na && i < 64; i++) {
        if (a[i] != b[i]) {
            __builtin_trap();
        }
    }

    return 0;
}
