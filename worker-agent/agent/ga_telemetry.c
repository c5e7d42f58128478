
/*
 * Copyright (C) gpugate authors
 *
 * Host and GPU telemetry (ga_telemetry.h).  NVML is declared here rather
 * than taken from the NVIDIA headers, which build machines do not have:
 * only the few calls below, whose signatures NVML keeps stable across
 * driver versions (the "_v2" names are the ones current drivers export).
 */


#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ga_telemetry.h"


#define GA_NVML_LIB               "libnvidia-ml.so.1"
#define GA_NVML_SUCCESS           0
#define GA_NVML_TEMPERATURE_GPU   0
#define GA_TELEMETRY_UINT_MAX     4294967295ULL   /* the wire's limit */

/* the "cpu " line comes first; the per-CPU and interrupt lines after it
   can be many kilobytes, and are not needed */
#define GA_TELEMETRY_STAT_READ    8192
#define GA_TELEMETRY_MEMINFO_READ 8192


typedef int    ga_nvml_ret_t;
typedef void  *ga_nvml_dev_t;


typedef struct {
    unsigned int         gpu;          /* percent of time a kernel ran */
    unsigned int         memory;       /* percent of time memory was
                                          read or written */
} ga_nvml_util_t;


typedef struct {
    unsigned long long   total;        /* bytes */
    unsigned long long   free;         /* bytes */
    unsigned long long   used;         /* bytes, driver reserve excluded */
} ga_nvml_mem_t;


struct ga_nvml_s {
    void                 *lib;         /* dlopen() handle */
    ga_nvml_ret_t       (*init)(void);                  /* nvmlInit_v2 */
    ga_nvml_ret_t       (*shutdown)(void);              /* nvmlShutdown */
    ga_nvml_ret_t       (*count)(unsigned int *n);      /* ...GetCount_v2 */
    ga_nvml_ret_t       (*handle)(unsigned int i, ga_nvml_dev_t *dev);
                                       /* ...GetHandleByIndex_v2 */
    ga_nvml_ret_t       (*name)(ga_nvml_dev_t dev, char *name,
                                unsigned int len);      /* ...GetName */
    ga_nvml_ret_t       (*util)(ga_nvml_dev_t dev, ga_nvml_util_t *u);
                                       /* ...GetUtilizationRates */
    ga_nvml_ret_t       (*mem)(ga_nvml_dev_t dev, ga_nvml_mem_t *m);
                                       /* ...GetMemoryInfo */
    ga_nvml_ret_t       (*temp)(ga_nvml_dev_t dev, int sensor,
                                unsigned int *c);       /* ...GetTemperature */
    ga_nvml_ret_t       (*power)(ga_nvml_dev_t dev, unsigned int *mw);
                                       /* ...GetPowerUsage, milliwatts */
    const char         *(*error)(ga_nvml_ret_t rc);     /* nvmlErrorString */
    unsigned              ndevs;       /* GPUs reported, at most
                                          GA_TELEMETRY_GPUS_MAX */
    ga_nvml_dev_t         dev[GA_TELEMETRY_GPUS_MAX]; /* their handles */
    unsigned char         dev_ok[GA_TELEMETRY_GPUS_MAX]; /* the handle
                                                            was given */
};


typedef struct {
    const char           *name;        /* exported symbol */
    size_t                offset;      /* its pointer in ga_nvml_t */
} ga_nvml_sym_t;


static const ga_nvml_sym_t  ga_nvml_syms[] = {
    { "nvmlInit_v2", offsetof(ga_nvml_t, init) },
    { "nvmlShutdown", offsetof(ga_nvml_t, shutdown) },
    { "nvmlDeviceGetCount_v2", offsetof(ga_nvml_t, count) },
    { "nvmlDeviceGetHandleByIndex_v2", offsetof(ga_nvml_t, handle) },
    { "nvmlDeviceGetName", offsetof(ga_nvml_t, name) },
    { "nvmlDeviceGetUtilizationRates", offsetof(ga_nvml_t, util) },
    { "nvmlDeviceGetMemoryInfo", offsetof(ga_nvml_t, mem) },
    { "nvmlDeviceGetTemperature", offsetof(ga_nvml_t, temp) },
    { "nvmlDeviceGetPowerUsage", offsetof(ga_nvml_t, power) },
    { "nvmlErrorString", offsetof(ga_nvml_t, error) },
};

