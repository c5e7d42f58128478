
/*
 * Copyright (C) gpugate authors
 *
 * Host and GPU telemetry (agent/ga_telemetry.c): the /proc parsers, the
 * no-GPU state when NVML cannot be had, the X-Gpugate-Telemetry value,
 * and that the gateway's parser (gpugate_tunnel_proto.c) reads back
 * exactly what the formatter wrote.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/tap.h"           /* modules/core/tests/tap.h */
#include "ga_telemetry.h"
#include "gpugate_tunnel_proto.h"


#define S(s)         s, sizeof(s) - 1
#define WIRE_MAX     4294967295ULL

#define CLAMPED      "cpu_pct=100, cpus=8, mem_used_mb=4294967295, " \
                     "mem_total_mb=4294967295, gpus=2; "


static int
stat_is(const char *text, size_t len, uint64_t busy, uint64_t total)
{
    ga_cpu_times_t  t;

    return ga_telemetry_parse_stat(text, len, &t) == 0 && t.busy == busy
           && t.total == total;
}


static int
stat_bad(const char *text, size_t len)
{
    ga_cpu_times_t  t;

    return ga_telemetry_parse_stat(text, len, &t) == -1;
}


static int
meminfo_is(const char *text, size_t len, uint64_t total, uint64_t avail)
{
    uint64_t  t, a;

    return ga_telemetry_parse_meminfo(text, len, &t, &a) == 0 && t == total
           && a == avail;
}


static int
meminfo_bad(const char *text, size_t len)
{
    uint64_t  t, a;

    return ga_telemetry_parse_meminfo(text, len, &t, &a) == -1;
}


static double
pct(uint64_t b0, uint64_t t0, uint64_t b1, uint64_t t1)
{
    ga_cpu_times_t  prev, now;

    prev.busy = b0;
    prev.total = t0;
    now.busy = b1;
    now.total = t1;

    return ga_telemetry_cpu_pct(&prev, &now);
}


static uint64_t
clamp(uint64_t v)
{
    return v > WIRE_MAX ? WIRE_MAX : v;
}


/* what the gateway should see of a name */

static void
wire_name(const char *name, char *out)
{
    size_t         i;
    unsigned char  ch;

    for (i = 0; i < 63 && name[i] != '\0'; i++) {
        ch = (unsigned char) name[i];
        out[i] = (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
                 ? '?' : (char) ch;
    }

    if (i == 0) {
        out[i++] = '?';
    }

    out[i] = '\0';
}


/* the formatted value is accepted by the gateway with the same figures */

static int
round_trip(const ga_telemetry_t *t, char *buf, size_t size)
{
    char                        name[64];
    size_t                      n;
    unsigned                    i;
    gpugate_tunnel_telemetry_t  r;
    const ga_telemetry_gpu_t    *g;
    const gpugate_tunnel_gpu_t  *h;

    n = ga_telemetry_format(t, buf, size);

    if (n == 0 || n != strlen(buf)
        || gpugate_tunnel_parse_telemetry(buf, n, &r) != 0)
    {
        return 0;
    }

    if (r.cpu_pct != (t->snap.cpu_pct > 100 ? 100 : t->snap.cpu_pct)
        || r.cpus != clamp(t->snap.cpus)
        || r.mem_used_mb != clamp(t->snap.mem_used_mb)
        || r.mem_total_mb != clamp(t->snap.mem_total_mb)
        || r.gpus != t->snap.ngpus
        || r.ngpus != (t->snap.ngpus < 8 ? t->snap.ngpus : 8))
    {
        return 0;
    }

    for (i = 0; i < r.ngpus; i++) {
        g = &t->snap.gpu[i];
        h = &r.gpu[i];

        wire_name(g->name, name);

        if (h->index != g->index || strcmp(h->name, name) != 0
            || h->name_len != strlen(name)
            || h->has_util != g->has_util
            || h->has_mem_used != g->has_mem
            || h->has_mem_total != g->has_mem
            || h->has_temp != g->has_temp || h->has_power != g->has_power
            || (g->has_util && h->util_pct != clamp(g->util_pct))
            || (g->has_mem && (h->mem_used_mb != clamp(g->mem_used_mb)
                               || h->mem_total_mb != clamp(g->mem_total_mb)))
            || (g->has_temp && h->temp_c != clamp(g->temp_c))
            || (g->has_power && h->power_w != clamp(g->power_w)))
        {
            return 0;
        }
    }

    return 1;
}


static void
fake_host(ga_telemetry_t *t)
{
    memset(t, 0, sizeof(*t));

    t->snap.cpu_pct = 12;
    t->snap.cpus = 8;
    t->snap.mem_used_mb = 1000;
    t->snap.mem_total_mb = 16000;
}


static void
fake_gpus(ga_telemetry_t *t)
{
    ga_telemetry_gpu_t  *g;

    t->snap.ngpus = 2;

    g = &t->snap.gpu[0];
    g->index = 0;
    strcpy(g->name, "NVIDIA H200");
    g->util_pct = 37;
    g->mem_used_mb = 81234;
    g->mem_total_mb = 143771;
    g->mem_free_mb = 62537;
    g->temp_c = 45;
    g->power_w = 312;
    g->has_util = 1;
    g->has_mem = 1;
    g->has_temp = 1;
    g->has_power = 1;

    g = &t->snap.gpu[1];
    g->index = 1;
    strcpy(g->name, "NVIDIA A100-SXM4-80GB");
    g->temp_c = 0;
    g->has_temp = 1;
}


static uint64_t  rnd_state = 88172645463325252ULL;


static uint64_t
rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;

    return rnd_state;
}


