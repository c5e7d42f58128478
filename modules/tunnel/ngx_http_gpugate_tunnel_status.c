
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

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"


/* JSON of one agent without its models, telemetry and workers */
#define NGX_HTTP_GPUGATE_STATUS_AGENT  1024

/* one worker's counts */
#define NGX_HTTP_GPUGATE_STATUS_WORKER  96

/* one GPU, numbers and a 63-byte name */
#define NGX_HTTP_GPUGATE_STATUS_GPU  320


static ngx_http_gpugate_tunnel_agent_t *ngx_http_gpugate_tunnel_snapshot(
    ngx_pool_t *pool, ngx_http_gpugate_tunnel_shm_t *shm, ngx_uint_t *n);
static u_char *ngx_http_gpugate_tunnel_status_agent(u_char *p,
    ngx_http_gpugate_tunnel_agent_t *a, ngx_http_gpugate_tunnel_shm_t *shm);
static u_char *ngx_http_gpugate_tunnel_status_telemetry(u_char *p,
    ngx_http_gpugate_tunnel_agent_t *a);


/* the used agent slots, copied under the lock (telemetry is too big to
   be read torn-free otherwise) */

static ngx_http_gpugate_tunnel_agent_t *
ngx_http_gpugate_tunnel_snapshot(ngx_pool_t *pool,
    ngx_http_gpugate_tunnel_shm_t *shm, ngx_uint_t *n)
{
    ngx_uint_t                        i;
    ngx_slab_pool_t                  *shpool;
    ngx_http_gpugate_tunnel_agent_t  *copy;

    copy = ngx_palloc(pool, (shm->nagents + 1)
                            * sizeof(ngx_http_gpugate_tunnel_agent_t));
    if (copy == NULL) {
        return NULL;
    }

    shpool = ngx_http_gpugate_tunnel_shpool();
    *n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < shm->nagents; i++) {
        if (shm->agents[i].used) {
            ngx_memcpy(&copy[(*n)++], &shm->agents[i],
                       sizeof(ngx_http_gpugate_tunnel_agent_t));
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return copy;
}


/* {"generation":G,"agents":[...]}, also the "tunnel" of gpugate_status */

ngx_int_t
ngx_http_gpugate_tunnel_status_json(ngx_pool_t *pool, ngx_buf_t **out)
{
    size_t                                 size;
    u_char                                *p;
    ngx_buf_t                             *b;
    ngx_uint_t                             i, n, waiting;
    ngx_http_gpugate_tunnel_agent_t       *a, *copy;
    ngx_http_gpugate_tunnel_shm_t         *shm;
    ngx_http_gpugate_tunnel_srv_conf_t   **tscf;
    ngx_http_gpugate_tunnel_main_conf_t   *tmcf;

    *out = NULL;
    shm = ngx_http_gpugate_tunnel_shm();

    if (shm == NULL) {
        return NGX_DECLINED;
    }

    copy = ngx_http_gpugate_tunnel_snapshot(pool, shm, &n);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    tmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_gpugate_tunnel_module);

    size = sizeof("{\"host\":\"\",\"agents_connected\":,\"generation\":,"
                  "\"waiting\":,\"pools\":[],\"agents\":[]}")
           + 6 * ngx_cycle->hostname.len + 3 * NGX_INT_T_LEN
           + tmcf->upstreams.nelts
             * (6 * 128 + 128 + NGX_HTTP_GPUGATE_TUNNEL_SCORE_JSON
                + NGX_HTTP_GPUGATE_AFFINITY_JSON)
           + sizeof(",\"spills\":,\"cooldowns\":") + 2 * NGX_INT_T_LEN;

    for (i = 0; i < n; i++) {
        a = &copy[i];
        size += NGX_HTTP_GPUGATE_STATUS_AGENT
                + ngx_escape_json(NULL, a->name, a->name_len)
                + a->name_len
                + 6 * a->models_len + a->models_len
                + sizeof(",\"endpoints\":[]") + 32 * 20
                + sizeof(",\"drained\":false")
                + NGX_HTTP_GPUGATE_TUNNEL_SCORE_JSON
                + NGX_HTTP_GPUGATE_TUNNEL_PROCS
                  * NGX_HTTP_GPUGATE_STATUS_WORKER
                + GPUGATE_TUNNEL_GPUS_MAX * NGX_HTTP_GPUGATE_STATUS_GPU;
    }

    b = ngx_create_temp_buf(pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    waiting = 0;

    for (i = 0; i < NGX_HTTP_GPUGATE_TUNNEL_PROCS; i++) {
        if (shm->procs[i].pid) {
            waiting += shm->procs[i].waiting;
        }
    }

    /*
     * Which node this is and how many agents hold tunnels to it: with
     * several gateway nodes each page is that node's alone.
     */

    p = ngx_cpymem(b->last, "{\"host\":\"", sizeof("{\"host\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, ngx_cycle->hostname.data,
                                   ngx_cycle->hostname.len);
    p = ngx_sprintf(p, "\",\"agents_connected\":%ui,\"generation\":%uA,"
                    "\"waiting\":%ui,\"spills\":%uA,\"cooldowns\":%uA,"
                    "\"pools\":[", n, shm->generation, waiting, shm->spills,
                    shm->cooled);

    /* the "gpugate_tunnel" upstream blocks and their queues */

    tmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_gpugate_tunnel_module);
    tscf = tmcf->upstreams.elts;

    for (i = 0; i < tmcf->upstreams.nelts; i++) {
        p = ngx_cpymem(p, i ? ",{\"upstream\":\"" : "{\"upstream\":\"",
                       i ? 14 : 13);
        p = (u_char *) ngx_escape_json(p, tscf[i]->upstream->host.data,
                                       ngx_min(tscf[i]->upstream->host.len,
                                               128));
        p = ngx_sprintf(p, "\",\"queue\":%ui,\"queue_timeout_ms\":%M",
                        tscf[i]->queue, tscf[i]->queue_timeout);
        p = ngx_http_gpugate_tunnel_pool_json(p, tscf[i]);
        p = ngx_http_gpugate_tunnel_affinity_json(p, tscf[i]->affinity);
        *p++ = '}';
    }

    p = ngx_cpymem(p, "],\"agents\":[", sizeof("],\"agents\":[") - 1);

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_gpugate_tunnel_status_agent(p, &copy[i], shm);
    }

    b->last = ngx_cpymem(p, "]}", 2);
    *out = b;

    return NGX_OK;
}


