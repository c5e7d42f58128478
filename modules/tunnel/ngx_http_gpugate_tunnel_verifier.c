
/*
 * Copyright (C) gpugate authors
 *
 * The agents' verifiers beyond one handshake.  Verifiers PostgreSQL gave
 * are kept in the zone, so that a known agent can handshake while
 * PostgreSQL is down, for as long as the auth cache keeps a key (ttl=
 * plus stale=); what revocation PostgreSQL tells (at a handshake, in the
 * periodic re-check of the agents a worker holds) or Redis publishes
 * ("agent <name>") drops them and closes the agent's connections.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"
#include "ngx_http_gpugate_tunnel_handshake.h"
#include "ngx_http_gpugate_auth_api.h"


#define NGX_HTTP_GPUGATE_TUNNEL_ASKED_MAX  16


typedef struct {
    ngx_http_gpugate_tunnel_main_conf_t *tmcf; /* recheck= */
    time_t                      lifetime;  /* ttl= plus stale= of the
                                              auth cache: how long a
                                              cached verifier lasts */
    ngx_event_t                 recheck;   /* the next re-check */
    ngx_http_gpugate_pg_query_t query;     /* the re-check's query */
    unsigned                    rechecking:1; /* the query is out */
    unsigned                    again:1;   /* a "drain" message came while
                                              it was: ask once more */
    ngx_uint_t                  nids;      /* agents asked about */
    int64_t                    *ids;       /* their ids (nagents +
                                              ..._ASKED_MAX) */
    u_char                     *param;     /* "{id,id,...}", NUL-ended */
    ngx_uint_t                  nasked;    /* ids in "asked" */
    int64_t                     asked[NGX_HTTP_GPUGATE_TUNNEL_ASKED_MAX];
                                           /* cached agents named by an
                                              "agent <name>" message, for
                                              the next re-check even when
                                              this worker holds none of
                                              their connections: a
                                              revoked agent's verifier
                                              must not outlive the
                                              revocation in the cache */
} ngx_http_gpugate_tunnel_verifiers_t;


static void ngx_http_gpugate_tunnel_cache_touch(int64_t *ids, ngx_uint_t n);
static int64_t ngx_http_gpugate_tunnel_cache_id(ngx_str_t *name);
static void ngx_http_gpugate_tunnel_recheck(ngx_event_t *ev);
static void ngx_http_gpugate_tunnel_recheck_done(
    ngx_http_gpugate_pg_query_t *q, PGresult *res, const char *error);
static void ngx_http_gpugate_tunnel_bus_count(void);


static ngx_http_gpugate_tunnel_verifiers_t  *ngx_http_gpugate_tunnel_vf;


ngx_int_t
ngx_http_gpugate_tunnel_verifier_init(ngx_cycle_t *cycle)
{
    ngx_uint_t                            n;
    ngx_http_gpugate_tunnel_shm_t        *shm;
    ngx_http_gpugate_tunnel_verifiers_t  *vf;

    vf = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_tunnel_verifiers_t));
    if (vf == NULL) {
        return NGX_ERROR;
    }

    vf->tmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_gpugate_tunnel_module);
    vf->lifetime = ngx_http_gpugate_auth_lifetime(cycle);

    ngx_http_gpugate_tunnel_vf = vf;

    if (!vf->tmcf->accept) {
        return NGX_OK;
    }

    /*
     * a worker holds at most every agent slot, one id each, and asks
     * about the agents messages named
     */

    shm = ngx_http_gpugate_tunnel_shm();
    n = shm->nagents + NGX_HTTP_GPUGATE_TUNNEL_ASKED_MAX;

    vf->ids = ngx_palloc(cycle->pool, n * sizeof(int64_t));
    vf->param = ngx_pnalloc(cycle->pool, n * (NGX_INT64_LEN + 1) + 3);

    if (vf->ids == NULL || vf->param == NULL) {
        return NGX_ERROR;
    }

    vf->recheck.handler = ngx_http_gpugate_tunnel_recheck;
    vf->recheck.data = vf;
    vf->recheck.log = cycle->log;
    vf->recheck.cancelable = 1;

    /* spread over the period, so that the workers do not ask at once */
    ngx_add_timer(&vf->recheck,
                  vf->tmcf->recheck / 2 + ngx_random() % vf->tmcf->recheck);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "gpugate tunnel: agent re-check every %M",
                   vf->tmcf->recheck);

    return NGX_OK;
}


void
ngx_http_gpugate_tunnel_verifier_exit(void)
{
    ngx_http_gpugate_tunnel_verifiers_t  *vf;

    vf = ngx_http_gpugate_tunnel_vf;

    if (vf == NULL) {
        return;
    }

    /* a query still in the PostgreSQL pool was dropped with it */

    if (vf->recheck.timer_set) {
        ngx_del_timer(&vf->recheck);
    }

    ngx_http_gpugate_tunnel_vf = NULL;
}


