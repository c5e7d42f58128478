
/*
 * Copyright (C) gpugate authors
 *
 * "gpugate_tunnel_status": the connected agents as JSON, from the zone
 * every worker shares, so any worker answers for all of them: identity,
 * models, capacity and in-flight requests, the runtime load and the host
 * and GPU telemetry they last reported, and each worker's idle, busy and
 * connection counts.  Access is the operator's to restrict (allow/deny,
 * auth_request ...), as for stub_status.
 *
 * Each agent slot is copied under the slab pool's lock (telemetry is too
 * big to be read torn-free otherwise) and formatted outside it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_tunnel.h"


/* JSON of one agent without its models, telemetry and workers */
#define NGX_HTTP_GPUGATE_STATUS_AGENT  1024

/* one worker's counts */
#define NGX_HTTP_GPUGATE_STATUS_WORKER  96

/* one GPU, numbers and a 63-byte name */
#define NGX_HTTP_GPUGATE_STATUS_GPU  320


static u_char *ngx_http_gpugate_tunnel_status_agent(u_char *p,
    ngx_http_gpugate_tunnel_agent_t *a, ngx_http_gpugate_tunnel_shm_t *shm);
static u_char *ngx_http_gpugate_tunnel_status_telemetry(u_char *p,
    ngx_http_gpugate_tunnel_agent_t *a);


