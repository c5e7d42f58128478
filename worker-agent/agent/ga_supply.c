
/*
 * Copyright (C) gpugate authors
 *
 * The tunnel supply policy of gpugate-agent: every nginx worker of every
 * gateway is kept supplied with idle tunnels for every runtime, dialing a
 * few at a time, with a jittered backoff after failed handshakes and
 * after tunnels the gateway drops at once.
 */


#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>

#include "ga_agent.h"


#define GA_DIAL_PARALLEL   8
#define GA_BACKOFF_BASE    100000ULL      /* us */
#define GA_BACKOFF_CAP     30000000ULL    /* us */


static void ga_backoff(ga_gateway_t *gw, int attempt);
static void ga_backoff_done(gg_timer_t *t);


void
ga_supply_init(ga_gateway_t *gw)
{
    gw->backoff.handler = ga_backoff_done;
    gw->backoff.data = gw;
}


/*
 * Dials while some current nginx worker has fewer than "spare" idle
 * connections, or while not every worker has been seen yet.
 */

void
ga_supply(ga_gateway_t *gw)
{
    int           need, known, i, want;
    ga_worker_t  *w;

    ga_supply_log(gw, 0);

    /* a gateway_nodes address that left DNS: its node is not dialed */

    if (ga_agent.draining || gw->addr->retired || gg_timer_armed(&gw->backoff)
        || !gw->rt->known || gw->rt->down || !gw->rt->models_known)
    {
        return;
    }

    need = 0;
    known = 0;

    for (i = 0; i < GA_MAX_WORKERS; i++) {
        w = &gw->workers[i];

        if (w->pid == 0 || w->generation != gw->generation) {
            continue;
        }

        known++;

        if (w->idle < ga_agent.conf.spare) {
            need += ga_agent.conf.spare - w->idle;
        }
    }

    if (gw->nworkers == 0 || (unsigned) known < gw->nworkers) {
        need += ga_agent.conf.spare;
    }

    want = need < GA_DIAL_PARALLEL ? need : GA_DIAL_PARALLEL;

    while (gw->dialing < want
           && gw->nconns < ga_agent.conf.max_connections)
    {
        if (ga_conn_dial(gw) != 0) {
            ga_handshake_failed(gw);
            return;
        }
    }
}


/* a gateway_nodes node's address, for the log */

static const char *
ga_supply_addr(ga_gateway_t *gw, char *buf, size_t size)
{
    if (gw->addr->len == 0
        || getnameinfo((struct sockaddr *) &gw->addr->sa, gw->addr->len, buf,
                       size, NULL, 0, NI_NUMERICHOST) != 0)
    {
        snprintf(buf, size, "?");
    }

    return buf;
}


/*
 * One line per gateway node and runtime: its tunnels (idle, busy) and the
 * part of the capacity it is offered.  Logged when the node gains its
 * first tunnel or loses its last (the other nodes' parts move then), and
 * for every node on SIGHUP (force).
 */

void
ga_supply_log(ga_gateway_t *gw, int force)
{
    int          up, idle, busy, total, g, live;
    char         addr[NI_MAXHOST];
    ga_conn_t   *c;

    up = ga_gateway_up(gw);

    if (!force && up == gw->reported_up) {
        return;
    }

    gw->reported_up = up;
    idle = 0;
    busy = 0;
    total = 0;

    for (c = gw->conns; c; c = c->next) {
        total++;
        idle += (c->state == GA_IDLE);
        busy += (c->state == GA_RELAY);
    }

    live = 0;

    for (g = 0; g < ga_agent.nnodes; g++) {
        live += ga_gateway_up(&gw->rt->links[g]);
    }

    ga_log(GA_INFO, "gateway %s:%s%s%s%s, runtime \"%s\": %s, %d tunnel(s) "
           "(%d idle, %d busy), capacity %d of %d (%d of %d gateway(s) up)",
           gw->url->host, gw->url->port, gw->url->nodes ? " [" : "",
           gw->url->nodes ? ga_supply_addr(gw, addr, sizeof(addr)) : "",
           gw->url->nodes ? "]" : "", gw->rt->conf->name,
           up ? "up" : "down", total, idle, busy, ga_gateway_share(gw),
           gw->rt->conf->capacity, live, ga_agent.nnodes);
}


void
ga_supply_runtime(ga_runtime_t *rt)
{
    int  i;

    for (i = 0; i < ga_agent.nnodes; i++) {
        ga_supply(&rt->links[i]);
    }
}


void
ga_handshake_failed(ga_gateway_t *gw)
{
    if (gg_timer_armed(&gw->backoff)) {
        return;
    }

    gw->failures++;
    ga_backoff(gw, gw->failures);
}


/*
 * The gateway closed a tunnel that had served nothing right after its
 * 101.  The handshake itself succeeded (which resets "failures"), so a
 * separate count, reset by the first request served, keeps such a
 * gateway from being redialed in a tight loop.
 */

void
ga_tunnel_dropped(ga_gateway_t *gw)
{
    if (gg_timer_armed(&gw->backoff)) {
        return;
    }

    gw->flaps++;

    ga_log(GA_WARN, "gateway %s:%s closed a new tunnel at once (%d in a "
           "row)", gw->url->host, gw->url->port, gw->flaps);

    ga_backoff(gw, gw->flaps);
}


static void
ga_backoff(ga_gateway_t *gw, int attempt)
{
    uint64_t  cap, delay;

    /* full jitter: spread the reconnects of many agents */

    cap = GA_BACKOFF_BASE << (attempt > 20 ? 20 : attempt);
    cap = cap > GA_BACKOFF_CAP ? GA_BACKOFF_CAP : cap;
    delay = (uint64_t) random() % (cap + 1);

    ga_log(GA_DEBUG, "gateway %s:%s: next dial in %llu ms", gw->url->host,
           gw->url->port, (unsigned long long) delay / 1000);

    (void) gg_timer_add(&ga_agent.loop, &gw->backoff, delay);
}


void
ga_handshake_done(ga_gateway_t *gw)
{
    if (gw->failures) {
        ga_log(GA_INFO, "gateway %s:%s: connected", gw->url->host,
               gw->url->port);
    }

    gw->failures = 0;

    ga_supply(gw);
}


static void
ga_backoff_done(gg_timer_t *t)
{
    ga_supply(t->data);
}
