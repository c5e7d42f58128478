
/*
 * Copyright (C) gpugate authors
 *
 * The counters behind the Prometheus page, in one shared zone for all
 * workers: requests and tokens by (model, tenant, status), duration and
 * TTFT histograms, active streams and upstream errors by model, auth
 * results by layer, and the ledger's own counts.
 *
 * Tables are open-addressed arrays of fixed size, so the number of
 * series is bounded whatever clients send: a label set that finds no
 * room is counted in slot 0 ("_other") and in the overflow counter.  A
 * new label set is inserted under the slab pool's lock (probing again
 * there, so two workers never insert the same set twice: duplicate series
 * would break the page); counting is lock-free atomics on sets marked
 * ready.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_metrics.h"
#include "ngx_http_gpugate_auth_api.h"
#include "gpugate_oai_body.h"
#include "gpugate_utf8.h"


#define NGX_HTTP_GPUGATE_METRICS_PROBES  16


/* upper bounds, seconds, for both histograms */
static const char  *ngx_http_gpugate_metrics_le[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
    "5", "10", "30", "60", "120"
};

static const ngx_msec_t  ngx_http_gpugate_metrics_le_us[] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000, 30000000, 60000000, 120000000
};

static const char  *ngx_http_gpugate_metrics_sources[] = {
    "none", "shm", "redis", "postgres", "stale"
};

static const char  *ngx_http_gpugate_metrics_results[] = {
    "ok", "refused", "unavailable"
};


/* tokens of one (model, tenant), summed over its statuses */
typedef struct {
    ngx_http_gpugate_metrics_series_t  *first;      /* the labels */
    ngx_atomic_t                        prompt;     /* summed */
    ngx_atomic_t                        completion; /* summed */
} ngx_http_gpugate_metrics_pair_t;


static uint32_t ngx_http_gpugate_metrics_hash(ngx_str_t *model,
    ngx_str_t *tenant, ngx_uint_t status);
static void ngx_http_gpugate_metrics_label(ngx_str_t *s, u_char *buf);
static ngx_uint_t ngx_http_gpugate_metrics_bucket(ngx_msec_t us);



ngx_int_t
ngx_http_gpugate_metrics_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t                 *shpool;
    ngx_http_gpugate_metrics_shm_t  *shm;

    if (data) {
        /* a reload keeps the counters: they are Prometheus counters */
        zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        zone->data = shpool->data;
        return NGX_OK;
    }

    shm = ngx_slab_calloc(shpool, sizeof(ngx_http_gpugate_metrics_shm_t));
    if (shm == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(shm->series[0].model, "_other", 6);
    shm->series[0].model_len = 6;
    ngx_memcpy(shm->series[0].tenant, "_other", 6);
    shm->series[0].tenant_len = 6;
    shm->series[0].ready = 1;

    ngx_memcpy(shm->models[0].model, "_other", 6);
    shm->models[0].model_len = 6;
    shm->models[0].ready = 1;

    shpool->data = shm;
    zone->data = shm;

    return NGX_OK;
}


/*
 * A label as the page shows it: at most NGX_HTTP_GPUGATE_METRICS_LABEL
 * bytes cut on a character boundary, invalid bytes as U+FFFD ("buf" has
 * that size).  A label cut inside a character, or with a byte that is not
 * UTF-8, makes Prometheus drop the whole scrape.
 */

static void
ngx_http_gpugate_metrics_label(ngx_str_t *s, u_char *buf)
{
    if (s->len <= NGX_HTTP_GPUGATE_METRICS_LABEL
        && gpugate_utf8_valid(s->data, s->len))
    {
        return;
    }

    s->len = gpugate_utf8_cut(buf, NGX_HTTP_GPUGATE_METRICS_LABEL, s->data,
                              s->len);
    s->data = buf;
}


/*
 * Under the lock: a slot whose worker is gone (crash, SIGKILL: it ran no
 * exit code) gives back what it held.  Its held ledger rows and its
 * requests in flight will never be written: they are counted as lost;
 * its streams are no longer active.
 */

