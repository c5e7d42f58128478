
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-agent: configuration, the secret, model discovery, keeping every
 * nginx worker supplied with idle tunnel connections, reconnect backoff,
 * and the SIGTERM drain.  docs/agent.md is the operator's manual.
 *
 * Exit codes: 0 stopped (drained), 1 runtime failure, 2 usage or
 * configuration error.
 */


#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ga_agent.h"
#include "gpugate_tunnel_proto.h"


#define GA_DIAL_PARALLEL   8
#define GA_BACKOFF_BASE    100000ULL      /* us */
#define GA_BACKOFF_CAP     30000000ULL    /* us */


ga_agent_t  ga_agent;


static void ga_backoff(ga_gateway_t *gw, int attempt);
static int ga_read_token(void);
static void ga_discover_models(void);
static void ga_reload(gg_loop_t *loop);
static void ga_backoff_done(gg_timer_t *t);
static void ga_drain_tick(gg_timer_t *t);
static void ga_usage(void);


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
 * Dials while some current nginx worker has fewer than "spare" idle
 * connections, or while not every worker has been seen yet.
 */

void
ga_supply(ga_gateway_t *gw)
{
    int           need, known, i, want;
    ga_worker_t  *w;

    if (ga_agent.draining || gg_timer_armed(&gw->backoff)
        || !ga_agent.runtime_known || ga_agent.runtime_down)
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


/*
 * The probe found the runtime listening, or not.  Down, the agent closes
 * its idle tunnels and dials no more, so that nginx sends this agent's
 * share to the others instead of to a 502 here; what is in flight ends
 * as it will.  Up again (or first found up), it supplies connections.
 */

void
ga_runtime_down(int down, const char *why)
{
    int            i, first;
    ga_conn_t     *c, *next;
    ga_gateway_t  *gw;

    if (ga_agent.runtime_known && ga_agent.runtime_down == down) {
        return;
    }

    first = !ga_agent.runtime_known;
    ga_agent.runtime_known = 1;
    ga_agent.runtime_down = down;

    if (!down) {
        if (!first) {
            ga_log(GA_WARN, "runtime %s:%s listens again: offering "
                   "capacity", ga_agent.conf.runtime.host,
                   ga_agent.conf.runtime.port);
        }

        for (i = 0; i < ga_agent.conf.ngateways; i++) {
            ga_supply(&ga_agent.gateways[i]);
        }

        return;
    }

    ga_log(GA_WARN, "runtime %s:%s %s (%s): idle tunnels closed, no "
           "capacity offered until it listens again",
           ga_agent.conf.runtime.host, ga_agent.conf.runtime.port,
           first ? "not listening at start" : "stopped listening", why);

    for (i = 0; i < ga_agent.conf.ngateways; i++) {
        gw = &ga_agent.gateways[i];

        for (c = gw->conns; c; c = next) {
            next = c->next;

            if (c->state < GA_IDLE
                || (c->state == GA_IDLE && gg_buf_len(&c->out) == 0))
            {
                ga_conn_close(c, NULL);
            }
        }
    }
}


void
ga_worker_seen(ga_conn_t *c, uint64_t pid, unsigned slot, unsigned workers,
    uint64_t generation)
{
    int            i, free;
    ga_gateway_t  *gw;

    (void) slot;

    gw = c->gw;

    if (generation > gw->generation) {
        if (gw->generation) {
            ga_log(GA_INFO, "gateway %s:%s reloaded (generation %llu)",
                   gw->url->host, gw->url->port,
                   (unsigned long long) generation);
        }

        gw->generation = generation;
        gw->nworkers = workers;

    } else if (generation == gw->generation) {
        gw->nworkers = workers;
    }

    free = -1;

    for (i = 0; i < GA_MAX_WORKERS; i++) {
        if (gw->workers[i].pid == pid) {
            break;
        }

        if (gw->workers[i].pid == 0 && free == -1) {
            free = i;
        }
    }

    if (i == GA_MAX_WORKERS) {
        /* more worker processes than we track: counted in the last */
        i = free == -1 ? GA_MAX_WORKERS - 1 : free;
        gw->workers[i].pid = pid;
        gw->workers[i].generation = generation;
    }

    c->worker = &gw->workers[i];
    c->worker->conns++;
    c->worker->idle++;
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


static void
ga_drain_tick(gg_timer_t *t)
{
    int            i, left;
    ga_conn_t     *c, *next;
    ga_gateway_t  *gw;

    /*
     * Idle tunnels were closed when the drain began; the others close
     * themselves once their answer is sent (not merely read from the
     * runtime), so the drain is over when no connection is left.
     */

    left = 0;

    for (i = 0; i < ga_agent.conf.ngateways; i++) {
        left += ga_agent.gateways[i].nconns;
    }

    if (left == 0 || gg_time_us() >= ga_agent.drain_deadline) {
        if (left) {
            ga_log(GA_WARN, "drain_timeout: %d request(s) cut, %d "
                   "connection(s) closed", ga_agent.inflight, left);
        }

        for (i = 0; i < ga_agent.conf.ngateways; i++) {
            gw = &ga_agent.gateways[i];

            for (c = gw->conns; c; c = next) {
                next = c->next;
                ga_conn_close(c, NULL);
            }
        }

        ga_agent.loop.stop = 1;
        return;
    }

    (void) gg_timer_add(&ga_agent.loop, t, 50000);
}


/* the command line, read again on SIGHUP */
static int     ga_argc;
static char  **ga_argv;


/*
 * SIGHUP: the configuration file and flags are read again and checked as
 * at start.  A bad one changes nothing.  What the running connections
 * depend on (gateways, name, token, TLS, runtime address) needs a restart
 * and is only reported; the rest applies at once, and new connections
 * advertise the new models and capacity.  Nothing in flight is touched.
 */

static void
ga_reload(gg_loop_t *loop)
{
    int         i, check, version;
    char        err[GA_ERR_SIZE];
    ga_conf_t  *old, cf;

    (void) loop;

    if (ga_agent.draining) {
        return;
    }

    old = &ga_agent.conf;
    ga_conf_defaults(&cf);

    if (ga_conf_args(&cf, ga_argc, ga_argv, &check, &version, err,
                     sizeof(err)) != 0
        || ga_conf_validate(&cf, err, sizeof(err)) != 0)
    {
        ga_log(GA_ERROR, "SIGHUP: %s; the running configuration is kept",
               err);
        return;
    }

#define ga_reload_fixed(name, differs)                                        \
    if (differs) {                                                            \
        ga_log(GA_WARN, "SIGHUP: \"" name "\" changed; it applies after a "  \
               "restart");                                                    \
    }

    ga_reload_fixed("gateway", cf.ngateways != old->ngateways
                    || memcmp(cf.gateways, old->gateways,
                              sizeof(cf.gateways)) != 0);
    ga_reload_fixed("name", strcmp(cf.name, old->name) != 0);
    ga_reload_fixed("token_file", strcmp(cf.token_file, old->token_file)
                                  != 0);
    ga_reload_fixed("ca_file", strcmp(cf.ca_file, old->ca_file) != 0);
    ga_reload_fixed("server_name", strcmp(cf.server_name, old->server_name)
                                   != 0);
    ga_reload_fixed("runtime", memcmp(&cf.runtime, &old->runtime,
                                      sizeof(cf.runtime)) != 0);

#undef ga_reload_fixed

    old->capacity = cf.capacity;
    old->spare = cf.spare;
    old->max_connections = cf.max_connections;
    old->drain_timeout = cf.drain_timeout;
    old->idle_timeout = cf.idle_timeout;
    old->runtime_keepalive = cf.runtime_keepalive;
    old->runtime_keepalive_timeout = cf.runtime_keepalive_timeout;
    old->runtime_type = cf.runtime_type;
    old->load_interval = cf.load_interval;
    old->log_level = cf.log_level;

    if (cf.models_set) {
        memcpy(old->models, cf.models, sizeof(cf.models));
        old->models_set = 1;
        snprintf(ga_agent.models, sizeof(ga_agent.models), "%s", cf.models);

    } else if (old->models_set) {
        ga_log(GA_WARN, "SIGHUP: \"models\" removed; discovery applies "
               "after a restart, \"%s\" stays advertised", ga_agent.models);
    }

    ga_probe_now();

    ga_log(GA_INFO, "SIGHUP: configuration reloaded: capacity %d, spare %d, "
           "models \"%s\", runtime_type %s", old->capacity, old->spare,
           ga_agent.models, ga_runtime_name(old->runtime_type));

    for (i = 0; i < old->ngateways; i++) {
        ga_supply(&ga_agent.gateways[i]);
    }
}


int
main(int argc, char **argv)
{
    int            i, check, version;
    char           err[GA_ERR_SIZE];
    ga_conn_t     *c, *next;
    gg_timer_t     drain;
    ga_gateway_t  *gw;
    unsigned char  rnd[16];

    ga_conf_defaults(&ga_agent.conf);

    if (argc > 1 && (strcmp(argv[1], "-h") == 0
                     || strcmp(argv[1], "--help") == 0))
    {
        ga_usage();
        return GA_EXIT_OK;
    }

    if (ga_conf_args(&ga_agent.conf, argc, argv, &check, &version, err,
                     sizeof(err)) != 0)
    {
        dprintf(STDERR_FILENO, "gpugate-agent: %s\n", err);
        return GA_EXIT_CONFIG;
    }

    if (version) {
        printf("gpugate-agent " GA_VERSION "\n");
        return GA_EXIT_OK;
    }

    if (ga_conf_validate(&ga_agent.conf, err, sizeof(err)) != 0) {
        dprintf(STDERR_FILENO, "gpugate-agent: %s\n", err);
        return GA_EXIT_CONFIG;
    }

    if (ga_read_token() != 0) {
        return GA_EXIT_CONFIG;
    }

    for (i = 0; i < ga_agent.conf.ngateways; i++) {
        gw = &ga_agent.gateways[i];
        gw->url = &ga_agent.conf.gateways[i];
        gw->backoff.handler = ga_backoff_done;
        gw->backoff.data = gw;

        if (gw->url->tls) {
            gw->ssl_ctx = ga_tls_ctx(&ga_agent.conf);

            if (gw->ssl_ctx == NULL) {
                return GA_EXIT_CONFIG;
            }
        }
    }

    if (check) {
        printf("gpugate-agent: configuration ok\n");
        return GA_EXIT_OK;
    }

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return GA_EXIT_FAILURE;
    }

    for (i = 0; i < 16; i++) {
        snprintf(ga_agent.instance + 2 * i, 3, "%02x", rnd[i]);
    }

    srandom((unsigned) (rnd[0] | rnd[1] << 8 | rnd[2] << 16) ^ getpid());

    if (ga_agent.conf.models_set) {
        snprintf(ga_agent.models, sizeof(ga_agent.models), "%s",
                 ga_agent.conf.models);
    } else {
        ga_discover_models();
    }

    if (gg_loop_init(&ga_agent.loop) != 0) {
        ga_log(GA_ERROR, "event loop: %s", strerror(errno));
        return GA_EXIT_FAILURE;
    }

    signal(SIGPIPE, SIG_IGN);

    ga_log(GA_INFO, "agent \"%s\" starting: %d gateway(s), runtime %s:%s, "
           "capacity %d, models \"%s\"", ga_agent.conf.name,
           ga_agent.conf.ngateways, ga_agent.conf.runtime.host,
           ga_agent.conf.runtime.port, ga_agent.conf.capacity,
           ga_agent.models);

    ga_argc = argc;
    ga_argv = argv;
    ga_agent.loop.on_hup = ga_reload;

    /* dialing starts once the first probe found the runtime listening */
    ga_probe_now();

    if (gg_loop_run(&ga_agent.loop) != 0) {
        ga_log(GA_ERROR, "event loop failed: %s", strerror(errno));
        return GA_EXIT_FAILURE;
    }

    /* SIGTERM or SIGINT: no new work, idle tunnels closed, answers end */

    ga_log(GA_INFO, "signal %d: draining %d request(s), up to %d s",
           ga_agent.loop.signo, ga_agent.inflight,
           ga_agent.conf.drain_timeout);

    ga_agent.draining = 1;
    ga_relay_pool_close();
    ga_agent.drain_deadline = gg_time_us()
                              + ga_agent.conf.drain_timeout * 1000000ULL;

    for (i = 0; i < ga_agent.conf.ngateways; i++) {
        gw = &ga_agent.gateways[i];
        gg_timer_del(&ga_agent.loop, &gw->backoff);

        for (c = gw->conns; c; c = next) {
            next = c->next;
            ga_conn_drain(c);
        }
    }

    memset(&drain, 0, sizeof(drain));
    drain.handler = ga_drain_tick;
    ga_agent.loop.stop = 0;
    ga_drain_tick(&drain);

    if (!ga_agent.loop.stop && gg_loop_run(&ga_agent.loop) != 0) {
        return GA_EXIT_FAILURE;
    }

    ga_log(GA_INFO, "stopped after %llu request(s)",
           (unsigned long long) ga_agent.served);

    OPENSSL_cleanse(ga_agent.token, ga_agent.token_len);
    OPENSSL_cleanse(&ga_agent.scram_keys, sizeof(ga_agent.scram_keys));
    free(ga_agent.token);

    for (i = 0; i < ga_agent.conf.ngateways; i++) {
        if (ga_agent.gateways[i].ssl_ctx) {
            SSL_CTX_free(ga_agent.gateways[i].ssl_ctx);
        }
    }

    gg_loop_free(&ga_agent.loop);

    return GA_EXIT_OK;
}


static int
ga_read_token(void)
{
    int          fd;
    char         buf[GPUGATE_SCRAM_TOKEN_MAX + 2];
    ssize_t      n;
    size_t       len;
    const char  *env;

    env = getenv("GPUGATE_AGENT_TOKEN");

    if (ga_agent.conf.token_file[0]) {
        fd = open(ga_agent.conf.token_file, O_RDONLY | O_CLOEXEC);

        if (fd == -1) {
            dprintf(STDERR_FILENO, "gpugate-agent: token_file \"%s\": %s\n",
                    ga_agent.conf.token_file, strerror(errno));
            return -1;
        }

        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);

        if (n < 0) {
            dprintf(STDERR_FILENO, "gpugate-agent: token_file: %s\n",
                    strerror(errno));
            return -1;
        }

        buf[n] = '\0';
        env = buf;

        /* the environment copy is not needed: keep it out of children */
        unsetenv("GPUGATE_AGENT_TOKEN");
    }

    len = strcspn(env, "\r\n");

    if (len == 0 || len > GPUGATE_SCRAM_TOKEN_MAX) {
        dprintf(STDERR_FILENO, "gpugate-agent: the token is empty or over "
                "%d bytes\n", GPUGATE_SCRAM_TOKEN_MAX);
        return -1;
    }

    ga_agent.token = malloc(len + 1);
    if (ga_agent.token == NULL) {
        return -1;
    }

    memcpy(ga_agent.token, env, len);
    ga_agent.token[len] = '\0';
    ga_agent.token_len = len;

    OPENSSL_cleanse(buf, sizeof(buf));

    return 0;
}


