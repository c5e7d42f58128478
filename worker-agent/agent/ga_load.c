
/*
 * Copyright (C) gpugate authors
 *
 * Runtime load from Prometheus text, or from Ollama's /api/ps JSON
 * (ga_load.h).  The input is not NUL-terminated and may be anything:
 * every read is bounded by "len".
 */


#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ga_load.h"


typedef struct {
    const char  *name;         /* ga_runtime_type() spelling */
    const char  *path;         /* metrics endpoint */
    const char  *models;       /* endpoint listing the served models */
    const char  *health;       /* endpoint that answers 200 when up */
    const char  *running;      /* gauge of requests being generated */
    const char  *waiting;      /* gauge of requests queued */
    const char  *kv[2];        /* gauges of the KV cache in use, 0..1,
                                  newest name first */
    const char  *hit;          /* gauge of the prefix cache hit rate */
    const char  *hits;         /* counter of prefix cache hits */
    const char  *queries;      /* counter of prefix cache lookups */
} ga_runtime_dialect_t;


/* indexed by ga_runtime_e */
static const ga_runtime_dialect_t  ga_dialects[] = {
    { "openai", NULL, "/v1/models", "/v1/models", NULL, NULL,
      { NULL, NULL }, NULL, NULL, NULL },
    { "vllm", "/metrics", "/v1/models", "/health",
      "vllm:num_requests_running", "vllm:num_requests_waiting",
      { "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc" },
      "vllm:gpu_prefix_cache_hit_rate", "vllm:prefix_cache_hits_total",
      "vllm:prefix_cache_queries_total" },
    { "llamacpp", "/metrics", "/v1/models", "/health",
      "llamacpp:requests_processing", "llamacpp:requests_deferred",
      { "llamacpp:kv_cache_usage_ratio", NULL }, NULL, NULL, NULL },
    { "sglang", "/metrics", "/v1/models", "/health",
      "sglang:num_running_reqs", "sglang:num_queue_reqs",
      { "sglang:token_usage", NULL }, "sglang:cache_hit_rate", NULL, NULL },
    { "tgi", "/metrics", "/info", "/health",
      "tgi_batch_current_size", "tgi_queue_size",
      { NULL, NULL }, NULL, NULL, NULL },
    { "ollama", "/api/ps", "/api/tags", "/", NULL, NULL,
      { NULL, NULL }, NULL, NULL, NULL },
};

#define GA_NDIALECTS  (sizeof(ga_dialects) / sizeof(ga_dialects[0]))

#define GA_MIB  (1024 * 1024)

/* the most requests a running or waiting gauge may report */
#define GA_GAUGE_MAX  4294967295.0


static int ga_load_ollama(const char *text, size_t len, ga_load_t *load);
static void ga_load_cache(const ga_runtime_dialect_t *d, const char *p,
    const char *end, ga_load_t *load);
static const char *ga_load_sample(const char *p, const char *end,
    const char *metric, double *value);


int
ga_runtime_type(const char *name, ga_runtime_e *type)
{
    size_t  i;

    for (i = 0; i < GA_NDIALECTS; i++) {
        if (strcmp(name, ga_dialects[i].name) == 0) {
            *type = (ga_runtime_e) i;
            return 0;
        }
    }

    return -1;
}


const char *
ga_runtime_name(ga_runtime_e type)
{
    return (size_t) type < GA_NDIALECTS ? ga_dialects[type].name : "?";
}


const char *
ga_runtime_metrics_path(ga_runtime_e type)
{
    return (size_t) type < GA_NDIALECTS ? ga_dialects[type].path : NULL;
}


const char *
ga_runtime_models_path(ga_runtime_e type)
{
    return (size_t) type < GA_NDIALECTS ? ga_dialects[type].models : NULL;
}


const char *
ga_runtime_health_path(ga_runtime_e type)
{
    return (size_t) type < GA_NDIALECTS ? ga_dialects[type].health : NULL;
}


int
ga_load_parse(ga_runtime_e type, const char *text, size_t len,
    ga_load_t *load)
{
    double                      v;
    const char                 *p, *end, *next;
    const ga_runtime_dialect_t  *d;

    memset(load, 0, sizeof(*load));

    if (type == GA_RUNTIME_OLLAMA) {
        return ga_load_ollama(text, len, load);
    }

    if ((size_t) type >= GA_NDIALECTS || ga_dialects[type].waiting == NULL) {
        return -1;
    }

    d = &ga_dialects[type];
    p = text;
    end = text + len;

    while (p < end) {
        next = memchr(p, '\n', end - p);
        next = next ? next + 1 : end;

        if (ga_load_sample(p, next, d->waiting, &v)) {
            if (v <= GA_GAUGE_MAX) {
                load->waiting += (uint64_t) v;
                load->has_waiting = 1;
            }

        } else if (ga_load_sample(p, next, d->running, &v)) {
            if (v <= GA_GAUGE_MAX) {
                load->running += (uint64_t) v;
                load->has_running = 1;
            }

        } else {
            ga_load_cache(d, p, next, load);
        }

        p = next;
    }

    /* one counter without the other, or more hits than lookups, is no
       figure to report */

    load->has_counts = load->has_hits && load->has_queries
                       && load->hits <= load->queries;

    return load->has_waiting ? 0 : -1;
}