static void
ngx_http_gpugate_metrics_reap_locked(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_log_t *log)
{
    ngx_uint_t                        i, j;
    ngx_atomic_uint_t                 lost;
    ngx_http_gpugate_metrics_proc_t  *pr;

    for (i = 0; i < NGX_HTTP_GPUGATE_METRICS_PROCS; i++) {
        pr = &shm->procs[i];

        if (pr->pid == 0 || pr->pid == ngx_pid
            || kill(pr->pid, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            continue;
        }

        lost = pr->pending + pr->inflight;

        if (lost) {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "gpugate ledger: worker %P died holding %uA usage "
                          "rows and %uA requests in flight; they are lost",
                          pr->pid, pr->pending, pr->inflight);
            (void) ngx_atomic_fetch_add(&shm->ledger_lost, lost);
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                       "gpugate metrics: slot %ui of dead worker %P "
                       "reclaimed", i, pr->pid);

        for (j = 0; j < NGX_HTTP_GPUGATE_METRICS_MODELS; j++) {
            shm->models[j].active[i] = 0;
        }

        pr->pending = 0;
        pr->inflight = 0;
        pr->pid = 0;
    }
}


/* from any worker: at its start, and before a page is rendered */

void
ngx_http_gpugate_metrics_reap(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_log_t *log)
{
    ngx_shmtx_lock(&shpool->mutex);
    ngx_http_gpugate_metrics_reap_locked(shm, log);
    ngx_shmtx_unlock(&shpool->mutex);
}


/* a worker starts: dead workers' slots are reclaimed, one is taken */

void
ngx_http_gpugate_metrics_attach(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_log_t *log)
{
    ngx_uint_t  i;

    ngx_shmtx_lock(&shpool->mutex);

    ngx_http_gpugate_metrics_reap_locked(shm, log);

    for (i = 0; i < NGX_HTTP_GPUGATE_METRICS_PROCS; i++) {
        if (shm->procs[i].pid == 0) {
            shm->procs[i].pid = ngx_pid;
            shm->procs[i].pending = 0;
            shm->procs[i].inflight = 0;
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (i == NGX_HTTP_GPUGATE_METRICS_PROCS) {
        /* the shared column is never cleared: sums stay right while
           workers live, a dead one's streams stay counted */
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "gpugate metrics: more than %d worker processes, "
                      "the extra ones share a slot",
                      NGX_HTTP_GPUGATE_METRICS_PROCS);
    }

    ngx_http_gpugate_metrics_slot = i;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "gpugate metrics: worker slot %ui", i);
}


/*
 * A worker exits.  Gracefully, it has no request left; a fast shutdown
 * (SIGTERM) ends its requests without a log phase: their rows are lost.
 */

void
ngx_http_gpugate_metrics_detach(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_log_t *log)
{
    ngx_uint_t                        i, j;
    ngx_http_gpugate_metrics_proc_t  *pr;

    i = ngx_http_gpugate_metrics_slot;

    if (i == NGX_HTTP_GPUGATE_METRICS_PROCS) {
        return;
    }

    pr = &shm->procs[i];

    ngx_shmtx_lock(&shpool->mutex);

    if (pr->inflight) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "gpugate ledger: exiting with %uA requests in "
                      "flight; their usage rows are lost", pr->inflight);
        (void) ngx_atomic_fetch_add(&shm->ledger_lost, pr->inflight);
    }

    for (j = 0; j < NGX_HTTP_GPUGATE_METRICS_MODELS; j++) {
        shm->models[j].active[i] = 0;
    }

    pr->pending = 0;
    pr->inflight = 0;
    pr->pid = 0;

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_gpugate_metrics_slot = NGX_HTTP_GPUGATE_METRICS_PROCS;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "gpugate metrics: worker slot %ui freed", i);
}


static uint32_t
ngx_http_gpugate_metrics_hash(ngx_str_t *model, ngx_str_t *tenant,
    ngx_uint_t status)
{
    uint32_t  h;

    h = ngx_crc32_short(model->data, model->len);

    if (tenant) {
        h = h * 31 + ngx_crc32_short(tenant->data, tenant->len);
        h = h * 31 + (uint32_t) status;
    }

    return h;
}


