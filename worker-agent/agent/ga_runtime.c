
/*
 * Copyright (C) gpugate authors
 *
 * The runtime state of gpugate-agent: each runtime's identity at the
 * gateways, whether it listens (up or down, from the probe, the relay or
 * the supervisor) and the model list its tunnels advertise.  A change
 * closes the tunnels that no longer tell the truth and supplies new ones.
 */


#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "ga_agent.h"


void
ga_runtime_init(ga_runtime_t *rt, ga_rtconf_t *conf, SSL_CTX **ctx)
{
    int            g;
    unsigned char  rnd[16];
    ga_gateway_t  *gw;

    rt->conf = conf;
    rt->probe.io.fd = -1;

    if (!conf->endpoints_set) {
        snprintf(conf->endpoints, sizeof(conf->endpoints), "%s",
                 ga_conf_endpoints_default(conf->type));
    }

    ga_log(GA_DEBUG, "runtime \"%s\" (%s): endpoints %s%s", conf->name,
           ga_runtime_name(conf->type),
           conf->endpoints[0] ? conf->endpoints : "* (every one)",
           conf->endpoints_set ? "" : ", its dialect's");

    if (conf->models_set) {
        snprintf(rt->models, sizeof(rt->models), "%s", conf->models);
        rt->models_known = 1;
    }

    for (g = 0; g < ga_agent.nnodes; g++) {
        gw = &rt->links[g];
        gw->url = ga_agent.node_url[g];
        gw->addr = &ga_agent.gateway_addr[g];
        gw->rt = rt;
        gw->ssl_ctx = ctx[g];
        ga_supply_init(gw);
    }

    /* each runtime is an agent instance of its own at the gateway */

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return;
    }

    for (g = 0; g < 16; g++) {
        snprintf(rt->instance + 2 * g, 3, "%02x", rnd[g]);
    }
}


/*
 * Closes the runtime's tunnels that carry no request: all of them, or
 * with "stale_only" those that advertised an older model list (the
 * others close when their answer is done, ga_relay_end()).  A tunnel
 * whose last answer is still being written is left to finish.
 */

void
ga_close_idle(ga_runtime_t *rt, int stale_only)
{
    int         i;
    ga_conn_t  *c, *next;

    for (i = 0; i < ga_agent.nnodes; i++) {
        for (c = rt->links[i].conns; c; c = next) {
            next = c->next;

            /* one not yet at step 2 will advertise the new list */

            if (stale_only && (c->state < GA_STEP2
                               || c->models_gen == rt->models_gen))
            {
                continue;
            }

            if (c->state < GA_IDLE
                || (c->state == GA_IDLE && gg_buf_len(&c->out) == 0))
            {
                ga_conn_close(c, NULL);
            }
        }
    }
}


/*
 * The probe found the runtime listening, or not.  Down, the agent closes
 * the runtime's idle tunnels and dials no more for it, so that nginx
 * sends its share to other runtimes and agents instead of to a 502 here;
 * what is in flight ends as it will.  A discovered model list is read
 * again when it comes back (a restarted runtime may serve other models).
 * Up again (or first found up), it supplies connections.
 */

void
ga_runtime_down(ga_runtime_t *rt, int down, const char *why)
{
    int  first;

    if (rt->known && rt->down == down) {
        return;
    }

    first = !rt->known;
    rt->known = 1;
    rt->down = down;

    if (!down) {
        if (!first) {
            ga_log(GA_WARN, "runtime \"%s\" (%s:%s) listens again: "
                   "offering capacity", rt->conf->name, rt->conf->url.host,
                   rt->conf->url.port);
        }

        if (rt->conf->command[0]) {
            ga_super_ready(rt);
        }

        ga_supply_runtime(rt);
        return;
    }

    ga_log(rt->conf->command[0] && first ? GA_INFO : GA_WARN,
           "runtime \"%s\" (%s:%s) %s (%s): no capacity offered until it "
           "listens again", rt->conf->name, rt->conf->url.host,
           rt->conf->url.port,
           first ? "not listening at start" : "stopped listening", why);

    if (!rt->conf->models_set) {
        rt->models_known = 0;
    }

    ga_close_idle(rt, 0);
}


/*
 * The runtime's model list was read.  A new list is advertised by new
 * tunnels only (the gateway learns models at the handshake), so tunnels
 * of the old list are replaced: idle ones now, busy ones after their
 * answer.
 */

void
ga_runtime_models(ga_runtime_t *rt, const char *models)
{
    int  changed;

    changed = strcmp(rt->models, models) != 0;

    if (changed || !rt->models_known) {
        ga_log(GA_INFO, "runtime \"%s\" serves: %s", rt->conf->name,
               models[0] ? models : "(no models)");
    }

    if (changed) {
        snprintf(rt->models, sizeof(rt->models), "%s", models);
        rt->models_gen++;
        ga_log(GA_DEBUG, "runtime \"%s\": model list %u: replacing the "
               "tunnels of older lists", rt->conf->name, rt->models_gen);
        ga_close_idle(rt, 1);
    }

    rt->models_known = 1;

    ga_supply_runtime(rt);
}


/*
 * The endpoints the runtime's route list names (or its dialect's set
 * when it has none), for a runtime without "endpoints =".  Like a model
 * list, a new set reaches the gateway only in new handshakes: the
 * tunnels of the old one are replaced.
 */

void
ga_runtime_endpoints(ga_runtime_t *rt, const char *endpoints)
{
    if (rt->conf->endpoints_set
        || strcmp(rt->conf->endpoints, endpoints) == 0)
    {
        return;
    }

    ga_log(GA_INFO, "runtime \"%s\" serves the endpoints: %s",
           rt->conf->name, endpoints[0] ? endpoints : "* (every one)");

    snprintf(rt->conf->endpoints, sizeof(rt->conf->endpoints), "%s",
             endpoints);
    rt->models_gen++;

    ga_log(GA_DEBUG, "runtime \"%s\": model list %u: replacing the "
           "tunnels of older endpoint sets", rt->conf->name,
           rt->models_gen);

    ga_close_idle(rt, 1);
}
