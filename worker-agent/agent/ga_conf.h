
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-agent configuration: a "key = value" file and command-line
 * flags (flags win), checked in one place so that --check and a real start
 * refuse exactly the same things.  docs/agent.md lists the keys.
 */


#ifndef _GA_CONF_H_INCLUDED_
#define _GA_CONF_H_INCLUDED_


#include <stddef.h>

#include "ga_load.h"
#include "gpugate_tunnel_proto.h"


#define GA_MAX_GATEWAYS   8
#define GA_MAX_RUNTIMES   8
#define GA_ERR_SIZE       512

#define GA_EXIT_OK        0
#define GA_EXIT_FAILURE   1
#define GA_EXIT_CONFIG    2


typedef struct {
    int          tls;          /* https: 1, http: 0 */
    char         host[256];    /* as written in the URL */
    char         port[8];      /* decimal */
    char         path[256];    /* tunnel location, "/gpugate/tunnel" */
    int          nodes;        /* "gateway_nodes": every address the
                                  name resolves to is a gateway node of
                                  its own (ga_dns.c) */
} ga_url_t;


/* one local runtime: a "[runtime NAME]" section, or the top-level keys */
typedef struct {
    char         name[33];                   /* section name, "default" for
                                                the top-level one */
    ga_url_t     url;                        /* "runtime": where it listens */
    int          url_set;                    /* "runtime" was given */
    ga_runtime_e type;                       /* its dialect: metrics,
                                                models and health paths */
    char         models[1024];               /* advertised, "" discover */
    int          models_set;                 /* "models" was given */
    char         endpoints[GPUGATE_TUNNEL_ENDPOINTS_MAX + 1];
                                             /* X-Gpugate-Endpoints, ""
                                                every endpoint (no header
                                                sent) */
    int          endpoints_set;              /* "endpoints" was given;
                                                else the dialect's set */
    int          capacity;                   /* concurrent requests */
    int          keepalive;                  /* idle runtime connections
                                                kept, 0: none, -1: as
                                                many as capacity */
    int          keepalive_timeout;          /* seconds one is kept */
    char         command[2048];              /* supervised: the shell
                                                command that starts it;
                                                "" when run by others */
    int          start_timeout;              /* seconds a started runtime
                                                may take to listen */
} ga_rtconf_t;


typedef struct {
    ga_url_t     gateways[GA_MAX_GATEWAYS];  /* where to dial */
    int          ngateways;                  /* how many */
    char         name[65];                   /* agent name (SCRAM user) */
    char         token_file[1024];           /* token source, "" for env */
    char         ca_file[1024];              /* private CA, "" for the
                                                system store */
    char         region[GPUGATE_TUNNEL_REGION_MAX + 1];
                                             /* X-Gpugate-Region: where
                                                the gateway's balancer
                                                places it; "": none */
    char         server_name[256];           /* TLS name to verify, "":
                                                the URL's host */
    ga_rtconf_t  runtimes[GA_MAX_RUNTIMES];  /* local inference servers */
    int          nruntimes;                  /* how many, at least 1 */
    int          section;                    /* while parsing: the
                                                "[runtime]" section being
                                                read, -1 at the top level */
    int          sections;                   /* sections were given */
    int          top_runtime;                /* a runtime key was set at
                                                the top level */
    int          spare;                      /* idle per nginx worker */
    int          max_connections;            /* per gateway and runtime */
    int          drain_timeout;              /* seconds */
    int          idle_timeout;               /* seconds */
    int          load_interval;              /* seconds between reads of
                                                the runtime's load */
    int          telemetry_interval;         /* seconds between GPU and
                                                host readings */
    int          log_level;                  /* 0 error .. 3 debug */
    char         otlp_endpoint[512];         /* OTLP/HTTP collector for
                                                the agent's spans, "":
                                                none (ga_trace.c) */
} ga_conf_t;


void ga_conf_defaults(ga_conf_t *cf);

/*
 * Applies one "key", "value" pair.  0, or -1 with a message in err that
 * names the key.
 */
int ga_conf_set(ga_conf_t *cf, const char *key, const char *value,
    char *err, size_t size);

/*
 * Reads a file; errors name "file:line".  "[runtime NAME]" starts a
 * section of runtime keys.  0 or -1.
 */
int ga_conf_file(ga_conf_t *cf, const char *path, char *err, size_t size);

/*
 * Parses argv ("--key value", "--key=value"; "--config FILE" first, then
 * the rest over it).  Sets *check and *version for those flags.  0 or -1.
 */
int ga_conf_args(ga_conf_t *cf, int argc, char **argv, int *check,
    int *version, char *err, size_t size);

/* Whole-configuration checks after everything is applied. 0 or -1. */
int ga_conf_validate(const ga_conf_t *cf, char *err, size_t size);

/*
 * The endpoints a runtime of "type" serves when "endpoints" is not given
 * (X-Gpugate-Endpoints names), "" for every endpoint.
 */
const char *ga_conf_endpoints_default(ga_runtime_e type);

/* "https://host:port/path" into u; 0 or -1 */
int ga_url_parse(ga_url_t *u, const char *s, int allow_path);


#endif /* _GA_CONF_H_INCLUDED_ */