static ngx_http_gpugate_metrics_series_t *
ngx_http_gpugate_metrics_series(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_str_t *model, ngx_str_t *tenant,
    ngx_uint_t status)
{
    u_char                              mb[NGX_HTTP_GPUGATE_METRICS_LABEL];
    u_char                              tb[NGX_HTTP_GPUGATE_METRICS_LABEL];
    uint32_t                            h;
    ngx_str_t                           ms, ts;
    ngx_uint_t                          i, k, locked;
    ngx_http_gpugate_metrics_series_t  *s;

    /* the set is keyed by its labels as the page will show them */

    ms = *model;
    ts = *tenant;
    ngx_http_gpugate_metrics_label(&ms, mb);
    ngx_http_gpugate_metrics_label(&ts, tb);
    model = &ms;
    tenant = &ts;

    h = ngx_http_gpugate_metrics_hash(model, tenant, status);
    locked = 0;

again:

    for (k = 0; k < NGX_HTTP_GPUGATE_METRICS_PROBES; k++) {
        i = 1 + (h + k) % (NGX_HTTP_GPUGATE_METRICS_SERIES - 1);
        s = &shm->series[i];

        if (!s->ready) {
            if (!locked) {
                /* not found without the lock: look again with it */
                ngx_shmtx_lock(&shpool->mutex);
                locked = 1;
                goto again;
            }

            s->hash = h;
            s->status = status;
            s->model_len = model->len;
            ngx_memcpy(s->model, model->data, s->model_len);
            s->tenant_len = tenant->len;
            ngx_memcpy(s->tenant, tenant->data, s->tenant_len);
            ngx_memory_barrier();
            s->ready = 1;
            ngx_shmtx_unlock(&shpool->mutex);

            return s;
        }

        if (s->hash == h && s->status == status
            && s->model_len == model->len
            && s->tenant_len == tenant->len
            && ngx_memcmp(s->model, model->data, s->model_len) == 0
            && ngx_memcmp(s->tenant, tenant->data, s->tenant_len) == 0)
        {
            if (locked) {
                ngx_shmtx_unlock(&shpool->mutex);
            }

            return s;
        }
    }

    if (locked) {
        ngx_shmtx_unlock(&shpool->mutex);
    }

    (void) ngx_atomic_fetch_add(&shm->overflow, 1);

    return &shm->series[0];
}


ngx_http_gpugate_metrics_model_t *
ngx_http_gpugate_metrics_model(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_str_t *model)
{
    u_char                             mb[NGX_HTTP_GPUGATE_METRICS_LABEL];
    uint32_t                           h;
    ngx_str_t                          ms;
    ngx_uint_t                         i, k, locked;
    ngx_http_gpugate_metrics_model_t  *m;

    ms = *model;
    ngx_http_gpugate_metrics_label(&ms, mb);
    model = &ms;

    if (model->len == 6 && ngx_strncmp(model->data, "_other", 6) == 0) {
        /* slot 0's label: a second "_other" would repeat its series */
        return &shm->models[0];
    }

    h = ngx_http_gpugate_metrics_hash(model, NULL, 0);
    locked = 0;

again:

    for (k = 0; k < NGX_HTTP_GPUGATE_METRICS_PROBES; k++) {
        i = 1 + (h + k) % (NGX_HTTP_GPUGATE_METRICS_MODELS - 1);
        m = &shm->models[i];

        if (!m->ready) {
            if (!locked) {
                ngx_shmtx_lock(&shpool->mutex);
                locked = 1;
                goto again;
            }

            m->hash = h;
            m->model_len = model->len;
            ngx_memcpy(m->model, model->data, m->model_len);
            ngx_memory_barrier();
            m->ready = 1;
            ngx_shmtx_unlock(&shpool->mutex);

            return m;
        }

        if (m->hash == h
            && m->model_len == model->len
            && ngx_memcmp(m->model, model->data, m->model_len) == 0)
        {
            if (locked) {
                ngx_shmtx_unlock(&shpool->mutex);
            }

            return m;
        }
    }

    if (locked) {
        ngx_shmtx_unlock(&shpool->mutex);
    }

    return &shm->models[0];
}


static ngx_uint_t
ngx_http_gpugate_metrics_bucket(ngx_msec_t us)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_GPUGATE_METRICS_BUCKETS; i++) {
        if (us <= ngx_http_gpugate_metrics_le_us[i]) {
            return i;
        }
    }

    return NGX_HTTP_GPUGATE_METRICS_BUCKETS;
}


