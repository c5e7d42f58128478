
/*
 * Copyright (C) gpugate authors
 *
 * Gateway nodes behind DNS.  A "gateway_nodes" line names one host whose
 * every address is a gateway node: each becomes a gateway of its own
 * (its tunnels, its part of the capacity), as if it had a "gateway" line,
 * and the TLS name checked stays the host's.  At start the names are
 * resolved before the loop runs; on SIGHUP every name (gateways, nodes,
 * runtimes) is resolved in a thread of its own, so that the loop never
 * waits for DNS, and the answers are applied in the loop: a node whose
 * address left the answer has its idle tunnels closed and is no longer
 * dialed (its requests in flight finish), a new address becomes a new
 * node (up to GA_MAX_GATEWAYS in all), one that comes back is dialed
 * again.
 */


#define _GNU_SOURCE                 /* pipe2() */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ga_agent.h"


typedef enum {
    GA_DNS_NODE = 0,      /* the address of node "index" ("gateway") */
    GA_DNS_RUNTIME,       /* the address of runtime "index" */
    GA_DNS_NODES          /* every address of conf.gateways["index"] */
} ga_dns_kind_e;


/* one name to resolve, and its answer */
typedef struct {
    ga_dns_kind_e        kind;       /* what the answer is for */
    int                  index;      /* node, runtime or line index */
    ga_url_t             url;        /* a copy: the thread reads nothing
                                        the loop may change */
    int                  max;        /* addresses wanted */
    int                  n;          /* addresses found */
    ga_addr_t            addr[GA_MAX_GATEWAYS]; /* them, or addr[0].err */
} ga_dns_name_t;


/* one SIGHUP's resolution, handed to the thread and back through a pipe */
typedef struct {
    int                  nnames;     /* used entries of "names" */
    ga_dns_name_t        names[GA_MAX_GATEWAYS + GA_MAX_RUNTIMES];
                                     /* gateways, nodes names, runtimes */
} ga_dns_job_t;


static void *ga_dns_thread(void *arg);
static void ga_dns_done(gg_io_t *io, uint32_t revents);
static void ga_dns_one(ga_addr_t *to, ga_dns_name_t *nm);
static void ga_dns_nodes(ga_url_t *url, ga_addr_t *a, int n);
static int ga_dns_add(ga_url_t *url, ga_addr_t *a);
static void ga_dns_close_idle(int g, const char *why);
static const char *ga_dns_text(const ga_addr_t *a, char *buf, size_t size);


static gg_io_t  ga_dns_io = { -1, 0, NULL, NULL };  /* the pipe's read end */
static int      ga_dns_wfd = -1;     /* its write end, for the thread */
static int      ga_dns_busy;         /* a thread is resolving */
static int      ga_dns_again;        /* SIGHUP came meanwhile: once more */


/*
 * At start, before the loop: one node per "gateway" line and per address
 * of each "gateway_nodes" name (a name without an address yet is one node
 * that fails to dial until a SIGHUP finds addresses).  0 or -1.
 */

int
ga_dns_expand(void)
{
    int         i, k, n, room;
    char        text[NI_MAXHOST];
    ga_url_t   *url;
    ga_addr_t   a[GA_MAX_GATEWAYS];

    ga_agent.nnodes = 0;

    for (i = 0; i < ga_agent.conf.ngateways; i++) {
        url = &ga_agent.conf.gateways[i];

        if (!url->nodes) {
            ga_agent.node_url[ga_agent.nnodes++] = url;
            continue;
        }

        /* leave one node for each line still to come */
        room = GA_MAX_GATEWAYS - ga_agent.nnodes
               - (ga_agent.conf.ngateways - i - 1);

        n = ga_resolve_addr(url, a, room);

        if (n == 0) {
            ga_log(GA_WARN, "gateway_nodes %s:%s: %s (resolved again on "
                   "SIGHUP)", url->host, url->port, a[0].err);
            a[0].len = 0;
            n = 1;
        }

        for (k = 0; k < n; k++) {
            ga_agent.node_url[ga_agent.nnodes] = url;
            ga_agent.gateway_addr[ga_agent.nnodes] = a[k];
            ga_agent.nnodes++;

            if (a[k].len) {
                ga_log(GA_INFO, "gateway_nodes %s:%s: node %s",
                       url->host, url->port,
                       ga_dns_text(&a[k], text, sizeof(text)));
            }
        }
    }

    return ga_agent.nnodes ? 0 : -1;
}


/*
 * SIGHUP: every name is resolved again in a thread; ga_dns_done() applies
 * the answers in the loop.  A SIGHUP during a resolution asks for another
 * one after it.
 */

