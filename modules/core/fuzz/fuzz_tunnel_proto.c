
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: every tunnel handshake header parser reads the input
 * as a header value.  What one accepts must lie inside the input, obey the
 * contract (docs/tunnel-protocol.md), and be accepted again, with the same
 * result, once written out in the canonical form.  models_has() also takes
 * the input split at its first "\n": a list before it, a model after.
 * From the repository root:
 *
 *   make -C modules/core BUILDDIR=$PWD/build fuzz
 *   build/fuzz/fuzz_tunnel_proto -max_total_time=60 \
 *       build/fuzz/corpus_tunnel_proto modules/core/fuzz/seeds/tunnel_proto
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_tunnel_proto.h"


#define SCHEME      "SCRAM-SHA-256 "
#define SCHEME_LEN  (sizeof(SCHEME) - 1)


int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);


static int
inside(const char *in, size_t in_len, const char *p, size_t len)
{
    return p >= in && p <= in + in_len && len <= (size_t) (in + in_len - p);
}


static int
all(const char *p, size_t len, const char *set)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] == '\0' || strchr(set, p[i]) == NULL) {
            return 0;
        }
    }

    return 1;
}


/* "=" only as the last one or two characters */

static int
padding_at_end(const char *p, size_t len)
{
    const char  *eq;

    eq = memchr(p, '=', len);

    if (eq == NULL) {
        return 1;
    }

    return len - (size_t) (eq - p) <= 2 && all(eq, len - (eq - p), "=");
}