/* small, large and past-the-wire figures alike */

static uint64_t
rnd_value(void)
{
    switch (rnd() % 4) {
    case 0:
        return rnd() % 10;
    case 1:
        return rnd() % 100000;
    case 2:
        return WIRE_MAX - rnd() % 2;
    default:
        return rnd();
    }
}


static void
rnd_snapshot(ga_telemetry_t *t)
{
    size_t               j, n;
    unsigned             i;
    ga_telemetry_gpu_t  *g;

    memset(t, 0, sizeof(*t));

    t->snap.cpu_pct = (unsigned) (rnd() % 130);
    t->snap.cpus = (unsigned) rnd_value();
    t->snap.mem_used_mb = rnd_value();
    t->snap.mem_total_mb = rnd_value();
    t->snap.ngpus = (unsigned) (rnd() % (GA_TELEMETRY_GPUS_MAX + 1));

    for (i = 0; i < t->snap.ngpus; i++) {
        g = &t->snap.gpu[i];
        g->index = (unsigned) (rnd() % 3 ? i : rnd_value());

        n = rnd() % GA_TELEMETRY_NAME_SIZE;

        for (j = 0; j < n; j++) {
            g->name[j] = (char) (rnd() % 3 ? 0x20 + rnd() % 95
                                           : 1 + rnd() % 255);
        }

        g->name[n] = '\0';

        g->has_util = rnd() % 2;
        g->has_mem = rnd() % 2;
        g->has_temp = rnd() % 2;
        g->has_power = rnd() % 2;
        g->util_pct = (unsigned) rnd_value();
        g->mem_used_mb = rnd_value();
        g->mem_total_mb = rnd_value();
        g->mem_free_mb = rnd_value();
        g->temp_c = (unsigned) rnd_value();
        g->power_w = (unsigned) rnd_value();
    }
}