void
ga_dns_reload(void)
{
    int              g, i, r, fds[2];
    pthread_t        tid;
    pthread_attr_t   attr;
    ga_dns_job_t    *job;
    ga_dns_name_t   *nm;

    if (ga_dns_busy) {
        ga_dns_again = 1;
        return;
    }

    if (ga_dns_io.fd == -1) {
        if (pipe2(fds, O_CLOEXEC) != 0) {
            ga_log(GA_ERROR, "SIGHUP: pipe: %s; names are not resolved "
                   "again", strerror(errno));
            return;
        }

        ga_dns_io.fd = fds[0];
        ga_dns_io.handler = ga_dns_done;
        ga_dns_wfd = fds[1];

        if (gg_io_set(&ga_agent.loop, &ga_dns_io, EPOLLIN) != 0) {
            ga_log(GA_ERROR, "SIGHUP: epoll: %s", strerror(errno));
            return;
        }
    }

    job = calloc(1, sizeof(ga_dns_job_t));
    if (job == NULL) {
        ga_log(GA_ERROR, "SIGHUP: out of memory; names are not resolved "
               "again");
        return;
    }

    for (g = 0; g < ga_agent.nnodes; g++) {
        if (ga_agent.node_url[g]->nodes) {
            continue;
        }

        nm = &job->names[job->nnames++];
        nm->kind = GA_DNS_NODE;
        nm->index = g;
        nm->url = *ga_agent.node_url[g];
        nm->max = 1;
    }

    for (i = 0; i < ga_agent.conf.ngateways; i++) {
        if (!ga_agent.conf.gateways[i].nodes) {
            continue;
        }

        nm = &job->names[job->nnames++];
        nm->kind = GA_DNS_NODES;
        nm->index = i;
        nm->url = ga_agent.conf.gateways[i];
        nm->max = GA_MAX_GATEWAYS;
    }

    for (r = 0; r < ga_agent.conf.nruntimes; r++) {
        nm = &job->names[job->nnames++];
        nm->kind = GA_DNS_RUNTIME;
        nm->index = r;
        nm->url = ga_agent.runtimes[r].conf->url;
        nm->max = 1;
    }

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

    if (pthread_create(&tid, &attr, ga_dns_thread, job) != 0) {
        pthread_attr_destroy(&attr);
        free(job);
        ga_log(GA_ERROR, "SIGHUP: no resolver thread; names are not "
               "resolved again");
        return;
    }

    pthread_attr_destroy(&attr);

    ga_dns_busy = 1;

    ga_log(GA_DEBUG, "SIGHUP: resolving %d name(s) off the loop",
           job->nnames);
}


/* the thread: getaddrinfo() for each name, then the job back to the loop */

static void *
ga_dns_thread(void *arg)
{
    int            i;
    ssize_t        n;
    ga_dns_job_t  *job;

    job = arg;

    for (i = 0; i < job->nnames; i++) {
        job->names[i].n = ga_resolve_addr(&job->names[i].url,
                                          job->names[i].addr,
                                          job->names[i].max);
    }

    /* a pointer is far below PIPE_BUF: written whole */

    do {
        n = write(ga_dns_wfd, &job, sizeof(job));
    } while (n == -1 && errno == EINTR);

    return NULL;
}


static void
ga_dns_done(gg_io_t *io, uint32_t revents)
{
    int             i;
    ssize_t         n;
    ga_dns_job_t   *job;
    ga_dns_name_t  *nm;

    (void) revents;

    n = read(io->fd, &job, sizeof(job));

    if (n != (ssize_t) sizeof(job)) {
        return;
    }

    ga_dns_busy = 0;

    for (i = 0; i < job->nnames; i++) {
        nm = &job->names[i];

        switch (nm->kind) {

        case GA_DNS_NODE:
            ga_dns_one(&ga_agent.gateway_addr[nm->index], nm);
            break;

        case GA_DNS_RUNTIME:
            ga_dns_one(&ga_agent.runtimes[nm->index].addr, nm);
            break;

        case GA_DNS_NODES:
            if (nm->n == 0) {
                ga_log(GA_WARN, "gateway_nodes %s:%s: %s: its nodes are "
                       "kept", nm->url.host, nm->url.port, nm->addr[0].err);
                break;
            }

            ga_dns_nodes(&ga_agent.conf.gateways[nm->index], nm->addr,
                         nm->n);
            break;
        }
    }

    free(job);

    for (i = 0; i < ga_agent.conf.nruntimes; i++) {
        ga_supply_runtime(&ga_agent.runtimes[i]);
    }

    if (ga_dns_again && !ga_agent.draining) {
        ga_dns_again = 0;
        ga_dns_reload();
    }
}


/* one name, one address: as at start, the last one is kept on failure */

static void
ga_dns_one(ga_addr_t *to, ga_dns_name_t *nm)
{
    char  text[NI_MAXHOST];

    if (nm->n == 0) {
        snprintf(to->err, sizeof(to->err), "%s", nm->addr[0].err);
        to->gone = nm->addr[0].gone;

        ga_log(GA_WARN, "%s:%s: %s%s", nm->url.host, nm->url.port, to->err,
               to->len ? ": the last address is kept" : "");
        return;
    }

    memcpy(&to->sa, &nm->addr[0].sa, nm->addr[0].len);
    to->len = nm->addr[0].len;
    to->gone = 0;

    ga_log(GA_DEBUG, "%s:%s resolved to %s", nm->url.host, nm->url.port,
           ga_dns_text(to, text, sizeof(text)));
}


