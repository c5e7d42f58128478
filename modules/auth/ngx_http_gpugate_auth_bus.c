
/*
 * Copyright (C) gpugate authors
 *
 * The invalidation messages every worker of every node receives on the
 * Redis channel (the auth module subscribes for all): "key <digest>",
 * "tenant <id>" and "flush" expire cached keys here; "agent <name>" and
 * "drain <name>" are handed to the tunnel through the hooks it sets.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_auth.h"
#include "gpugate_apikey.h"


/* who takes "agent <name>" messages; NULL: nobody */
static ngx_http_gpugate_auth_agent_pt  ngx_http_gpugate_auth_agent_handler;

/* who takes "drain <name>" messages; NULL: nobody */
static ngx_http_gpugate_auth_agent_pt  ngx_http_gpugate_auth_drain_handler;


void
ngx_http_gpugate_auth_on_agent(ngx_http_gpugate_auth_agent_pt handler)
{
    ngx_http_gpugate_auth_agent_handler = handler;
}


void
ngx_http_gpugate_auth_on_drain(ngx_http_gpugate_auth_agent_pt handler)
{
    ngx_http_gpugate_auth_drain_handler = handler;
}


void
ngx_http_gpugate_auth_invalidate(ngx_shm_zone_t *zone, ngx_str_t *msg)
{
    off_t       tenant;
    u_char     *key;
    ngx_str_t   name;
    ngx_uint_t  n;
    u_char      digest[NGX_HTTP_GPUGATE_DIGEST_LEN];

    /*
     * "key <64 hex>" makes one key due for a lookup, "tenant <id>" every
     * key of a tenant (its limits changed), "flush" every key.
     * Every worker of every gateway node receives the message; the first
     * one on a host does the work, the others find nothing left to do.
     * Anyone who can publish on Redis can send these, so they only force
     * lookups: valid keys keep their stale grace (see ..._cache_expire).
     * "agent <name>" likewise only closes the agent's tunnels in this
     * worker, so that it handshakes again and PostgreSQL decides.
     */

    if (msg->len > 6 && msg->len <= 6 + 64
        && ngx_strncmp(msg->data, "agent ", 6) == 0)
    {
        name.data = msg->data + 6;
        name.len = msg->len - 6;

        if (ngx_http_gpugate_auth_agent_handler == NULL) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "gpugate auth: \"%V\" ignored, no tunnel", msg);
            return;
        }

        n = ngx_http_gpugate_auth_agent_handler(&name);

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "gpugate auth: invalidation \"%V\" closed %ui tunnel "
                      "connections", msg, n);
        return;
    }

    if (msg->len > 6 && msg->len <= 6 + 64
        && ngx_strncmp(msg->data, "drain ", 6) == 0)
    {
        name.data = msg->data + 6;
        name.len = msg->len - 6;

        if (ngx_http_gpugate_auth_drain_handler != NULL) {
            (void) ngx_http_gpugate_auth_drain_handler(&name);
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate auth: \"%V\" passed on", msg);
        return;
    }

    key = NULL;
    tenant = 0;

    if (msg->len == 4 + 64 && ngx_strncmp(msg->data, "key ", 4) == 0
        && gpugate_hex_digest(msg->data + 4, 64, digest))
    {
        key = digest;

    } else if (msg->len > 7 && msg->len <= 7 + 19
               && ngx_strncmp(msg->data, "tenant ", 7) == 0
               && (tenant = ngx_atoof(msg->data + 7, msg->len - 7)) > 0)
    {
        /* every key of the tenant */

    } else if (msg->len == 5 && ngx_strncmp(msg->data, "flush", 5) == 0) {
        /* every key: neither a key nor a tenant */

    } else {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "gpugate auth: ignoring invalidation message \"%V\"",
                      msg);
        return;
    }

    if (zone == NULL) {
        /*
         * No gpugate_auth_zone: the PostgreSQL pool and the subscription
         * serve only the admin API, the tunnel or the batch runner, and
         * there is no key cache to expire; yet this node's admin API and
         * the other nodes on the channel publish these messages.
         */

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "gpugate auth: invalidation \"%*s\" ignored, no "
                      "gpugate_auth_zone here",
                      ngx_min(msg->len,
                              (size_t) (msg->data[0] == 'k' ? 16 : 26)),
                      msg->data);
        return;
    }

    n = ngx_http_gpugate_auth_cache_expire(zone, key, (int64_t) tenant);

    if (n) {
        (void) ngx_atomic_fetch_add(
            &ngx_http_gpugate_auth_cache_stats(zone)->invalidated,
            n);
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "gpugate auth: invalidation \"%*s\" expired %ui entries",
                  ngx_min(msg->len, (size_t) (msg->data[0] == 'k' ? 16 : 26)),
                  msg->data, n);
}
