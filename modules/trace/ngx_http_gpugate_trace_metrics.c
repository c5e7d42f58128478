
/*
 * Copyright (C) gpugate authors
 *
 * The GenAI histograms in OpenTelemetry's names and bucket boundaries
 * (gen_ai.client.token.usage, gen_ai.server.time_to_first_token,
 * gen_ai.server.time_per_output_token), kept per model in a shared zone
 * beside the gpugate_* families, and the exporter's counts.  The model
 * label follows the metrics module's rule: a request refused for its
 * model (403, 404) counts as "_refused", so client strings make no
 * series; past NGX_HTTP_GPUGATE_TRACE_MODELS labels, "_other".
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_trace.h"
#include "ngx_http_gpugate_trace_api.h"
#include "gpugate_utf8.h"


/* the conventions' ExplicitBucketBoundaries */

static const char  *ngx_http_gpugate_trace_token_le[] = {
    "1", "4", "16", "64", "256", "1024", "4096", "16384", "65536",
    "262144", "1048576", "4194304", "16777216", "67108864"
};

static const uint64_t  ngx_http_gpugate_trace_token_v[] = {
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576,
    4194304, 16777216, 67108864
};

static const char  *ngx_http_gpugate_trace_ttft_le[] = {
    "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1",
    "0.25", "0.5", "0.75", "1", "2.5", "5", "7.5", "10"
};

static const uint64_t  ngx_http_gpugate_trace_ttft_us[] = {
    1000, 5000, 10000, 20000, 40000, 60000, 80000, 100000, 250000,
    500000, 750000, 1000000, 2500000, 5000000, 7500000, 10000000
};

static const char  *ngx_http_gpugate_trace_tpot_le[] = {
    "0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.3", "0.4",
    "0.5", "0.75", "1", "2.5"
};

static const uint64_t  ngx_http_gpugate_trace_tpot_us[] = {
    10000, 25000, 50000, 75000, 100000, 150000, 200000, 300000, 400000,
    500000, 750000, 1000000, 2500000
};


ngx_int_t
ngx_http_gpugate_trace_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_gpugate_trace_shm_t  *shm;

    if (data) {
        /* a reload keeps the counts: they are Prometheus counters */
        zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        zone->data = shpool->data;
        return NGX_OK;
    }

    shm = ngx_slab_calloc(shpool, sizeof(ngx_http_gpugate_trace_shm_t));
    if (shm == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(shm->models[0].model, "_other", 6);
    shm->models[0].model_len = 6;
    shm->models[0].ready = 1;

    shpool->data = shm;
    zone->data = shm;

    return NGX_OK;
}


/* the model's slot: found without the lock, made under it */

static ngx_http_gpugate_trace_model_t *
ngx_http_gpugate_trace_model(ngx_http_gpugate_trace_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_str_t *model)
{
    u_char                          buf[NGX_HTTP_GPUGATE_TRACE_LABEL];
    uint32_t                        h;
    ngx_str_t                       s;
    ngx_uint_t                      i, k, locked;
    ngx_http_gpugate_trace_model_t *m;

    s = *model;

    if (s.len > NGX_HTTP_GPUGATE_TRACE_LABEL
        || !gpugate_utf8_valid(s.data, s.len))
    {
        s.len = gpugate_utf8_cut(buf, NGX_HTTP_GPUGATE_TRACE_LABEL, s.data,
                                 s.len);
        s.data = buf;
    }

    h = ngx_crc32_short(s.data, s.len);
    locked = 0;

    for ( ;; ) {
        for (k = 0; k < NGX_HTTP_GPUGATE_TRACE_MODELS - 1; k++) {
            i = 1 + (h + k) % (NGX_HTTP_GPUGATE_TRACE_MODELS - 1);
            m = &shm->models[i];

            if (!m->ready) {
                if (!locked) {
                    break;
                }

                m->hash = h;
                m->model_len = s.len;
                ngx_memcpy(m->model, s.data, s.len);
                ngx_memory_barrier();
                m->ready = 1;

                ngx_shmtx_unlock(&shpool->mutex);

                ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                               "gpugate trace: GenAI series of model "
                               "\"%V\"", &s);
                return m;
            }

            if (m->hash == h && m->model_len == s.len
                && ngx_memcmp(m->model, s.data, s.len) == 0)
            {
                if (locked) {
                    ngx_shmtx_unlock(&shpool->mutex);
                }

                return m;
            }
        }

        if (locked || k == NGX_HTTP_GPUGATE_TRACE_MODELS - 1) {
            if (locked) {
                ngx_shmtx_unlock(&shpool->mutex);
            }

            return &shm->models[0];
        }

        /* a free slot before a match: look again under the lock, where
           another worker may have taken it for the same model */
        ngx_shmtx_lock(&shpool->mutex);
        locked = 1;
    }
}