static void
test_stat(void)
{
    static const char  real[] =
        "cpu  4705 356 584 3699 23 23 0 0 0 0\n"
        "cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23 0\n"
        "intr 1462898 25 0 0 0 0 0 0 0 1 0 0 0 0\n"
        "ctxt 115315\n"
        "btime 1700000000\n";

    tap_ok(stat_is(S(real), 5668, 9390), "stat: a real sample");
    tap_ok(stat_is(S("cpu  1 2 3 4 5 6 7 8 100 200\n"), 1 + 2 + 3 + 6 + 7 + 8,
                   36), "stat: guest figures are not added twice");
    tap_ok(stat_is(S("cpu 1 2 3 4\n"), 6, 10),
           "stat: an old kernel's four figures");
    tap_ok(stat_is(S("cpu  0 0 0 0 0 0 0 0\n"), 0, 0), "stat: all zero");
    tap_ok(stat_is(S("cpu  18446744073709551615 0 0 0\n"), UINT64_MAX,
                   UINT64_MAX), "stat: 2^64-1");
    tap_ok(stat_is(S("ctxt 5\ncpu  1 1 1 1\n"), 3, 4),
           "stat: the cpu line after another one");

    tap_ok(stat_bad(S("")), "stat: empty");
    tap_ok(stat_bad(S("cpu0 1 2 3 4 5 6 7 8\n")), "stat: no aggregate line");
    tap_ok(stat_bad(S("intr 1 2 3\nctxt 4\n")), "stat: no cpu line at all");
    tap_ok(stat_bad(S("cpu  4705 356 584")), "stat: cut after three");
    tap_ok(stat_bad(S("cpu  4705 356 584 3699 23")),
           "stat: cut inside a figure (no newline)");
    tap_ok(stat_bad(real, 20), "stat: cut by len inside the line");
    tap_ok(stat_bad(S("cpu  1 2 3\n")), "stat: three figures");
    tap_ok(stat_bad(S("cpu  a b c d\n")), "stat: letters");
    tap_ok(stat_bad(S("cpu  1 2 3 -4\n")), "stat: a minus sign");
    tap_ok(stat_bad(S("cpu  1 2 3 4x\n")), "stat: a letter after a figure");
    tap_ok(stat_bad(S("cpu  1\t2 3 4\n")), "stat: a tab");
    tap_ok(stat_bad(S("cpu  18446744073709551616 0 0 0\n")),
           "stat: 2^64 overflows");
    tap_ok(stat_bad(S("cpu  18446744073709551615 1 0 0\n")),
           "stat: a busy sum that overflows");
    tap_ok(stat_bad(S("cpu  1 0 0 18446744073709551615 1\n")),
           "stat: an idle sum that overflows");
    tap_ok(stat_bad(S("cpu  1 2 3 4\0\n")), "stat: a NUL");
}


static void
test_cpu_pct(void)
{
    tap_ok(pct(100, 1000, 150, 1100) == 50, "cpu_pct: half busy");
    tap_ok(pct(100, 1000, 100, 1100) == 0, "cpu_pct: idle");
    tap_ok(pct(100, 1000, 200, 1100) == 100, "cpu_pct: all busy");
    tap_ok(pct(100, 1000, 100, 1000) == 0, "cpu_pct: no time passed");
    tap_ok(pct(100, 1000, 50, 900) == 0, "cpu_pct: counters went back");
    tap_ok(pct(100, 1000, 90, 1100) == 0, "cpu_pct: busy went back");
    tap_ok(pct(100, 1000, 300, 1100) == 100,
           "cpu_pct: busy outgrowing total is 100");
}


static void
test_meminfo(void)
{
    static const char  real[] =
        "MemTotal:       16318480 kB\n"
        "MemFree:         1000000 kB\n"
        "MemAvailable:    8159240 kB\n"
        "Buffers:          123456 kB\n";

    tap_ok(meminfo_is(S(real), 16318480, 8159240), "meminfo: a real sample");
    tap_ok(meminfo_is(S("MemAvailable: 5 kB\nMemTotal: 10 kB\n"), 10, 5),
           "meminfo: another order");

    tap_ok(meminfo_bad(S("MemTotal:       16318480 kB\n"
                         "MemFree:         1000000 kB\n")),
           "meminfo: no MemAvailable");
    tap_ok(meminfo_bad(S("MemAvailable: 5 kB\n")), "meminfo: no MemTotal");
    tap_ok(meminfo_bad(S("")), "meminfo: empty");
    tap_ok(meminfo_bad(S("garbage\n\n\x01\xff")), "meminfo: garbage");
    tap_ok(meminfo_bad(S("MemTotal: x kB\nMemAvailable: 5 kB\n")),
           "meminfo: not a number");
    tap_ok(meminfo_bad(S("MemTotal: 10 MB\nMemAvailable: 5 kB\n")),
           "meminfo: another unit");
    tap_ok(meminfo_bad(S("MemTotal: 10 kB\nMemAvailable: 5 kB")),
           "meminfo: cut before the newline");
    tap_ok(meminfo_bad(S("MemTotal: 99999999999999999999 kB\n"
                         "MemAvailable: 5 kB\n")), "meminfo: overflow");
    tap_ok(meminfo_bad(S("XMemTotal: 10 kB\nMemAvailable: 5 kB\n")),
           "meminfo: a key not at the start of a line");
}


