
/*
 * Copyright (C) gpugate authors
 *
 * Runtime load from Prometheus text (ga_load.h).  The input is not
 * NUL-terminated and may be anything: every read is bounded by "len".
 */


#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ga_load.h"


typedef struct {
    const char  *name;         /* ga_runtime_type() spelling */
    const char  *path;         /* metrics endpoint */
    const char  *running;      /* gauge of requests being generated */
    const char  *waiting;      /* gauge of requests queued */
} ga_runtime_dialect_t;


/* indexed by ga_runtime_e */
static const ga_runtime_dialect_t  ga_dialects[] = {
    { "openai", NULL, NULL, NULL },
    { "vllm", "/metrics", "vllm:num_requests_running",
      "vllm:num_requests_waiting" },
    { "llamacpp", "/metrics", "llamacpp:requests_processing",
      "llamacpp:requests_deferred" },
    { "sglang", "/metrics", "sglang:num_running_reqs",
      "sglang:num_queue_reqs" },
    { "tgi", "/metrics", "tgi_batch_current_size", "tgi_queue_size" },
};

#define GA_NDIALECTS  (sizeof(ga_dialects) / sizeof(ga_dialects[0]))


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


int
ga_load_parse(ga_runtime_e type, const char *text, size_t len,
    ga_load_t *load)
{
    double                      v;
    const char                 *p, *end, *next;
    const ga_runtime_dialect_t  *d;

    memset(load, 0, sizeof(*load));

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