static ngx_uint_t
ngx_http_gpugate_trace_bucket(const uint64_t *le, ngx_uint_t n, uint64_t v)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (v <= le[i]) {
            return i;
        }
    }

    return n;
}


void
ngx_http_gpugate_trace_record(ngx_http_gpugate_trace_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_http_gpugate_trace_obs_t *obs)
{
    uint64_t                         us;
    ngx_str_t                        model;
    ngx_http_gpugate_trace_model_t  *m;

    model = obs->model;

    if (model.len == 0) {
        return;
    }

    if (obs->status == NGX_HTTP_FORBIDDEN
        || obs->status == NGX_HTTP_NOT_FOUND)
    {
        ngx_str_set(&model, "_refused");
    }

    m = ngx_http_gpugate_trace_model(shm, shpool, &model);

    if (obs->prompt >= 0) {
        (void) ngx_atomic_fetch_add(&m->input[ngx_http_gpugate_trace_bucket(
                       ngx_http_gpugate_trace_token_v,
                       NGX_HTTP_GPUGATE_TRACE_TOKEN_LE,
                       (uint64_t) obs->prompt)], 1);
        (void) ngx_atomic_fetch_add(&m->input_sum, obs->prompt);
    }

    if (obs->completion >= 0) {
        (void) ngx_atomic_fetch_add(&m->output[ngx_http_gpugate_trace_bucket(
                       ngx_http_gpugate_trace_token_v,
                       NGX_HTTP_GPUGATE_TRACE_TOKEN_LE,
                       (uint64_t) obs->completion)], 1);
        (void) ngx_atomic_fetch_add(&m->output_sum, obs->completion);
    }

    /* the server metrics are of successful answers only */

    if (obs->status != NGX_HTTP_OK || obs->ttft_ms < 0) {
        return;
    }

    us = (uint64_t) obs->ttft_ms * 1000;
    (void) ngx_atomic_fetch_add(&m->ttft[ngx_http_gpugate_trace_bucket(
                   ngx_http_gpugate_trace_ttft_us,
                   NGX_HTTP_GPUGATE_TRACE_TTFT_LE, us)], 1);
    (void) ngx_atomic_fetch_add(&m->ttft_us, us);

    /* after the first token: the rest of the time over the rest of the
       tokens, for an answer that reached its end */

    if (obs->partial || obs->completion < 2
        || obs->duration_ms < (ngx_msec_t) obs->ttft_ms)
    {
        return;
    }

    us = (uint64_t) (obs->duration_ms - obs->ttft_ms) * 1000
         / (uint64_t) (obs->completion - 1);
    (void) ngx_atomic_fetch_add(&m->tpot[ngx_http_gpugate_trace_bucket(
                   ngx_http_gpugate_trace_tpot_us,
                   NGX_HTTP_GPUGATE_TRACE_TPOT_LE, us)], 1);
    (void) ngx_atomic_fetch_add(&m->tpot_us, us);
}


/* one histogram's _bucket (cumulative), _sum and _count lines */

static void
ngx_http_gpugate_trace_histogram(ngx_http_gpugate_out_t *out,
    const char *name, const char *labels, u_char *model, size_t model_len,
    ngx_atomic_t *b, const char **le, ngx_uint_t n, ngx_atomic_uint_t sum,
    ngx_uint_t micro)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  cum;

    cum = 0;

    for (i = 0; i <= n; i++) {
        cum += b[i];
        ngx_http_gpugate_out_printf(out,
            "%s_bucket{%sgen_ai_request_model=\"%*s\",le=\"%s\"} %uA\n",
            name, labels, model_len, model, i < n ? le[i] : "+Inf", cum);
    }

    if (micro) {
        ngx_http_gpugate_out_printf(out,
            "%s_sum{%sgen_ai_request_model=\"%*s\"} %uA.%06uA\n", name,
            labels, model_len, model, sum / 1000000, sum % 1000000);

    } else {
        ngx_http_gpugate_out_printf(out,
            "%s_sum{%sgen_ai_request_model=\"%*s\"} %uA\n", name, labels,
            model_len, model, sum);
    }

    ngx_http_gpugate_out_printf(out,
        "%s_count{%sgen_ai_request_model=\"%*s\"} %uA\n", name, labels,
        model_len, model, cum);
}


