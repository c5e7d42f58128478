
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
} ga_runtime_dialect_t;


/* indexed by ga_runtime_e */
static const ga_runtime_dialect_t  ga_dialects[] = {
    { "openai", NULL, "/v1/models", "/v1/models", NULL, NULL },
    { "vllm", "/metrics", "/v1/models", "/health",
      "vllm:num_requests_running", "vllm:num_requests_waiting" },
    { "llamacpp", "/metrics", "/v1/models", "/health",
      "llamacpp:requests_processing", "llamacpp:requests_deferred" },
    { "sglang", "/metrics", "/v1/models", "/health",
      "sglang:num_running_reqs", "sglang:num_queue_reqs" },
    { "tgi", "/metrics", "/info", "/health",
      "tgi_batch_current_size", "tgi_queue_size" },
    { "ollama", "/api/ps", "/api/tags", "/", NULL, NULL },
};

#define GA_NDIALECTS  (sizeof(ga_dialects) / sizeof(ga_dialects[0]))

#define GA_MIB  (1024 * 1024)


static int ga_load_ollama(const char *text, size_t len, ga_load_t *load);
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
            load->waiting += (uint64_t) v;
            load->has_waiting = 1;

        } else if (ga_load_sample(p, next, d->running, &v)) {
            load->running += (uint64_t) v;
            load->has_running = 1;
        }

        p = next;
    }

    return load->has_waiting ? 0 : -1;
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

    if (*e != '\0' || !isfinite(*value) || *value < 0
        || *value > 4294967295.0)
    {
        return NULL;
    }

    return p;
}
