
/*
 * Copyright (C) gpugate authors
 *
 * Directives and shared memory of the reverse tunnel:
 *
 *     gpugate_tunnel_zone    SIZE [verifiers=N] [recheck=T]; (http)
 *     gpugate_tunnel_accept  [ping=T] [ping_timeout=T] [step_timeout=T]
 *                            [rate=N] [burst=N];        (location)
 *     gpugate_tunnel         [queue=N] [queue_timeout=T]; (upstream)
 *     gpugate_prefix_affinity ...;  (upstream, ..._tunnel_affinity.c)
 *
 * and the content handler of a gpugate_tunnel_accept location, which
 * hands a handshake request to step 1 (..._tunnel_handshake.c) or step 2
 * (..._tunnel_step2.c): kept above both, so that neither calls the other.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_tunnel.h"
#include "ngx_http_gpugate_tunnel_handshake.h"
#include "ngx_http_gpugate_auth_api.h"


/*
 * The verifier lookup of the handshake.  A revoked agent is found too, so
 * that its cached verifier is dropped, and then gets the same fake
 * exchange as an unknown name.  The allowed models come comma-joined
 * with their count, so that a name with a comma cannot pass for two.
 * drained_at (sql/006) is read through the row's JSON, so that the
 * statement (and the handshake) still works before 006 is applied.
 */

static ngx_http_gpugate_pg_stmt_t  ngx_http_gpugate_tunnel_stmt = {
    "gpugate_tunnel_agent",
    "SELECT id, encode(scram_salt, 'hex'), scram_iterations,"
    " encode(scram_stored_key, 'hex'), encode(scram_server_key, 'hex'),"
    " allowed_models IS NULL,"
    " coalesce(array_to_string(allowed_models, ','), ''),"
    " coalesce(cardinality(allowed_models), 0),"
    " revoked_at IS NOT NULL,"
    " (to_jsonb(agents) ->> 'drained_at') IS NOT NULL"
    " FROM agents WHERE name = $1",
    1
};


/*
 * The periodic re-check: which of the agents a worker holds are valid,
 * and drained (as above)
 */

static ngx_http_gpugate_pg_stmt_t  ngx_http_gpugate_tunnel_recheck_stmt = {
    "gpugate_tunnel_recheck",
    "SELECT id, (to_jsonb(agents) ->> 'drained_at') IS NOT NULL FROM agents"
    " WHERE id = ANY($1::bigint[]) AND revoked_at IS NULL",
    1
};