static ngx_uint_t
ngx_http_gpugate_trace_any(ngx_atomic_t *b, ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i <= n; i++) {
        if (b[i]) {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_gpugate_trace_prometheus(ngx_http_gpugate_out_t *out)
{
    u_char                              *last;
    size_t                               len;
    ngx_uint_t                           i, f;
    ngx_http_gpugate_trace_shm_t        *shm;
    ngx_http_gpugate_trace_model_t      *m;
    ngx_http_gpugate_trace_main_conf_t  *tmcf;

    static const char  *families[] = {
        "gen_ai_client_token_usage",
        "gen_ai_server_time_to_first_token_seconds",
        "gen_ai_server_time_per_output_token_seconds"
    };

    static const char  *helps[] = {
        "Tokens per request (OpenTelemetry gen_ai.client.token.usage), "
        "by type and model.",
        "Time to the first token of successful answers (OpenTelemetry "
        "gen_ai.server.time_to_first_token).",
        "Time per output token after the first, of successful answers "
        "that reached their end (gen_ai.server.time_per_output_token)."
    };

    /* a label escaped: at most twice its bytes */
    static u_char  label[2 * NGX_HTTP_GPUGATE_TRACE_LABEL];

    tmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_gpugate_trace_module);

    if (tmcf == NULL || tmcf->zone == NULL) {
        return NGX_DECLINED;
    }

    shm = tmcf->zone->data;

    for (f = 0; f < 3; f++) {
        ngx_http_gpugate_prom_family(out, families[f], "histogram", helps[f]);

        for (i = 0; i < NGX_HTTP_GPUGATE_TRACE_MODELS; i++) {
            m = &shm->models[i];

            if (!m->ready) {
                continue;
            }

            last = ngx_http_gpugate_prom_label(label, m->model, m->model_len);
            len = last - label;

            switch (f) {

            case 0:
                if (ngx_http_gpugate_trace_any(m->input,
                                               NGX_HTTP_GPUGATE_TRACE_TOKEN_LE))
                {
                    ngx_http_gpugate_trace_histogram(out, families[0],
                        "gen_ai_token_type=\"input\",", label, len, m->input,
                        ngx_http_gpugate_trace_token_le,
                        NGX_HTTP_GPUGATE_TRACE_TOKEN_LE, m->input_sum, 0);
                }

                if (ngx_http_gpugate_trace_any(m->output,
                                               NGX_HTTP_GPUGATE_TRACE_TOKEN_LE))
                {
                    ngx_http_gpugate_trace_histogram(out, families[0],
                        "gen_ai_token_type=\"output\",", label, len,
                        m->output, ngx_http_gpugate_trace_token_le,
                        NGX_HTTP_GPUGATE_TRACE_TOKEN_LE, m->output_sum, 0);
                }

                break;

            case 1:
                if (ngx_http_gpugate_trace_any(m->ttft,
                                               NGX_HTTP_GPUGATE_TRACE_TTFT_LE))
                {
                    ngx_http_gpugate_trace_histogram(out, families[1], "",
                        label, len, m->ttft, ngx_http_gpugate_trace_ttft_le,
                        NGX_HTTP_GPUGATE_TRACE_TTFT_LE, m->ttft_us, 1);
                }

                break;

            default:
                if (ngx_http_gpugate_trace_any(m->tpot,
                                               NGX_HTTP_GPUGATE_TRACE_TPOT_LE))
                {
                    ngx_http_gpugate_trace_histogram(out, families[2], "",
                        label, len, m->tpot, ngx_http_gpugate_trace_tpot_le,
                        NGX_HTTP_GPUGATE_TRACE_TPOT_LE, m->tpot_us, 1);
                }

                break;
            }
        }
    }

    ngx_http_gpugate_prom_family(out, "gpugate_trace_spans_total", "counter",
        "Spans by what became of them: exported (the collector took "
        "them), dropped (over a worker's buffer), failed (their batch was "
        "refused or not answered).");
    ngx_http_gpugate_out_printf(out,
        "gpugate_trace_spans_total{result=\"exported\"} %uA\n"
        "gpugate_trace_spans_total{result=\"dropped\"} %uA\n"
        "gpugate_trace_spans_total{result=\"failed\"} %uA\n",
        shm->exported, shm->dropped, shm->failed);

    ngx_http_gpugate_prom_family(out, "gpugate_trace_batches_total",
        "counter", "OTLP POSTs to the collector, by result.");
    ngx_http_gpugate_out_printf(out,
        "gpugate_trace_batches_total{result=\"ok\"} %uA\n"
        "gpugate_trace_batches_total{result=\"error\"} %uA\n",
        shm->batches, shm->batch_errors);

    ngx_http_gpugate_prom_family(out, "gpugate_traces_total", "counter",
        "Traced requests: joined the client's traceparent, started here, "
        "or started here for a traceparent refused.");
    ngx_http_gpugate_out_printf(out,
        "gpugate_traces_total{origin=\"client\"} %uA\n"
        "gpugate_traces_total{origin=\"gateway\"} %uA\n"
        "gpugate_traces_total{origin=\"refused\"} %uA\n",
        shm->traces_joined, shm->traces_started, shm->bad_traceparent);

    return NGX_OK;
}