static void
test_no_gpu(void)
{
    int             rc;
    char            buf[GA_TELEMETRY_MAX + 1];
    const char     *lib;
    ga_telemetry_t  t;

    lib = "/nonexistent/gpugate-test/libnvidia-ml.so.1";

    rc = ga_telemetry_open(&t, lib);

    tap_ok(rc == -1 && t.nvml == NULL && strstr(t.reason, lib) != NULL
           && strchr(t.reason, '\n') == NULL,
           "open: a missing library gives no GPU: %s", t.reason);

    rc = ga_telemetry_read(&t);

    tap_ok(rc == 0 && t.snap.ngpus == 0 && t.snap.cpus >= 1
           && t.snap.mem_total_mb > 0, "read without NVML: host figures");

    tap_ok(ga_telemetry_format(&t, buf, sizeof(buf)) > 0
           && strstr(buf, ", gpus=0") != NULL && strchr(buf, ';') == NULL,
           "format without NVML: gpus=0, no sections (%s)", buf);

    ga_telemetry_close(&t);
    ga_telemetry_close(&t);

    tap_ok(t.nvml == NULL, "close twice");

    rc = ga_telemetry_open(&t, "libc.so.6");

    tap_ok(rc == -1 && t.nvml == NULL
           && strstr(t.reason, "nvmlInit_v2") != NULL,
           "open: a library without NVML's symbols: %s", t.reason);

    ga_telemetry_close(&t);

    /* the default name: absent on build machines, there on GPU hosts */

    rc = ga_telemetry_open(&t, NULL);

    if (rc == -1) {
        tap_ok(t.nvml == NULL && t.reason[0] != '\0'
               && strchr(t.reason, '\n') == NULL,
               "open: the default library: no GPU: %s", t.reason);

    } else {
        (void) ga_telemetry_read(&t);
        tap_ok(t.reason[0] == '\0' && t.snap.ngpus >= 1,
               "open: the default library: %u GPU(s)", t.snap.ngpus);
    }

    ga_telemetry_close(&t);
}


