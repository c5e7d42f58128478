
/*
 * Copyright (C) gpugate authors
 */


#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ga_conf.h"
#include "gpugate_tunnel_proto.h"


static int ga_conf_int(const char *value, int min, int max, int *out);
static char *ga_conf_trim(char *s);
static int ga_conf_copy(char *dst, size_t size, const char *value);
static int ga_conf_loopback(const char *host);
static int ga_conf_models(ga_rtconf_t *rt, const char *value, char *err,
    size_t size);

typedef struct ga_command_s  ga_command_t;

typedef int (*ga_command_set_pt)(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);

static const ga_command_t *ga_conf_command(const ga_command_t *cmds,
    const char *key);
static int ga_conf_set_endpoints(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_gateway(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_nodes(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_name(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_str(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_region(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_token(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_log_level(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_num(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_runtime(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_type(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_models(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static int ga_conf_set_command(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size);
static void ga_rtconf_defaults(ga_rtconf_t *rt, const char *name);


/*
 * A configuration key, as nginx's ngx_command_t: the same keys are read
 * from the file and from --flags.  "set" checks the value and stores it
 * into the ga_conf_t (agent keys) or ga_rtconf_t (runtime keys).
 */
struct ga_command_s {
    const char          *name;       /* the key */
    ga_command_set_pt    set;        /* checks and stores the value */
    size_t               offset;     /* of the field, for generic setters */
    size_t               size;       /* strings: the field's room */
    int                  min;        /* integers: the smallest allowed */
    int                  max;        /* integers: the largest allowed */
    const char          *too_long;   /* strings: the complaint */
};


#define ga_conf_num(name, type, field, min, max)                              \
    { name, ga_conf_set_num, offsetof(type, field), 0, min, max, NULL }

#define ga_conf_str(name, field, too_long)                                    \
    { name, ga_conf_set_str, offsetof(ga_conf_t, field),                      \
      sizeof(((ga_conf_t *) 0)->field), 0, 0, too_long }

#define ga_conf_fn(name, set)  { name, set, 0, 0, 0, 0, NULL }

#define ga_null_command  { NULL, NULL, 0, 0, 0, 0, NULL }


/* the agent's own keys: before any "[runtime NAME]" section */
static const ga_command_t  ga_conf_commands[] = {
    ga_conf_fn("gateway", ga_conf_set_gateway),
    ga_conf_fn("gateway_nodes", ga_conf_set_nodes),
    ga_conf_fn("name", ga_conf_set_name),
    ga_conf_str("token_file", token_file, "path too long"),
    ga_conf_fn("token", ga_conf_set_token),
    ga_conf_str("ca_file", ca_file, "path too long"),
    ga_conf_str("server_name", server_name, "too long"),
    ga_conf_fn("region", ga_conf_set_region),
    ga_conf_fn("log_level", ga_conf_set_log_level),
    ga_conf_num("spare", ga_conf_t, spare, 1, 100000),
    ga_conf_num("max_connections", ga_conf_t, max_connections, 1, 100000),
    ga_conf_num("drain_timeout", ga_conf_t, drain_timeout, 0, 86400),
    ga_conf_num("idle_timeout", ga_conf_t, idle_timeout, 2, 86400),
    ga_conf_num("load_interval", ga_conf_t, load_interval, 1, 3600),
    ga_conf_num("telemetry_interval", ga_conf_t, telemetry_interval, 1,
                3600),
    ga_conf_str("otlp_endpoint", otlp_endpoint, "too long"),
    ga_null_command
};


/* keys of one runtime: in a "[runtime NAME]" section or at the top level */
static const ga_command_t  ga_conf_runtime_commands[] = {
    ga_conf_fn("runtime", ga_conf_set_runtime),
    ga_conf_fn("runtime_type", ga_conf_set_type),
    ga_conf_fn("models", ga_conf_set_models),
    ga_conf_fn("endpoints", ga_conf_set_endpoints),
    ga_conf_num("capacity", ga_rtconf_t, capacity, 1, 65535),
    ga_conf_num("runtime_keepalive", ga_rtconf_t, keepalive, 0, 65535),
    ga_conf_num("runtime_keepalive_timeout", ga_rtconf_t, keepalive_timeout,
                1, 3600),
    ga_conf_fn("runtime_command", ga_conf_set_command),
    ga_conf_num("runtime_start_timeout", ga_rtconf_t, start_timeout, 1,
                86400),
    ga_null_command
};


void
ga_conf_defaults(ga_conf_t *cf)
{
    memset(cf, 0, sizeof(*cf));

    ga_rtconf_defaults(&cf->runtimes[0], "default");
    cf->nruntimes = 1;
    cf->section = -1;

    cf->spare = 2;
    cf->max_connections = 256;
    cf->drain_timeout = 30;
    cf->idle_timeout = 20;
    cf->load_interval = 2;
    cf->telemetry_interval = 5;
    cf->log_level = 2;
}


static void
ga_rtconf_defaults(ga_rtconf_t *rt, const char *name)
{
    memset(rt, 0, sizeof(*rt));

    snprintf(rt->name, sizeof(rt->name), "%s", name);
    (void) ga_url_parse(&rt->url, "http://127.0.0.1:8000", 0);

    rt->type = GA_RUNTIME_OPENAI;
    rt->capacity = 16;

    /* -1: as many as "capacity", the most ever in use at once */
    rt->keepalive = -1;

    /* below uvicorn's (vLLM, SGLang) 5 s and Go's (Ollama) limits */
    rt->keepalive_timeout = 4;

    /* loading weights onto the GPU takes minutes for big models */
    rt->start_timeout = 600;
}


/*
 * "[runtime NAME]": the keys that follow describe one more runtime.  The
 * first section takes the place of the top-level runtime, so that an
 * agent with sections has exactly the runtimes they name.
 */

int
ga_conf_section(ga_conf_t *cf, const char *name, char *err, size_t size)
{
    int          i;
    const char  *p;

    for (p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9')
              || (p > name && (*p == '.' || *p == '_' || *p == '-'))))
        {
            break;
        }
    }

    if (*p || p == name || p - name > 32) {
        snprintf(err, size, "[runtime %s]: a name is 1-32 of A-Z a-z 0-9 "
                 "and . _ - (not first)", name);
        return -1;
    }

    if (!cf->sections) {
        if (cf->top_runtime) {
            snprintf(err, size, "[runtime %s]: runtime keys were set at "
                     "the top level; with sections, every runtime is a "
                     "section", name);
            return -1;
        }

        cf->sections = 1;
        cf->section = 0;

    } else {
        for (i = 0; i < cf->nruntimes; i++) {
            if (strcmp(cf->runtimes[i].name, name) == 0) {
                snprintf(err, size, "[runtime %s]: a second section of "
                         "that name", name);
                return -1;
            }
        }

        if (cf->nruntimes == GA_MAX_RUNTIMES) {
            snprintf(err, size, "[runtime %s]: at most %d runtimes", name,
                     GA_MAX_RUNTIMES);
            return -1;
        }

        cf->section = cf->nruntimes++;
    }

    ga_rtconf_defaults(&cf->runtimes[cf->section], name);

    return 0;
}


int
ga_url_parse(ga_url_t *u, const char *s, int allow_path)
{
    size_t       n;
    const char  *p, *host, *colon, *slash;

    memset(u, 0, sizeof(*u));

    if (strncmp(s, "https://", 8) == 0) {
        u->tls = 1;
        p = s + 8;

    } else if (strncmp(s, "http://", 7) == 0) {
        p = s + 7;

    } else {
        return -1;
    }

    host = p;
    slash = strchr(p, '/');
    colon = memchr(p, ':', slash ? (size_t) (slash - p) : strlen(p));

    n = (colon ? colon : slash ? slash : p + strlen(p)) - host;

    if (n == 0 || n >= sizeof(u->host)) {
        return -1;
    }

    memcpy(u->host, host, n);

    if (colon) {
        n = (slash ? slash : colon + strlen(colon)) - colon - 1;

        if (n == 0 || n > 5 || strspn(colon + 1, "0123456789") < n
            || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
        {
            return -1;
        }

        memcpy(u->port, colon + 1, n);

    } else {
        strcpy(u->port, u->tls ? "443" : "80");
    }

    if (slash == NULL || strcmp(slash, "/") == 0) {
        strcpy(u->path, allow_path ? "/gpugate/tunnel" : "/");
        return 0;
    }

    if (!allow_path || strlen(slash) >= sizeof(u->path)
        || strpbrk(slash, " \t\r\n?#") != NULL)
    {
        return -1;
    }

    strcpy(u->path, slash);

    return 0;
}


int
ga_conf_set(ga_conf_t *cf, const char *key, const char *value, char *err,
    size_t size)
{
    const ga_command_t  *cmd;

    cmd = ga_conf_command(ga_conf_runtime_commands, key);

    if (cmd) {
        if (cf->section < 0 && cf->sections) {
            snprintf(err, size, "%s: the configuration has [runtime] "
                     "sections; set it in one of them", key);
            return -1;
        }

        if (cf->section < 0) {
            cf->top_runtime = 1;
            return cmd->set(&cf->runtimes[0], cmd, value, err, size);
        }

        return cmd->set(&cf->runtimes[cf->section], cmd, value, err, size);
    }

    if (cf->section >= 0) {
        snprintf(err, size, "%s: not a runtime key; the agent's own keys "
                 "go before the first [runtime] section", key);
        return -1;
    }

    cmd = ga_conf_command(ga_conf_commands, key);

    if (cmd == NULL) {
        snprintf(err, size, "unknown key \"%s\"", key);
        return -1;
    }

    return cmd->set(cf, cmd, value, err, size);
}


static const ga_command_t *
ga_conf_command(const ga_command_t *cmds, const char *key)
{
    for ( /* void */ ; cmds->name; cmds++) {
        if (strcmp(key, cmds->name) == 0) {
            return cmds;
        }
    }

    return NULL;
}


static int
ga_conf_set_gateway(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    ga_conf_t  *cf = conf;

    (void) cmd;

    if (cf->ngateways == GA_MAX_GATEWAYS) {
        snprintf(err, size, "gateway: at most %d gateways", GA_MAX_GATEWAYS);
        return -1;
    }

    if (ga_url_parse(&cf->gateways[cf->ngateways], value, 1) != 0) {
        snprintf(err, size, "gateway: \"%s\" is not an "
                 "https://host[:port][/path] URL", value);
        return -1;
    }

    /* the token proof is safe in clear, but not the traffic */

    if (!cf->gateways[cf->ngateways].tls
        && !ga_conf_loopback(cf->gateways[cf->ngateways].host))
    {
        snprintf(err, size, "gateway: \"%s\": plain http is only for "
                 "loopback tests (127.0.0.0/8, localhost); use https", value);
        return -1;
    }

    cf->ngateways++;

    return 0;
}


/*
 * "gateway_nodes = URL": a gateway line whose host name stands for
 * several nodes (one DNS name with an address per node), each dialed as
 * a gateway of its own; the names are resolved at start and on SIGHUP.
 */

static int
ga_conf_set_nodes(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    ga_conf_t  *cf = conf;

    if (ga_conf_set_gateway(conf, cmd, value, err, size) != 0) {
        return -1;
    }

    cf->gateways[cf->ngateways - 1].nodes = 1;

    return 0;
}


static int
ga_conf_set_name(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    const char  *p;
    ga_conf_t   *cf = conf;

    (void) cmd;

    for (p = value; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9')
              || (p > value && (*p == '.' || *p == '_' || *p == '-'))))
        {
            break;
        }
    }

    if (*p || p == value || p - value > 64) {
        snprintf(err, size, "name: \"%s\" must be 1-64 of A-Z a-z 0-9 "
                 "and . _ - (not first)", value);
        return -1;
    }

    return ga_conf_copy(cf->name, sizeof(cf->name), value);
}


/* a string field: cmd->size is its room, cmd->too_long the complaint */

static int
ga_conf_set_str(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    if (ga_conf_copy((char *) conf + cmd->offset, cmd->size, value) != 0) {
        snprintf(err, size, "%s: %s", cmd->name, cmd->too_long);
        return -1;
    }

    return 0;
}


static int
ga_conf_set_token(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    (void) conf;
    (void) cmd;
    (void) value;

    snprintf(err, size, "token: not accepted here (it would show in the "
             "process list or the config); use token_file or "
             "GPUGATE_AGENT_TOKEN");

    return -1;
}


static int
ga_conf_set_log_level(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size)
{
    int                 i;
    ga_conf_t          *cf = conf;
    static const char  *levels[] = { "error", "warn", "info", "debug" };

    (void) cmd;

    for (i = 0; i < 4; i++) {
        if (strcmp(value, levels[i]) == 0) {
            cf->log_level = i;
            return 0;
        }
    }

    snprintf(err, size, "log_level: \"%s\" is not error, warn, info or "
             "debug", value);

    return -1;
}


/* an int field in cmd->min..cmd->max */

static int
ga_conf_set_num(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    if (ga_conf_int(value, cmd->min, cmd->max,
                    (int *) ((char *) conf + cmd->offset))
        != 0)
    {
        snprintf(err, size, "%s: \"%s\" is not an integer in %d..%d",
                 cmd->name, value, cmd->min, cmd->max);
        return -1;
    }

    return 0;
}


static int
ga_conf_set_runtime(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    ga_rtconf_t  *rt = conf;

    (void) cmd;

    if (ga_url_parse(&rt->url, value, 0) != 0 || rt->url.tls) {
        snprintf(err, size, "runtime: \"%s\" is not an http://host[:port] "
                 "URL", value);
        return -1;
    }

    rt->url_set = 1;

    return 0;
}


static int
ga_conf_set_type(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    ga_rtconf_t  *rt = conf;

    (void) cmd;

    if (ga_runtime_type(value, &rt->type) != 0) {
        snprintf(err, size, "runtime_type: \"%.64s\" is not openai, "
                 "vllm, llamacpp, sglang, tgi or ollama", value);
        return -1;
    }

    return 0;
}


static int
ga_conf_set_models(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    (void) cmd;

    return ga_conf_models(conf, value, err, size);
}


/*
 * "region = eu-west": sent as X-Gpugate-Region; the gateway prefers the
 * agents of a client's region.  The gateway's grammar, checked here so
 * that a typo stops the agent instead of losing the region.
 */

static int
ga_conf_set_region(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    ga_conf_t  *cf = conf;

    (void) cmd;

    if (gpugate_tunnel_check_region(value, strlen(value)) != 0) {
        snprintf(err, size, "region: \"%s\": 1-%d of A-Z a-z 0-9 . _ -",
                 value, GPUGATE_TUNNEL_REGION_MAX);
        return -1;
    }

    snprintf(cf->region, sizeof(cf->region), "%s", value);

    return 0;
}


/*
 * "endpoints = chat, embeddings": names of the router's endpoints (as
 * X-Gpugate-Endpoints and the metrics' "endpoint" label spell them), "*"
 * for every one.  Unlike the gateway, which skips a name it does not know
 * (a newer agent's), the agent refuses one: a typo would take an endpoint
 * off the runtime unseen.
 */

static int
ga_conf_set_endpoints(void *conf, const ga_command_t *cmd,
    const char *value, char *err, size_t size)
{
    ga_rtconf_t  *rt = conf;
    size_t        n;
    uint32_t      mask, one;
    const char   *p, *name;

    (void) cmd;

    p = value;
    while (*p == ' ' || *p == '\t') {
        p++;
    }

    if (strcmp(p, "*") == 0) {
        rt->endpoints[0] = '\0';
        rt->endpoints_set = 1;
        return 0;
    }

    if (gpugate_tunnel_parse_endpoints(value, strlen(value), &mask) != 0) {
        snprintf(err, size, "endpoints: \"%s\": names separated by commas "
                 "(chat, completions, embeddings, ...) or \"*\"", value);
        return -1;
    }

    /* every name must be one the router knows */

    for (p = value; *p; ) {
        while (*p == ' ' || *p == ',' || *p == '\t') {
            p++;
        }

        name = p;

        while (*p && *p != ' ' && *p != ',' && *p != '\t') {
            p++;
        }

        n = (size_t) (p - name);

        if (n && (gpugate_tunnel_parse_endpoints(name, n, &one) != 0
                  || one == GPUGATE_TUNNEL_ENDPOINTS_TOLD))
        {
            snprintf(err, size, "endpoints: unknown endpoint \"%.*s\" "
                     "(docs/agent.md lists them)", (int) n, name);
            return -1;
        }
    }

    gpugate_tunnel_endpoints_print(mask, rt->endpoints,
                                   sizeof(rt->endpoints));
    rt->endpoints_set = 1;

    return 0;
}


const char *
ga_conf_endpoints_default(ga_runtime_e type)
{
    /* what each runtime's own docs list, indexed by ga_runtime_e */

    static const char  *defaults[] = {
        "",
        "chat, completions, embeddings, messages, responses, rerank, score, "
        "transcriptions, translations",
        "chat, completions, embeddings, messages, rerank",
        "chat, completions, embeddings, responses, rerank",
        "chat, completions",
        "chat, completions, embeddings"
    };

    if ((size_t) type >= sizeof(defaults) / sizeof(defaults[0])) {
        return "";
    }

    return defaults[type];
}


static int
ga_conf_set_command(void *conf, const ga_command_t *cmd, const char *value,
    char *err, size_t size)
{
    ga_rtconf_t  *rt = conf;

    (void) cmd;

    if (ga_conf_copy(rt->command, sizeof(rt->command), value) != 0) {
        snprintf(err, size, "runtime_command: over %d bytes",
                 (int) sizeof(rt->command) - 1);
        return -1;
    }

    return 0;
}


int
ga_conf_file(ga_conf_t *cf, const char *path, char *err, size_t size)
{
    FILE   *f;
    char    line[2048], msg[GA_ERR_SIZE], *key, *value, *eq;
    int     n;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, size, "%s: %s", path, strerror(errno));
        return -1;
    }

    n = 0;

    while (fgets(line, sizeof(line), f) != NULL) {
        n++;

        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, size, "%s:%d: line too long", path, n);
            fclose(f);
            return -1;
        }

        key = ga_conf_trim(line);

        if (*key == '\0' || *key == '#') {
            continue;
        }

        if (*key == '[') {
            eq = key + strlen(key) - 1;

            if (*eq != ']' || strncmp(key, "[runtime", 8) != 0
                || (key[8] != ' ' && key[8] != '\t'))
            {
                snprintf(err, size, "%s:%d: expected \"[runtime NAME]\"",
                         path, n);
                fclose(f);
                return -1;
            }

            *eq = '\0';

            if (ga_conf_section(cf, ga_conf_trim(key + 8), msg, sizeof(msg))
                != 0)
            {
                snprintf(err, size, "%s:%d: %s", path, n, msg);
                fclose(f);
                return -1;
            }

            continue;
        }

        eq = strchr(key, '=');

        if (eq == NULL) {
            snprintf(err, size, "%s:%d: expected \"key = value\"", path, n);
            fclose(f);
            return -1;
        }

        *eq = '\0';
        key = ga_conf_trim(key);
        value = ga_conf_trim(eq + 1);

        if (ga_conf_set(cf, key, value, msg, sizeof(msg)) != 0) {
            snprintf(err, size, "%s:%d: %s", path, n, msg);
            fclose(f);
            return -1;
        }
    }

    fclose(f);

    /* what follows (flags, another file) is at the top level again */
    cf->section = -1;

    return 0;
}


int
ga_conf_args(ga_conf_t *cf, int argc, char **argv, int *check, int *version,
    char *err, size_t size)
{
    int          i;
    char         key[64], msg[GA_ERR_SIZE], *p;
    const char  *arg, *value, *eq;

    *check = 0;
    *version = 0;

    /* the file first, so that flags override it whatever their order */

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            if (ga_conf_file(cf, argv[i + 1], err, size) != 0) {
                return -1;
            }

            i++;

        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            if (ga_conf_file(cf, argv[i] + 9, err, size) != 0) {
                return -1;
            }
        }
    }

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (strcmp(arg, "--check") == 0) {
            *check = 1;
            continue;
        }

        if (strcmp(arg, "--version") == 0) {
            *version = 1;
            continue;
        }

        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, size, "unexpected argument \"%s\"", arg);
            return -1;
        }

        arg += 2;
        eq = strchr(arg, '=');

        if ((eq ? (size_t) (eq - arg) : strlen(arg)) >= sizeof(key)) {
            snprintf(err, size, "unknown flag \"%s\"", argv[i]);
            return -1;
        }

        memcpy(key, arg, eq ? (size_t) (eq - arg) : strlen(arg) + 1);

        if (eq) {
            key[eq - arg] = '\0';
            value = eq + 1;

        } else {
            if (i + 1 >= argc) {
                snprintf(err, size, "flag \"%s\" needs a value", argv[i]);
                return -1;
            }

            value = argv[++i];
        }

        for (p = key; *p; p++) {
            if (*p == '-') {
                *p = '_';
            }
        }

        if (strcmp(key, "config") == 0) {
            continue;
        }

        if (ga_conf_set(cf, key, value, msg, sizeof(msg)) != 0) {
            if (strncmp(msg, "unknown key", 11) == 0) {
                snprintf(err, size, "unknown flag \"--%s\"", key);

            } else {
                snprintf(err, size, "--%s", msg);
            }

            return -1;
        }
    }

    return 0;
}