#define GA_NVML_NSYMS  (sizeof(ga_nvml_syms) / sizeof(ga_nvml_syms[0]))


typedef struct {
    char                 *buf;         /* the caller's */
    size_t                size;        /* of buf */
    size_t                len;         /* written so far */
    int                   full;        /* something did not fit */
} ga_telemetry_out_t;


static const char *ga_telemetry_uint(const char *p, const char *end,
    uint64_t *v);
static const char *ga_telemetry_line(const char *text, const char *end,
    const char *key, size_t klen);
static ssize_t ga_telemetry_slurp(const char *path, char *buf, size_t size);
static void ga_telemetry_read_gpus(ga_telemetry_t *t);
static void ga_telemetry_reason(ga_telemetry_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *ga_nvml_error(ga_nvml_t *nvml, ga_nvml_ret_t rc);
static void ga_out_str(ga_telemetry_out_t *o, const char *s);
static void ga_out_uint(ga_telemetry_out_t *o, const char *key, uint64_t v);
static void ga_out_name(ga_telemetry_out_t *o, const char *name);


int
ga_telemetry_parse_stat(const char *text, size_t len, ga_cpu_times_t *t)
{
    int          i;
    uint64_t     v[8], busy, total;
    const char  *p, *end;

    end = text + len;
    p = ga_telemetry_line(text, end, "cpu ", 4);

    if (p == NULL) {
        return -1;
    }

    /*
     * user nice system idle iowait irq softirq steal [guest guest_nice];
     * kernels before 2.6.11 stop after idle, so only four are needed
     */

    for (i = 0; i < 8; i++) {
        while (p < end && *p == ' ') {
            p++;
        }

        if (p == end || *p == '\n') {
            break;
        }

        p = ga_telemetry_uint(p, end, &v[i]);

        if (p == NULL || p == end || (*p != ' ' && *p != '\n')) {
            return -1;
        }
    }

    if (i < 4) {
        return -1;
    }

    for ( /* void */ ; i < 8; i++) {
        v[i] = 0;
    }

    /* the rest of the line (guest figures) must still be complete */

    if (memchr(p, '\n', end - p) == NULL) {
        return -1;
    }

    busy = 0;

    for (i = 0; i < 8; i++) {
        if (i == 3 || i == 4) {
            continue;
        }

        if (busy > UINT64_MAX - v[i]) {
            return -1;
        }

        busy += v[i];
    }

    if (v[3] > UINT64_MAX - v[4] || busy > UINT64_MAX - v[3] - v[4]) {
        return -1;
    }

    total = busy + v[3] + v[4];

    t->busy = busy;
    t->total = total;

    return 0;
}


double
ga_telemetry_cpu_pct(const ga_cpu_times_t *prev, const ga_cpu_times_t *now)
{
    double  pct;

    if (now->total <= prev->total || now->busy < prev->busy) {
        return 0;
    }

    pct = 100.0 * (double) (now->busy - prev->busy)
          / (double) (now->total - prev->total);

    /* iowait may go backwards on some kernels, so busy can outgrow total */

    return pct > 100 ? 100 : pct;
}


int
ga_telemetry_parse_meminfo(const char *text, size_t len, uint64_t *total_kb,
    uint64_t *avail_kb)
{
    int          i;
    uint64_t     v;
    const char  *p, *end;

    static const struct {
        const char  *key;
        size_t       klen;
    } keys[2] = {
        { "MemTotal:", 9 },
        { "MemAvailable:", 13 },
    };

    end = text + len;

    for (i = 0; i < 2; i++) {
        p = ga_telemetry_line(text, end, keys[i].key, keys[i].klen);

        if (p == NULL) {
            return -1;
        }

        while (p < end && *p == ' ') {
            p++;
        }

        p = ga_telemetry_uint(p, end, &v);

        if (p == NULL || (size_t) (end - p) < 4
            || memcmp(p, " kB\n", 4) != 0)
        {
            return -1;
        }

        if (i == 0) {
            *total_kb = v;

        } else {
            *avail_kb = v;
        }
    }

    return 0;
}


int
ga_telemetry_open(ga_telemetry_t *t, const char *lib)
{
    size_t          i;
    void           *sym;
    const char     *err;
    unsigned int    n;
    ga_nvml_t      *nvml;
    ga_nvml_ret_t   rc;

    memset(t, 0, sizeof(*t));

    if (lib == NULL) {
        lib = GA_NVML_LIB;
    }

    nvml = calloc(1, sizeof(ga_nvml_t));

    if (nvml == NULL) {
        ga_telemetry_reason(t, "NVML: %s", strerror(errno));
        return -1;
    }

    (void) dlerror();

    nvml->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);

    if (nvml->lib == NULL) {
        err = dlerror();
        ga_telemetry_reason(t, "%s", err ? err : lib);
        free(nvml);
        return -1;
    }

    for (i = 0; i < GA_NVML_NSYMS; i++) {
        sym = dlsym(nvml->lib, ga_nvml_syms[i].name);

        if (sym == NULL) {
            err = dlerror();
            ga_telemetry_reason(t, "%s: no %s%s%s", lib,
                                ga_nvml_syms[i].name, err ? ": " : "",
                                err ? err : "");
            goto failed;
        }

        /* object to function pointer: memcpy is what POSIX leaves us */

        memcpy((char *) nvml + ga_nvml_syms[i].offset, &sym, sizeof(sym));
    }

    rc = nvml->init();

    if (rc != GA_NVML_SUCCESS) {
        ga_telemetry_reason(t, "nvmlInit: %s", ga_nvml_error(nvml, rc));
        goto failed;
    }

    rc = nvml->count(&n);

    if (rc != GA_NVML_SUCCESS || n == 0) {
        ga_telemetry_reason(t, "nvmlDeviceGetCount: %s",
                            rc ? ga_nvml_error(nvml, rc) : "no GPU");
        (void) nvml->shutdown();
        goto failed;
    }

    nvml->ndevs = n < GA_TELEMETRY_GPUS_MAX ? n : GA_TELEMETRY_GPUS_MAX;

    for (n = 0; n < nvml->ndevs; n++) {
        nvml->dev_ok[n] = nvml->handle(n, &nvml->dev[n]) == GA_NVML_SUCCESS;
    }

    t->nvml = nvml;

    return 0;

failed:

    dlclose(nvml->lib);
    free(nvml);

    return -1;
}