/* the endpoint's counts: the router's name for the request path */

static void
ngx_http_gpugate_metrics_endpoint(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_http_gpugate_metrics_req_t *req)
{
    size_t                                len;
    ngx_int_t                             k;
    ngx_uint_t                            c;
    const char                           *id;
    ngx_http_gpugate_metrics_endpoint_t  *e;

    k = gpugate_oai_path_kind(gpugate_oai_path((char *) req->endpoint.data,
                                               req->endpoint.len, &id,
                                               &len))
        + 1;

    if (k < 0 || k >= NGX_HTTP_GPUGATE_METRICS_ENDPOINTS) {
        k = 0;
    }

    e = &shm->endpoints[k];
    c = req->status / 100;
    c = (c >= 1 && c <= 5) ? c - 1 : 4;

    (void) ngx_atomic_fetch_add(&e->requests[c], 1);
    (void) ngx_atomic_fetch_add(&e->prompt, req->prompt);
    (void) ngx_atomic_fetch_add(&e->completion, req->completion);

    if (req->extra && req->extra->images > 0) {
        (void) ngx_atomic_fetch_add(&e->images, req->extra->images);
    }
}


/* the endpoints' families: only those that had requests */

static void
ngx_http_gpugate_metrics_endpoints(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_metrics_shm_t *shm)
{
    ngx_uint_t                            k, c, f;
    const char                           *name;
    ngx_http_gpugate_metrics_endpoint_t  *e;

    static const char  *families[] = {
        "gpugate_endpoint_requests_total",
        "gpugate_endpoint_prompt_tokens_total",
        "gpugate_endpoint_completion_tokens_total",
        "gpugate_endpoint_images_total"
    };

    static const char  *helps[] = {
        "Requests, by router endpoint and status class.",
        "Prompt tokens by router endpoint (transcriptions: seconds of "
        "audio, speech: characters of input).",
        "Completion tokens by router endpoint (images: images made).",
        "Images made, by images endpoint."
    };

    for (f = 0; f < 4; f++) {
        ngx_http_gpugate_prom_family(out, families[f], "counter", helps[f]);

        for (k = 0; k < NGX_HTTP_GPUGATE_METRICS_ENDPOINTS; k++) {
            e = &shm->endpoints[k];
            name = gpugate_oai_kind_name((int) k - 1);

            if ((k && ngx_strcmp(name, "other") == 0)
                || e->requests[0] + e->requests[1] + e->requests[2]
                   + e->requests[3] + e->requests[4] == 0)
            {
                continue;
            }

            if (f == 0) {
                for (c = 0; c < 5; c++) {
                    ngx_http_gpugate_out_printf(out, "%s{endpoint=\"%s\","
                                                "code=\"%uixx\"} %uA\n",
                                                families[f], name, c + 1,
                                                e->requests[c]);
                }

                continue;
            }

            if (f == 3 && k != GPUGATE_OAI_IMAGES + 1
                && k != GPUGATE_OAI_IMAGE_EDITS + 1)
            {
                continue;
            }

            ngx_http_gpugate_out_printf(out, "%s{endpoint=\"%s\"} %uA\n",
                                        families[f], name,
                                        f == 1 ? e->prompt
                                        : f == 2 ? e->completion
                                        : e->images);
        }
    }
}