/*
 * Asks the runtime's /v1/models once at start (blocking, 2 s): the agent
 * has nothing else to do yet.  Without an answer it advertises "any
 * model" and says so.
 */

static void
ga_discover_models(void)
{
    int               fd;
    char              req[512], *body;
    size_t            i, len, cap;
    ssize_t           n;
    json_t           *root, *data, *id;
    json_error_t      jerr;
    struct timeval    tv;
    struct addrinfo   hints, *res;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;

    if (getaddrinfo(ga_agent.conf.runtime.host, ga_agent.conf.runtime.port,
                    &hints, &res) != 0)
    {
        goto failed;
    }

    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    tv.tv_sec = 2;
    tv.tv_usec = 0;

    if (fd == -1
        || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0
        || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0
        || connect(fd, res->ai_addr, res->ai_addrlen) != 0)
    {
        freeaddrinfo(res);
        if (fd != -1) {
            close(fd);
        }
        goto failed;
    }

    freeaddrinfo(res);

    n = snprintf(req, sizeof(req), "GET /v1/models HTTP/1.0\r\nHost: %s\r\n"
                 "\r\n", ga_agent.conf.runtime.host);

    if (write(fd, req, n) != n) {
        close(fd);
        goto failed;
    }

    cap = 1 << 20;
    body = malloc(cap + 1);
    len = 0;

    while (body && len < cap && (n = read(fd, body + len, cap - len)) > 0) {
        len += n;
    }

    close(fd);

    if (body == NULL) {
        goto failed;
    }

    body[len] = '\0';

    root = NULL;

    if (strncmp(body, "HTTP/1.", 7) == 0 && strncmp(body + 9, "200", 3) == 0
        && strstr(body, "\r\n\r\n"))
    {
        root = json_loads(strstr(body, "\r\n\r\n") + 4, 0, &jerr);
    }

    free(body);
    data = root ? json_object_get(root, "data") : NULL;

    if (!json_is_array(data)) {
        json_decref(root);
        goto failed;
    }

    len = 0;

    for (i = 0; i < json_array_size(data); i++) {
        id = json_object_get(json_array_get(data, i), "id");

        if (!json_is_string(id)
            || strchr(json_string_value(id), ' ') != NULL
            || gpugate_tunnel_check_models(json_string_value(id),
                                           json_string_length(id)) != 1
            || json_string_length(id) > GPUGATE_TUNNEL_MODEL_MAX)
        {
            /* the gateway would refuse every handshake that names it */
            ga_log(GA_WARN, "runtime model id %s not advertised (ids are "
                   "printable ASCII without spaces or commas)",
                   json_is_string(id) ? json_string_value(id) : "(none)");
            continue;
        }

        if (len + json_string_length(id) + 3 > sizeof(ga_agent.models)) {
            ga_log(GA_WARN, "runtime model %s not advertised: the list "
                   "is full", json_string_value(id));
            continue;
        }

        len += snprintf(ga_agent.models + len, sizeof(ga_agent.models) - len,
                        "%s%s", len ? ", " : "", json_string_value(id));
    }

    json_decref(root);

    ga_log(GA_INFO, "runtime models: %s", ga_agent.models);

    return;

failed:

    ga_agent.models[0] = '\0';
    ga_log(GA_WARN, "runtime %s:%s: /v1/models unavailable, advertising "
           "any model", ga_agent.conf.runtime.host,
           ga_agent.conf.runtime.port);
}


