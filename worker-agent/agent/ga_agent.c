
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-agent's shared state and its log: the bottom of the agent, on
 * which every other file stands.  Lower files tell higher ones what
 * happened through ga_agent.on (set by main()), never by calling them.
 * What both the tunnels (handshake, ping answers) and the supply policy
 * read of a gateway link, its share of the runtime's capacity and its
 * load header, is computed here from that state, so that neither side
 * calls the other for it.
 */


#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ga_agent.h"


ga_agent_t  ga_agent;


static void ga_resolve(const ga_url_t *url, ga_addr_t *a);


/* the handler of a closed object until the loop frees it */

void
ga_dead_io(gg_io_t *io, uint32_t revents)
{
    (void) io;
    (void) revents;
}


void
ga_log(int level, const char *fmt, ...)
{
    va_list       args;
    char          msg[1024];
    static const char  *names[] = { "error", "warn", "info", "debug" };

    if (level > ga_agent.conf.log_level) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    /* one write per line: journald and pipes keep lines whole */
    dprintf(STDERR_FILENO, "gpugate-agent[%d]: %s: %s\n", (int) getpid(),
            names[level], msg);
}


/*
 * Resolves every gateway and runtime name at start, before the loop runs
 * (on SIGHUP ga_dns.c does it in a thread), so that no dial, probe or
 * runtime connection ever waits for DNS.  A name that does not resolve
 * keeps its last address if it had one; dials and probes to one that
 * never resolved fail with the reason until the next SIGHUP.  The nodes
 * of "gateway_nodes" names were resolved by ga_dns_expand().
 */

void
ga_resolve_all(void)
{
    int  i;

    for (i = 0; i < ga_agent.nnodes; i++) {
        if (!ga_agent.node_url[i]->nodes) {
            ga_resolve(ga_agent.node_url[i], &ga_agent.gateway_addr[i]);
        }
    }

    for (i = 0; i < ga_agent.conf.nruntimes; i++) {
        ga_resolve(&ga_agent.runtimes[i].conf->url,
                   &ga_agent.runtimes[i].addr);
    }
}


static void
ga_resolve(const ga_url_t *url, ga_addr_t *a)
{
    char       host[NI_MAXHOST];
    ga_addr_t  r;

    if (ga_resolve_addr(url, &r, 1) == 0) {
        snprintf(a->err, sizeof(a->err), "%s", r.err);
        a->gone = r.gone;

        ga_log(GA_WARN, "%s:%s: %s%s", url->host, url->port, a->err,
               a->len ? ": the last address is kept" : "");
        return;
    }

    memcpy(&a->sa, &r.sa, r.len);
    a->len = r.len;
    a->gone = 0;

    if (getnameinfo((struct sockaddr *) &a->sa, a->len, host, sizeof(host),
                    NULL, 0, NI_NUMERICHOST) != 0)
    {
        host[0] = '\0';
    }

    ga_log(GA_DEBUG, "%s:%s resolved to %s", url->host, url->port, host);
}


/*
 * Up to n distinct addresses of the URL's host, in the resolver's order,
 * into a[0..]; returns how many.  0: a[0].err and .gone say why.  Blocks
 * on DNS: called before the loop runs or from ga_dns.c's thread (it
 * touches nothing shared, and does not log).
 */

int
ga_resolve_addr(const ga_url_t *url, ga_addr_t *a, int n)
{
    int               rc, k, j;
    struct addrinfo   hints, *res, *ai;

    memset(a, 0, n * sizeof(ga_addr_t));
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(url->host, url->port, &hints, &res);

    if (rc != 0) {
        snprintf(a[0].err, sizeof(a[0].err), "%s", gai_strerror(rc));
        a[0].gone = (rc != EAI_MEMORY && rc != EAI_SYSTEM);
        return 0;
    }

    k = 0;

    for (ai = res; ai && k < n; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(a[k].sa)) {
            continue;
        }

        for (j = 0; j < k; j++) {
            if (a[j].len == ai->ai_addrlen
                && memcmp(&a[j].sa, ai->ai_addr, ai->ai_addrlen) == 0)
            {
                break;
            }
        }

        if (j < k) {
            continue;
        }

        memcpy(&a[k].sa, ai->ai_addr, ai->ai_addrlen);
        a[k].len = ai->ai_addrlen;
        k++;
    }

    freeaddrinfo(res);

    if (k == 0) {
        snprintf(a[0].err, sizeof(a[0].err), "no usable address");
        a[0].gone = 1;
    }

    return k;
}