int
ga_telemetry_read(ga_telemetry_t *t)
{
    int             rc;
    long            n;
    char            buf[GA_TELEMETRY_STAT_READ];
    ssize_t         len;
    uint64_t        total, avail;
    ga_cpu_times_t  now;

    rc = 0;

    n = sysconf(_SC_NPROCESSORS_ONLN);
    t->snap.cpus = n > 0 && n <= (long) GA_TELEMETRY_UINT_MAX
                   ? (unsigned) n : 0;

    len = ga_telemetry_slurp("/proc/stat", buf, sizeof(buf));

    if (len >= 0 && ga_telemetry_parse_stat(buf, len, &now) == 0) {
        t->snap.cpu_pct = t->has_prev
                          ? (unsigned) (ga_telemetry_cpu_pct(&t->cpu_prev,
                                                             &now) + 0.5)
                          : 0;
        t->cpu_prev = now;
        t->has_prev = 1;

    } else {
        t->snap.cpu_pct = 0;
        rc = -1;
    }

    len = ga_telemetry_slurp("/proc/meminfo", buf,
                             GA_TELEMETRY_MEMINFO_READ);

    if (len >= 0
        && ga_telemetry_parse_meminfo(buf, len, &total, &avail) == 0)
    {
        t->snap.mem_total_mb = total / 1024;
        t->snap.mem_used_mb = avail < total ? (total - avail) / 1024 : 0;

    } else {
        t->snap.mem_total_mb = 0;
        t->snap.mem_used_mb = 0;
        rc = -1;
    }

    ga_telemetry_read_gpus(t);

    return rc;
}


