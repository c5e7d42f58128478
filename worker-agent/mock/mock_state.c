
/*
 * Copyright (C) gpugate authors
 *
 * The mock runtime's shared state, at the bottom of its files: settings,
 * counters, the log, the served model list and the metrics text of its
 * counters.  Every other file may use it and it uses none of them:
 * main() (mock_runtime.c) fills it, reading numeric flags with
 * mock_arg_long(), as mock_cache.c reads its own.
 */


#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_state.h"


#define MOCK_COUNTS_MAX  256


mock_conf_t   mock_conf;
gg_loop_t     mock_loop;
long          mock_in_flight;
long          mock_disconnects;
long          mock_connections;
long          mock_completion_tokens;
long          mock_strays;

FILE         *mock_log_file;

/* backs the names in mock_conf.models */
static char  *mock_models_buf;

static struct {
    const char    *path;             /* one of mock_paths, static */
    int            status;           /* HTTP status */
    long           count;            /* responses */
} mock_counts[MOCK_COUNTS_MAX];

static int     mock_ncounts;

/* the label values of gpugate_mock_requests_total: a closed set */
static const char  *mock_paths[] = {
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings",
    "/v1/models", "/health", "/metrics", "/api/tags", "/api/ps", "/info",
    "/", "/mock/models", "other"
};


void
mock_log(int always, const char *fmt, ...)
{
    va_list  ap;

    if (mock_conf.quiet && !always) {
        return;
    }

    fputs(MOCK_NAME ": ", mock_log_file);
    va_start(ap, fmt);
    vfprintf(mock_log_file, fmt, ap);
    va_end(ap);
    fputc('\n', mock_log_file);
    fflush(mock_log_file);
}


void
mock_count(const char *path, int status)
{
    int          i;
    size_t       k, last;
    const char  *label;

    last = sizeof(mock_paths) / sizeof(mock_paths[0]) - 1;
    label = mock_paths[last];

    for (k = 0; k < last; k++) {
        if (strcmp(path, mock_paths[k]) == 0) {
            label = mock_paths[k];
            break;
        }
    }

    for (i = 0; i < mock_ncounts; i++) {
        if (mock_counts[i].status == status && mock_counts[i].path == label)
        {
            mock_counts[i].count++;
            return;
        }
    }

    if (mock_ncounts == MOCK_COUNTS_MAX) {
        return;
    }

    mock_counts[i].path = label;
    mock_counts[i].status = status;
    mock_counts[i].count = 1;
    mock_ncounts++;
}


/*
 * The load gauges of the runtime named by --dialect, as that runtime
 * exports them (one per model where it labels by model), so that each
 * of the agent's adapters reads its own dialect: in flight requests are
 * "running", --waiting ones "queued".  Ollama has no Prometheus endpoint
 * (its load is /api/ps): nothing.
 */

static int
mock_metrics_dialect(gg_buf_t *b)
{
    int          i, rc;
    const char  *d;

    d = mock_conf.dialect;

    if (d == NULL || strcmp(d, "ollama") == 0) {
        return 0;
    }

    if (strcmp(d, "vllm") == 0) {
        rc = 0;

        for (i = 0; i < mock_conf.nmodels; i++) {
            rc |= gg_buf_printf(b,
                      "vllm:num_requests_running{model_name=\"%s\"} %ld.0\n"
                      "vllm:num_requests_waiting{model_name=\"%s\"} %ld.0\n",
                      mock_conf.models[i], i ? 0 : mock_in_flight,
                      mock_conf.models[i], i ? 0 : mock_conf.waiting);
        }

        return rc;
    }

    if (strcmp(d, "llamacpp") == 0) {
        return gg_buf_printf(b, "llamacpp:requests_processing %ld\n"
                             "llamacpp:requests_deferred %ld\n",
                             mock_in_flight, mock_conf.waiting);
    }

    if (strcmp(d, "sglang") == 0) {
        return gg_buf_printf(b, "sglang:num_running_reqs{tp_rank=\"0\"} %ld\n"
                             "sglang:num_queue_reqs{tp_rank=\"0\"} %ld\n",
                             mock_in_flight, mock_conf.waiting);
    }

    return gg_buf_printf(b, "tgi_batch_current_size %ld\ntgi_queue_size %ld\n",
                         mock_in_flight, mock_conf.waiting);
}


