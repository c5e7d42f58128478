
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-agent's main(): the command line, the secret, signals (SIGHUP
 * reload, the SIGTERM drain) and GPU telemetry; it wires the lower files'
 * notifications (ga_agent.on) to the supply policy and the runtime
 * state.  docs/agent.md is the operator's manual.
 *
 * Exit codes: 0 stopped (drained), 1 runtime failure, 2 usage or
 * configuration error.
 */


#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ga_agent.h"
#include "ga_telemetry.h"
#include "gpugate_tunnel_proto.h"


/* NVML and /proc readings (ga_telemetry.c) */
static ga_telemetry_t  ga_telemetry;

/* what a tunnel's bytes mean, above the connection layer */
static const ga_conn_ops_t  ga_main_conn_ops = {
    ga_handshake_start,
    ga_handshake_step1,
    ga_handshake_step2,
    ga_serve,
    ga_serve_skip,
    ga_relay_body,
    ga_relay_body_full,
    ga_relay_update,
    ga_relay_end
};


static int ga_start(int argc, char **argv);
static int ga_drain(void);
static int ga_read_token(void);
static void ga_telemetry_tick(gg_timer_t *t);
static void ga_reload(gg_loop_t *loop);
static void ga_drain_tick(gg_timer_t *t);
static void ga_usage(void);


