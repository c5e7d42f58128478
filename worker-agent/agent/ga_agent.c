
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-agent's shared state and its log: the bottom of the agent, on
 * which every other file stands.  Lower files tell higher ones what
 * happened through ga_agent.on (set by main()), never by calling them.
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