void
ngx_http_gpugate_metrics_record(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_slab_pool_t *shpool, ngx_http_gpugate_metrics_req_t *req)
{
    ngx_str_t                           model;
    ngx_msec_t                          us;
    ngx_http_gpugate_metrics_model_t   *m;
    ngx_http_gpugate_metrics_series_t  *s;

    model = req->model;

    if (model.len
        && (req->status == NGX_HTTP_FORBIDDEN
            || req->status == NGX_HTTP_NOT_FOUND))
    {
        /*
         * Refused for its model, by the gateway or (without a model list)
         * by the runtime: any string a client sends would be a series of
         * its own, and enough of them push real models into "_other".
         */
        ngx_str_set(&model, NGX_HTTP_GPUGATE_METRICS_REFUSED);
    }

    ngx_http_gpugate_metrics_endpoint(shm, req);

    s = ngx_http_gpugate_metrics_series(shm, shpool, &model, &req->tenant,
                                        req->status);

    (void) ngx_atomic_fetch_add(&s->requests, 1);

    if (req->prompt) {
        (void) ngx_atomic_fetch_add(&s->prompt, req->prompt);
    }

    if (req->completion) {
        (void) ngx_atomic_fetch_add(&s->completion, req->completion);
    }

    m = ngx_http_gpugate_metrics_model(shm, shpool, &model);

    us = req->duration_ms * 1000;
    (void) ngx_atomic_fetch_add(
               &m->duration[ngx_http_gpugate_metrics_bucket(us)], 1);
    (void) ngx_atomic_fetch_add(&m->duration_us, us);

    if (req->ttft_ms >= 0) {
        us = (ngx_msec_t) req->ttft_ms * 1000;
        (void) ngx_atomic_fetch_add(
                   &m->ttft[ngx_http_gpugate_metrics_bucket(us)], 1);
        (void) ngx_atomic_fetch_add(&m->ttft_us, us);
    }

    if (req->upstream_errors) {
        (void) ngx_atomic_fetch_add(&m->upstream_errors,
                                    req->upstream_errors);
    }

    if (req->partial) {
        (void) ngx_atomic_fetch_add(&m->partial, 1);
    }

    if (req->auth_result >= 0) {
        (void) ngx_atomic_fetch_add(
                   &shm->auth[req->auth_source][req->auth_result], 1);
    }
}


/* one token family's lines: a (model, tenant) each */

static void
ngx_http_gpugate_metrics_tokens(ngx_http_gpugate_out_t *out,
    const char *name, const char *help, ngx_http_gpugate_metrics_pair_t *pairs,
    ngx_uint_t np, ngx_uint_t completion, u_char *model, u_char *tenant)
{
    size_t                              ml, tl;
    ngx_uint_t                          j;
    ngx_http_gpugate_metrics_series_t  *se;

    ngx_http_gpugate_prom_family(out, name, "counter", help);

    for (j = 0; j < np; j++) {
        se = pairs[j].first;
        ml = ngx_http_gpugate_prom_label(model, se->model, se->model_len)
             - model;
        tl = ngx_http_gpugate_prom_label(tenant, se->tenant,
                                         se->tenant_len)
             - tenant;
        ngx_http_gpugate_out_printf(out,
                        "%s{model=\"%*s\",tenant=\"%*s\"} %uA\n", name,
                        ml, model, tl, tenant,
                        completion ? pairs[j].completion : pairs[j].prompt);
    }
}


/* a model's active streams: the workers' columns summed */

static ngx_atomic_int_t
ngx_http_gpugate_metrics_active(ngx_http_gpugate_metrics_model_t *m)
{
    ngx_uint_t        i;
    ngx_atomic_int_t  n;

    n = 0;

    for (i = 0; i <= NGX_HTTP_GPUGATE_METRICS_PROCS; i++) {
        n += (ngx_atomic_int_t) m->active[i];
    }

    return n;
}


/* the model slots that have something to show ("_other" once used) */

static ngx_uint_t
ngx_http_gpugate_metrics_shown(ngx_http_gpugate_metrics_shm_t *shm,
    ngx_uint_t i)
{
    return shm->models[i].ready
           && (i != 0 || shm->models[i].duration_us != 0);
}


/* a histogram family (durations or time to first token), a model each */

