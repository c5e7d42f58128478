
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

#include "tap.h"
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
    tap_ok(cf.capacity == 16 && cf.spare == 2 && cf.max_connections == 256,
       "defaults");
    tap_ok(strcmp(cf.runtime.host, "127.0.0.1") == 0
       && strcmp(cf.runtime.port, "8000") == 0, "default runtime");

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
    tap_ok(strcmp(cf.name, "gpu-a") == 0 && cf.capacity == 8
       && cf.log_level == 3 && cf.models_set
       && strcmp(cf.models, "m1, m2") == 0, "values");
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
       && strcmp(cf.models, "a, b, c") == 0 && cf.models_set,
       "models normalized to \"a, b, c\"");
    tap_ok(ga_conf_set(&cf, "models", "", err, sizeof(err)) == 0
       && cf.models[0] == '\0' && cf.models_set, "empty models: any");
    tap_ok(ga_conf_set(&cf, "models", "a,,b", err, sizeof(err)) == -1
       && strstr(err, "empty model id"), "empty model id refused");
    tap_ok(ga_conf_set(&cf, "models", "a b", err, sizeof(err)) == -1
       && strstr(err, "models:"), "model id with a space refused");
    tap_ok(ga_conf_set(&cf, "models", "caf\xc3\xa9", err, sizeof(err)) == -1,
       "non-ASCII model id refused");
    tap_ok(ga_conf_set(&cf, "log_level", "loud", err, sizeof(err)) == -1
       && strstr(err, "log_level"), "bad log level");
    tap_ok(ga_conf_set(&cf, "spare", "3x", err, sizeof(err)) == -1,
       "trailing garbage in a number");
    tap_ok(cf.runtime_type == GA_RUNTIME_OPENAI && cf.load_interval == 2,
       "runtime_type openai and load_interval 2 by default");
    tap_ok(ga_conf_set(&cf, "runtime_type", "vllm", err, sizeof(err)) == 0
       && cf.runtime_type == GA_RUNTIME_VLLM, "runtime_type vllm");
    tap_ok(ga_conf_set(&cf, "runtime_type", "ollama", err, sizeof(err)) == -1
       && strstr(err, "runtime_type: \"ollama\" is not"),
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
        tap_ok(cf.capacity == 9 && cf.spare == 3 && check && !version,
           "flags win over the file whatever their order");
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