int
mock_metrics_text(gg_buf_t *b)
{
    int  i, rc;

    rc = gg_buf_printf(b,
        "# HELP gpugate_mock_requests_total Responses of the mock runtime "
        "by path and status (499: client left first).\n"
        "# TYPE gpugate_mock_requests_total counter\n");

    for (i = 0; i < mock_ncounts; i++) {
        rc |= gg_buf_printf(b, "gpugate_mock_requests_total{path=\"%s\","
                            "status=\"%d\"} %ld\n", mock_counts[i].path,
                            mock_counts[i].status, mock_counts[i].count);
    }

    rc |= gg_buf_printf(b,
        "# HELP gpugate_mock_requests_in_flight Inference requests in "
        "progress.\n"
        "# TYPE gpugate_mock_requests_in_flight gauge\n"
        "gpugate_mock_requests_in_flight %ld\n"
        "# HELP gpugate_mock_stream_disconnects_total Clients that left "
        "before their answer was complete.\n"
        "# TYPE gpugate_mock_stream_disconnects_total counter\n"
        "gpugate_mock_stream_disconnects_total %ld\n"
        "# HELP gpugate_mock_completion_tokens_total Completion tokens "
        "generated.\n"
        "# TYPE gpugate_mock_completion_tokens_total counter\n"
        "gpugate_mock_completion_tokens_total %ld\n"
        "# HELP gpugate_mock_connections_total Connections accepted.\n"
        "# TYPE gpugate_mock_connections_total counter\n"
        "gpugate_mock_connections_total %ld\n"
        "# HELP gpugate_mock_stray_total Unsolicited sends of the stray "
        "test mode (X-Mock-Stray-Ms).\n"
        "# TYPE gpugate_mock_stray_total counter\n"
        "gpugate_mock_stray_total %ld\n",
        mock_in_flight, mock_disconnects, mock_completion_tokens,
        mock_connections, mock_strays);

    rc |= mock_metrics_dialect(b);

    return rc ? -1 : 0;
}


/*
 * The served models, from --models or POST /mock/models: "a,b,c", each
 * name non-empty and without control characters (they go into JSON and
 * log lines); an empty list serves none.  On error nothing changes.
 * In-flight requests hold their model name in their own request JSON,
 * so replacing the list under them is safe.
 */

int
mock_models_set(const char *list, size_t len, const char **err)
{
    int          n;
    char        *buf, *p, *tok, *models[MOCK_MODELS_MAX];
    size_t       i;
    static char  msg[64];

    for (i = 0; i < len; i++) {
        if ((unsigned char) list[i] < 0x20 || list[i] == 0x7f) {
            *err = "control character in a model name";
            return -1;
        }
    }

    buf = malloc(len + 1);
    if (buf == NULL) {
        *err = "out of memory";
        return -1;
    }

    memcpy(buf, list, len);
    buf[len] = '\0';
    n = 0;

    for (p = len ? buf : NULL; (tok = strsep(&p, ",")) != NULL; ) {
        if (*tok == '\0') {
            *err = "empty model name";
            free(buf);
            return -1;
        }

        if (n == MOCK_MODELS_MAX) {
            snprintf(msg, sizeof(msg), "more than %d models",
                     MOCK_MODELS_MAX);
            *err = msg;
            free(buf);
            return -1;
        }

        models[n++] = tok;
    }

    free(mock_models_buf);
    mock_models_buf = buf;
    memcpy(mock_conf.models, models, n * sizeof(char *));
    mock_conf.nmodels = n;

    return 0;
}


void
mock_models_free(void)
{
    free(mock_models_buf);
    mock_models_buf = NULL;
    mock_conf.nmodels = 0;
}


long
mock_arg_long(const char *flag, const char *v, long min, long max)
{
    long   n;
    char  *end;

    errno = 0;
    n = strtol(v, &end, 10);

    if (errno || *v == '\0' || *end != '\0' || n < min || n > max) {
        fprintf(stderr, MOCK_NAME ": invalid %s value \"%s\": expected an "
                "integer in %ld..%ld\n", flag, v, min, max);
        exit(2);
    }

    return n;
}
