
/*
 * Copyright (C) gpugate authors
 *
 * The limits' sections of the gateway's pages: the Prometheus families
 * (refusals by tenant and reason, the zone, the Redis sync) and the
 * status object, read from the zone under its lock.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_limits.h"


/*
 * The pages.  Tenant nodes carry the refusal counters (every limited
 * key's tenant has one), so the label set is bounded by the zone.
 */

ngx_int_t
ngx_http_gpugate_limits_prometheus(ngx_http_gpugate_out_t *out)
{
    u_char                           *p;
    u_char                            label[2 * NGX_HTTP_GPUGATE_LIMITS_NAME];
    ngx_uint_t                        i;
    ngx_queue_t                      *q;
    ngx_http_gpugate_limits_node_t   *ln;
    ngx_http_gpugate_limits_zone_t   *z;

    if (ngx_http_gpugate_limits_shm == NULL) {
        return NGX_DECLINED;
    }

    z = ngx_http_gpugate_limits_shm->data;

    ngx_http_gpugate_prom_family(out, "gpugate_limited_requests_total",
        "counter", "Requests refused by a key's or tenant's limits, by "
        "tenant and reason.");

    ngx_shmtx_lock(&z->shpool->mutex);

    for (q = ngx_queue_head(&z->sh->lru);
         q != ngx_queue_sentinel(&z->sh->lru);
         q = ngx_queue_next(q))
    {
        ln = ngx_queue_data(q, ngx_http_gpugate_limits_node_t, lru);

        if (ln->kind != NGX_HTTP_GPUGATE_LIMITS_TENANT) {
            continue;
        }

        p = ngx_http_gpugate_prom_label(label, ln->name, ln->name_len);

        for (i = 1; i < NGX_HTTP_GPUGATE_LR_N; i++) {
            if (ln->limited[i]) {
                ngx_http_gpugate_out_printf(out,
                    "gpugate_limited_requests_total{tenant=\"%*s\","
                    "reason=\"%s\"} %ui\n", (size_t) (p - label), label,
                    ngx_http_gpugate_limits_reason_name(i), ln->limited[i]);
            }
        }
    }

    ngx_http_gpugate_prom_family(out, "gpugate_limits_admitted_total",
        "counter", "Requests admitted with a reservation.");
    ngx_http_gpugate_out_printf(out, "gpugate_limits_admitted_total %ui\n",
                                z->sh->admitted);

    if (ngx_http_gpugate_limits_nodes) {
        ngx_http_gpugate_prom_family(out, "gpugate_limits_redis_down",
            "gauge", "1 while Redis does not answer the limits' syncs and "
            "each node enforces its share.");
        ngx_http_gpugate_out_printf(out, "gpugate_limits_redis_down %ui\n",
                                    z->sh->down);

        ngx_http_gpugate_prom_family(out,
            "gpugate_limits_redis_fallbacks_total", "counter",
            "Times Redis stopped answering and the per-node share began.");
        ngx_http_gpugate_out_printf(out,
            "gpugate_limits_redis_fallbacks_total %ui\n", z->sh->fallbacks);

        ngx_http_gpugate_prom_family(out, "gpugate_limits_redis_syncs_total",
            "counter", "Limits syncs with Redis, by result.");
        ngx_http_gpugate_out_printf(out,
            "gpugate_limits_redis_syncs_total{result=\"ok\"} %ui\n"
            "gpugate_limits_redis_syncs_total{result=\"error\"} %ui\n",
            z->sh->syncs, z->sh->sync_errors);

        ngx_http_gpugate_prom_family(out,
            "gpugate_limits_redis_commands_total", "counter",
            "Redis commands the limits sent (one EVAL a sync, whatever "
            "the requests).");
        ngx_http_gpugate_out_printf(out,
            "gpugate_limits_redis_commands_total %ui\n", z->sh->commands);
    }

    ngx_http_gpugate_prom_family(out, "gpugate_limits_nodes", "gauge",
        "Keys and tenants counted in the limits zone.");
    ngx_http_gpugate_out_printf(out, "gpugate_limits_nodes %ui\n",
                                z->sh->nodes);

    ngx_http_gpugate_prom_family(out, "gpugate_limits_evicted_total",
        "counter", "Idle keys and tenants dropped from a full zone (their "
        "counts start again).");
    ngx_http_gpugate_out_printf(out, "gpugate_limits_evicted_total %ui\n",
                                z->sh->evicted);

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;
}


void
ngx_http_gpugate_limits_status(ngx_http_gpugate_out_t *out)
{
    u_char                           *p;
    u_char                            name[6 * NGX_HTTP_GPUGATE_LIMITS_NAME];
    ngx_uint_t                        i, n;
    ngx_queue_t                      *q;
    ngx_http_gpugate_limits_node_t   *ln;
    ngx_http_gpugate_limits_zone_t   *z;

    if (ngx_http_gpugate_limits_shm == NULL) {
        ngx_http_gpugate_out_printf(out, "null");
        return;
    }

    z = ngx_http_gpugate_limits_shm->data;

    ngx_shmtx_lock(&z->shpool->mutex);

    ngx_http_gpugate_out_printf(out, "{\"nodes\":%ui,\"evicted\":%ui,"
                                "\"full\":%ui,\"admitted\":%ui,\"refused\":{",
                                z->sh->nodes, z->sh->evicted, z->sh->full,
                                z->sh->admitted);

    for (i = 1; i < NGX_HTTP_GPUGATE_LR_N; i++) {
        ngx_http_gpugate_out_printf(out, "%s\"%s\":%ui", i > 1 ? "," : "",
                                    ngx_http_gpugate_limits_reason_name(i),
                                    z->sh->refused[i]);
    }

    ngx_http_gpugate_out_printf(out, "},\"redis\":");

    if (ngx_http_gpugate_limits_nodes) {
        ngx_http_gpugate_out_printf(out, "{\"nodes\":%ui,\"down\":%s,"
            "\"syncs\":%ui,\"errors\":%ui,\"fallbacks\":%ui,"
            "\"commands\":%ui}", ngx_http_gpugate_limits_nodes,
            z->sh->down ? "true" : "false", z->sh->syncs,
            z->sh->sync_errors, z->sh->fallbacks, z->sh->commands);

    } else {
        ngx_http_gpugate_out_printf(out, "null");
    }

    ngx_http_gpugate_out_printf(out, ",\"counted\":[");

    /* the most recently used first, at most 1000 (the page stays small) */

    n = 0;

    for (q = ngx_queue_head(&z->sh->lru);
         q != ngx_queue_sentinel(&z->sh->lru) && n < 1000;
         q = ngx_queue_next(q), n++)
    {
        ln = ngx_queue_data(q, ngx_http_gpugate_limits_node_t, lru);

        p = (u_char *) ngx_escape_json(name, ln->name, ln->name_len);

        ngx_http_gpugate_out_printf(out, "%s{\"kind\":\"%s\",\"id\":%L,"
            "\"name\":\"%*s\",\"inflight\":%L,\"requests_used\":%L,"
            "\"tokens_used\":%L,\"tokens_today\":%L,\"spent_micros\":%L}",
            n ? "," : "",
            ln->kind == NGX_HTTP_GPUGATE_LIMITS_KEY ? "key" : "tenant",
            ln->id, (size_t) (p - name), name, ln->inflight,
            (ln->req.used + GPUGATE_RL_SCALE - 1) / GPUGATE_RL_SCALE,
            (ln->tok.used + GPUGATE_RL_SCALE - 1) / GPUGATE_RL_SCALE,
            ln->day_tokens, ln->spent);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    ngx_http_gpugate_out_printf(out, "]}");
}