int
ga_conf_validate(const ga_conf_t *cf, char *err, size_t size)
{
    int                 i, j;
    ga_url_t            u;
    const ga_rtconf_t  *rt;

    if (cf->otlp_endpoint[0]
        && (ga_url_parse(&u, cf->otlp_endpoint, 1) != 0 || u.tls))
    {
        snprintf(err, size, "otlp_endpoint: \"%s\" is not an "
                 "http://host[:port][/path] URL (OTLP/HTTP, JSON)",
                 cf->otlp_endpoint);
        return -1;
    }

    if (cf->ngateways == 0) {
        snprintf(err, size, "gateway: at least one is required");
        return -1;
    }

    if (cf->name[0] == '\0') {
        snprintf(err, size, "name: required (the agent's name from "
                 "\"gpugate-keys agent-create\")");
        return -1;
    }

    if (cf->token_file[0] == '\0' && getenv("GPUGATE_AGENT_TOKEN") == NULL) {
        snprintf(err, size, "token_file: required unless "
                 "GPUGATE_AGENT_TOKEN is set");
        return -1;
    }

    for (i = 0; i < cf->nruntimes; i++) {
        rt = &cf->runtimes[i];

        if (cf->sections && !rt->url_set) {
            snprintf(err, size, "[runtime %s]: \"runtime\" (its URL) is "
                     "required", rt->name);
            return -1;
        }

        for (j = 0; j < i; j++) {
            if (strcmp(rt->url.host, cf->runtimes[j].url.host) == 0
                && strcmp(rt->url.port, cf->runtimes[j].url.port) == 0)
            {
                snprintf(err, size, "[runtime %s]: %s:%s is runtime "
                         "\"%s\" already", rt->name, rt->url.host,
                         rt->url.port, cf->runtimes[j].name);
                return -1;
            }
        }
    }

    return 0;
}