/*
 * "X-Gpugate-Load: ...\r\n" into buf, for one gateway: the runtime's
 * queue when fresh figures exist, the free memory of the emptiest GPU
 * when there is one, and always the capacity this gateway may use now
 * (ga_gateway_share()), so that a change of share reaches the gateway at
 * its next ping.
 */

const char *
ga_gateway_header(ga_gateway_t *gw, char *buf, size_t size)
{
    int            n;
    size_t         len;
    ga_runtime_t  *rt;

    rt = gw->rt;

    n = snprintf(buf, size, "X-Gpugate-Load: capacity=%d",
                 ga_gateway_share(gw));

    if (n < 0 || (size_t) n >= size) {
        buf[0] = '\0';
        return buf;
    }

    len = n;

    if (rt->load_at != 0 && rt->load.has_waiting
        && gg_time_us() - rt->load_at
           <= 3ULL * ga_agent.conf.load_interval * 1000000ULL)
    {
        n = snprintf(buf + len, size - len, ", queue=%llu",
                     (unsigned long long) rt->load.waiting);
        len += (n > 0) ? (size_t) n : 0;
    }

    /* the runtime's cache (where its dialect exports it): nginx passes
       over a prefix holder whose KV cache is about to evict */

    if (rt->load_at != 0 && rt->load.has_kv && len < size
        && gg_time_us() - rt->load_at
           <= 3ULL * ga_agent.conf.load_interval * 1000000ULL)
    {
        n = snprintf(buf + len, size - len, ", kv_pct=%d",
                     (int) (rt->load.kv * 100 + 0.5));
        len += (n > 0) ? (size_t) n : 0;
    }

    if (rt->hit_pct && len < size) {
        n = snprintf(buf + len, size - len, ", hit_pct=%d",
                     rt->hit_pct - 1);
        len += (n > 0) ? (size_t) n : 0;
    }

    if (ga_agent.gpu_free_mb && len < size) {
        n = snprintf(buf + len, size - len, ", gpu_free_mb=%llu",
                     (unsigned long long) ga_agent.gpu_free_mb);
        len += (n > 0) ? (size_t) n : 0;
    }

    if (len + 3 > size) {
        buf[0] = '\0';
        return buf;
    }

    memcpy(buf + len, "\r\n", 3);

    return buf;
}


/* requests the runtime is serving for this gateway */

int
ga_gateway_inflight(ga_gateway_t *gw)
{
    return gw->inflight;
}


/*
 * Whether the gateway holds a tunnel of this runtime past its 101: O(1),
 * as it is asked at every ping answer and handshake.
 */

int
ga_gateway_up(ga_gateway_t *gw)
{
    return gw->nconns - gw->dialing > 0;
}


/*
 * The part of the runtime's capacity offered to one gateway.  Every
 * gateway node counts in-flight requests only of its own, so each of the
 * gateways that hold tunnels (and the one asking) gets an equal part (the
 * remainder to the first in the configuration), never more than what the
 * others leave unused: the sum stays within the capacity also while the
 * parts move (a node came back while the other still holds more than its
 * new part).  A node alone gets it all.  0 when the others use it all, or
 * when there are more nodes than requests the runtime takes at once.
 */

int
ga_gateway_share(ga_gateway_t *gw)
{
    int            g, live, rank, cap, fair, left;
    ga_gateway_t  *l;
    ga_runtime_t  *rt;

    rt = gw->rt;
    cap = rt->conf->capacity;
    live = 0;
    rank = 0;

    for (g = 0; g < ga_agent.nnodes; g++) {
        l = &rt->links[g];

        if (l != gw && !ga_gateway_up(l)) {
            continue;
        }

        if (l == gw) {
            rank = live;
        }

        live++;
    }

    fair = cap / live + (rank < cap % live);
    left = cap - (rt->inflight - ga_gateway_inflight(gw));

    if (left < 0) {
        left = 0;
    }

    return fair < left ? fair : left;
}