/*
 * The new answer for a "gateway_nodes" name: nodes whose address is still
 * in it stay, a node whose address left takes a new address if there is
 * one (else it retires), and new addresses left over become new nodes.
 */

static void
ga_dns_nodes(ga_url_t *url, ga_addr_t *a, int n)
{
    int         g, k, used[GA_MAX_GATEWAYS], stale[GA_MAX_GATEWAYS], ns;
    char        text[NI_MAXHOST], old[NI_MAXHOST];
    ga_addr_t  *ga;

    memset(used, 0, sizeof(used));
    ns = 0;

    for (g = 0; g < ga_agent.nnodes; g++) {
        if (ga_agent.node_url[g] != url) {
            continue;
        }

        ga = &ga_agent.gateway_addr[g];

        for (k = 0; k < n; k++) {
            if (!used[k] && ga->len == a[k].len
                && memcmp(&ga->sa, &a[k].sa, a[k].len) == 0)
            {
                break;
            }
        }

        if (k == n) {
            stale[ns++] = g;
            continue;
        }

        used[k] = 1;

        if (ga->retired) {
            ga->retired = 0;
            ga_log(GA_INFO, "gateway_nodes %s:%s: node %s is back",
                   url->host, url->port, ga_dns_text(ga, text,
                                                     sizeof(text)));
        }
    }

    for (g = 0; g < ns; g++) {
        ga = &ga_agent.gateway_addr[stale[g]];

        for (k = 0; k < n && used[k]; k++) { /* void */ }

        (void) ga_dns_text(ga, old, sizeof(old));

        if (k < n) {
            used[k] = 1;
            ga_dns_close_idle(stale[g], "its node left the DNS answer");
            *ga = a[k];

            ga_log(GA_INFO, "gateway_nodes %s:%s: node %s left, %s takes "
                   "its place", url->host, url->port, old,
                   ga_dns_text(ga, text, sizeof(text)));
            continue;
        }

        if (!ga->retired && ga->len) {
            ga->retired = 1;
            ga_dns_close_idle(stale[g], "its node left the DNS answer");

            ga_log(GA_INFO, "gateway_nodes %s:%s: node %s left the DNS "
                   "answer: not dialed any more", url->host, url->port, old);
        }
    }

    for (k = 0; k < n; k++) {
        if (!used[k] && ga_dns_add(url, &a[k]) != 0) {
            ga_log(GA_WARN, "gateway_nodes %s:%s: node %s not added: at "
                   "most %d gateway nodes", url->host, url->port,
                   ga_dns_text(&a[k], text, sizeof(text)), GA_MAX_GATEWAYS);
        }
    }
}


/* a new node: a link to it for every runtime */

static int
ga_dns_add(ga_url_t *url, ga_addr_t *a)
{
    int            g, r;
    char           text[NI_MAXHOST];
    SSL_CTX       *ctx;
    ga_gateway_t  *gw;

    if (ga_agent.nnodes == GA_MAX_GATEWAYS) {
        return -1;
    }

    ctx = NULL;

    if (url->tls) {
        ctx = ga_tls_ctx(&ga_agent.conf);

        if (ctx == NULL) {
            ga_log(GA_ERROR, "gateway_nodes %s:%s: TLS context failed",
                   url->host, url->port);
            return 0;
        }
    }

    g = ga_agent.nnodes;

    ga_agent.node_url[g] = url;
    ga_agent.node_ctx[g] = ctx;
    ga_agent.gateway_addr[g] = *a;

    for (r = 0; r < ga_agent.conf.nruntimes; r++) {
        gw = &ga_agent.runtimes[r].links[g];
        memset(gw, 0, sizeof(ga_gateway_t));
        gw->url = url;
        gw->addr = &ga_agent.gateway_addr[g];
        gw->rt = &ga_agent.runtimes[r];
        gw->ssl_ctx = ctx;
        ga_supply_init(gw);
    }

    ga_agent.nnodes++;

    ga_log(GA_INFO, "gateway_nodes %s:%s: new node %s", url->host, url->port,
           ga_dns_text(a, text, sizeof(text)));

    return 0;
}


/* its tunnels that carry nothing, and those not yet up, of every runtime */

static void
ga_dns_close_idle(int g, const char *why)
{
    int         r;
    ga_conn_t  *c, *next;

    for (r = 0; r < ga_agent.conf.nruntimes; r++) {
        for (c = ga_agent.runtimes[r].links[g].conns; c; c = next) {
            next = c->next;

            if (c->state != GA_RELAY && c->state != GA_CLOSING) {
                ga_conn_close(c, why);
            }
        }
    }
}


static const char *
ga_dns_text(const ga_addr_t *a, char *buf, size_t size)
{
    if (a->len == 0
        || getnameinfo((struct sockaddr *) &a->sa, a->len, buf, size, NULL,
                       0, NI_NUMERICHOST) != 0)
    {
        snprintf(buf, size, "(none)");
    }

    return buf;
}
