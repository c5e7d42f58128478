
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-agent configuration: file syntax, every key's checks, flags over
 * the file, and error messages that name the file, line and key.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/tap.h"           /* modules/core/tests/tap.h */
#include "ga_conf.h"


static const char *
write_file(const char *text)
{
    static char  path[64];
    FILE        *f;

    snprintf(path, sizeof(path), "/tmp/ga_conf_test.%d", (int) getpid());
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);

    return path;
}


int
main(void)
{
    int         check, version;
    char        err[GA_ERR_SIZE];
    ga_conf_t   cf;
    const char *path;

    ga_conf_defaults(&cf);
    tap_ok(cf.runtimes[0].capacity == 16 && cf.spare == 2
       && cf.max_connections == 256 && cf.nruntimes == 1
       && strcmp(cf.runtimes[0].name, "default") == 0, "defaults");
    tap_ok(strcmp(cf.runtimes[0].url.host, "127.0.0.1") == 0
       && strcmp(cf.runtimes[0].url.port, "8000") == 0, "default runtime");

    path = write_file("# comment\n"
                      "gateway = https://gw.example:8443\n"
                      "  gateway=http://127.0.0.1:8080/custom/tunnel  \n"
                      "name = gpu-a\n"
                      "token_file = /etc/gpugate/token\n"
                      "runtime = http://127.0.0.1:9000\n"
                      "models = m1, m2\n"
                      "capacity = 8\n"
                      "\n"
                      "log_level = debug\n");
    tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == 0, "good file");
    tap_ok(cf.ngateways == 2, "two gateways");
    tap_ok(cf.gateways[0].tls && strcmp(cf.gateways[0].port, "8443") == 0
       && strcmp(cf.gateways[0].path, "/gpugate/tunnel") == 0,
       "https gateway with the default path");
    tap_ok(!cf.gateways[1].tls
       && strcmp(cf.gateways[1].path, "/custom/tunnel") == 0,
       "http gateway with a path");
    tap_ok(strcmp(cf.name, "gpu-a") == 0 && cf.runtimes[0].capacity == 8
       && cf.log_level == 3 && cf.runtimes[0].models_set
       && strcmp(cf.runtimes[0].models, "m1, m2") == 0, "values");
    tap_ok(ga_conf_validate(&cf, err, sizeof(err)) == 0, "validates");

    ga_conf_defaults(&cf);
    path = write_file("name = a\ncapacity = 0\n");
    tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == -1
       && strstr(err, ":2: capacity: \"0\" is not an integer in 1..65535"),
       "capacity 0 refused with file:line");

    ga_conf_defaults(&cf);
    path = write_file("name = a\nbogus = 1\n");
    tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == -1
       && strstr(err, ":2: unknown key \"bogus\""), "unknown key");

    ga_conf_defaults(&cf);
    path = write_file("just words\n");
    tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == -1
       && strstr(err, ":1: expected \"key = value\""), "no equals sign");

    ga_conf_defaults(&cf);
    path = write_file("token = secret\n");
    tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == -1
       && strstr(err, "token: not accepted"), "inline token refused");

    /* a name whose addresses are the nodes, beside plain gateway lines */

    ga_conf_defaults(&cf);
    tap_ok(ga_conf_set(&cf, "gateway", "https://gw1.example", err,
                       sizeof(err)) == 0
       && ga_conf_set(&cf, "gateway_nodes", "https://gw.example:8443/t", err,
                      sizeof(err)) == 0
       && cf.ngateways == 2 && !cf.gateways[0].nodes && cf.gateways[1].nodes
       && strcmp(cf.gateways[1].host, "gw.example") == 0
       && strcmp(cf.gateways[1].path, "/t") == 0,
       "gateway_nodes: a gateway line whose addresses are the nodes");
    tap_ok(ga_conf_set(&cf, "gateway_nodes", "http://gw.example", err,
                       sizeof(err)) == -1
       && strstr(err, "plain http is only for loopback"),
       "gateway_nodes: plain http refused off loopback");
    tap_ok(ga_conf_set(&cf, "gateway_nodes", "ftp://gw.example", err,
                       sizeof(err)) == -1,
       "gateway_nodes: not a URL");

    ga_conf_defaults(&cf);
    tap_ok(ga_conf_set(&cf, "gateway", "ftp://x", err, sizeof(err)) == -1,
       "ftp gateway refused");
    tap_ok(ga_conf_set(&cf, "gateway", "https://:443", err, sizeof(err)) == -1,
       "empty host refused");
    tap_ok(ga_conf_set(&cf, "gateway", "http://gw.example:80", err,
                       sizeof(err)) == -1
       && strstr(err, "plain http is only for loopback"),
       "plain http to a remote host refused");
    tap_ok(ga_conf_set(&cf, "gateway", "http://127.0.0.2:80", err,
                       sizeof(err)) == 0
       && ga_conf_set(&cf, "gateway", "http://localhost:80", err,
                      sizeof(err)) == 0, "plain http to loopback allowed");
    tap_ok(ga_conf_set(&cf, "gateway", "https://h:99999", err, sizeof(err))
       == -1, "port out of range refused");
    tap_ok(ga_conf_set(&cf, "runtime", "https://h:1", err, sizeof(err)) == -1,
       "https runtime refused");
    tap_ok(ga_conf_set(&cf, "runtime", "http://h:1/x", err, sizeof(err)) == -1,
       "runtime with a path refused");
    tap_ok(ga_conf_set(&cf, "name", "-bad", err, sizeof(err)) == -1,
       "name starting with - refused");
    tap_ok(ga_conf_set(&cf, "models", " a,b , c ", err, sizeof(err)) == 0
       && strcmp(cf.runtimes[0].models, "a, b, c") == 0 && cf.runtimes[0].models_set,
       "models normalized to \"a, b, c\"");
    tap_ok(ga_conf_set(&cf, "models", "", err, sizeof(err)) == 0
       && cf.runtimes[0].models[0] == '\0' && cf.runtimes[0].models_set, "empty models: any");
    tap_ok(ga_conf_set(&cf, "models", "a,,b", err, sizeof(err)) == -1
       && strstr(err, "empty model id"), "empty model id refused");
    tap_ok(ga_conf_set(&cf, "models", "a b", err, sizeof(err)) == -1
       && strstr(err, "models:"), "model id with a space refused");
    tap_ok(ga_conf_set(&cf, "models", "caf\xc3\xa9", err, sizeof(err)) == -1,
       "non-ASCII model id refused");
    tap_ok(!cf.runtimes[0].endpoints_set, "endpoints: the dialect's");
    tap_ok(ga_conf_set(&cf, "endpoints", " rerank,embeddings , chat",
                       err, sizeof(err)) == 0
       && strcmp(cf.runtimes[0].endpoints, "chat, embeddings, rerank") == 0
       && cf.runtimes[0].endpoints_set,
       "endpoints normalized in the router's order");
    tap_ok(ga_conf_set(&cf, "endpoints", "*", err, sizeof(err)) == 0
       && cf.runtimes[0].endpoints[0] == '\0' && cf.runtimes[0].endpoints_set,
       "endpoints \"*\": every one, no header");
    tap_ok(cf.region[0] == '\0', "region: none by default");
    tap_ok(ga_conf_set(&cf, "region", "eu-west.2", err, sizeof(err)) == 0
       && strcmp(cf.region, "eu-west.2") == 0, "region = eu-west.2");
    {
        static const char  *bad[] = {
            "", "eu west", "eu/west", "eu,west", "\xc3\xa9u",
            "01234567890123456789012345678901"
        };
        size_t  i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            tap_ok(ga_conf_set(&cf, "region", bad[i], err, sizeof(err))
                   == -1 && strstr(err, "region:")
                   && strcmp(cf.region, "eu-west.2") == 0,
                   "region \"%s\" refused, the last one kept", bad[i]);
        }
    }
    {
        static const char  *bad[] = {
            "", "chat,,rerank", "chat, chta", "Chat", "/v1/chat/completions",
            "chat;rerank", "chat rerank", "*, chat", "video"
        };
        size_t  i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            tap_ok(ga_conf_set(&cf, "endpoints", bad[i], err, sizeof(err))
                   == -1 && strstr(err, "endpoints:"),
                   "endpoints \"%s\" refused", bad[i]);
        }
    }
    {
        uint32_t  mask;
        int       t, ok;

        ok = strcmp(ga_conf_endpoints_default(GA_RUNTIME_OPENAI), "") == 0
             && strstr(ga_conf_endpoints_default(GA_RUNTIME_VLLM),
                       "transcriptions") != NULL;

        for (t = GA_RUNTIME_VLLM; t <= GA_RUNTIME_OLLAMA; t++) {
            const char  *d = ga_conf_endpoints_default((ga_runtime_e) t);

            if (gpugate_tunnel_parse_endpoints(d, strlen(d), &mask) != 0
                || !(mask & 1))
            {
                ok = 0;
            }
        }

        tap_ok(ok, "each dialect's default set parses and serves chat");
    }
    tap_ok(ga_conf_set(&cf, "log_level", "loud", err, sizeof(err)) == -1
       && strstr(err, "log_level"), "bad log level");
    tap_ok(ga_conf_set(&cf, "spare", "3x", err, sizeof(err)) == -1,
       "trailing garbage in a number");
    tap_ok(cf.runtimes[0].type == GA_RUNTIME_OPENAI && cf.load_interval == 2,
       "runtime_type openai and load_interval 2 by default");
    tap_ok(ga_conf_set(&cf, "runtime_type", "vllm", err, sizeof(err)) == 0
       && cf.runtimes[0].type == GA_RUNTIME_VLLM, "runtime_type vllm");
    tap_ok(ga_conf_set(&cf, "runtime_type", "triton", err, sizeof(err)) == -1
       && strstr(err, "runtime_type: \"triton\" is not"),
       "unknown runtime_type named in the error");
    tap_ok(ga_conf_set(&cf, "load_interval", "0", err, sizeof(err)) == -1,
       "load_interval 0 refused");
    tap_ok(ga_conf_set(&cf, "idle_timeout", "1", err, sizeof(err)) == -1,
       "idle_timeout below 2 s refused");

    ga_conf_defaults(&cf);
    tap_ok(ga_conf_validate(&cf, err, sizeof(err)) == -1
       && strstr(err, "gateway"), "no gateway: refused");

    ga_conf_defaults(&cf);
    path = write_file("gateway = https://a\nname = n\ncapacity = 4\n");
    {
        char *argv[] = { "gpugate-agent", "--capacity", "9", "--config",
                         (char *) path, "--spare=3", "--check", NULL };

        tap_ok(ga_conf_args(&cf, 7, argv, &check, &version, err, sizeof(err))
           == 0, "flags parse");
        tap_ok(cf.runtimes[0].capacity == 9 && cf.spare == 3 && check
           && !version, "flags win over the file whatever their order");
    }

    /* [runtime NAME] sections: one runtime each */

    ga_conf_defaults(&cf);
    path = write_file("gateway = https://gw.example\n"
                      "name = gpu-a\n"
                      "token_file = /t\n"
                      "spare = 3\n"
                      "\n"
                      "[runtime llama]\n"
                      "runtime = http://127.0.0.1:8001\n"
                      "runtime_type = llamacpp\n"
                      "capacity = 4\n"
                      "runtime_command = /usr/bin/llama-server --port 8001\n"
                      "\n"
                      "[ runtime  big.model-2 ]\n"
                      "runtime = http://127.0.0.1:8002\n"
                      "runtime_type = ollama\n"
                      "models = qwen2.5:7b\n"
                      "runtime_start_timeout = 30\n");
    tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == -1
       && strstr(err, ":12: expected \"[runtime NAME]\""),
       "sections: \"[ runtime\" is refused with its line");

    ga_conf_defaults(&cf);
    path = write_file("gateway = https://gw.example\n"
                      "name = gpu-a\n"
                      "token_file = /t\n"
                      "[runtime llama]\n"
                      "runtime = http://127.0.0.1:8001\n"
                      "runtime_type = llamacpp\n"
                      "capacity = 4\n"
                      "runtime_command = /usr/bin/llama-server --port 8001\n"
                      "[runtime big.model-2]\n"
                      "runtime = http://127.0.0.1:8002\n"
                      "runtime_type = ollama\n"
                      "models = qwen2.5:7b\n"
                      "runtime_start_timeout = 30\n");
    tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == 0
       && ga_conf_validate(&cf, err, sizeof(err)) == 0, "two sections");
    tap_ok(cf.nruntimes == 2 && strcmp(cf.runtimes[0].name, "llama") == 0
       && strcmp(cf.runtimes[1].name, "big.model-2") == 0, "... named");
    tap_ok(strcmp(cf.runtimes[0].url.port, "8001") == 0
       && cf.runtimes[0].type == GA_RUNTIME_LLAMACPP
       && cf.runtimes[0].capacity == 4 && !cf.runtimes[0].models_set
       && strcmp(cf.runtimes[0].command,
                 "/usr/bin/llama-server --port 8001") == 0,
       "... the first with its own keys");
    tap_ok(strcmp(cf.runtimes[1].url.port, "8002") == 0
       && cf.runtimes[1].type == GA_RUNTIME_OLLAMA
       && cf.runtimes[1].capacity == 16 && cf.runtimes[1].models_set
       && strcmp(cf.runtimes[1].models, "qwen2.5:7b") == 0
       && cf.runtimes[1].start_timeout == 30
       && cf.runtimes[1].command[0] == '\0',
       "... the second with defaults where it sets nothing");

    {
        char *argv[] = { "gpugate-agent", "--config", (char *) path,
                         "--capacity", "9", NULL };

        ga_conf_defaults(&cf);
        tap_ok(ga_conf_args(&cf, 5, argv, &check, &version, err, sizeof(err))
           == -1 && strstr(err, "--capacity: the configuration has "
                           "[runtime] sections"),
           "sections: a runtime flag is refused");
    }

    {
        static const struct {
            const char  *text;
            const char  *error;
        } bad[] = {
            { "capacity = 2\n[runtime a]\nruntime = http://127.0.0.1:1\n",
              ":2: [runtime a]: runtime keys were set at the top level" },
            { "[runtime a]\nruntime = http://127.0.0.1:1\ncapacity = 2\n"
              "capacity = 3\n[runtime a]\n",
              ":5: [runtime a]: a second section of that name" },
            { "[runtime a]\nspare = 2\n",
              ":2: spare: not a runtime key; the agent's own keys go "
              "before the first [runtime] section" },
            { "[runtime -a]\n", ":1: [runtime -a]: a name is 1-32" },
            { "[runtime]\n", ":1: expected \"[runtime NAME]\"" },
            { "[runtime a]\nruntime_keepalive = -1\n",
              ":2: runtime_keepalive: \"-1\" is not an integer in 0..65535" },
            { "[runtime a]\nruntime_start_timeout = 0\n",
              ":2: runtime_start_timeout: \"0\" is not an integer in "
              "1..86400" },
            { "[runtime a]\n[runtime b]\n[runtime c]\n[runtime d]\n"
              "[runtime e]\n[runtime f]\n[runtime g]\n[runtime h]\n"
              "[runtime i]\n", ":9: [runtime i]: at most 8 runtimes" },
        };

        size_t  k;

        for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            ga_conf_defaults(&cf);
            path = write_file(bad[k].text);
            tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == -1
               && strstr(err, bad[k].error) != NULL,
               "sections: refused: %s", bad[k].error);
        }
    }

    ga_conf_defaults(&cf);
    path = write_file("gateway = https://gw.example\nname = a\n"
                      "token_file = /t\n[runtime a]\nmodels = x\n");
    tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == 0
       && ga_conf_validate(&cf, err, sizeof(err)) == -1
       && strstr(err, "[runtime a]: \"runtime\" (its URL) is required"),
       "sections: a section needs its URL");

    ga_conf_defaults(&cf);
    path = write_file("gateway = https://gw.example\nname = a\n"
                      "token_file = /t\n[runtime a]\n"
                      "runtime = http://127.0.0.1:7000\n[runtime b]\n"
                      "runtime = http://127.0.0.1:7000/\n");
    tap_ok(ga_conf_file(&cf, path, err, sizeof(err)) == 0
       && ga_conf_validate(&cf, err, sizeof(err)) == -1
       && strstr(err, "[runtime b]: 127.0.0.1:7000 is runtime \"a\""),
       "sections: two runtimes on one address are refused");

    ga_conf_defaults(&cf);
    tap_ok(ga_conf_set(&cf, "runtime_command", "vllm serve m", err,
                       sizeof(err)) == 0
       && strcmp(cf.runtimes[0].command, "vllm serve m") == 0
       && cf.top_runtime, "runtime_command at the top level");
    tap_ok(ga_conf_set(&cf, "telemetry_interval", "0", err, sizeof(err))
       == -1 && strstr(err, "1..3600"), "telemetry_interval bounds");

    /* otlp_endpoint: an http:// URL, checked by validate */
    {
        int          i;
        const char  *bad[] = { "https://c:4318/v1/traces", "c:4318",
                               "http://", "http://c:99999/v1/traces",
                               "http://c:4318/v1/traces?x" };

        ga_conf_defaults(&cf);
        (void) ga_conf_set(&cf, "gateway", "https://gw:8443", err,
                           sizeof(err));
        (void) ga_conf_set(&cf, "name", "a", err, sizeof(err));
        (void) ga_conf_set(&cf, "token_file", "/t", err, sizeof(err));
        tap_ok(ga_conf_set(&cf, "otlp_endpoint", "http://c:4318/v1/traces",
                           err, sizeof(err)) == 0
           && ga_conf_validate(&cf, err, sizeof(err)) == 0
           && strcmp(cf.otlp_endpoint, "http://c:4318/v1/traces") == 0,
           "otlp_endpoint taken");

        for (i = 0; i < 5; i++) {
            (void) ga_conf_set(&cf, "otlp_endpoint", bad[i], err,
                               sizeof(err));
            tap_ok(ga_conf_validate(&cf, err, sizeof(err)) == -1
               && strstr(err, "otlp_endpoint"), "otlp_endpoint \"%s\" "
               "refused", bad[i]);
        }
    }

    {
        char *argv[] = { "gpugate-agent", "--max-connections", NULL };

        tap_ok(ga_conf_args(&cf, 2, argv, &check, &version, err, sizeof(err))
           == -1 && strstr(err, "needs a value"), "flag without value");
    }

    {
        char *argv[] = { "gpugate-agent", "--bogus", "x", NULL };

        tap_ok(ga_conf_args(&cf, 3, argv, &check, &version, err, sizeof(err))
           == -1 && strstr(err, "unknown flag \"--bogus\""), "unknown flag");
    }

    {
        char *argv[] = { "gpugate-agent", "--token", "x", NULL };

        tap_ok(ga_conf_args(&cf, 3, argv, &check, &version, err, sizeof(err))
           == -1 && strstr(err, "not accepted"), "--token refused");
    }

    unlink(path);

    return tap_done();
}