/* the verifier cache: under the zone's lock, small and linear */

static ngx_http_gpugate_tunnel_verifier_t *
ngx_http_gpugate_tunnel_cache_find(ngx_http_gpugate_tunnel_shm_t *shm,
    u_char *name, size_t len)
{
    ngx_uint_t                           i;
    ngx_http_gpugate_tunnel_verifier_t  *v;

    for (i = 0; i < shm->nverifiers; i++) {
        v = &shm->verifiers[i];

        if (v->verified && v->name_len == len
            && ngx_memcmp(v->name, name, len) == 0)
        {
            return v;
        }
    }

    return NULL;
}


ngx_uint_t
ngx_http_gpugate_tunnel_cache_get(ngx_http_gpugate_tunnel_step_t *st)
{
    time_t                               grace;
    ngx_slab_pool_t                     *shpool;
    ngx_http_gpugate_tunnel_shm_t       *shm;
    ngx_http_gpugate_tunnel_verifier_t  *v;

    shm = ngx_http_gpugate_tunnel_shm();
    shpool = ngx_http_gpugate_tunnel_shpool();
    grace = ngx_http_gpugate_tunnel_vf->lifetime;

    if (shm->nverifiers == 0) {
        return 0;
    }

    ngx_shmtx_lock(&shpool->mutex);

    v = ngx_http_gpugate_tunnel_cache_find(shm, (u_char *) st->user,
                                           st->user_len);

    if (v && v->verified + grace >= ngx_time()) {
        st->cached = 1;
        st->agent_id = v->agent_id;
        st->salt_len = v->salt_len;
        ngx_memcpy(st->salt, v->salt, v->salt_len);
        st->iterations = v->iterations;
        ngx_memcpy(st->stored_key, v->stored_key, GPUGATE_SCRAM_KEY_LEN);
        ngx_memcpy(st->server_key, v->server_key, GPUGATE_SCRAM_KEY_LEN);
        st->any_model = v->any_model ? 1 : 0;
        st->drained = v->drained ? 1 : 0;
        st->allowed_len = v->allowed_len;
        ngx_memcpy(st->allowed, v->allowed, v->allowed_len);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return st->cached;
}


void
ngx_http_gpugate_tunnel_cache_put(ngx_http_gpugate_tunnel_step_t *st)
{
    ngx_uint_t                           i;
    ngx_slab_pool_t                     *shpool;
    ngx_http_gpugate_tunnel_shm_t       *shm;
    ngx_http_gpugate_tunnel_verifier_t  *v, *e;

    shm = ngx_http_gpugate_tunnel_shm();
    shpool = ngx_http_gpugate_tunnel_shpool();

    if (shm->nverifiers == 0 || st->user_len > NGX_HTTP_GPUGATE_TUNNEL_NAME_MAX)
    {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);

    v = ngx_http_gpugate_tunnel_cache_find(shm, (u_char *) st->user,
                                           st->user_len);

    /* else a free entry (0), else the one confirmed longest ago */

    if (v == NULL) {
        v = &shm->verifiers[0];

        for (i = 1; i < shm->nverifiers; i++) {
            e = &shm->verifiers[i];

            if (e->verified < v->verified) {
                v = e;
            }
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate tunnel: verifier of \"%s\" cached, entry %ui",
                   st->user, (ngx_uint_t) (v - shm->verifiers));

    v->verified = ngx_time();
    v->agent_id = st->agent_id;
    v->name_len = st->user_len;
    ngx_memcpy(v->name, st->user, st->user_len);
    v->salt_len = st->salt_len;
    ngx_memcpy(v->salt, st->salt, st->salt_len);
    v->iterations = st->iterations;
    ngx_memcpy(v->stored_key, st->stored_key, GPUGATE_SCRAM_KEY_LEN);
    ngx_memcpy(v->server_key, st->server_key, GPUGATE_SCRAM_KEY_LEN);
    v->any_model = st->any_model;
    v->drained = st->drained;
    v->allowed_len = st->allowed_len;
    ngx_memcpy(v->allowed, st->allowed, st->allowed_len);

    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_gpugate_tunnel_cache_drop(ngx_str_t *name, int64_t agent_id)
{
    ngx_uint_t                           i;
    ngx_slab_pool_t                     *shpool;
    ngx_http_gpugate_tunnel_shm_t       *shm;
    ngx_http_gpugate_tunnel_verifier_t  *v;

    shm = ngx_http_gpugate_tunnel_shm();
    shpool = ngx_http_gpugate_tunnel_shpool();

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < shm->nverifiers; i++) {
        v = &shm->verifiers[i];

        if (v->verified == 0
            || (name ? (v->name_len != name->len
                        || ngx_memcmp(v->name, name->data, name->len) != 0)
                     : v->agent_id != agent_id))
        {
            continue;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate tunnel: cached verifier of \"%*s\" dropped",
                       v->name_len, v->name);

        ngx_explicit_memzero(v, sizeof(ngx_http_gpugate_tunnel_verifier_t));
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/* the agent id of a cached verifier, 0 when none is cached */

static int64_t
ngx_http_gpugate_tunnel_cache_id(ngx_str_t *name)
{
    int64_t                              id;
    ngx_uint_t                           i;
    ngx_slab_pool_t                     *shpool;
    ngx_http_gpugate_tunnel_shm_t       *shm;
    ngx_http_gpugate_tunnel_verifier_t  *v;

    shm = ngx_http_gpugate_tunnel_shm();
    shpool = ngx_http_gpugate_tunnel_shpool();
    id = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < shm->nverifiers; i++) {
        v = &shm->verifiers[i];

        if (v->verified && v->name_len == name->len
            && ngx_memcmp(v->name, name->data, name->len) == 0)
        {
            id = v->agent_id;
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return id;
}


/* PostgreSQL confirmed these agents: their verifiers are fresh again */

static void
ngx_http_gpugate_tunnel_cache_touch(int64_t *ids, ngx_uint_t n)
{
    ngx_uint_t                           i, k;
    ngx_slab_pool_t                     *shpool;
    ngx_http_gpugate_tunnel_shm_t       *shm;
    ngx_http_gpugate_tunnel_verifier_t  *v;

    shm = ngx_http_gpugate_tunnel_shm();
    shpool = ngx_http_gpugate_tunnel_shpool();

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < shm->nverifiers; i++) {
        v = &shm->verifiers[i];

        for (k = 0; v->verified && k < n; k++) {
            if (ids[k] == v->agent_id) {
                v->verified = ngx_time();
                break;
            }
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * Every "recheck=" a worker asks PostgreSQL which of the agents it holds
 * are still valid, and closes the connections of the others: a revocation
 * whose Redis message was lost still takes effect within that period.
 */

static void
ngx_http_gpugate_tunnel_recheck(ngx_event_t *ev)
{
    ngx_http_gpugate_tunnel_verifiers_t *vf = ev->data;

    u_char                 *p;
    ngx_uint_t              i;
    ngx_http_gpugate_pg_t  *pg;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, vf->tmcf->recheck);

    if (vf->rechecking) {
        return;
    }

    vf->nids = ngx_http_gpugate_tunnel_held(vf->ids,
                   ngx_http_gpugate_tunnel_shm()->nagents);
    pg = ngx_http_gpugate_auth_pg();

    for (i = 0; i < vf->nasked; i++) {
        vf->ids[vf->nids++] = vf->asked[i];
    }

    if (vf->nids == 0 || pg == NULL) {
        return;
    }

    p = vf->param;
    *p++ = '{';

    for (i = 0; i < vf->nids; i++) {
        p = ngx_sprintf(p, i ? ",%L" : "%L", vf->ids[i]);
    }

    *p++ = '}';
    *p = '\0';

    vf->query.stmt = "gpugate_tunnel_recheck";
    vf->query.nparams = 1;
    vf->query.values[0] = (char *) vf->param;
    vf->query.lengths[0] = (int) (p - vf->param);
    vf->query.formats[0] = 0;
    vf->query.handler = ngx_http_gpugate_tunnel_recheck_done;
    vf->query.data = vf;

    if (ngx_http_gpugate_pg_run(pg, &vf->query) != NGX_OK) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "gpugate tunnel: PostgreSQL unavailable, agent "
                       "re-check skipped");
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "gpugate tunnel: re-checking %ui agents (%ui named by "
                   "messages)", vf->nids, vf->nasked);

    vf->nasked = 0;
    vf->rechecking = 1;
}


static void
ngx_http_gpugate_tunnel_recheck_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error)
{
    ngx_http_gpugate_tunnel_verifiers_t *vf = q->data;

    int64_t     id;
    ngx_uint_t  i, k, n, valid;

    vf->rechecking = 0;

    if (res == NULL) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "gpugate tunnel: agent re-check failed: %s", error);
        return;
    }

    /* the ids found are valid; the ones asked about and missing are not */

    n = PQntuples(res);
    valid = 0;

    for (i = 0; i < n; i++) {
        id = ngx_atoof((u_char *) PQgetvalue(res, i, 0),
                       PQgetlength(res, i, 0));

        if (PQnfields(res) == 2) {
            ngx_http_gpugate_tunnel_drain_set(id,
                                              *PQgetvalue(res, i, 1) == 't');
        }

        for (k = valid; k < vf->nids; k++) {
            if (vf->ids[k] == id) {
                vf->ids[k] = vf->ids[valid];
                vf->ids[valid++] = id;
                break;
            }
        }
    }

    ngx_http_gpugate_tunnel_cache_touch(vf->ids, valid);

    for (k = valid; k < vf->nids; k++) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "gpugate tunnel: re-check: agent id %L is revoked or "
                      "gone", vf->ids[k]);

        ngx_http_gpugate_tunnel_cache_drop(NULL, vf->ids[k]);
        (void) ngx_http_gpugate_tunnel_revoke(NULL, vf->ids[k]);
    }

    /* agents named while this query was out are asked about at once */

    if ((vf->nasked || vf->again) && vf->recheck.timer_set) {
        vf->again = 0;
        ngx_del_timer(&vf->recheck);
        ngx_http_gpugate_tunnel_recheck(&vf->recheck);
    }
}