ngx_int_t
ngx_http_gpugate_tunnel_status_handler(ngx_http_request_t *r)
{
    ngx_int_t     rc;
    ngx_buf_t    *b, *nl;
    ngx_chain_t   out[2];

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_gpugate_tunnel_status_json(r->pool, &b) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    nl = ngx_calloc_buf(r->pool);
    if (nl == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    nl->pos = (u_char *) CRLF;
    nl->last = nl->pos + 2;
    nl->memory = 1;
    nl->last_buf = (r == r->main) ? 1 : 0;
    nl->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos + 2;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out[0].buf = b;
    out[0].next = &out[1];
    out[1].buf = nl;
    out[1].next = NULL;

    return ngx_http_output_filter(r, &out[0]);
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
                    "\"queue\":%uA,\"gpu_free_mb\":%uA,",
                    a->agent_id, a->instance_len, a->instance, a->since,
                    a->capacity, a->inflight, a->requests, a->queue,
                    a->gpu_free_mb);

    /* the runtime's cache, per cent; null: its agent does not tell */

    p = a->kv_pct ? ngx_sprintf(p, "\"kv_pct\":%uA,", a->kv_pct - 1)
                  : ngx_cpymem(p, "\"kv_pct\":null,", 14);
    p = a->hit_pct ? ngx_sprintf(p, "\"hit_pct\":%uA,", a->hit_pct - 1)
                   : ngx_cpymem(p, "\"hit_pct\":null,", 15);
    p = ngx_cpymem(p, "\"models\":[", 10);

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

    /* the endpoints routed to it: every one when it did not say */

    p = ngx_cpymem(p, "],\"endpoints\":[", sizeof("],\"endpoints\":[") - 1);
    first = 1;

    for (w = 0; gpugate_tunnel_endpoint_name((int) w); w++) {
        if (gpugate_tunnel_endpoint_served((uint32_t) a->endpoints, (int) w)) {
            p = ngx_sprintf(p, "%s\"%s\"", first ? "" : ",",
                            gpugate_tunnel_endpoint_name((int) w));
            first = 0;
        }
    }

    p = ngx_sprintf(p, "],\"drained\":%s", a->drained ? "true" : "false");
    p = ngx_http_gpugate_tunnel_score_json(p, a);
    p = ngx_cpymem(p, ",\"workers\":[", sizeof(",\"workers\":[") - 1);

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


/* one agent name's figures, summed over its runtimes and processes */
typedef struct {
    u_char                           *name;     /* label value, escaped */
    size_t                            len;      /* its length */
    ngx_uint_t                        v[6];     /* idle, busy, inflight,
                                                   capacity, queue,
                                                   drained (1: any
                                                   instance is) */
    ngx_http_gpugate_tunnel_agent_t  *newest;   /* newest telemetry */
} ngx_http_gpugate_tunnel_prom_t;


static const char  *ngx_http_gpugate_tunnel_prom_gauges[][3] = {
    { "gpugate_tunnel_connections", "state=\"idle\",",
      "Tunnel connections held by the gateway, by agent and state." },
    { "gpugate_tunnel_connections", "state=\"busy\",", NULL },
    { "gpugate_tunnel_inflight_requests", "",
      "Requests in flight on the agent's tunnels." },
    { "gpugate_tunnel_capacity_requests", "",
      "Requests the agent's runtimes take at once." },
    { "gpugate_tunnel_runtime_queue_requests", "",
      "Requests waiting in the agent's runtimes, as reported." },
    { "gpugate_agent_drained", "",
      "1 while the agent is drained: no new request (sql/006)." },
};


/*
 * The agents' figures by agent name (its runtimes and processes summed:
 * instance ids change at every restart and would make series churn),
 * with the slot of the newest telemetry; *na of them.
 */

static ngx_http_gpugate_tunnel_prom_t *
ngx_http_gpugate_tunnel_prom_collect(ngx_pool_t *pool,
    ngx_http_gpugate_tunnel_shm_t *shm, ngx_uint_t *na)
{
    ngx_uint_t                        i, k, n, w;
    ngx_http_gpugate_tunnel_prom_t   *ag, *x;
    ngx_http_gpugate_tunnel_agent_t  *copy, *a;

    copy = ngx_http_gpugate_tunnel_snapshot(pool, shm, &n);
    ag = ngx_pcalloc(pool, (n + 1) * sizeof(ngx_http_gpugate_tunnel_prom_t));

    if (copy == NULL || ag == NULL) {
        return NULL;
    }

    *na = 0;

    for (i = 0; i < n; i++) {
        a = &copy[i];

        for (k = 0; k < *na; k++) {
            if (ag[k].newest->name_len == a->name_len
                && ngx_memcmp(ag[k].newest->name, a->name, a->name_len) == 0)
            {
                break;
            }
        }

        x = &ag[k];

        if (k == *na) {
            (*na)++;
            x->name = ngx_pnalloc(pool, 2 * a->name_len + 1);
            if (x->name == NULL) {
                return NULL;
            }

            x->len = ngx_http_gpugate_prom_label(x->name, a->name,
                                                 a->name_len)
                     - x->name;
            x->newest = a;
        }

        for (w = 0; w < NGX_HTTP_GPUGATE_TUNNEL_PROCS; w++) {
            x->v[0] += a->count[w].idle;
            x->v[1] += a->count[w].busy;
        }

        x->v[2] += a->inflight;
        x->v[3] += a->capacity;
        x->v[4] += a->queue;
        x->v[5] |= a->drained ? 1 : 0;

        if (a->telemetry_at > x->newest->telemetry_at) {
            x->newest = a;
        }
    }

    return ag;
}


/* the gateway's wait queue, then the connections, load and capacity */

static void
ngx_http_gpugate_tunnel_prom_load(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_tunnel_shm_t *shm, ngx_http_gpugate_tunnel_prom_t *ag,
    ngx_uint_t na)
{
    ngx_uint_t    f, k, w, waiting;
    const char  **g;

    waiting = 0;

    for (w = 0; w < NGX_HTTP_GPUGATE_TUNNEL_PROCS; w++) {
        if (shm->procs[w].pid) {
            waiting += shm->procs[w].waiting;
        }
    }

    ngx_http_gpugate_prom_family(out, "gpugate_tunnel_waiting_requests",
        "gauge", "Requests waiting in the gateway for a free tunnel "
        "connection.");
    ngx_http_gpugate_out_printf(out, "gpugate_tunnel_waiting_requests %ui\n",
                                waiting);

    for (f = 0; f < 6; f++) {
        g = ngx_http_gpugate_tunnel_prom_gauges[f];

        /* the busy half of the connections continues the idle family */
        if (g[2]) {
            ngx_http_gpugate_prom_family(out, g[0], "gauge", g[2]);
        }

        for (k = 0; k < na; k++) {
            ngx_http_gpugate_out_printf(out, "%s{%sagent=\"%*s\"} %ui\n",
                                        g[0], g[1], ag[k].len, ag[k].name,
                                        ag[k].v[f]);
        }
    }
}


/* the host figures of each agent's newest telemetry */

static void
ngx_http_gpugate_tunnel_prom_hosts(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_tunnel_prom_t *ag, ngx_uint_t na)
{
    ngx_uint_t                   f, k;
    gpugate_tunnel_telemetry_t  *t;

    static const char  *families[][2] = {
        { "gpugate_agent_cpu_utilization_ratio",
          "Host CPU use of the agent's machine, last reported." },
        { "gpugate_agent_memory_used_bytes",
          "Host memory in use on the agent's machine." },
        { "gpugate_agent_memory_total_bytes",
          "Host memory of the agent's machine." },
        { "gpugate_agent_gpus",
          "GPUs the agent's machine reports (0: no NVML)." },
    };

    for (f = 0; f < 4; f++) {
        ngx_http_gpugate_prom_family(out, families[f][0], "gauge",
                                     families[f][1]);

        for (k = 0; k < na; k++) {
            if (ag[k].newest->telemetry_at == 0) {
                continue;
            }

            t = &ag[k].newest->telemetry;

            switch (f) {

            case 0:
                ngx_http_gpugate_out_printf(out, "%s{agent=\"%*s\"} %.2f\n",
                                            families[f][0], ag[k].len,
                                            ag[k].name,
                                            (double) t->cpu_pct / 100);
                break;

            case 1:
                ngx_http_gpugate_out_printf(out, "%s{agent=\"%*s\"} %uL\n",
                                            families[f][0], ag[k].len,
                                            ag[k].name,
                                            (uint64_t) t->mem_used_mb << 20);
                break;

            case 2:
                ngx_http_gpugate_out_printf(out, "%s{agent=\"%*s\"} %uL\n",
                                            families[f][0], ag[k].len,
                                            ag[k].name,
                                            (uint64_t) t->mem_total_mb << 20);
                break;

            default:
                ngx_http_gpugate_out_printf(out, "%s{agent=\"%*s\"} %uD\n",
                                            families[f][0], ag[k].len,
                                            ag[k].name, t->gpus);
                break;
            }
        }
    }
}


/* the GPUs of each agent's newest telemetry: names, then a family each */

static void
ngx_http_gpugate_tunnel_prom_gpus(ngx_http_gpugate_out_t *out,
    ngx_http_gpugate_tunnel_prom_t *ag, ngx_uint_t na)
{
    ngx_uint_t                   f, i, k;
    gpugate_tunnel_gpu_t        *g;
    gpugate_tunnel_telemetry_t  *t;

    static const char  *families[][2] = {
        { "gpugate_gpu_info", "A GPU of an agent's machine, by name." },
        { "gpugate_gpu_utilization_ratio",
          "GPU utilisation, last reported." },
        { "gpugate_gpu_memory_used_bytes", "GPU memory in use." },
        { "gpugate_gpu_memory_total_bytes", "GPU memory." },
        { "gpugate_gpu_temperature_celsius", "GPU temperature." },
        { "gpugate_gpu_power_watts", "GPU power draw." },
    };

    for (f = 0; f < 6; f++) {
        ngx_http_gpugate_prom_family(out, families[f][0], "gauge",
                                     families[f][1]);

        for (k = 0; k < na; k++) {
            t = &ag[k].newest->telemetry;

            for (i = 0; ag[k].newest->telemetry_at && i < t->ngpus; i++) {
                g = &t->gpu[i];

                switch (f) {

                case 0:
                    ngx_http_gpugate_out_printf(out,
                        "%s{agent=\"%*s\",gpu=\"%uD\",name=\"%*s\"} 1\n",
                        families[f][0], ag[k].len, ag[k].name, g->index,
                        g->name_len, g->name);
                    break;

                case 1:
                    if (g->has_util) {
                        ngx_http_gpugate_out_printf(out,
                            "%s{agent=\"%*s\",gpu=\"%uD\"} %.2f\n",
                            families[f][0], ag[k].len, ag[k].name, g->index,
                            (double) g->util_pct / 100);
                    }
                    break;

                case 2:
                    if (g->has_mem_used) {
                        ngx_http_gpugate_out_printf(out,
                            "%s{agent=\"%*s\",gpu=\"%uD\"} %uL\n",
                            families[f][0], ag[k].len, ag[k].name, g->index,
                            (uint64_t) g->mem_used_mb << 20);
                    }
                    break;

                case 3:
                    if (g->has_mem_total) {
                        ngx_http_gpugate_out_printf(out,
                            "%s{agent=\"%*s\",gpu=\"%uD\"} %uL\n",
                            families[f][0], ag[k].len, ag[k].name, g->index,
                            (uint64_t) g->mem_total_mb << 20);
                    }
                    break;

                case 4:
                    if (g->has_temp) {
                        ngx_http_gpugate_out_printf(out,
                            "%s{agent=\"%*s\",gpu=\"%uD\"} %uD\n",
                            families[f][0], ag[k].len, ag[k].name, g->index,
                            g->temp_c);
                    }
                    break;

                default:
                    if (g->has_power) {
                        ngx_http_gpugate_out_printf(out,
                            "%s{agent=\"%*s\",gpu=\"%uD\"} %uD\n",
                            families[f][0], ag[k].len, ag[k].name, g->index,
                            g->power_w);
                    }
                    break;
                }
            }
        }
    }
}


/*
 * The tunnel's part of the Prometheus page: per agent name, the
 * connections by state, in-flight requests, capacity and reported
 * queue; the gateway's wait queue; and the newest telemetry of each
 * agent.  Each family is written whole, as the text format wants.
 * Series are bounded by the zone's slots.
 */

ngx_int_t
ngx_http_gpugate_tunnel_prometheus(ngx_http_gpugate_out_t *out)
{
    ngx_uint_t                       na;
    ngx_http_gpugate_tunnel_shm_t   *shm;
    ngx_http_gpugate_tunnel_prom_t  *ag;

    shm = ngx_http_gpugate_tunnel_shm();

    if (shm == NULL) {
        return NGX_DECLINED;
    }

    ag = ngx_http_gpugate_tunnel_prom_collect(out->pool, shm, &na);
    if (ag == NULL) {
        return NGX_ERROR;
    }

    ngx_http_gpugate_tunnel_prom_load(out, shm, ag, na);
    ngx_http_gpugate_tunnel_prom_hosts(out, ag, na);
    ngx_http_gpugate_tunnel_prom_gpus(out, ag, na);
    ngx_http_gpugate_tunnel_affinity_prometheus(out, shm);

    if (ngx_http_gpugate_tunnel_score_prom(out) == NGX_ERROR) {
        return NGX_ERROR;
    }

    return out->failed ? NGX_ERROR : NGX_OK;
}