void
ga_telemetry_close(ga_telemetry_t *t)
{
    if (t->nvml != NULL) {
        (void) t->nvml->shutdown();
        dlclose(t->nvml->lib);
        free(t->nvml);
        t->nvml = NULL;
    }

    t->snap.ngpus = 0;
}


size_t
ga_telemetry_format(const ga_telemetry_t *t, char *buf, size_t size)
{
    unsigned                   i;
    ga_telemetry_out_t         o;
    const ga_telemetry_gpu_t  *g;

    o.buf = buf;
    o.size = size;
    o.len = 0;
    o.full = 0;

    ga_out_uint(&o, "cpu_pct=",
                t->snap.cpu_pct > 100 ? 100 : t->snap.cpu_pct);
    ga_out_uint(&o, ", cpus=", t->snap.cpus);
    ga_out_uint(&o, ", mem_used_mb=", t->snap.mem_used_mb);
    ga_out_uint(&o, ", mem_total_mb=", t->snap.mem_total_mb);
    ga_out_uint(&o, ", gpus=", t->snap.ngpus);

    for (i = 0; i < t->snap.ngpus && i < GA_TELEMETRY_GPUS_MAX; i++) {
        g = &t->snap.gpu[i];

        ga_out_uint(&o, "; gpu=", g->index);
        ga_out_str(&o, ", name=\"");
        ga_out_name(&o, g->name);
        ga_out_str(&o, "\"");

        if (g->has_util) {
            ga_out_uint(&o, ", util_pct=", g->util_pct);
        }

        if (g->has_mem) {
            ga_out_uint(&o, ", mem_used_mb=", g->mem_used_mb);
            ga_out_uint(&o, ", mem_total_mb=", g->mem_total_mb);
        }

        if (g->has_temp) {
            ga_out_uint(&o, ", temp_c=", g->temp_c);
        }

        if (g->has_power) {
            ga_out_uint(&o, ", power_w=", g->power_w);
        }
    }

    if (o.full || o.len >= size || o.len > GA_TELEMETRY_MAX) {
        if (size > 0) {
            buf[0] = '\0';
        }

        return 0;
    }

    buf[o.len] = '\0';

    return o.len;
}


uint64_t
ga_telemetry_gpu_free_mb(const ga_telemetry_t *t)
{
    unsigned  i;
    uint64_t  best;

    best = 0;

    for (i = 0; i < t->snap.ngpus && i < GA_TELEMETRY_GPUS_MAX; i++) {
        if (t->snap.gpu[i].has_mem && t->snap.gpu[i].mem_free_mb > best) {
            best = t->snap.gpu[i].mem_free_mb;
        }
    }

    return best;
}


/* a decimal up to UINT64_MAX; the end of its digits, or NULL */

static const char *
ga_telemetry_uint(const char *p, const char *end, uint64_t *v)
{
    uint64_t     n, d;
    const char  *start;

    n = 0;
    start = p;

    while (p < end && *p >= '0' && *p <= '9') {
        d = (uint64_t) (*p - '0');

        if (n > (UINT64_MAX - d) / 10) {
            return NULL;
        }

        n = n * 10 + d;
        p++;
    }

    if (p == start) {
        return NULL;
    }

    *v = n;

    return p;
}


/* the byte after "key" at the start of a line, or NULL */

static const char *
ga_telemetry_line(const char *text, const char *end, const char *key,
    size_t klen)
{
    const char  *p, *nl;

    p = text;

    while (p < end) {
        if ((size_t) (end - p) >= klen && memcmp(p, key, klen) == 0) {
            return p + klen;
        }

        nl = memchr(p, '\n', end - p);

        if (nl == NULL) {
            break;
        }

        p = nl + 1;
    }

    return NULL;
}


/* up to "size" bytes of a /proc file: its length, or -1 */