static void
ngx_http_gpugate_metrics_histograms(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_metrics_shm_t *shm, ngx_uint_t ttft, u_char *model)
{
    size_t                             len;
    ngx_uint_t                         i, k;
    const char                        *name;
    ngx_atomic_t                       n, *buckets, sum_us;
    ngx_http_gpugate_metrics_model_t  *m;

    if (ttft) {
        name = "gpugate_time_to_first_token_seconds";
        ngx_http_gpugate_prom_family(out, name, "histogram",
            "Time from the request's start to its first token.");

    } else {
        name = "gpugate_request_duration_seconds";
        ngx_http_gpugate_prom_family(out, name, "histogram",
            "Time from the request's start to its log phase.");
    }

    for (i = 0; i < NGX_HTTP_GPUGATE_METRICS_MODELS; i++) {
        if (!ngx_http_gpugate_metrics_shown(shm, i)) {
            continue;
        }

        m = &shm->models[i];
        buckets = ttft ? m->ttft : m->duration;
        sum_us = ttft ? m->ttft_us : m->duration_us;
        len = ngx_http_gpugate_prom_label(model, m->model, m->model_len)
              - model;
        n = 0;

        for (k = 0; k < NGX_HTTP_GPUGATE_METRICS_BUCKETS; k++) {
            n += buckets[k];
            ngx_http_gpugate_out_printf(out,
                "%s_bucket{model=\"%*s\",le=\"%s\"} %uA\n", name, len, model,
                ngx_http_gpugate_metrics_le[k], n);
        }

        n += buckets[NGX_HTTP_GPUGATE_METRICS_BUCKETS];

        ngx_http_gpugate_out_printf(out,
            "%s_bucket{model=\"%*s\",le=\"+Inf\"} %uA\n"
            "%s_sum{model=\"%*s\"} %uA.%06uA\n"
            "%s_count{model=\"%*s\"} %uA\n",
            name, len, model, n, name, len, model,
            sum_us / 1000000, sum_us % 1000000, name, len, model, n);
    }
}


/* the per-model counters and gauge */

enum {
    NGX_HTTP_GPUGATE_METRICS_ACTIVE = 0,
    NGX_HTTP_GPUGATE_METRICS_UPSTREAM_ERRORS,
    NGX_HTTP_GPUGATE_METRICS_PARTIAL
};


static const char  *ngx_http_gpugate_metrics_per_model_families[][3] = {
    { "gpugate_active_streams", "gauge", "Streams being answered now." },
    { "gpugate_upstream_errors_total", "counter",
      "Upstream attempts that failed (error, timeout, 5xx)." },
    { "gpugate_partial_responses_total", "counter",
      "Answers that did not reach their end (usage partial)." },
};


static void
ngx_http_gpugate_metrics_per_model(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_metrics_shm_t *shm, ngx_uint_t family, u_char *model)
{
    size_t                             len;
    ngx_uint_t                         i;
    const char                        *name;
    ngx_http_gpugate_metrics_model_t  *m;

    name = ngx_http_gpugate_metrics_per_model_families[family][0];

    ngx_http_gpugate_prom_family(out, name,
        ngx_http_gpugate_metrics_per_model_families[family][1],
        ngx_http_gpugate_metrics_per_model_families[family][2]);

    for (i = 0; i < NGX_HTTP_GPUGATE_METRICS_MODELS; i++) {
        if (!ngx_http_gpugate_metrics_shown(shm, i)) {
            continue;
        }

        m = &shm->models[i];
        len = ngx_http_gpugate_prom_label(model, m->model, m->model_len)
              - model;

        switch (family) {

        case NGX_HTTP_GPUGATE_METRICS_ACTIVE:
            ngx_http_gpugate_out_printf(out, "%s{model=\"%*s\"} %A\n", name,
                                        len, model,
                                        ngx_http_gpugate_metrics_active(m));
            break;

        case NGX_HTTP_GPUGATE_METRICS_UPSTREAM_ERRORS:
            ngx_http_gpugate_out_printf(out, "%s{model=\"%*s\"} %uA\n", name,
                                        len, model, m->upstream_errors);
            break;

        default: /* NGX_HTTP_GPUGATE_METRICS_PARTIAL */
            ngx_http_gpugate_out_printf(out, "%s{model=\"%*s\"} %uA\n", name,
                                        len, model, m->partial);
            break;
        }
    }
}


/*
 * gpugate_requests_total, a (model, tenant, status) each; on the way
 * the token counts are summed over statuses per (model, tenant) into
 * "pairs", of which *np are used.
 */