static int
ga_conf_int(const char *value, int min, int max, int *out)
{
    long   n;
    char  *end;

    if (*value < '0' || *value > '9') {
        return -1;
    }

    errno = 0;
    n = strtol(value, &end, 10);

    if (errno || *end != '\0' || n < min || n > max) {
        return -1;
    }

    *out = (int) n;

    return 0;
}


static char *
ga_conf_trim(char *s)
{
    char  *e;

    while (*s == ' ' || *s == '\t') {
        s++;
    }

    e = s + strlen(s);

    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'
                     || e[-1] == '\r'))
    {
        *--e = '\0';
    }

    return s;
}


/*
 * "a,b , c" becomes "a, b, c", the form of X-Gpugate-Models, checked with
 * the gateway's own rules now rather than refused at every handshake.
 */

static int
ga_conf_models(ga_rtconf_t *rt, const char *value, char *err, size_t size)
{
    size_t       len, n;
    const char  *p, *id;

    len = 0;
    p = value;

    for ( ;; ) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }

        if (*p == '\0' && len == 0) {
            /* empty: any model */
            break;
        }

        id = p;

        while (*p && *p != ',') {
            p++;
        }

        n = p - id;

        while (n && (id[n - 1] == ' ' || id[n - 1] == '\t')) {
            n--;
        }

        if (n == 0) {
            snprintf(err, size, "models: \"%s\" has an empty model id",
                     value);
            return -1;
        }

        if (len + n + 3 > sizeof(rt->models)) {
            snprintf(err, size, "models: over %d bytes",
                     (int) sizeof(rt->models) - 1);
            return -1;
        }

        if (len) {
            memcpy(rt->models + len, ", ", 2);
            len += 2;
        }

        memcpy(rt->models + len, id, n);
        len += n;

        if (*p == '\0') {
            break;
        }

        p++;
    }

    rt->models[len] = '\0';

    if (len > GPUGATE_TUNNEL_MODELS_MAX
        || gpugate_tunnel_check_models(rt->models, len) < 0)
    {
        snprintf(err, size, "models: \"%s\": ids are 1-%d printable ASCII "
                 "characters without spaces or commas",
                 value, GPUGATE_TUNNEL_MODEL_MAX);
        return -1;
    }

    rt->models_set = 1;

    return 0;
}


static int
ga_conf_loopback(const char *host)
{
    struct in_addr  a;

    if (strcmp(host, "localhost") == 0) {
        return 1;
    }

    return inet_pton(AF_INET, host, &a) == 1
           && (ntohl(a.s_addr) >> 24) == 127;
}


static int
ga_conf_copy(char *dst, size_t size, const char *value)
{
    size_t  n;

    n = strlen(value);

    if (n >= size) {
        return -1;
    }

    memcpy(dst, value, n + 1);

    return 0;
}