void
ngx_http_gpugate_tunnel_recheck_now(void)
{
    ngx_http_gpugate_tunnel_verifiers_t  *vf;

    vf = ngx_http_gpugate_tunnel_vf;

    if (vf == NULL || vf->ids == NULL || !vf->recheck.timer_set) {
        return;
    }

    if (vf->rechecking) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate tunnel: re-check out, another one follows");
        vf->again = 1;
        return;
    }

    ngx_del_timer(&vf->recheck);
    ngx_http_gpugate_tunnel_recheck(&vf->recheck);
}


/*
 * A handshake reads its agent's verifier and drained state at step 1 and
 * attaches it at step 2.  An "agent" or "drain" message between the two
 * makes a re-check that finds nothing of the agent to close (it holds no
 * tunnel yet), or whose drained state step 2 then overwrites with the
 * older one: a revoked agent would keep that tunnel, a drained one take
 * new requests (or an undrained one none) until the periodic re-check
 * (recheck=, 30 s).  Each message is counted; step 2 asks again when one
 * came since its step 1, now that this worker holds the agent.
 */

static void
ngx_http_gpugate_tunnel_bus_count(void)
{
    ngx_http_gpugate_tunnel_shm_t  *shm;

    shm = ngx_http_gpugate_tunnel_shm();

    if (shm) {
        (void) ngx_atomic_fetch_add(&shm->bus_msgs, 1);
    }
}


