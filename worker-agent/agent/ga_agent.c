
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
 * Resolves every gateway and runtime name: at start and on SIGHUP (an
 * operator's act), so that no dial, probe or runtime connection ever
 * waits for DNS.  A name that does not resolve
 * keeps its last address if it had one; dials and probes to one that
 * never resolved fail with the reason until the next SIGHUP.
 */

void
ga_resolve_all(void)
{
    int  i;

    for (i = 0; i < ga_agent.conf.ngateways; i++) {
        ga_resolve(&ga_agent.conf.gateways[i], &ga_agent.gateway_addr[i]);
    }

    for (i = 0; i < ga_agent.conf.nruntimes; i++) {
        ga_resolve(&ga_agent.runtimes[i].conf->url,
                   &ga_agent.runtimes[i].addr);
    }
}


static void
ga_resolve(const ga_url_t *url, ga_addr_t *a)
{
    int               rc;
    char              host[NI_MAXHOST];
    struct addrinfo   hints, *res;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(url->host, url->port, &hints, &res);

    if (rc != 0) {
        snprintf(a->err, sizeof(a->err), "%s", gai_strerror(rc));
        a->gone = (rc != EAI_MEMORY && rc != EAI_SYSTEM);

        ga_log(GA_WARN, "%s:%s: %s%s", url->host, url->port, a->err,
               a->len ? ": the last address is kept" : "");
        return;
    }

    memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
    a->len = res->ai_addrlen;
    freeaddrinfo(res);

    if (getnameinfo((struct sockaddr *) &a->sa, a->len, host, sizeof(host),
                    NULL, 0, NI_NUMERICHOST) != 0)
    {
        host[0] = '\0';
    }

    ga_log(GA_DEBUG, "%s:%s resolved to %s", url->host, url->port, host);
}