static ssize_t
ga_telemetry_slurp(const char *path, char *buf, size_t size)
{
    int      fd;
    size_t   len;
    ssize_t  n;

    fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        return -1;
    }

    /* /proc files may come in more than one read */

    len = 0;
    n = 0;

    while (len < size) {
        n = read(fd, buf + len, size - len);

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n <= 0) {
            break;
        }

        len += n;
    }

    (void) close(fd);

    return n == -1 ? -1 : (ssize_t) len;
}


static void
ga_telemetry_read_gpus(ga_telemetry_t *t)
{
    unsigned             i;
    unsigned int         c, mw;
    ga_nvml_t           *nvml;
    ga_nvml_mem_t        m;
    ga_nvml_dev_t        dev;
    ga_nvml_util_t       u;
    ga_telemetry_gpu_t  *g;

    nvml = t->nvml;

    if (nvml == NULL) {
        t->snap.ngpus = 0;
        return;
    }

    t->snap.ngpus = nvml->ndevs;

    for (i = 0; i < nvml->ndevs; i++) {
        g = &t->snap.gpu[i];
        memset(g, 0, sizeof(*g));
        g->index = i;

        /* a GPU without a handle (fallen off the bus) is still listed */

        if (!nvml->dev_ok[i]) {
            continue;
        }

        dev = nvml->dev[i];

        if (nvml->name(dev, g->name, sizeof(g->name)) != GA_NVML_SUCCESS) {
            g->name[0] = '\0';
        }

        g->name[sizeof(g->name) - 1] = '\0';

        if (nvml->util(dev, &u) == GA_NVML_SUCCESS) {
            g->util_pct = u.gpu;
            g->has_util = 1;
        }

        if (nvml->mem(dev, &m) == GA_NVML_SUCCESS) {
            g->mem_total_mb = m.total >> 20;
            g->mem_used_mb = m.used >> 20;
            g->mem_free_mb = m.free >> 20;
            g->has_mem = 1;
        }

        if (nvml->temp(dev, GA_NVML_TEMPERATURE_GPU, &c) == GA_NVML_SUCCESS) {
            g->temp_c = c;
            g->has_temp = 1;
        }

        if (nvml->power(dev, &mw) == GA_NVML_SUCCESS) {
            g->power_w = (mw + 500) / 1000;
            g->has_power = 1;
        }
    }
}


/* a one-line reason: dlerror() and NVML texts are not ours to trust */

static void
ga_telemetry_reason(ga_telemetry_t *t, const char *fmt, ...)
{
    char     *p;
    va_list   args;

    va_start(args, fmt);
    (void) vsnprintf(t->reason, sizeof(t->reason), fmt, args);
    va_end(args);

    for (p = t->reason; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
}


static const char *
ga_nvml_error(ga_nvml_t *nvml, ga_nvml_ret_t rc)
{
    const char  *s;

    s = nvml->error ? nvml->error(rc) : NULL;

    return s ? s : "unknown error";
}


static void
ga_out_str(ga_telemetry_out_t *o, const char *s)
{
    size_t  n;

    n = strlen(s);

    if (o->full || n >= o->size - o->len || o->size == 0) {
        o->full = 1;
        return;
    }

    memcpy(o->buf + o->len, s, n);
    o->len += n;
}


static void
ga_out_uint(ga_telemetry_out_t *o, const char *key, uint64_t v)
{
    char   num[24], *p;

    if (v > GA_TELEMETRY_UINT_MAX) {
        v = GA_TELEMETRY_UINT_MAX;
    }

    p = num + sizeof(num) - 1;
    *p = '\0';

    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    ga_out_str(o, key);
    ga_out_str(o, p);
}


static void
ga_out_name(ga_telemetry_out_t *o, const char *name)
{
    char           s[GA_TELEMETRY_NAME_MAX + 1];
    size_t         i;
    unsigned char  ch;

    for (i = 0; i < GA_TELEMETRY_NAME_MAX && name[i] != '\0'; i++) {
        ch = (unsigned char) name[i];
        s[i] = (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
               ? '?' : (char) ch;
    }

    /* the gateway needs a name of at least one byte */

    if (i == 0) {
        s[i++] = '?';
    }

    s[i] = '\0';

    ga_out_str(o, s);
}