void
ngx_http_gpugate_tunnel_recheck_since(ngx_atomic_uint_t msgs)
{
    ngx_http_gpugate_tunnel_shm_t  *shm;

    shm = ngx_http_gpugate_tunnel_shm();

    if (shm == NULL || shm->bus_msgs == msgs) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate tunnel: an agent or drain message came during "
                   "a handshake: re-checking after it");

    ngx_http_gpugate_tunnel_recheck_now();
}


/*
 * "agent <name>" on the invalidation channel (the auth module's).  Anyone
 * who can publish on Redis can send it, so it only makes the agent
 * handshake again and asks PostgreSQL about the agent at once: PostgreSQL
 * decides.  A valid agent keeps its cached verifier for outages, as valid
 * keys keep their stale grace; a revoked one loses it now, not when (or
 * if) it dials again before an outage begins.
 */

ngx_uint_t
ngx_http_gpugate_tunnel_invalidate(ngx_str_t *name)
{
    int64_t                        id;
    ngx_uint_t                     i;
    ngx_http_gpugate_tunnel_verifiers_t  *vf;

    vf = ngx_http_gpugate_tunnel_vf;

    if (vf == NULL || ngx_http_gpugate_tunnel_shm() == NULL) {
        return 0;
    }

    ngx_http_gpugate_tunnel_bus_count();

    id = ngx_http_gpugate_tunnel_cache_id(name);

    if (id != 0 && vf->ids != NULL) {

        for (i = 0; i < vf->nasked && vf->asked[i] != id; i++) {
            /* void */
        }

        if (i == vf->nasked
            && vf->nasked < NGX_HTTP_GPUGATE_TUNNEL_ASKED_MAX)
        {
            vf->asked[vf->nasked++] = id;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate tunnel: \"%V\" (id %L) re-checked now",
                       name, id);

        /* now, unless a re-check is out: its answer runs the next one */

        if (!vf->rechecking && vf->recheck.timer_set) {
            ngx_del_timer(&vf->recheck);
            ngx_http_gpugate_tunnel_recheck(&vf->recheck);
        }
    }

    return ngx_http_gpugate_tunnel_revoke(name, 0);
}


/* "drain <name>" on the bus: the drained state is PostgreSQL's, asked now */

ngx_uint_t
ngx_http_gpugate_tunnel_drain_message(ngx_str_t *name)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate tunnel: \"drain %V\": re-checking now", name);

    ngx_http_gpugate_tunnel_bus_count();

    ngx_http_gpugate_tunnel_recheck_now();

    return 0;
}
