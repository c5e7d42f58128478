/*
 * Copyright (C) gpugate authors
 *
 * The tunnel balancer's choice of an agent: of the agents that may take a
 * request (ngx_http_gpugate_tunnel_suits(), in _score.c), which one.  The
 * files call downwards only: the wait queue and the hand-out to the
 * upstream module stay above, in ngx_http_gpugate_tunnel_peer.c, which
 * calls _pick() and _chosen() here; the prefix and session preference is
 * below, in ngx_http_gpugate_tunnel_affinity.c, which is handed the least
 * loaded agent and calls nothing here.  This file only reads the zone's
 * agent slots and this worker's idle lists, and takes a place on the
 * agent it picks.
 *
 * Choice: agents that serve the model and the endpoint and are below
 * their capacity (less when cooled down), of the client's region first,
 * then its neighbours in order, then any (ngx_http_gpugate_tunnel_
 * region_rank()); among those the lowest score: in flight (over all
 * workers, from shared memory) plus the average TTFT and errors (ngx_
 * http_gpugate_tunnel_score()), among those with an idle connection in
 * this worker; on an equal score the shorter runtime queue, more free GPU
 * memory, then the agent chosen least recently (over all workers), so
 * that a newcomer shares traffic at once instead of taking all of it.
 * A pool with gpugate_prefix_affinity may prefer a holder of the
 * prompt's prefix instead (ngx_http_gpugate_tunnel_affinity.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"


static ngx_int_t ngx_http_gpugate_tunnel_returning(
    ngx_http_gpugate_tunnel_ctx_t *ctx, ngx_http_gpugate_tunnel_agent_t *a);
static ngx_uint_t ngx_http_gpugate_tunnel_better(
    ngx_http_gpugate_tunnel_agent_t *a, ngx_http_gpugate_tunnel_agent_t *b);


/*
 * 1 if the free slot was left by an agent that a reload disconnected
 * within the pool's queue_timeout: it is dialing the new workers, and the
 * request waits for it.  An agent that went away by itself, or was
 * revoked, is not waited for (an immediate 503 lets the client go
 * elsewhere).
 */

static ngx_int_t
ngx_http_gpugate_tunnel_returning(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_http_gpugate_tunnel_agent_t *a)
{
    time_t  left;

    left = a->reload_left;

    /* a revoked agent is refused when it dials again */

    return left != 0 && !a->revoked
           && ngx_time() - left <= (time_t) (ctx->conf->queue_timeout / 1000);
}


/*
 * The agent in slot "slot" takes the request, its place already taken:
 * it goes to the back of the ties, and a pool with affinity remembers it
 * for the request's keys.  One function for both ways to an agent (a
 * choice here, an offer to a waiting request in _peer.c), so that
 * neither forgets the other half.
 */

void
ngx_http_gpugate_tunnel_chosen(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_uint_t slot)
{
    ngx_http_gpugate_tunnel_shm_t  *shm;

    shm = ngx_http_gpugate_tunnel_shm();

    shm->agents[slot].chosen = ngx_atomic_fetch_add(&shm->choices, 1) + 1;

    ngx_http_gpugate_tunnel_affinity_record(ctx, slot);
}


/*
 * The idle connection of the least loaded suitable agent in this worker,
 * with its place taken (see _take()); NULL if none.  "exists" tells
 * whether any suitable agent is connected, or coming back after a reload.
 */

ngx_http_gpugate_tunnel_conn_t *
ngx_http_gpugate_tunnel_pick(ngx_http_gpugate_tunnel_ctx_t *ctx,
    ngx_uint_t *exists)
{
    ngx_int_t                         rank, best_rank;
    ngx_uint_t                        i, n, best, tries, score, best_score,
                                      cooled;
    ngx_atomic_uint_t                 load;
    ngx_queue_t                      *idle;
    ngx_http_gpugate_tunnel_shm_t    *shm;
    ngx_http_gpugate_tunnel_agent_t  *a;

    shm = ngx_http_gpugate_tunnel_shm();
    *exists = 0;

    /* slots past it were never used: nothing to look at there */
    n = ngx_min(shm->high, shm->nagents);

    for (tries = 0; tries < 3; tries++) {
        best = shm->nagents;
        best_score = 0;
        best_rank = 0;
        cooled = shm->nagents;

        for (i = 0; i < n; i++) {
            a = &shm->agents[i];

            if (!a->used) {
                /* cheap tests first: most free slots were never left */

                if (a->reload_left != 0
                    && ngx_http_gpugate_tunnel_suits(ctx, i, a)
                    && ngx_http_gpugate_tunnel_returning(ctx, a))
                {
                    *exists = 1;
                }

                continue;
            }

            if (!ngx_http_gpugate_tunnel_suits(ctx, i, a)) {
                continue;
            }

            *exists = 1;

            idle = ngx_http_gpugate_tunnel_idle(i);
            load = a->inflight;

            if (ngx_queue_empty(idle) || load >= a->capacity) {
                continue;
            }

            if (load >= ngx_http_gpugate_tunnel_room(a)) {
                /* cooled down or on trial: only if no other has room */
                cooled = (cooled == shm->nagents) ? i : cooled;
                continue;
            }

            rank = ngx_http_gpugate_tunnel_region_rank(ctx, a);
            score = ngx_http_gpugate_tunnel_score(ctx->conf, a);

            if (best == shm->nagents || rank < best_rank
                || (rank == best_rank
                    && (score < best_score
                        || (score == best_score
                            && ngx_http_gpugate_tunnel_better(
                                   a, &shm->agents[best])))))
            {
                best = i;
                best_score = score;
                best_rank = rank;
            }
        }

        if (best == shm->nagents) {
            if (cooled == shm->nagents
                || ngx_http_gpugate_tunnel_take_cooled(&shm->agents[cooled])
                   != NGX_OK)
            {
                return NULL;
            }

            best = cooled;

        } else {
            /* a holder of the prompt's prefix, or of its session */
            best = ngx_http_gpugate_tunnel_affinity_pick(ctx, best,
                                                shm->agents[best].inflight);

            if (ngx_http_gpugate_tunnel_take(&shm->agents[best]) != NGX_OK) {
                /* another worker took the last place meanwhile: again */
                continue;
            }
        }

        ngx_http_gpugate_tunnel_chosen(ctx, best);

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "gpugate tunnel: agent slot %ui chosen, score %ui, "
                       "region rank %i", best, best_score, best_rank);

        idle = ngx_http_gpugate_tunnel_idle(best);
        return ngx_queue_data(ngx_queue_head(idle),
                              ngx_http_gpugate_tunnel_conn_t, queue);
    }

    return NULL;
}


/*
 * Between agents of an equal score: the shorter runtime
 * queue, then more free GPU memory (both as the agents last reported),
 * then the one chosen least recently, so that sequential traffic rotates
 * (a lifetime count would send everything to an agent that just joined
 * until it caught up).
 */

static ngx_uint_t
ngx_http_gpugate_tunnel_better(ngx_http_gpugate_tunnel_agent_t *a,
    ngx_http_gpugate_tunnel_agent_t *b)
{
    if (a->queue != b->queue) {
        return a->queue < b->queue;
    }

    if (a->gpu_free_mb != b->gpu_free_mb) {
        return a->gpu_free_mb > b->gpu_free_mb;
    }

    return a->chosen < b->chosen;
}