static void
test_format(void)
{
    char            buf[4096], small[80];
    size_t          n;
    unsigned        i;
    ga_telemetry_t  t;

    static const char  host[] =
        "cpu_pct=12, cpus=8, mem_used_mb=1000, mem_total_mb=16000, gpus=0";

    static const char  two[] =
        "cpu_pct=12, cpus=8, mem_used_mb=1000, mem_total_mb=16000, gpus=2"
        "; gpu=0, name=\"NVIDIA H200\", util_pct=37, mem_used_mb=81234, "
        "mem_total_mb=143771, temp_c=45, power_w=312"
        "; gpu=1, name=\"NVIDIA A100-SXM4-80GB\", temp_c=0";

    fake_host(&t);

    n = ga_telemetry_format(&t, buf, sizeof(buf));
    tap_ok(n == sizeof(host) - 1 && strcmp(buf, host) == 0,
           "format: no GPU: %s", buf);
    tap_ok(round_trip(&t, buf, sizeof(buf)), "round trip: no GPU");

    tap_ok(ga_telemetry_gpu_free_mb(&t) == 0, "gpu_free_mb: 0 without GPUs");

    fake_gpus(&t);

    n = ga_telemetry_format(&t, buf, sizeof(buf));
    tap_ok(n == sizeof(two) - 1 && strcmp(buf, two) == 0,
           "format: two GPUs, unknown fields left out: %s", buf);
    tap_ok(round_trip(&t, buf, sizeof(buf)), "round trip: two GPUs");

    tap_ok(ga_telemetry_gpu_free_mb(&t) == 62537,
           "gpu_free_mb: one GPU with memory figures");

    t.snap.gpu[1].has_mem = 1;
    t.snap.gpu[1].mem_free_mb = 70000;
    tap_ok(ga_telemetry_gpu_free_mb(&t) == 70000,
           "gpu_free_mb: the largest of two");

    t.snap.gpu[1].has_mem = 0;
    tap_ok(ga_telemetry_gpu_free_mb(&t) == 62537,
           "gpu_free_mb: a GPU without memory figures does not count");

    /* the buffer: the value and its NUL, or nothing */

    n = ga_telemetry_format(&t, buf, sizeof(two) - 1);
    tap_ok(n == 0 && buf[0] == '\0', "format: no room for the NUL gives 0");

    n = ga_telemetry_format(&t, buf, sizeof(two));
    tap_ok(n == sizeof(two) - 1 && strcmp(buf, two) == 0,
           "format: an exact buffer");

    tap_ok(ga_telemetry_format(&t, small, sizeof(small)) == 0,
           "format: a small buffer gives 0");
    tap_ok(ga_telemetry_format(&t, small, 0) == 0, "format: size 0");

    /* names */

    fake_host(&t);
    fake_gpus(&t);
    strcpy(t.snap.gpu[0].name, "A \"quoted\" \\ caf\xc3\xa9\tx\x7f");
    t.snap.gpu[1].name[0] = '\0';

    n = ga_telemetry_format(&t, buf, sizeof(buf));
    tap_ok(n > 0 && strstr(buf, "name=\"A ?quoted? ? caf???x?\"") != NULL,
           "format: quotes, backslash, UTF-8, tab, DEL become '?': %s", buf);
    tap_ok(strstr(buf, "; gpu=1, name=\"?\", temp_c=0") != NULL,
           "format: an unknown name is \"?\"");
    tap_ok(round_trip(&t, buf, sizeof(buf)), "round trip: odd names");

    memset(t.snap.gpu[0].name, 'n', GA_TELEMETRY_NAME_SIZE - 1);
    t.snap.gpu[0].name[GA_TELEMETRY_NAME_SIZE - 1] = '\0';

    memcpy(small, "name=\"", 6);
    memset(small + 6, 'n', 63);
    memcpy(small + 69, "\"", 2);

    n = ga_telemetry_format(&t, buf, sizeof(buf));
    tap_ok(n > 0 && strstr(buf, small) != NULL,
           "format: a 95-byte name is cut to 63");
    tap_ok(round_trip(&t, buf, sizeof(buf)), "round trip: a long name");

    /* clamping */

    fake_host(&t);
    fake_gpus(&t);
    t.snap.cpu_pct = 150;
    t.snap.mem_total_mb = 1ULL << 40;
    t.snap.mem_used_mb = WIRE_MAX;
    t.snap.gpu[0].mem_total_mb = WIRE_MAX + 1;

    n = ga_telemetry_format(&t, buf, sizeof(buf));
    tap_ok(n > 0 && strncmp(buf, CLAMPED, sizeof(CLAMPED) - 1) == 0
           && strstr(buf, ", mem_total_mb=4294967295, temp_c=45") != NULL,
           "format: clamped to 100 and 2^32-1: %s", buf);
    tap_ok(round_trip(&t, buf, sizeof(buf)), "round trip: clamped figures");

    /* sixteen GPUs: more than the gateway keeps, still within its limit */

    fake_host(&t);

    for (i = 0; i < GA_TELEMETRY_GPUS_MAX; i++) {
        t.snap.gpu[i] = t.snap.gpu[0];
        t.snap.gpu[i].index = i;
        strcpy(t.snap.gpu[i].name, "NVIDIA H100 80GB HBM3");
        t.snap.gpu[i].util_pct = 100;
        t.snap.gpu[i].mem_used_mb = 81559;
        t.snap.gpu[i].mem_total_mb = 81559;
        t.snap.gpu[i].temp_c = 85;
        t.snap.gpu[i].power_w = 700;
        t.snap.gpu[i].has_util = 1;
        t.snap.gpu[i].has_mem = 1;
        t.snap.gpu[i].has_temp = 1;
        t.snap.gpu[i].has_power = 1;
    }

    t.snap.ngpus = GA_TELEMETRY_GPUS_MAX;

    n = ga_telemetry_format(&t, buf, sizeof(buf));
    tap_ok(n > 0 && n <= GA_TELEMETRY_MAX && strstr(buf, "gpus=16;") != NULL,
           "format: 16 GPUs in %zu bytes", n);
    tap_ok(round_trip(&t, buf, sizeof(buf)),
           "round trip: 16 GPUs, the gateway keeps 8");

    /* the worst case does not fit the gateway's limit: nothing is sent */

    for (i = 0; i < GA_TELEMETRY_GPUS_MAX; i++) {
        memset(t.snap.gpu[i].name, 'x', GA_TELEMETRY_NAME_MAX);
        t.snap.gpu[i].name[GA_TELEMETRY_NAME_MAX] = '\0';
        t.snap.gpu[i].index = 4000000000u;
        t.snap.gpu[i].util_pct = 4000000000u;
        t.snap.gpu[i].mem_used_mb = WIRE_MAX;
        t.snap.gpu[i].mem_total_mb = WIRE_MAX;
        t.snap.gpu[i].temp_c = 4000000000u;
        t.snap.gpu[i].power_w = 4000000000u;
    }

    tap_ok(ga_telemetry_format(&t, buf, sizeof(buf)) == 0,
           "format: over GA_TELEMETRY_MAX bytes gives 0");
}