/*
 * A line of the dialect's cache figures: ratios above 1 are not ratios
 * (a runtime exporting per cent under the name), and skipped.
 */

static void
ga_load_cache(const ga_runtime_dialect_t *d, const char *p,
    const char *end, ga_load_t *load)
{
    int     i;
    double  v;

    for (i = 0; i < 2; i++) {
        if (d->kv[i] && ga_load_sample(p, end, d->kv[i], &v)) {
            if (v <= 1.0 && (!load->has_kv || v > load->kv)) {
                load->kv = v;
                load->has_kv = 1;
            }

            return;
        }
    }

    if (d->hit && ga_load_sample(p, end, d->hit, &v)) {
        if (v <= 1.0 && (!load->has_hit || v > load->hit)) {
            load->hit = v;
            load->has_hit = 1;
        }

        return;
    }

    if (d->hits && ga_load_sample(p, end, d->hits, &v)) {
        load->hits += v;
        load->has_hits = 1;
        return;
    }

    if (d->queries && ga_load_sample(p, end, d->queries, &v)) {
        load->queries += v;
        load->has_queries = 1;
    }
}


int
ga_load_hit_pct(const ga_load_t *prev, const ga_load_t *now)
{
    double  hits, queries;

    if (now->has_counts) {
        hits = now->hits;
        queries = now->queries;

        if (prev && prev->has_counts && prev->queries <= now->queries
            && prev->hits <= now->hits)
        {
            hits -= prev->hits;
            queries -= prev->queries;
        }

        if (queries <= 0 || hits > queries) {
            return -1;
        }

        return (int) (hits * 100 / queries + 0.5);
    }

    if (now->has_hit) {
        return (int) (now->hit * 100 + 0.5);
    }

    return -1;
}


/*
 * Ollama's /api/ps: {"models": [{"name": ..., "size_vram": <bytes>, ...}]}.
 * Only the shape is checked that the numbers rely on: a model that is not
 * an object, or a size_vram that is not a non-negative integer, means the
 * answer is not what was asked for, and half of it would mislead.
 */

static int
ga_load_ollama(const char *text, size_t len, ga_load_t *load)
{
    size_t        i, n;
    json_t       *root, *models, *m, *v;
    uint64_t      bytes, b;
    json_int_t    iv;
    json_error_t  jerr;

    root = json_loadb(text, len, 0, &jerr);

    if (root == NULL) {
        return -1;
    }

    models = json_object_get(root, "models");

    if (!json_is_array(models)) {
        json_decref(root);
        return -1;
    }

    n = json_array_size(models);
    bytes = 0;
    load->has_vram = 1;

    for (i = 0; i < n; i++) {
        m = json_array_get(models, i);

        if (!json_is_object(m)) {
            goto invalid;
        }

        v = json_object_get(m, "size_vram");

        if (v == NULL) {
            /* an older Ollama: resident, but how much is on the GPU? */
            load->has_vram = 0;
            continue;
        }

        if (!json_is_integer(v) || (iv = json_integer_value(v)) < 0) {
            goto invalid;
        }

        b = (uint64_t) iv;
        bytes = (bytes > UINT64_MAX - b) ? UINT64_MAX : bytes + b;
    }

    json_decref(root);

    load->loaded = n;
    load->has_loaded = 1;

    if (load->has_vram) {
        load->vram_mb = bytes / GA_MIB;
    }

    return 0;

invalid:

    json_decref(root);
    memset(load, 0, sizeof(*load));

    return -1;
}


/*
 * Whether the line [p, end) is a sample of "metric" with a usable value:
 * "metric[{labels}] value [timestamp]".  Label values are quoted strings
 * that may hold "}" and escaped quotes.
 */

static const char *
ga_load_sample(const char *p, const char *end, const char *metric,
    double *value)
{
    int     quoted;
    char    num[64], *e;
    size_t  n;

    n = strlen(metric);

    if ((size_t) (end - p) <= n || memcmp(p, metric, n) != 0) {
        return NULL;
    }

    p += n;

    if (*p == '{') {
        quoted = 0;

        for (p++; p < end; p++) {
            if (quoted) {
                if (*p == '\\') {
                    p++;

                } else if (*p == '"') {
                    quoted = 0;
                }

            } else if (*p == '"') {
                quoted = 1;

            } else if (*p == '}') {
                break;
            }
        }

        if (p >= end) {
            return NULL;
        }

        p++;
    }

    /* a longer name that starts the same ("..._total") is another metric */

    if (p == end || (*p != ' ' && *p != '\t')) {
        return NULL;
    }

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    for (n = 0; p < end && n < sizeof(num) - 1; n++, p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            break;
        }

        num[n] = *p;
    }

    num[n] = '\0';

    if (n == 0) {
        return NULL;
    }

    *value = strtod(num, &e);

    /* counters (prefix cache lookups) grow past 2^32; the gauges are
       bounded by the caller */

    if (*e != '\0' || !isfinite(*value) || *value < 0 || *value > 1e18) {
        return NULL;
    }

    return p;
}
