
/*
 * Copyright (C) gpugate authors
 *
 * Each runtime's health, load and models, read every load_interval
 * seconds in its own dialect (runtime_type): the metrics endpoint
 * (ga_load.c), reported to the gateway as X-Gpugate-Load in the handshake
 * and in ping answers (ga_gateway_header(), ga_agent.c); the model list
 * (ga_models.c) when it is not configured, at start, after the runtime
 * was down, and every GA_PROBE_MODELS_EVERY probes, so that a runtime
 * that loads another model is advertised with it; for a plain
 * OpenAI-compatible runtime, every probe is GET /v1/models.  Just before
 * the model list, a runtime that serves an OpenAPI route list (vLLM,
 * SGLang: ga_openapi.c) is asked for it, unless "endpoints =" is set:
 * the endpoints it names are advertised, or the dialect's set when it has
 * none or it is unreadable.
 *
 * A runtime that cannot be connected to (nothing listens: it died or has
 * not started) is down: the agent then offers the gateway no capacity for
 * it (ga_agent.on.runtime_down()), so requests go to other runtimes and
 * agents instead of getting 502s here, until a probe connects again.  Slow or
 * odd answers are not "down": a runtime busy generating may be slow to
 * serve its metrics.
 *
 * One probe at a time per runtime, non-blocking in the event loop:
 * HTTP/1.0, so the answer ends where the runtime closes; at most
 * GA_PROBE_MAX bytes and GA_PROBE_TIMEOUT.  A failed probe keeps nothing:
 * figures older than three intervals are not reported, so a runtime that
 * stops answering stops steering traffic.  Failures are logged when they
 * start and when they end, not on every probe.
 */


#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ga_agent.h"
#include "ga_models.h"
#include "ga_openapi.h"
#include "gpugate_tunnel_proto.h"


#define GA_PROBE_MAX          (1024 * 1024)
#define GA_PROBE_TIMEOUT      (2 * 1000000ULL)
#define GA_PROBE_MODELS_EVERY 15


static void ga_probe_tick(gg_timer_t *t);
static void ga_probe_io(gg_io_t *io, uint32_t revents);
static void ga_probe_answer(ga_runtime_t *rt);
static void ga_probe_done(ga_runtime_t *rt, const char *error, int down);
static void ga_probe_routes(ga_runtime_t *rt, const char *body, size_t len,
    const char *why);


/* at start, and now rather than later: unless a probe is under way */

void
ga_probe_now(ga_runtime_t *rt)
{
    if (rt->probe.timer.handler == NULL) {
        rt->probe.io.fd = -1;
        rt->probe.timer.handler = ga_probe_tick;
        rt->probe.timer.data = rt;
    }

    if (rt->probe.io.fd != -1 || ga_agent.draining) {
        return;
    }

    (void) gg_timer_add(&ga_agent.loop, &rt->probe.timer, 0);
}


/* the drain: no more probes */

void
ga_probe_stop(ga_runtime_t *rt)
{
    if (rt->probe.io.fd != -1) {
        (void) gg_io_set(&ga_agent.loop, &rt->probe.io, 0);
        close(rt->probe.io.fd);
        rt->probe.io.fd = -1;
    }

    gg_timer_del(&ga_agent.loop, &rt->probe.timer);
    gg_buf_free(&rt->probe.in);
    gg_buf_free(&rt->probe.out);
}