static void
check_auth(const char *in, size_t len, int scheme)
{
    int                    n, rc;
    char                  *buf;
    size_t                 size;
    gpugate_tunnel_auth_t  a, b;

    rc = gpugate_tunnel_parse_auth(in, len, scheme, &a);

    /* a header with the scheme reads as the same header without it */

    if (scheme) {
        if (len < SCHEME_LEN || strncasecmp(in, SCHEME, SCHEME_LEN) != 0) {
            if (rc != -1) {
                abort();
            }

            return;
        }

        if (gpugate_tunnel_parse_auth(in + SCHEME_LEN, len - SCHEME_LEN, 0,
                                      &b)
            != rc
            || (rc == 0 && (b.sid != a.sid || b.sid_len != a.sid_len
                            || b.data != a.data || b.data_len != a.data_len)))
        {
            abort();
        }
    }

    if (rc != 0) {
        return;
    }

    if (a.sid != NULL
        && (!inside(in, len, a.sid, a.sid_len)
            || a.sid_len != GPUGATE_TUNNEL_SID_LEN
            || !all(a.sid, a.sid_len, "0123456789abcdef")))
    {
        abort();
    }

    if (a.data != NULL
        && (!inside(in, len, a.data, a.data_len) || a.data_len == 0
            || !all(a.data, a.data_len,
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789+/=")
            || !padding_at_end(a.data, a.data_len)))
    {
        abort();
    }

    if ((a.sid == NULL && a.sid_len != 0)
        || (a.data == NULL && a.data_len != 0))
    {
        abort();
    }

    if (a.sid == NULL && a.data == NULL) {
        return;
    }

    /* written out again, it parses to the same values */

    size = SCHEME_LEN + a.sid_len + a.data_len + sizeof("sid=, data=");
    buf = malloc(size);

    if (buf == NULL) {
        return;
    }

    n = snprintf(buf, size, "%s%s%.*s%s%s%.*s", scheme ? SCHEME : "",
                 a.sid ? "sid=" : "", (int) a.sid_len, a.sid ? a.sid : "",
                 a.sid && a.data ? ", " : "", a.data ? "data=" : "",
                 (int) a.data_len, a.data ? a.data : "");

    if (n < 0 || (size_t) n >= size
        || gpugate_tunnel_parse_auth(buf, n, scheme, &b) != 0
        || b.sid_len != a.sid_len || b.data_len != a.data_len
        || (a.sid && memcmp(a.sid, b.sid, a.sid_len) != 0)
        || (a.data && memcmp(a.data, b.data, a.data_len) != 0))
    {
        abort();
    }

    free(buf);
}


static void
check_worker(const char *in, size_t len)
{
    int                      n;
    char                     buf[128];
    gpugate_tunnel_worker_t  w, v;

    if (gpugate_tunnel_parse_worker(in, len, &w) != 0) {
        return;
    }

    if (w.workers == 0 || w.workers > 1024 || w.slot >= w.workers
        || w.pid > UINT32_MAX || w.heartbeat > 3600000)
    {
        abort();
    }

    n = snprintf(buf, sizeof(buf), "slot=%u, pid=%llu, workers=%u, "
                 "generation=%llu, heartbeat=%llu", w.slot,
                 (unsigned long long) w.pid, w.workers,
                 (unsigned long long) w.generation,
                 (unsigned long long) w.heartbeat);

    if (n < 0 || (size_t) n >= sizeof(buf)
        || gpugate_tunnel_parse_worker(buf, n, &v) != 0
        || memcmp(&v, &w, sizeof(w)) != 0)
    {
        abort();
    }
}


static void
check_instance(const char *in, size_t len)
{
    int  expect;

    expect = (len >= GPUGATE_TUNNEL_INSTANCE_MIN
              && len <= GPUGATE_TUNNEL_INSTANCE_MAX
              && all(in, len, "0123456789abcdefABCDEF"))
             ? 0 : -1;

    if (gpugate_tunnel_check_instance(in, len) != expect) {
        abort();
    }
}


static void
check_capacity(const char *in, size_t len)
{
    int       n;
    char      buf[16];
    unsigned  c;

    if (gpugate_tunnel_parse_capacity(in, len, &c) != 0) {
        return;
    }

    /* only the canonical decimal form is accepted */

    if (c == 0 || c > GPUGATE_TUNNEL_CAPACITY_MAX) {
        abort();
    }

    n = snprintf(buf, sizeof(buf), "%u", c);

    if (n < 0 || (size_t) n != len || memcmp(buf, in, len) != 0) {
        abort();
    }
}


/*
 * A list accepted comes back the same once printed and read again (the
 * names it knows), each of its names in the bytes given; served agrees
 * with the mask.
 */

static void
check_endpoints(const char *in, size_t len)
{
    int       k;
    char      out[GPUGATE_TUNNEL_ENDPOINTS_MAX + 1];
    size_t    n;
    uint32_t  mask, again;

    if (gpugate_tunnel_parse_endpoints(in, len, &mask) != 0) {
        return;
    }

    if (len > GPUGATE_TUNNEL_ENDPOINTS_MAX || len == 0
        || !(mask & GPUGATE_TUNNEL_ENDPOINTS_TOLD))
    {
        abort();
    }

    for (k = 0; k < 31; k++) {
        if (gpugate_tunnel_endpoint_served(mask, k)
            != ((mask >> k) & 1))
        {
            abort();
        }
    }

    if (mask == GPUGATE_TUNNEL_ENDPOINTS_TOLD) {
        return;
    }

    n = gpugate_tunnel_endpoints_print(mask, out, sizeof(out));

    if (n == 0 || n != strlen(out)
        || gpugate_tunnel_parse_endpoints(out, n, &again) != 0
        || again != mask)
    {
        abort();
    }
}


static void
check_models(const char *in, size_t len)
{
    int          n, count;
    const char  *p, *end, *id;

    n = gpugate_tunnel_check_models(in, len);

    if (n < 0) {
        return;
    }

    if (len > GPUGATE_TUNNEL_MODELS_MAX) {
        abort();
    }

    /* count the ids again; each is in the list */

    p = in;
    end = in + len;
    count = 0;

    for ( ;; ) {
        while (p < end && (*p == ' ' || *p == ',')) {
            p++;
        }

        if (p == end) {
            break;
        }

        id = p;

        while (p < end && *p != ' ' && *p != ',') {
            p++;
        }

        if (p - id > GPUGATE_TUNNEL_MODEL_MAX
            || !gpugate_tunnel_models_has(in, len, id, p - id))
        {
            abort();
        }

        count++;
    }

    if (count != n || (n == 0 && !gpugate_tunnel_models_has(in, len, "x", 1)))
    {
        abort();
    }
}


static void
check_models_has(const char *in, size_t len)
{
    int          expect;
    size_t       list_len, model_len;
    const char  *nl, *model, *p, *end, *id;

    nl = memchr(in, '\n', len);

    if (nl == NULL) {
        /* any bytes at all, checked or not: only memory errors count */
        (void) gpugate_tunnel_models_has(in, len, "a", 1);
        return;
    }

    list_len = nl - in;
    model = nl + 1;
    model_len = len - list_len - 1;

    if (gpugate_tunnel_check_models(in, list_len) < 0) {
        (void) gpugate_tunnel_models_has(in, list_len, model, model_len);
        return;
    }

    /* a checked list: compare with a plain search */

    p = in;
    end = in + list_len;
    expect = 1;

    while (p < end && (*p == ' ' || *p == ',')) {
        p++;
    }

    if (p < end) {
        expect = 0;

        while (p < end) {
            id = p;

            while (p < end && *p != ' ' && *p != ',') {
                p++;
            }

            if ((size_t) (p - id) == model_len
                && memcmp(id, model, model_len) == 0)
            {
                expect = 1;
            }

            while (p < end && (*p == ' ' || *p == ',')) {
                p++;
            }
        }
    }

    if (gpugate_tunnel_models_has(in, list_len, model, model_len) != expect) {
        abort();
    }
}


static void
check_load(const char *in, size_t len)
{
    int                    n;
    char                   buf[64];
    gpugate_tunnel_load_t  l, m;

    if (gpugate_tunnel_parse_load(in, len, &l) != 0) {
        return;
    }

    if (l.queue > UINT32_MAX || l.gpu_free_mb > UINT32_MAX
        || (!l.has_queue && l.queue != 0) || (!l.has_gpu && l.gpu_free_mb != 0))
    {
        abort();
    }

    n = 0;
    buf[0] = '\0';

    if (l.has_queue) {
        n = snprintf(buf, sizeof(buf), "queue=%llu",
                     (unsigned long long) l.queue);
    }

    if (l.has_gpu) {
        n += snprintf(buf + n, sizeof(buf) - n, "%sgpu_free_mb=%llu",
                      l.has_queue ? ", " : "",
                      (unsigned long long) l.gpu_free_mb);
    }

    if (gpugate_tunnel_parse_load(buf, n, &m) != 0
        || m.has_queue != l.has_queue || m.has_gpu != l.has_gpu
        || m.queue != l.queue || m.gpu_free_mb != l.gpu_free_mb)
    {
        abort();
    }
}


static int
same_gpu(const gpugate_tunnel_gpu_t *a, const gpugate_tunnel_gpu_t *b)
{
    return a->index == b->index && a->name_len == b->name_len
           && memcmp(a->name, b->name, a->name_len + 1) == 0
           && a->has_util == b->has_util && a->util_pct == b->util_pct
           && a->has_mem_used == b->has_mem_used
           && a->mem_used_mb == b->mem_used_mb
           && a->has_mem_total == b->has_mem_total
           && a->mem_total_mb == b->mem_total_mb
           && a->has_temp == b->has_temp && a->temp_c == b->temp_c
           && a->has_power == b->has_power && a->power_w == b->power_w;
}


/* the canonical form of an accepted value, or 0 when it is too long */

static size_t
write_telemetry(const gpugate_tunnel_telemetry_t *t, char *buf, size_t size)
{
    int                          n;
    size_t                       len;
    unsigned                     i;
    const gpugate_tunnel_gpu_t  *g;

    n = snprintf(buf, size, "cpu_pct=%u, cpus=%u, mem_used_mb=%u, "
                 "mem_total_mb=%u, gpus=%u", (unsigned) t->cpu_pct,
                 (unsigned) t->cpus, (unsigned) t->mem_used_mb,
                 (unsigned) t->mem_total_mb, (unsigned) t->gpus);

    if (n < 0 || (size_t) n >= size) {
        return 0;
    }

    len = n;

    for (i = 0; i < t->ngpus; i++) {
        g = &t->gpu[i];

        n = snprintf(buf + len, size - len, "; gpu=%u, name=\"%s\"",
                     (unsigned) g->index, g->name);

        if (n < 0 || (size_t) n >= size - len) {
            return 0;
        }

        len += n;

#define FIELD(has, key, v)                                                    \
        if (has) {                                                            \
            n = snprintf(buf + len, size - len, ", " key "=%u",               \
                         (unsigned) (v));                                     \
            if (n < 0 || (size_t) n >= size - len) {                          \
                return 0;                                                     \
            }                                                                 \
            len += n;                                                         \
        }

        FIELD(g->has_util, "util_pct", g->util_pct)
        FIELD(g->has_mem_used, "mem_used_mb", g->mem_used_mb)
        FIELD(g->has_mem_total, "mem_total_mb", g->mem_total_mb)
        FIELD(g->has_temp, "temp_c", g->temp_c)
        FIELD(g->has_power, "power_w", g->power_w)

#undef FIELD
    }

    return len;
}


static void
check_telemetry(const char *in, size_t len)
{
    char                        buf[GPUGATE_TUNNEL_TELEMETRY_MAX + 1];
    size_t                      n;
    unsigned                    i;
    gpugate_tunnel_telemetry_t  t, u;

    if (gpugate_tunnel_parse_telemetry(in, len, &t) != 0) {
        return;
    }

    if (len > GPUGATE_TUNNEL_TELEMETRY_MAX || t.cpu_pct > 100
        || t.ngpus != (t.gpus < GPUGATE_TUNNEL_GPUS_MAX
                       ? t.gpus : GPUGATE_TUNNEL_GPUS_MAX))
    {
        abort();
    }

    for (i = 0; i < t.ngpus; i++) {
        if (t.gpu[i].name_len == 0
            || t.gpu[i].name_len > GPUGATE_TUNNEL_GPU_NAME_MAX
            || strlen(t.gpu[i].name) != t.gpu[i].name_len
            || !all(t.gpu[i].name, t.gpu[i].name_len,
                    " !#$%&'()*+,-./0123456789:;<=>?@"
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`"
                    "abcdefghijklmnopqrstuvwxyz{|}~"))
        {
            abort();
        }
    }

    /* sections past the kept ones are gone, so gpus= would not match */

    if (t.gpus > GPUGATE_TUNNEL_GPUS_MAX) {
        return;
    }

    n = write_telemetry(&t, buf, sizeof(buf));

    if (n == 0 || n > GPUGATE_TUNNEL_TELEMETRY_MAX) {
        return;
    }

    if (gpugate_tunnel_parse_telemetry(buf, n, &u) != 0
        || u.cpu_pct != t.cpu_pct || u.cpus != t.cpus
        || u.mem_used_mb != t.mem_used_mb || u.mem_total_mb != t.mem_total_mb
        || u.gpus != t.gpus || u.ngpus != t.ngpus)
    {
        abort();
    }

    for (i = 0; i < t.ngpus; i++) {
        if (!same_gpu(&u.gpu[i], &t.gpu[i])) {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char  *in;

    /* a copy of just "size" bytes, so reading past it is caught */

    in = malloc(size ? size : 1);

    if (in == NULL) {
        return 0;
    }

    memcpy(in, data, size);

    check_auth(in, size, 1);
    check_auth(in, size, 0);
    check_worker(in, size);
    check_instance(in, size);
    check_capacity(in, size);
    check_models(in, size);
    check_models_has(in, size);
    check_load(in, size);
    check_telemetry(in, size);
    check_endpoints(in, size);

    free(in);

    return 0;
}