static void
ga_drain_tick(gg_timer_t *t)
{
    int            r, g, left;
    ga_conn_t     *c, *next;
    ga_gateway_t  *gw;

    /*
     * Idle tunnels were closed when the drain began; the others close
     * themselves once their answer is sent (not merely read from the
     * runtime), so the drain is over when no connection is left.
     */

    left = 0;

    ga_for_each_link(r, g, gw) {
        left += gw->nconns;
    }

    if (left == 0 || gg_time_us() >= ga_agent.drain_deadline) {
        if (left) {
            ga_log(GA_WARN, "drain_timeout: %d request(s) cut, %d "
                   "connection(s) closed", ga_agent.inflight, left);
        }

        ga_for_each_link(r, g, gw) {
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
    int            i, r, g, check, version, same;
    char           err[GA_ERR_SIZE];
    ga_conf_t     *old, cf;
    ga_rtconf_t   *ort, *nrt;
    ga_runtime_t  *rt;
    ga_gateway_t  *gw;

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
        ga_log(GA_WARN, "SIGHUP: \"%s\" changed; it applies after a "       \
               "restart", name);                                              \
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

    same = cf.nruntimes == old->nruntimes;

    for (i = 0; same && i < cf.nruntimes; i++) {
        same = strcmp(cf.runtimes[i].name, old->runtimes[i].name) == 0;
    }

    ga_reload_fixed("[runtime] sections", !same);

    old->spare = cf.spare;
    old->max_connections = cf.max_connections;
    old->drain_timeout = cf.drain_timeout;
    old->idle_timeout = cf.idle_timeout;
    old->load_interval = cf.load_interval;
    old->telemetry_interval = cf.telemetry_interval;
    old->log_level = cf.log_level;

    /* new tunnels say it; the gateway's slot takes the latest */
    memcpy(old->region, cf.region, sizeof(old->region));

    /* names may point elsewhere now: resolved in a thread, not here */
    ga_dns_reload();

    for (i = 0; same && i < cf.nruntimes; i++) {
        ort = &old->runtimes[i];
        nrt = &cf.runtimes[i];
        rt = &ga_agent.runtimes[i];

        ga_reload_fixed("runtime",
                        memcmp(&nrt->url, &ort->url, sizeof(nrt->url)) != 0);
        ga_reload_fixed("runtime_command",
                        strcmp(nrt->command, ort->command) != 0);

        ort->capacity = nrt->capacity;
        ort->keepalive = nrt->keepalive;
        ort->keepalive_timeout = nrt->keepalive_timeout;
        ort->type = nrt->type;
        ort->start_timeout = nrt->start_timeout;

        if (nrt->models_set) {
            memcpy(ort->models, nrt->models, sizeof(ort->models));
            ort->models_set = 1;
            ga_runtime_models(rt, nrt->models);

        } else if (ort->models_set) {
            /* read from the runtime from now on */
            ort->models_set = 0;
            rt->probe.ticks = (unsigned) -1;
        }

        ga_probe_now(rt);

        ga_log(GA_INFO, "SIGHUP: runtime \"%s\": capacity %d, models "
               "\"%s\", runtime_type %s", ort->name, ort->capacity,
               rt->models, ga_runtime_name(ort->type));
    }

#undef ga_reload_fixed

    ga_log(GA_INFO, "SIGHUP: configuration reloaded: spare %d, "
           "max_connections %d", old->spare, old->max_connections);

    /* the operator's look at every node: tunnels and capacity parts */

    ga_for_each_link(r, g, gw) {
        ga_supply_log(gw, 1);
        ga_supply(gw);
    }
}


int
main(int argc, char **argv)
{
    int            r, g, rc;
    gg_timer_t     telemetry;
    ga_runtime_t  *rt;

    rc = ga_start(argc, argv);

    if (rc != -1) {
        return rc;
    }

    if (ga_telemetry_open(&ga_telemetry, NULL) == 0) {
        ga_log(GA_INFO, "NVML: %u GPU(s)", ga_telemetry.snap.ngpus);
    } else {
        ga_log(GA_INFO, "no GPU telemetry: %s", ga_telemetry.reason);
    }

    memset(&telemetry, 0, sizeof(telemetry));
    telemetry.handler = ga_telemetry_tick;
    ga_telemetry_tick(&telemetry);

    for (r = 0; r < ga_agent.conf.nruntimes; r++) {
        rt = &ga_agent.runtimes[r];

        ga_log(GA_INFO, "runtime \"%s\": %s:%s, %s, capacity %d, models "
               "%s%s%s", rt->conf->name, rt->conf->url.host,
               rt->conf->url.port, ga_runtime_name(rt->conf->type),
               rt->conf->capacity,
               rt->conf->models_set ? "\"" : "",
               rt->conf->models_set ? rt->models : "discovered",
               rt->conf->models_set ? "\"" : "");

        if (rt->conf->command[0]) {
            ga_super_start(rt);
        }

        /* dialing starts once a probe found the runtime listening */
        ga_probe_now(rt);
    }

    if (gg_loop_run(&ga_agent.loop) != 0) {
        ga_log(GA_ERROR, "event loop failed: %s", strerror(errno));
        return GA_EXIT_FAILURE;
    }

    gg_timer_del(&ga_agent.loop, &telemetry);

    if (ga_drain() != 0) {
        return GA_EXIT_FAILURE;
    }

    ga_log(GA_INFO, "stopped after %llu request(s)",
           (unsigned long long) ga_agent.served);

    OPENSSL_cleanse(ga_agent.token, ga_agent.token_len);
    OPENSSL_cleanse(&ga_agent.scram_keys, sizeof(ga_agent.scram_keys));
    free(ga_agent.token);

    for (g = 0; g < ga_agent.nnodes; g++) {
        if (ga_agent.node_ctx[g]) {
            ga_tls_ctx_free(ga_agent.node_ctx[g]);
        }
    }

    ga_telemetry_close(&ga_telemetry);
    gg_loop_free(&ga_agent.loop);

    return GA_EXIT_OK;
}


/*
 * The command line, the configuration, the secret, TLS, the runtimes'
 * identities, the loop and its signals.  Returns -1 to go on, else the
 * exit code (--help, --version, --check, or an error).
 */

static int
ga_start(int argc, char **argv)
{
    int            r, g, check, version;
    char           err[GA_ERR_SIZE];
    unsigned char  rnd[4];

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

    /* the gateway lines, and the nodes of gateway_nodes names */

    if (ga_dns_expand() != 0) {
        return GA_EXIT_CONFIG;
    }

    /* one TLS context per gateway node, shared by the runtimes' tunnels */

    for (g = 0; g < ga_agent.nnodes; g++) {
        ga_agent.node_ctx[g] = NULL;

        if (ga_agent.node_url[g]->tls) {
            ga_agent.node_ctx[g] = ga_tls_ctx(&ga_agent.conf);

            if (ga_agent.node_ctx[g] == NULL) {
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

    srandom((unsigned) (rnd[0] | rnd[1] << 8 | rnd[2] << 16) ^ getpid());

    /* what lower files report, handled by the policy above them */

    ga_agent.on.supply = ga_supply;
    ga_agent.on.handshake_done = ga_handshake_done;
    ga_agent.on.handshake_failed = ga_handshake_failed;
    ga_agent.on.tunnel_dropped = ga_tunnel_dropped;
    ga_agent.on.runtime_down = ga_runtime_down;
    ga_agent.on.runtime_models = ga_runtime_models;
    ga_agent.on.runtime_endpoints = ga_runtime_endpoints;

    ga_conn_init(&ga_main_conn_ops);

    for (r = 0; r < ga_agent.conf.nruntimes; r++) {
        ga_runtime_init(&ga_agent.runtimes[r], &ga_agent.conf.runtimes[r],
                        ga_agent.node_ctx);

        if (ga_agent.runtimes[r].instance[0] == '\0') {
            return GA_EXIT_FAILURE;
        }
    }

    ga_resolve_all();

    if (gg_loop_init(&ga_agent.loop) != 0) {
        ga_log(GA_ERROR, "event loop: %s", strerror(errno));
        return GA_EXIT_FAILURE;
    }

    signal(SIGPIPE, SIG_IGN);

    if (ga_super_init() != 0) {
        ga_log(GA_ERROR, "SIGCHLD: %s", strerror(errno));
        return GA_EXIT_FAILURE;
    }

    if (ga_trace_init() != 0) {
        return GA_EXIT_FAILURE;
    }

    ga_log(GA_INFO, "agent \"%s\" " GA_VERSION " starting: %d gateway(s), "
           "%d runtime(s)", ga_agent.conf.name, ga_agent.nnodes,
           ga_agent.conf.nruntimes);

    ga_argc = argc;
    ga_argv = argv;
    ga_agent.loop.on_hup = ga_reload;

    return -1;
}


/*
 * SIGTERM or SIGINT: no new work, idle tunnels closed, answers end; then
 * supervised runtimes are stopped.  Returns 0, or -1 if the loop fails.
 */

static int
ga_drain(void)
{
    int            r, g;
    ga_conn_t     *c, *next;
    gg_timer_t     drain;
    ga_gateway_t  *gw;

    ga_log(GA_INFO, "signal %d: draining %d request(s), up to %d s",
           ga_agent.loop.signo, ga_agent.inflight,
           ga_agent.conf.drain_timeout);

    ga_agent.draining = 1;
    ga_agent.drain_deadline = gg_time_us()
                              + ga_agent.conf.drain_timeout * 1000000ULL;

    for (r = 0; r < ga_agent.conf.nruntimes; r++) {
        ga_rconn_pool_close(&ga_agent.runtimes[r]);
        ga_probe_stop(&ga_agent.runtimes[r]);
    }

    ga_for_each_link(r, g, gw) {
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
        return -1;
    }

    /* the answers are out: supervised runtimes may stop now */

    if (ga_super_running()) {
        ga_agent.loop.stop = 0;
        ga_super_stop_all();

        if (!ga_agent.loop.stop && gg_loop_run(&ga_agent.loop) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * GPU and host figures every telemetry_interval: sent to the gateway in
 * ping answers and handshakes; the GPU with the most free memory also
 * goes into X-Gpugate-Load, where it breaks ties between agents.
 */

static void
ga_telemetry_tick(gg_timer_t *t)
{
    size_t        n;
    static const char  name[] = "X-Gpugate-Telemetry: ";

    (void) ga_telemetry_read(&ga_telemetry);

    /* the value is written in place, between the name and the CRLF */

    n = ga_telemetry_format(&ga_telemetry,
                            ga_agent.telemetry + sizeof(name) - 1,
                            sizeof(ga_agent.telemetry) - sizeof(name) - 2);

    if (n) {
        memcpy(ga_agent.telemetry, name, sizeof(name) - 1);
        memcpy(ga_agent.telemetry + sizeof(name) - 1 + n, "\r\n", 3);
    } else {
        ga_agent.telemetry[0] = '\0';
    }

    ga_agent.gpu_free_mb = ga_telemetry_gpu_free_mb(&ga_telemetry);

    if (!ga_agent.draining) {
        (void) gg_timer_add(&ga_agent.loop, t,
                            ga_agent.conf.telemetry_interval * 1000000ULL);
    }
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


static void
ga_usage(void)
{
    printf("usage: gpugate-agent [--config FILE] [--KEY VALUE ...] "
           "[--check] [--version]\n"
           "\n"
           "keys (file \"key = value\" or flag \"--key value\"):\n"
           "  gateway URL        https://host[:port][/path], repeatable\n"
           "  gateway_nodes URL  every address of the URL's host is a "
           "gateway node\n"
           "                     (resolved at start and on SIGHUP), "
           "repeatable\n"
           "  name NAME          agent name (gpugate-keys agent create)\n"
           "  token_file PATH    the agent token (or GPUGATE_AGENT_TOKEN)\n"
           "  ca_file PATH       private CA for the gateway certificate\n"
           "  server_name NAME   TLS name to verify instead of the host\n"
           "  region NAME        where the gateway places this agent "
           "(none)\n"
           "  spare N            idle connections per nginx worker (2)\n"
           "  max_connections N  per gateway and runtime (256)\n"
           "  drain_timeout S    SIGTERM grace period (30)\n"
           "  idle_timeout S     drop a silent connection (20)\n"
           "  load_interval S    seconds between health/load reads (2)\n"
           "  telemetry_interval S  seconds between GPU readings (5)\n"
           "  log_level L        error, warn, info, debug (info)\n"
           "\n"
           "runtime keys (top level for one runtime, or in one\n"
           "\"[runtime NAME]\" section per runtime in the file):\n"
           "  runtime URL        http://host:port of the runtime\n"
           "  runtime_type T     openai, vllm, llamacpp, sglang, tgi or\n"
           "                     ollama: how models, load and health are\n"
           "                     read (openai: models and health only)\n"
           "  models LIST        advertised models (default: discovered)\n"
           "  capacity N         requests served at once (16)\n"
           "  runtime_keepalive N  idle runtime connections kept (capacity)\n"
           "  runtime_keepalive_timeout S  how long one is kept (4)\n"
           "  runtime_command CMD  start and supervise the runtime\n"
           "  runtime_start_timeout S  time it may take to listen (600)\n"
           "\n"
           "exit codes: 0 stopped, 1 failure, 2 usage or configuration\n");
}