static void
ga_probe_tick(gg_timer_t *t)
{
    int            fd, rc;
    ga_probe_t    *pr;
    ga_rtconf_t   *cf;
    ga_runtime_t  *rt;

    rt = t->data;
    pr = &rt->probe;
    cf = rt->conf;

    if (pr->io.fd != -1) {
        ga_probe_done(rt, "no answer within 2 s", 0);
        return;
    }

    pr->connected = 0;
    pr->models = 0;
    pr->routes = 0;
    pr->path = ga_runtime_metrics_path(cf->type);

    if (pr->path == NULL) {
        /* runtime_type openai, perhaps since a SIGHUP: no load read */
        rt->load_at = 0;
    }

    if (!cf->models_set
        && (pr->path == NULL || !rt->models_known
            || pr->ticks >= GA_PROBE_MODELS_EVERY))
    {
        pr->models = 1;
        pr->path = ga_runtime_models_path(cf->type);
    }

    if (!cf->endpoints_set && ga_openapi_path(cf->type) != NULL
        && !pr->routes_fresh && (pr->models || !pr->routes_known))
    {
        /* the route list first; the model list right after it */
        pr->models = 0;
        pr->routes = 1;
        pr->path = ga_openapi_path(cf->type);

    } else if (pr->models) {
        pr->routes_fresh = 0;

    } else if (pr->path == NULL) {
        pr->path = ga_runtime_health_path(cf->type);
    }

    pr->ticks++;

    if (rt->addr.len == 0) {
        ga_probe_done(rt, rt->addr.err, 1);
        return;
    }

    fd = socket(rt->addr.sa.ss_family,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1
        || (connect(fd, (struct sockaddr *) &rt->addr.sa, rt->addr.len) != 0
            && errno != EINPROGRESS))
    {
        rc = errno;

        if (fd != -1) {
            close(fd);
        }

        ga_probe_done(rt, strerror(rc), 1);
        return;
    }

    pr->io.fd = fd;
    pr->io.events = 0;
    pr->io.handler = ga_probe_io;
    pr->io.data = rt;
    gg_buf_reset(&pr->in);
    gg_buf_reset(&pr->out);

    if (gg_buf_printf(&pr->out, "GET %s HTTP/1.0\r\nHost: %s:%s\r\n"
                      "User-Agent: gpugate-agent/" GA_VERSION "\r\n\r\n",
                      pr->path, cf->url.host, cf->url.port)
        != 0
        || gg_io_set(&ga_agent.loop, &pr->io, EPOLLOUT) != 0)
    {
        ga_probe_done(rt, "out of memory", 0);
        return;
    }

    (void) gg_timer_add(&ga_agent.loop, &pr->timer, GA_PROBE_TIMEOUT);
}


static void
ga_probe_io(gg_io_t *io, uint32_t revents)
{
    int            err;
    ssize_t        n;
    socklen_t      len;
    ga_probe_t    *pr;
    ga_runtime_t  *rt;

    (void) revents;

    rt = io->data;
    pr = &rt->probe;

    if (!pr->connected) {
        len = sizeof(err);

        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0
            || err != 0)
        {
            /* nothing listens: the runtime is down */
            ga_probe_done(rt, strerror(err ? err : errno), 1);
            return;
        }

        pr->connected = 1;
    }

    while (gg_buf_len(&pr->out)) {
        n = send(io->fd, gg_buf_pos(&pr->out), gg_buf_len(&pr->out),
                 MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }

            ga_probe_done(rt, strerror(errno), 0);
            return;
        }

        gg_buf_consume(&pr->out, n);
    }

    (void) gg_io_set(&ga_agent.loop, io, EPOLLIN);

    for ( ;; ) {
        if (gg_buf_len(&pr->in) >= GA_PROBE_MAX
            || gg_buf_reserve(&pr->in, 16384) != 0)
        {
            ga_probe_done(rt, "answer over 1 MiB", 0);
            return;
        }

        n = read(io->fd, gg_buf_last(&pr->in), gg_buf_room(&pr->in));

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }

            ga_probe_done(rt, strerror(errno), 0);
            return;
        }

        if (n == 0) {
            break;
        }

        pr->in.end += n;
    }

    /* the runtime closed: the answer is whole */

    gg_http_head_init(&pr->head, 1, 64 * 1024);

    if (gg_http_parse_head(&pr->head, gg_buf_pos(&pr->in),
                           gg_buf_len(&pr->in)) != GG_HTTP_OK)
    {
        ga_probe_done(rt, "malformed answer", 0);
        return;
    }

    if (pr->routes) {
        ga_probe_routes(rt, gg_buf_pos(&pr->in) + pr->head.head_len,
                        pr->head.status == 200
                        ? gg_buf_len(&pr->in) - pr->head.head_len : 0,
                        "status is not 200");
        ga_probe_done(rt, NULL, 0);
        return;
    }

    if (pr->head.status != 200) {
        ga_probe_done(rt, "status is not 200", 0);
        return;
    }

    ga_probe_answer(rt);
}


/* a 200 answer: the model list, the load, or just "alive" */