static void
ngx_http_gpugate_metrics_requests(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_metrics_shm_t *shm,
    ngx_http_gpugate_metrics_pair_t *pairs, ngx_uint_t *np, u_char *model,
    u_char *tenant)
{
    size_t                              ml, tl;
    ngx_uint_t                          i, j, n;
    ngx_http_gpugate_metrics_series_t  *se;

    ngx_http_gpugate_prom_family(out, "gpugate_requests_total", "counter",
        "Requests answered, by model, tenant and HTTP status.");

    n = 0;

    for (i = 0; i < NGX_HTTP_GPUGATE_METRICS_SERIES; i++) {
        se = &shm->series[i];

        if (!se->ready || (i == 0 && se->requests == 0)) {
            continue;
        }

        ml = ngx_http_gpugate_prom_label(model, se->model, se->model_len)
             - model;
        tl = ngx_http_gpugate_prom_label(tenant, se->tenant,
                                         se->tenant_len)
             - tenant;

        if (i == 0) {
            ngx_http_gpugate_out_printf(out,
                            "gpugate_requests_total{model=\"%*s\","
                            "tenant=\"%*s\",status=\"other\"} %uA\n",
                            ml, model, tl, tenant, se->requests);
        } else {
            ngx_http_gpugate_out_printf(out,
                            "gpugate_requests_total{model=\"%*s\","
                            "tenant=\"%*s\",status=\"%ui\"} %uA\n",
                            ml, model, tl, tenant, se->status, se->requests);
        }

        for (j = 0; j < n; j++) {
            if (pairs[j].first->model_len == se->model_len
                && pairs[j].first->tenant_len == se->tenant_len
                && ngx_memcmp(pairs[j].first->model, se->model,
                              se->model_len) == 0
                && ngx_memcmp(pairs[j].first->tenant, se->tenant,
                              se->tenant_len) == 0)
            {
                break;
            }
        }

        if (j == n) {
            pairs[n].first = se;
            pairs[n].prompt = 0;
            pairs[n].completion = 0;
            n++;
        }

        pairs[j].prompt += se->prompt;
        pairs[j].completion += se->completion;
    }

    *np = n;
}


/* API-key checks by layer and result, and the key cache's drops */

static void
ngx_http_gpugate_metrics_auth(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_metrics_shm_t *shm)
{
    ngx_uint_t                      s, r;
    ngx_http_gpugate_auth_counts_t  ac;

    ngx_http_gpugate_prom_family(out, "gpugate_auth_requests_total",
        "counter", "API-key checks, by the layer that answered and result.");

    for (s = 0; s < NGX_HTTP_GPUGATE_METRICS_SOURCES; s++) {
        for (r = 0; r < NGX_HTTP_GPUGATE_METRICS_RESULTS; r++) {
            ngx_http_gpugate_out_printf(out,
                            "gpugate_auth_requests_total{source=\"%s\","
                            "result=\"%s\"} %uA\n",
                            ngx_http_gpugate_metrics_sources[s],
                            ngx_http_gpugate_metrics_results[r],
                            shm->auth[s][r]);
        }
    }

    if (ngx_http_gpugate_auth_counts(&ac) != NGX_OK) {
        return;
    }

    ngx_http_gpugate_prom_family(out, "gpugate_auth_cache_events_total",
        "counter", "Shared-memory key cache entries dropped, by cause.");
    ngx_http_gpugate_out_printf(out, "gpugate_auth_cache_events_total"
                                "{event=\"invalidated\"} %uA\n"
                                "gpugate_auth_cache_events_total"
                                "{event=\"evicted\"} %uA\n",
                                ac.invalidated, ac.evicted);
}


/* the label-set overflow and the usage ledger's rows */