static void
ga_usage(void)
{
    printf("usage: gpugate-agent [--config FILE] [--KEY VALUE ...] "
           "[--check] [--version]\n"
           "\n"
           "keys (file \"key = value\" or flag \"--key value\"):\n"
           "  gateway URL        https://host[:port][/path], repeatable\n"
           "  name NAME          agent name (gpugate-keys agent-create)\n"
           "  token_file PATH    the agent token (or GPUGATE_AGENT_TOKEN)\n"
           "  ca_file PATH       private CA for the gateway certificate\n"
           "  server_name NAME   TLS name to verify instead of the host\n"
           "  runtime URL        http://host:port of the local runtime\n"
           "  models LIST        advertised models (default: discover)\n"
           "  capacity N         requests served at once (16)\n"
           "  spare N            idle connections per nginx worker (2)\n"
           "  max_connections N  per gateway (256)\n"
           "  drain_timeout S    SIGTERM grace period (30)\n"
           "  idle_timeout S     drop a silent connection (20)\n"
           "  runtime_keepalive N  idle runtime connections kept (capacity)\n"
           "  runtime_keepalive_timeout S  how long one is kept (4)\n"
           "  runtime_type T     openai, vllm, llamacpp, sglang or tgi:\n"
           "                     how its load is read (openai: not read)\n"
           "  load_interval S    seconds between load reads (2)\n"
           "  log_level L        error, warn, info, debug (info)\n"
           "\n"
           "exit codes: 0 stopped, 1 failure, 2 usage or configuration\n");
}