static void
ga_probe_answer(ga_runtime_t *rt)
{
    int          n, pct;
    char         models[GPUGATE_TUNNEL_MODELS_MAX + 1], err[GA_ERR_SIZE];
    size_t       len;
    ga_load_t    load;
    ga_probe_t  *pr;
    const char  *body;

    pr = &rt->probe;
    body = gg_buf_pos(&pr->in) + pr->head.head_len;
    len = gg_buf_len(&pr->in) - pr->head.head_len;

    if (pr->models) {
        n = ga_models_parse(rt->conf->type, body, len, models,
                            sizeof(models), err, sizeof(err));

        if (n < 0) {
            ga_probe_done(rt, err, 0);
            return;
        }

        if (err[0] && (strcmp(models, rt->models) != 0
                       || !rt->models_known))
        {
            ga_log(GA_WARN, "runtime \"%s\": %s %s", rt->conf->name,
                   pr->path, err);
        }

        pr->ticks = 0;
        ga_agent.on.runtime_models(rt, models);
        ga_probe_done(rt, NULL, 0);
        return;
    }

    if (ga_runtime_metrics_path(rt->conf->type) == NULL
        || strcmp(pr->path, ga_runtime_metrics_path(rt->conf->type)) != 0)
    {
        /* health only: the runtime answers */
        ga_probe_done(rt, NULL, 0);
        return;
    }

    if (ga_load_parse(rt->conf->type, body, len, &load) != 0) {
        ga_probe_done(rt, "no waiting-requests gauge of this runtime type",
                      0);
        return;
    }

    /* the hit rate between this read and the last; none since: the
       last rate stands */

    pct = ga_load_hit_pct(rt->load_at ? &rt->load : NULL, &load);

    if (pct >= 0) {
        rt->hit_pct = pct + 1;

    } else if (!load.has_counts && !load.has_hit) {
        rt->hit_pct = 0;
    }

    rt->load = load;
    rt->load_at = gg_time_us();
    ga_probe_done(rt, NULL, 0);
}


/*
 * The route list's answer ("len" 0: none, for "why"): the endpoints it
 * names, else the dialect's set.  Logged when the set changes.
 */

static void
ga_probe_routes(ga_runtime_t *rt, const char *body, size_t len,
    const char *why)
{
    char        eps[GPUGATE_TUNNEL_ENDPOINTS_MAX + 1], err[GA_ERR_SIZE];
    ga_probe_t  *pr;

    pr = &rt->probe;
    pr->routes_known = 1;
    pr->routes_fresh = 1;

    if (len == 0 || ga_openapi_parse(body, len, eps, sizeof(eps), err,
                                     sizeof(err))
                    < 0)
    {
        snprintf(eps, sizeof(eps), "%s",
                 ga_conf_endpoints_default(rt->conf->type));

        if (strcmp(eps, rt->conf->endpoints) != 0) {
            ga_log(GA_INFO, "runtime \"%s\": no route list at %s (%s): "
                   "the %s endpoints", rt->conf->name, pr->path,
                   len ? err : why, ga_runtime_name(rt->conf->type));
        }
    }

    ga_log(GA_DEBUG, "runtime \"%s\": route list read: %s",
           rt->conf->name, eps);

    ga_agent.on.runtime_endpoints(rt, eps);
}


static void
ga_probe_done(ga_runtime_t *rt, const char *error, int down)
{
    int          routes;
    uint64_t     next;
    ga_probe_t  *pr;

    pr = &rt->probe;
    routes = pr->routes && !down;
    pr->routes = 0;

    if (routes && error) {
        /* a runtime without a route list is not failing */
        ga_probe_routes(rt, NULL, 0, error);
        error = NULL;
    }

    if (down) {
        /* it may come back another runtime */
        pr->routes_known = 0;
        pr->routes_fresh = 0;
    }

    if (pr->io.fd != -1) {
        (void) gg_io_set(&ga_agent.loop, &pr->io, 0);
        close(pr->io.fd);
        pr->io.fd = -1;
    }

    gg_buf_free(&pr->in);
    gg_buf_free(&pr->out);

    if (error && !pr->failing && !down) {
        ga_log(GA_WARN, "runtime \"%s\" (%s:%s): cannot read its %s (%s "
               "%s): %s", rt->conf->name, rt->conf->url.host,
               rt->conf->url.port, pr->models ? "models" : "load",
               ga_runtime_name(rt->conf->type), pr->path, error);

    } else if (!error && pr->failing) {
        ga_log(GA_INFO, "runtime \"%s\" (%s:%s): answers again",
               rt->conf->name, rt->conf->url.host, rt->conf->url.port);

    } else if (!error && !pr->models && rt->load_at) {
        ga_log(GA_DEBUG, "runtime \"%s\" load: %llu running, %llu waiting",
               rt->conf->name, (unsigned long long) rt->load.running,
               (unsigned long long) rt->load.waiting);
    }

    pr->failing = (error != NULL);

    if (down) {
        ga_agent.on.runtime_down(rt, 1, error);

    } else if (pr->connected) {
        /* it took the connection: whatever it said, it is up */
        ga_agent.on.runtime_down(rt, 0, NULL);
    }

    if (ga_agent.draining) {
        return;
    }

    /* up without a model list: ask for it now, not an interval later */

    next = ga_agent.conf.load_interval * 1000000ULL;

    if ((pr->connected && !rt->models_known && !pr->models) || routes) {
        next = 0;
    }

    (void) gg_timer_add(&ga_agent.loop, &pr->timer, next);
}
