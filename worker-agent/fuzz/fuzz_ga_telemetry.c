
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: the /proc parsers of ga_telemetry.c and the gateway's
 * X-Gpugate-Telemetry parser on arbitrary bytes, copied into a buffer of
 * exactly their size (ASan catches a read past "len"); and the same bytes
 * read as a snapshot, whose formatted value the gateway must accept with
 * the same figures, since the two sides only meet on the wire.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ga_telemetry.h"
#include "gpugate_tunnel_proto.h"


#define WIRE_MAX  4294967295ULL


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


typedef struct {
    const uint8_t  *p;         /* next byte */
    const uint8_t  *end;       /* past the input */
} bytes_t;


static uint64_t
take(bytes_t *b, size_t n)
{
    uint64_t  v;

    v = 0;

    while (n-- && b->p < b->end) {
        v = v << 8 | *b->p++;
    }

    return v;
}


static uint64_t
clamp(uint64_t v)
{
    return v > WIRE_MAX ? WIRE_MAX : v;
}


static void
check_proc(const char *in, size_t len)
{
    uint64_t        total, avail;
    ga_cpu_times_t  a, b;
    double          pct;

    if (ga_telemetry_parse_stat(in, len, &a) == 0) {
        if (a.busy > a.total || memchr(in, '\n', len) == NULL) {
            abort();
        }

        /* the sample against a later, made-up one */

        b.busy = a.busy + (len & 0xff);
        b.total = a.total + (len & 0xfff);

        if (b.busy >= a.busy && b.total >= a.total) {
            pct = ga_telemetry_cpu_pct(&a, &b);

            if (!(pct >= 0 && pct <= 100)) {
                abort();
            }
        }

        if (ga_telemetry_cpu_pct(&a, &a) != 0) {
            abort();
        }
    }

    if (ga_telemetry_parse_meminfo(in, len, &total, &avail) == 0) {
        if (memchr(in, '\n', len) == NULL) {
            abort();
        }
    }
}


static void
check_gateway(const char *in, size_t len)
{
    unsigned                    i;
    gpugate_tunnel_telemetry_t  t;

    if (gpugate_tunnel_parse_telemetry(in, len, &t) != 0) {
        return;
    }

    if (len > GPUGATE_TUNNEL_TELEMETRY_MAX || t.cpu_pct > 100
        || t.ngpus > GPUGATE_TUNNEL_GPUS_MAX
        || t.ngpus != (t.gpus < GPUGATE_TUNNEL_GPUS_MAX
                       ? t.gpus : GPUGATE_TUNNEL_GPUS_MAX))
    {
        abort();
    }

    for (i = 0; i < t.ngpus; i++) {
        if (t.gpu[i].name_len == 0
            || t.gpu[i].name_len > GPUGATE_TUNNEL_GPU_NAME_MAX
            || strlen(t.gpu[i].name) != t.gpu[i].name_len
            || strpbrk(t.gpu[i].name, "\"\\") != NULL)
        {
            abort();
        }
    }
}


/* the input as a snapshot: formatted, it must read back the same */

static void
check_format(const uint8_t *data, size_t size)
{
    char                         buf[GA_TELEMETRY_MAX + 1];
    size_t                       n, j, k;
    bytes_t                      b;
    unsigned                     i;
    unsigned char                ch;
    ga_telemetry_t               t;
    ga_telemetry_gpu_t          *g;
    gpugate_tunnel_telemetry_t   r;
    const gpugate_tunnel_gpu_t  *h;

    b.p = data;
    b.end = data + size;

    memset(&t, 0, sizeof(t));

    t.snap.cpu_pct = (unsigned) take(&b, 1);
    t.snap.cpus = (unsigned) take(&b, 4);
    t.snap.mem_used_mb = take(&b, 5);
    t.snap.mem_total_mb = take(&b, 5);
    t.snap.ngpus = (unsigned) (take(&b, 1) % (GA_TELEMETRY_GPUS_MAX + 1));

    for (i = 0; i < t.snap.ngpus; i++) {
        g = &t.snap.gpu[i];
        k = take(&b, 1);

        g->index = (unsigned) take(&b, 4);
        g->has_util = k & 1;
        g->has_mem = (k >> 1) & 1;
        g->has_temp = (k >> 2) & 1;
        g->has_power = (k >> 3) & 1;
        g->util_pct = (unsigned) take(&b, 1 + (k >> 7));
        g->mem_used_mb = take(&b, 3);
        g->mem_total_mb = take(&b, 3 + ((k >> 4) & 3));
        g->mem_free_mb = take(&b, 3);
        g->temp_c = (unsigned) take(&b, 1);
        g->power_w = (unsigned) take(&b, 2);

        n = (size_t) (take(&b, 1) % GA_TELEMETRY_NAME_SIZE);

        for (j = 0; j < n && b.p < b.end && *b.p != 0; j++) {
            g->name[j] = (char) *b.p++;
        }

        g->name[j] = '\0';
    }

    n = ga_telemetry_format(&t, buf, sizeof(buf));

    if (n == 0) {
        return;
    }

    if (n != strlen(buf) || gpugate_tunnel_parse_telemetry(buf, n, &r) != 0
        || r.cpu_pct != (t.snap.cpu_pct > 100 ? 100 : t.snap.cpu_pct)
        || r.cpus != clamp(t.snap.cpus)
        || r.mem_used_mb != clamp(t.snap.mem_used_mb)
        || r.mem_total_mb != clamp(t.snap.mem_total_mb)
        || r.gpus != t.snap.ngpus)
    {
        abort();
    }

    for (i = 0; i < r.ngpus; i++) {
        g = &t.snap.gpu[i];
        h = &r.gpu[i];

        /* the name as sent: printable, no quote or backslash, cut */

        for (j = 0; j < 63 && g->name[j] != '\0'; j++) {
            ch = (unsigned char) g->name[j];

            if (h->name[j] != ((ch < 0x20 || ch > 0x7e || ch == '"'
                                || ch == '\\') ? '?' : (char) ch))
            {
                abort();
            }
        }

        if ((j == 0 && strcmp(h->name, "?") != 0)
            || (j > 0 && h->name_len != j))
        {
            abort();
        }

        if (h->index != g->index || h->has_util != g->has_util
            || h->has_mem_used != g->has_mem || h->has_temp != g->has_temp
            || h->has_power != g->has_power
            || (g->has_util && h->util_pct != g->util_pct)
            || (g->has_mem && (h->mem_used_mb != clamp(g->mem_used_mb)
                               || h->mem_total_mb != clamp(g->mem_total_mb)))
            || (g->has_temp && h->temp_c != g->temp_c)
            || (g->has_power && h->power_w != g->power_w))
        {
            abort();
        }
    }

    if (ga_telemetry_gpu_free_mb(&t) > (1ULL << 24)) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char  *copy;

    copy = malloc(size ? size : 1);

    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    check_proc(copy, size);
    check_gateway(copy, size);

    free(copy);

    check_format(data, size);

    return 0;
}