ngx_int_t
ngx_http_gpugate_tunnel_status_handler(ngx_http_request_t *r)
{
    size_t                            size;
    u_char                           *p;
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    ngx_uint_t                        i, n;
    ngx_chain_t                       out;
    ngx_slab_pool_t                  *shpool;
    ngx_http_gpugate_tunnel_agent_t  *a, *copy;
    ngx_http_gpugate_tunnel_shm_t    *shm;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    shm = ngx_http_gpugate_tunnel_shm();

    if (shm == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    shpool = ngx_http_gpugate_tunnel_shpool();

    /* a snapshot: slots change while we format */

    copy = ngx_palloc(r->pool, shm->nagents
                               * sizeof(ngx_http_gpugate_tunnel_agent_t));
    if (copy == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < shm->nagents; i++) {
        if (shm->agents[i].used) {
            ngx_memcpy(&copy[n++], &shm->agents[i],
                       sizeof(ngx_http_gpugate_tunnel_agent_t));
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    size = sizeof("{\"generation\":,\"agents\":[]}" CRLF) + NGX_INT_T_LEN;

    for (i = 0; i < n; i++) {
        a = &copy[i];
        size += NGX_HTTP_GPUGATE_STATUS_AGENT
                + ngx_escape_json(NULL, a->name, a->name_len)
                + a->name_len
                + 6 * a->models_len + a->models_len
                + NGX_HTTP_GPUGATE_TUNNEL_PROCS
                  * NGX_HTTP_GPUGATE_STATUS_WORKER
                + GPUGATE_TUNNEL_GPUS_MAX * NGX_HTTP_GPUGATE_STATUS_GPU;
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(b->last, "{\"generation\":%uA,\"agents\":[",
                    shm->generation);

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_gpugate_tunnel_status_agent(p, &copy[i], shm);
    }

    p = ngx_cpymem(p, "]}" CRLF, sizeof("]}" CRLF) - 1);
    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static u_char *
ngx_http_gpugate_tunnel_status_agent(u_char *p,
    ngx_http_gpugate_tunnel_agent_t *a, ngx_http_gpugate_tunnel_shm_t *shm)
{
    u_char                           *m, *end, *e;
    ngx_uint_t                        w, first;
    ngx_http_gpugate_tunnel_count_t  *cnt;

    p = ngx_cpymem(p, "{\"name\":\"", sizeof("{\"name\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, a->name, a->name_len);

    p = ngx_sprintf(p, "\",\"id\":%L,\"instance\":\"%*s\",\"since\":%T,"
                    "\"capacity\":%uA,\"inflight\":%uA,\"requests\":%uA,"
                    "\"queue\":%uA,\"gpu_free_mb\":%uA,\"models\":[",
                    a->agent_id, a->instance_len, a->instance, a->since,
                    a->capacity, a->inflight, a->requests, a->queue,
                    a->gpu_free_mb);

    /* "a, b": the form the agent sent, checked at the handshake */

    m = a->models;
    end = a->models + a->models_len;
    first = 1;

    while (m < end) {
        while (m < end && (*m == ' ' || *m == ',')) {
            m++;
        }

        e = m;

        while (e < end && *e != ',' && *e != ' ') {
            e++;
        }

        if (e == m) {
            break;
        }

        p = ngx_cpymem(p, first ? "\"" : ",\"", first ? 1 : 2);
        p = (u_char *) ngx_escape_json(p, m, e - m);
        *p++ = '"';
        first = 0;
        m = e;
    }

    p = ngx_cpymem(p, "],\"workers\":[", sizeof("],\"workers\":[") - 1);

    first = 1;

    for (w = 0; w < NGX_HTTP_GPUGATE_TUNNEL_PROCS; w++) {
        cnt = &a->count[w];

        if (cnt->conns == 0 || shm->procs[w].pid == 0) {
            continue;
        }

        p = ngx_sprintf(p, "%s{\"pid\":%P,\"generation\":%ui,\"idle\":%uA,"
                        "\"busy\":%uA,\"connections\":%uA}",
                        first ? "" : ",", shm->procs[w].pid,
                        shm->procs[w].generation, cnt->idle, cnt->busy,
                        cnt->conns);
        first = 0;
    }

    p = ngx_cpymem(p, "],\"telemetry\":", sizeof("],\"telemetry\":") - 1);
    p = ngx_http_gpugate_tunnel_status_telemetry(p, a);
    *p++ = '}';

    return p;
}


static u_char *
ngx_http_gpugate_tunnel_status_telemetry(u_char *p,
    ngx_http_gpugate_tunnel_agent_t *a)
{
    ngx_uint_t                   i;
    gpugate_tunnel_gpu_t        *g;
    gpugate_tunnel_telemetry_t  *t;

    if (a->telemetry_at == 0) {
        return ngx_cpymem(p, "null", 4);
    }

    t = &a->telemetry;

    p = ngx_sprintf(p, "{\"at\":%T,\"cpu_pct\":%uD,\"cpus\":%uD,"
                    "\"mem_used_mb\":%uD,\"mem_total_mb\":%uD,"
                    "\"gpu_count\":%uD,\"gpus\":[",
                    a->telemetry_at, t->cpu_pct, t->cpus, t->mem_used_mb,
                    t->mem_total_mb, t->gpus);

    for (i = 0; i < t->ngpus && i < GPUGATE_TUNNEL_GPUS_MAX; i++) {
        g = &t->gpu[i];

        /* names are printable ASCII without quotes or backslashes */

        p = ngx_sprintf(p, "%s{\"index\":%uD,\"name\":\"%*s\"",
                        i ? "," : "", g->index,
                        ngx_min(g->name_len, GPUGATE_TUNNEL_GPU_NAME_MAX),
                        g->name);

        if (g->has_util) {
            p = ngx_sprintf(p, ",\"util_pct\":%uD", g->util_pct);
        }

        if (g->has_mem_used) {
            p = ngx_sprintf(p, ",\"mem_used_mb\":%uD", g->mem_used_mb);
        }

        if (g->has_mem_total) {
            p = ngx_sprintf(p, ",\"mem_total_mb\":%uD", g->mem_total_mb);
        }

        if (g->has_temp) {
            p = ngx_sprintf(p, ",\"temp_c\":%uD", g->temp_c);
        }

        if (g->has_power) {
            p = ngx_sprintf(p, ",\"power_w\":%uD", g->power_w);
        }

        *p++ = '}';
    }

    return ngx_cpymem(p, "]}", 2);
}