static void
ngx_http_gpugate_metrics_ledger_rows(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_metrics_shm_t *shm)
{
    ngx_uint_t  i, pending;

    ngx_http_gpugate_prom_family(out, "gpugate_metrics_overflow_total",
        "counter", "Requests counted under \"_other\": the label sets "
        "were full.");
    ngx_http_gpugate_out_printf(out, "gpugate_metrics_overflow_total %uA\n",
                                shm->overflow);

    ngx_http_gpugate_prom_family(out, "gpugate_ledger_rows_total",
        "counter", "Usage ledger rows, by what became of them.");
    ngx_http_gpugate_out_printf(out,
                    "gpugate_ledger_rows_total{state=\"written\"} %uA\n"
                    "gpugate_ledger_rows_total{state=\"dropped\"} %uA\n"
                    "gpugate_ledger_rows_total{state=\"lost\"} %uA\n"
                    "gpugate_ledger_rows_total{state=\"spilled\"} %uA\n"
                    "gpugate_ledger_rows_total{state=\"rejected\"} %uA\n",
                    shm->ledger_written, shm->ledger_dropped,
                    shm->ledger_lost, shm->ledger_spilled,
                    shm->ledger_rejected);

    ngx_http_gpugate_prom_family(out, "gpugate_ledger_pending_rows",
        "gauge", "Usage ledger rows held by workers, not yet written.");

    pending = 0;

    for (i = 0; i < NGX_HTTP_GPUGATE_METRICS_PROCS; i++) {
        if (shm->procs[i].pid) {
            pending += shm->procs[i].pending;
        }
    }

    ngx_http_gpugate_out_printf(out, "gpugate_ledger_pending_rows %ui\n",
                                pending);

    ngx_http_gpugate_prom_family(out, "gpugate_reasoning_tokens_total",
        "counter", "Reasoning tokens of answers, as the runtime reported "
        "them or as the gateway counted them (reasoning split).");
    ngx_http_gpugate_out_printf(out,
                    "gpugate_reasoning_tokens_total{source=\"reported\"} "
                    "%uA\n"
                    "gpugate_reasoning_tokens_total{source=\"estimated\"} "
                    "%uA\n", shm->reasoning[0], shm->reasoning[1]);

    ngx_http_gpugate_prom_family(out, "gpugate_ledger_failures_total",
        "counter", "Ledger batches PostgreSQL refused or did not answer.");
    ngx_http_gpugate_out_printf(out, "gpugate_ledger_failures_total %uA\n",
                                shm->ledger_failures);
}


/*
 * The whole page, a family at a time, into "out".  Tokens are summed
 * over statuses per (model, tenant): a pass over the ready series with a
 * pool-local list of the pairs.
 */

ngx_int_t
ngx_http_gpugate_metrics_render(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_metrics_shm_t *shm)
{
    u_char                           *model, *tenant;
    ngx_uint_t                        np;
    ngx_http_gpugate_metrics_pair_t  *pairs;

    pairs = ngx_palloc(out->pool, NGX_HTTP_GPUGATE_METRICS_SERIES
                                  * sizeof(ngx_http_gpugate_metrics_pair_t));
    model = ngx_pnalloc(out->pool, 2 * NGX_HTTP_GPUGATE_METRICS_LABEL);
    tenant = ngx_pnalloc(out->pool, 2 * NGX_HTTP_GPUGATE_METRICS_LABEL);

    if (pairs == NULL || model == NULL || tenant == NULL) {
        return NGX_ERROR;
    }

    ngx_http_gpugate_metrics_requests(out, shm, pairs, &np, model, tenant);

    ngx_http_gpugate_metrics_tokens(out, "gpugate_prompt_tokens_total",
        "Prompt tokens, by model and tenant.", pairs, np, 0, model, tenant);
    ngx_http_gpugate_metrics_tokens(out, "gpugate_completion_tokens_total",
        "Completion tokens, by model and tenant.", pairs, np, 1, model,
        tenant);

    /* per model: two histograms, then the per-model counters */

    ngx_http_gpugate_metrics_histograms(out, shm, 0, model);
    ngx_http_gpugate_metrics_histograms(out, shm, 1, model);

    ngx_http_gpugate_metrics_per_model(out, shm,
                                       NGX_HTTP_GPUGATE_METRICS_ACTIVE, model);
    ngx_http_gpugate_metrics_per_model(out, shm,
                                       NGX_HTTP_GPUGATE_METRICS_UPSTREAM_ERRORS,
                                       model);
    ngx_http_gpugate_metrics_per_model(out, shm,
                                       NGX_HTTP_GPUGATE_METRICS_PARTIAL, model);

    ngx_http_gpugate_metrics_endpoints(out, shm);
    ngx_http_gpugate_metrics_auth(out, shm);
    ngx_http_gpugate_metrics_ledger_rows(out, shm);

    return out->failed ? NGX_ERROR : NGX_OK;
}


void
ngx_http_gpugate_metrics_reasoning(ngx_http_request_t *r, ngx_int_t n,
    ngx_uint_t estimated)
{
    ngx_http_gpugate_metrics_shm_t        *shm;
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_metrics_module);

    if (mmcf == NULL || mmcf->zone == NULL || n <= 0) {
        return;
    }

    shm = mmcf->zone->data;

    (void) ngx_atomic_fetch_add(&shm->reasoning[estimated ? 1 : 0], n);
}