static void *ngx_http_gpugate_tunnel_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_gpugate_tunnel_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_tunnel_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_gpugate_tunnel_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gpugate_tunnel_accept(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_gpugate_tunnel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gpugate_tunnel_add_zone(ngx_conf_t *cf,
    ngx_http_gpugate_tunnel_main_conf_t *tmcf);
static ngx_int_t ngx_http_gpugate_tunnel_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_gpugate_tunnel_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_gpugate_tunnel_init_process(ngx_cycle_t *cycle);
static void ngx_http_gpugate_tunnel_exit_process(ngx_cycle_t *cycle);
static char *ngx_http_gpugate_tunnel_status(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_gpugate_tunnel_count(ngx_conf_t *cf, ngx_str_t *value,
    ngx_str_t *val, ngx_uint_t *n);


static ngx_command_t  ngx_http_gpugate_tunnel_commands[] = {

    { ngx_string("gpugate_tunnel_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_tunnel_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_tunnel_accept"),
      NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_gpugate_tunnel_accept,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_tunnel_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_gpugate_tunnel_status,
      0,
      0,
      NULL },

    { ngx_string("gpugate_region"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_gpugate_tunnel_region_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_region_order"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_tunnel_region_order,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_tunnel"),
      NGX_HTTP_UPS_CONF|NGX_CONF_ANY,
      ngx_http_gpugate_tunnel,
      0,
      0,
      NULL },

    { ngx_string("gpugate_prefix_affinity"),
      NGX_HTTP_UPS_CONF|NGX_CONF_ANY,
      ngx_http_gpugate_tunnel_affinity,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gpugate_tunnel_module_ctx = {
    ngx_http_gpugate_tunnel_add_variables, /* preconfiguration */
    ngx_http_gpugate_tunnel_init,          /* postconfiguration */

    ngx_http_gpugate_tunnel_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gpugate_tunnel_create_loc_conf, /* create location configuration */
    ngx_http_gpugate_tunnel_merge_loc_conf /* merge location configuration */
};


ngx_module_t  ngx_http_gpugate_tunnel_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_tunnel_module_ctx,   /* module context */
    ngx_http_gpugate_tunnel_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_gpugate_tunnel_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_gpugate_tunnel_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_gpugate_tunnel_zone_name =
    ngx_string("gpugate_tunnel");


static void *
ngx_http_gpugate_tunnel_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_tunnel_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tmcf->zone = NULL;
     *     tmcf->accept = 0;
     */

    tmcf->zone_size = NGX_CONF_UNSET;
    tmcf->verifiers = 128;
    tmcf->recheck = 30000;

    if (ngx_array_init(&tmcf->upstreams, cf->pool, 2,
                       sizeof(ngx_http_gpugate_tunnel_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return tmcf;
}


static void *
ngx_http_gpugate_tunnel_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_tunnel_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_tunnel_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->enable = NGX_CONF_UNSET;
    conf->ping = NGX_CONF_UNSET_MSEC;
    conf->ping_timeout = NGX_CONF_UNSET_MSEC;
    conf->step_timeout = NGX_CONF_UNSET_MSEC;
    conf->rate = NGX_CONF_UNSET_UINT;
    conf->burst = NGX_CONF_UNSET_UINT;
    conf->region = NGX_CONF_UNSET_PTR;
    conf->region_order = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_gpugate_tunnel_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_gpugate_tunnel_loc_conf_t *prev = parent;
    ngx_http_gpugate_tunnel_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_msec_value(conf->ping, prev->ping, 5000);
    ngx_conf_merge_msec_value(conf->ping_timeout, prev->ping_timeout, 3000);
    ngx_conf_merge_msec_value(conf->step_timeout, prev->step_timeout, 10000);
    ngx_conf_merge_uint_value(conf->rate, prev->rate, 20);
    ngx_conf_merge_uint_value(conf->burst, prev->burst, 200);
    ngx_conf_merge_ptr_value(conf->region, prev->region, NULL);
    ngx_conf_merge_ptr_value(conf->region_order, prev->region_order, NULL);

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_tunnel_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_tunnel_main_conf_t *tmcf = conf;

    char        *rv;
    ssize_t      size;
    ngx_int_t    n;
    ngx_str_t   *value, val;
    ngx_uint_t   i;

    if (tmcf->zone_size != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_http_gpugate_conf_param(&value[i], "verifiers", &val)) {
            n = ngx_atoi(val.data, val.len);

            if (n == NGX_ERROR || n > 65536) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\", expected 0..65536",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            tmcf->verifiers = n;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "recheck", &val)) {
            rv = ngx_http_gpugate_conf_msec(cf, &value[i], &val, 1,
                                            &tmcf->recheck);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid gpugate_tunnel_zone size \"%V\", "
                           "at least %uz needed", &value[1],
                           8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    tmcf->zone_size = size;

    if (tmcf->zone) {
        tmcf->zone->shm.size = size;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_tunnel_accept(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_gpugate_tunnel_loc_conf_t *tlcf = conf;

    char                                 *rv;
    ngx_str_t                            *value, val;
    ngx_uint_t                            i;
    ngx_http_core_loc_conf_t             *clcf;
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    if (tlcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    tlcf->enable = 1;
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_http_gpugate_conf_param(&value[i], "ping", &val)) {
            rv = ngx_http_gpugate_conf_msec(cf, &value[i], &val, 1,
                                            &tlcf->ping);

        } else if (ngx_http_gpugate_conf_param(&value[i], "ping_timeout",
                                               &val))
        {
            rv = ngx_http_gpugate_conf_msec(cf, &value[i], &val, 1,
                                            &tlcf->ping_timeout);

        } else if (ngx_http_gpugate_conf_param(&value[i], "step_timeout",
                                               &val))
        {
            rv = ngx_http_gpugate_conf_msec(cf, &value[i], &val, 1,
                                            &tlcf->step_timeout);

        } else if (ngx_http_gpugate_conf_param(&value[i], "rate", &val)) {
            rv = ngx_http_gpugate_tunnel_count(cf, &value[i], &val,
                                               &tlcf->rate);

        } else if (ngx_http_gpugate_conf_param(&value[i], "burst", &val)) {
            rv = ngx_http_gpugate_tunnel_count(cf, &value[i], &val,
                                               &tlcf->burst);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    tmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_tunnel_module);
    tmcf->accept = 1;

    if (ngx_http_gpugate_tunnel_add_zone(cf, tmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_gpugate_tunnel_handler;

    return NGX_CONF_OK;
}


/* the agents as JSON, answered from the zone by any worker */

static char *
ngx_http_gpugate_tunnel_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t             *clcf;
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_tunnel_module);

    if (ngx_http_gpugate_tunnel_add_zone(cf, tmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_gpugate_tunnel_status_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_tunnel(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                                 *rv;
    ngx_int_t                             n;
    ngx_str_t                            *value, val;
    ngx_uint_t                            i;
    ngx_http_upstream_server_t           *us;
    ngx_http_upstream_srv_conf_t         *uscf;
    ngx_http_gpugate_tunnel_srv_conf_t   *tscf, **tscfp;
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "load balancing method redefined");
    }

    tscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_tunnel_srv_conf_t));
    if (tscf == NULL) {
        return NGX_CONF_ERROR;
    }

    tscf->upstream = uscf;
    tscf->queue = 256;
    tscf->queue_timeout = 10000;
    tscf->aging = 1000;
    tscf->ttft_step = 100;
    tscf->error_weight = 4;
    tscf->failures = 3;
    tscf->cooldown = 10000;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        /* the score's, the cooldown's and the priorities' */

        n = ngx_http_gpugate_tunnel_score_param(cf, &value[i], tscf);

        if (n == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (n == NGX_OK) {
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "queue", &val)) {
            n = ngx_atoi(val.data, val.len);

            if (n == NGX_ERROR || n > 65536) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid queue length \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            tscf->queue = n;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "queue_timeout", &val)) {
            rv = ngx_http_gpugate_conf_msec(cf, &value[i], &val, 1,
                                            &tscf->queue_timeout);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    /*
     * The upstream block refuses to end without a "server"; the parked
     * agent connections are this block's peers, so one placeholder entry
     * with no addresses satisfies the check and is never used.
     */

    if (uscf->servers == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"gpugate_tunnel\" needs an upstream block");
        return NGX_CONF_ERROR;
    }

    if (uscf->servers->nelts) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"gpugate_tunnel\" upstream \"%V\" cannot have "
                           "\"server\" entries: its peers are the agents",
                           &uscf->host);
        return NGX_CONF_ERROR;
    }

    us = ngx_array_push(uscf->servers);
    if (us == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(us, sizeof(ngx_http_upstream_server_t));
    ngx_str_set(&us->name, "gpugate-tunnel");
    us->weight = 1;

    uscf->peer.init_upstream = ngx_http_gpugate_tunnel_init_upstream;
    uscf->flags = NGX_HTTP_UPSTREAM_CREATE;

    tmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_tunnel_module);

    tscfp = ngx_array_push(&tmcf->upstreams);
    if (tscfp == NULL) {
        return NGX_CONF_ERROR;
    }

    *tscfp = tscf;

    if (ngx_http_gpugate_tunnel_add_zone(cf, tmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The zone is added by whichever directive comes first; its size may be
 * given later by "gpugate_tunnel_zone" and otherwise defaults in
 * postconfiguration.
 */

static ngx_int_t
ngx_http_gpugate_tunnel_add_zone(ngx_conf_t *cf,
    ngx_http_gpugate_tunnel_main_conf_t *tmcf)
{
    if (tmcf->zone) {
        return NGX_OK;
    }

    tmcf->zone = ngx_shared_memory_add(cf, &ngx_http_gpugate_tunnel_zone_name,
                                       0, &ngx_http_gpugate_tunnel_module);
    if (tmcf->zone == NULL) {
        return NGX_ERROR;
    }

    tmcf->zone->init = ngx_http_gpugate_tunnel_init_zone;
    tmcf->zone->data = tmcf;

    if (tmcf->zone_size != NGX_CONF_UNSET) {
        tmcf->zone->shm.size = tmcf->zone_size;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_tunnel_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_gpugate_tunnel_shm_t  *oshm = data;

    size_t                                size;
    ngx_uint_t                            nver;
    ngx_slab_pool_t                      *shpool;
    ngx_http_gpugate_tunnel_shm_t        *shm;
    ngx_http_gpugate_tunnel_rate_t       *rates;
    ngx_http_gpugate_tunnel_verifier_t   *ver;
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    tmcf = shm_zone->data;

    if (oshm) {

        /*
         * A reload: agents, counts and the fake-salt key carry over; the
         * new generation tells agents which workers are draining.
         */

        shm_zone->data = oshm;
        (void) ngx_atomic_fetch_add(&oshm->generation, 1);

        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    /*
     * The handshake rate table and the verifier cache first; the cache
     * takes at most a quarter of the zone, the agent slots the rest.
     */

    rates = ngx_slab_calloc(shpool, NGX_HTTP_GPUGATE_TUNNEL_RATES
                                    * sizeof(ngx_http_gpugate_tunnel_rate_t));
    if (rates == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "gpugate_tunnel_zone is too small");
        return NGX_ERROR;
    }

    nver = ngx_min(tmcf->verifiers,
                   shm_zone->shm.size / 4
                   / sizeof(ngx_http_gpugate_tunnel_verifier_t));

    if (nver < tmcf->verifiers) {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "gpugate_tunnel_zone keeps %ui verifiers, not %ui: "
                      "the zone is too small", nver, tmcf->verifiers);
    }

    ver = NULL;

    if (nver) {
        ver = ngx_slab_calloc(shpool,
                          nver * sizeof(ngx_http_gpugate_tunnel_verifier_t));
        if (ver == NULL) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "gpugate_tunnel_zone is too small");
            return NGX_ERROR;
        }
    }

    /* every free page but one: the slab's own bookkeeping grows with
       the zone, so a fixed reserve would not do */

    if (shpool->pfree < 2) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "gpugate_tunnel_zone is too small");
        return NGX_ERROR;
    }

    size = (shpool->pfree - 1) * ngx_pagesize;

    shm = ngx_slab_calloc(shpool, size);
    if (shm == NULL) {
        return NGX_ERROR;
    }

    shm->nagents = (size - offsetof(ngx_http_gpugate_tunnel_shm_t, agents))
                   / sizeof(ngx_http_gpugate_tunnel_agent_t);

    if (shm->nagents == 0) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "gpugate_tunnel_zone is too small for one agent");
        return NGX_ERROR;
    }

    shm->generation = 1;
    shm->rates = rates;
    shm->verifiers = ver;
    shm->nverifiers = nver;

    if (RAND_bytes(shm->secret, sizeof(shm->secret)) != 1) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "gpugate tunnel: RAND_bytes() failed");
        return NGX_ERROR;
    }

    shpool->data = shm;
    shm_zone->data = shm;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_tunnel_init(ngx_conf_t *cf)
{
    ngx_int_t                             rc;
    ngx_http_handler_pt                  *h;
    ngx_http_core_main_conf_t            *cmcf;
    ngx_http_gpugate_pg_stmt_t            stmts[2];
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_tunnel_module);

    /* the auth module carries "agent <name>" messages to us */
    ngx_http_gpugate_auth_on_agent(ngx_http_gpugate_tunnel_invalidate);
    ngx_http_gpugate_auth_on_drain(ngx_http_gpugate_tunnel_drain_message);

    if (tmcf->zone == NULL) {
        if (tmcf->zone_size != NGX_CONF_UNSET) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "\"gpugate_tunnel_zone\" is set but nothing "
                               "uses the tunnel");
        }

        return NGX_OK;
    }

    if (tmcf->zone->shm.size == 0) {
        tmcf->zone->shm.size = 1024 * 1024;
    }

    if (tmcf->accept) {
        stmts[0] = ngx_http_gpugate_tunnel_stmt;
        stmts[1] = ngx_http_gpugate_tunnel_recheck_stmt;

        rc = ngx_http_gpugate_auth_pg_share(cf, stmts, 2);

        if (rc == NGX_DECLINED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"gpugate_tunnel_accept\" reads agent "
                               "verifiers from PostgreSQL: "
                               "\"gpugate_auth_postgres\" is required");
            return NGX_ERROR;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (tmcf->upstreams.nelts) {

        /*
         * Runs after the router's body handler (handlers registered
         * earlier run later), so the model and pool are known.
         */

        cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

        h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = ngx_http_gpugate_tunnel_wait_handler;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_tunnel_init_process(ngx_cycle_t *cycle)
{
    ngx_http_conf_ctx_t                  *ctx;
    ngx_http_gpugate_tunnel_main_conf_t  *tmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ctx = (ngx_http_conf_ctx_t *) cycle->conf_ctx[ngx_http_module.index];

    if (ctx == NULL) {
        return NGX_OK;
    }

    tmcf = ctx->main_conf[ngx_http_gpugate_tunnel_module.ctx_index];

    if (tmcf->zone == NULL) {
        return NGX_OK;
    }

    if (ngx_http_gpugate_tunnel_init_worker(cycle, tmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_gpugate_tunnel_queue_init();

    return ngx_http_gpugate_tunnel_handshake_init(cycle);
}


static void
ngx_http_gpugate_tunnel_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_tunnel_handshake_exit();
    ngx_http_gpugate_tunnel_exit_worker(cycle);
}


/* "rate=N", "burst=N": 0..1000000 */

static char *
ngx_http_gpugate_tunnel_count(ngx_conf_t *cf, ngx_str_t *value,
    ngx_str_t *val, ngx_uint_t *n)
{
    ngx_int_t  v;

    v = ngx_atoi(val->data, val->len);

    if (v == NGX_ERROR || v > 1000000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\", expected 0..1000000", value);
        return NGX_CONF_ERROR;
    }

    *n = v;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_gpugate_tunnel_handler(ngx_http_request_t *r)
{
    ngx_table_elt_t        *h;
    gpugate_tunnel_auth_t   auth;

    if (r != r->main) {
        return NGX_HTTP_NOT_FOUND;
    }

    if (r->method != NGX_HTTP_GET) {
        return ngx_http_gpugate_tunnel_hs_refuse(r, NGX_HTTP_NOT_ALLOWED,
                   "method_not_allowed",
                   "The tunnel handshake uses GET.");
    }

    if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
        return ngx_http_gpugate_tunnel_hs_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake",
                   "A tunnel handshake request has no body.");
    }

    if (!ngx_http_gpugate_tunnel_hs_ready()) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = r->headers_in.authorization;

    if (h == NULL) {
        return ngx_http_gpugate_tunnel_hs_refuse(r, NGX_HTTP_UNAUTHORIZED,
                   "missing_credentials",
                   "Agents authenticate with SCRAM-SHA-256.");
    }

    if (gpugate_tunnel_parse_auth((char *) h->value.data, h->value.len, 1,
                                  &auth)
        != 0
        || auth.data == NULL)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate tunnel: malformed Authorization header");

        return ngx_http_gpugate_tunnel_hs_refuse(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_handshake",
                   "Malformed SCRAM-SHA-256 Authorization header.");
    }

    if (auth.sid == NULL) {
        return ngx_http_gpugate_tunnel_step1(r, &auth);
    }

    return ngx_http_gpugate_tunnel_step2(r, &auth);
}
