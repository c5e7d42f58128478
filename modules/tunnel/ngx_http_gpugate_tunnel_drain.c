
/*
 * Copyright (C) gpugate authors
 *
 * Draining (sql/006_drain.sql): an operator marks an agent drained in
 * PostgreSQL (POST /admin/v1/agents/{id}/drain) and the balancer sends
 * it no new request (ngx_http_gpugate_tunnel_suits()), while its tunnels
 * and the streams on them go on.  The state lives in the agent's slots,
 * for the balancer, and in its cached verifier, so that an agent that
 * reconnects while PostgreSQL is down stays drained.  PostgreSQL tells
 * it at every handshake and in every re-check; "drain <name>" on the
 * invalidation channel only makes each worker re-check at once, so a
 * message forged on Redis changes nothing.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"


void
ngx_http_gpugate_tunnel_drain_set(int64_t agent_id, ngx_uint_t drained)
{
    ngx_uint_t                           i;
    ngx_slab_pool_t                     *shpool;
    ngx_http_gpugate_tunnel_shm_t       *shm;
    ngx_http_gpugate_tunnel_agent_t     *a;
    ngx_http_gpugate_tunnel_verifier_t  *v;

    shm = ngx_http_gpugate_tunnel_shm();

    if (shm == NULL || agent_id <= 0) {
        return;
    }

    drained = drained ? 1 : 0;
    shpool = ngx_http_gpugate_tunnel_shpool();

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < ngx_min(shm->high, shm->nagents); i++) {
        a = &shm->agents[i];

        if (!a->used || a->agent_id != agent_id || a->drained == drained) {
            continue;
        }

        a->drained = drained;

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "gpugate tunnel: agent \"%*s\" (id %L) %s",
                      a->name_len, a->name, agent_id,
                      drained ? "drained: no new request, its requests "
                                "finish"
                              : "undrained: takes requests again");
    }

    for (i = 0; i < shm->nverifiers; i++) {
        v = &shm->verifiers[i];

        if (v->verified && v->agent_id == agent_id) {
            v->drained = drained;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}