static void
test_round_trips(void)
{
    int             ok;
    char            buf[GA_TELEMETRY_MAX + 1];
    size_t          n;
    unsigned        i, sent;
    ga_telemetry_t  t;

    ok = 1;
    sent = 0;

    for (i = 0; i < 20000; i++) {
        rnd_snapshot(&t);

        n = ga_telemetry_format(&t, buf, sizeof(buf));

        if (n == 0) {
            continue;
        }

        sent++;

        if (!round_trip(&t, buf, sizeof(buf))) {
            printf("# round trip failed: %s\n", buf);
            ok = 0;
            break;
        }
    }

    tap_ok(ok && sent > 10000,
           "round trip: %u of 20000 random snapshots sent, all read back",
           sent);
}


static void
test_read(void)
{
    int             rc;
    char            buf[GA_TELEMETRY_MAX + 1];
    ga_telemetry_t  t;

    (void) ga_telemetry_open(&t, NULL);

    rc = ga_telemetry_read(&t);

    tap_ok(rc == 0 && t.snap.cpus >= 1 && t.snap.mem_total_mb > 0
           && t.snap.mem_used_mb <= t.snap.mem_total_mb
           && t.snap.cpu_pct == 0,
           "read: cpus %u, memory %llu of %llu MiB", t.snap.cpus,
           (unsigned long long) t.snap.mem_used_mb,
           (unsigned long long) t.snap.mem_total_mb);

    usleep(50000);

    rc = ga_telemetry_read(&t);

    tap_ok(rc == 0 && t.snap.cpu_pct <= 100 && t.has_prev,
           "read again: cpu_pct %u", t.snap.cpu_pct);

    tap_ok(round_trip(&t, buf, sizeof(buf)), "round trip: a real read: %s",
           buf);

    ga_telemetry_close(&t);
}


int
main(void)
{
    test_stat();
    test_cpu_pct();
    test_meminfo();
    test_no_gpu();
    test_format();
    test_round_trips();
    test_read();

    return tap_done();
}
