
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: a MOCK OpenAI-compatible inference runtime.  No
 * model, no GPU: it answers from mock_gen.c, deterministically, with the
 * timing and failures a test asks for.  Used by t/, scripts/run.sh and
 * scripts/bench/ in place of llama.cpp, vLLM or Ollama.
 *
 * One thread, one epoll loop (gg_event.c): every connection is a small
 * state machine, every delay a timer, so thousands of idle or slow
 * streams cost only memory.
 */


#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mock_cache.h"
#include "mock_ext.h"
#include "mock_handler.h"
#include "mock_state.h"


static int mock_args(int argc, char **argv, struct sockaddr_in *sin,
    const char **port_file, const char **models, const char **log_path);


static void
mock_usage(FILE *f)
{
    fprintf(f,
"gpugate-mock-runtime: a MOCK OpenAI-compatible inference runtime.  There\n"
"is no model behind it: answers are deterministic words derived from a\n"
"hash of model and prompt, with the timing and failures a test asks for.\n"
"Used by gpugate's tests, demo and benchmarks in place of a real runtime.\n"
"\n"
"usage: gpugate-mock-runtime [options]\n"
"\n"
"  --listen ADDR:PORT     IPv4 listen address (default 127.0.0.1:8000;\n"
"                         port 0: any free port)\n"
"  --port-file FILE       once listening, write the port and a newline to\n"
"                         FILE (atomically: FILE.tmp, then rename)\n"
"  --models a,b,c         served model names (default mock-model); others\n"
"                         get 404 model_not_found\n"
"  --ttft-ms N            time to first token, ms (default 0)\n"
"  --token-delay-ms N     delay between tokens, ms (default 0)\n"
"  --tokens N             completion tokens per answer (default 16);\n"
"                         max_tokens / max_completion_tokens cap it\n"
"                         (finish_reason \"length\")\n"
"  --fail-status CODE     answer every inference request with CODE\n"
"                         (100-599) and an OpenAI error body\n"
"  --drop-after N         close streams abruptly after N tokens (no last\n"
"                         chunk, no [DONE])\n"
"  --max-concurrency N    429 rate_limit_error with Retry-After: 1 beyond\n"
"                         N inference requests in flight (default 0: no\n"
"                         limit)\n"
"  --embedding-dim N      floats per embedding (default 8)\n"
"  --dialect NAME         also speak that runtime's own endpoints (for the\n"
"                         agent): vllm, llamacpp, sglang, tgi: /metrics\n"
"                         exports its load gauges; tgi: GET /info gives\n"
"                         the first model as model_id; ollama: GET\n"
"                         /api/tags lists the models, GET /api/ps lists\n"
"                         them as loaded, GET / answers \"Ollama is\n"
"                         running\" (/v1/* keep working in all)\n"
"  --waiting N            requests those gauges report as queued (0)\n"
"  --keepalive-timeout-ms N\n"
"                         close a keep-alive connection idle N ms, as\n"
"                         servers do (default 0: never)\n"
"  --openapi PATHS        GET /openapi.json answers an OpenAPI document\n"
"                         listing these comma-separated paths, as vLLM\n"
"                         and SGLang serve theirs (default: 404)\n"
"  --log-file FILE        append the log to FILE (default stderr)\n"
"  --quiet                log only errors, drops and disconnects\n"
"  -h, --help             this text\n");

    mock_cache_usage(f);

    fprintf(f,
"\n"
"Per-request overrides (request headers, names case-insensitive):\n"
"  X-Mock-TTFT-Ms, X-Mock-Token-Delay-Ms, X-Mock-Tokens,\n"
"  X-Mock-Fail-Status, X-Mock-Drop-After   as the flags above\n"
"  X-Mock-Think: N          chat answers start with inline reasoning,\n"
"                           \"<think>\" N words \"</think>\" \"\\n\\n\" (one\n"
"                           token each; default 0: none)\n"
"  X-Mock-Think-Bytes: 1    ...that part one byte per token instead\n"
"  X-Mock-Think-Report: 1   usage reports completion_tokens_details.\n"
"                           reasoning_tokens (N)\n"
"  X-Mock-Stall-After: N    send N tokens, then hold the stream open,\n"
"                           sending nothing, until the client leaves\n"
"  X-Mock-Write-Mode: normal|byte|bulk\n"
"                           byte: every body byte a separate write,\n"
"                           X-Mock-Byte-Delay-Us apart (default 200);\n"
"                           bulk: the whole stream in one write, no delays\n"
"  X-Mock-Stray-Ms: N       TEST MODE, a misbehaving runtime: N ms after\n"
"                           this answer, on the kept-alive connection, send\n"
"                           unasked X-Mock-Stray-Kind bytes (only while no\n"
"                           other request is on it; counted in\n"
"                           gpugate_mock_stray_total)\n"
"  X-Mock-Cache-Read: N     usage says N more prompt tokens, read from a\n"
"                           prompt cache (cached_tokens, Anthropic's\n"
"                           cache_read_input_tokens)\n"
"  X-Mock-Cache-Write: N    Anthropic's cache_creation_input_tokens\n"
"  X-Mock-Stray-Kind: response|byte|head\n"
"                           a whole second 200 response (default), one\n"
"                           byte 'X', or a lone status line\n"
"  A bad X-Mock-* value gets 400 on inference endpoints.\n"
"\n"
"Endpoints: GET /v1/models, POST /v1/chat/completions, /v1/completions,\n"
"/v1/embeddings, GET /health, GET /metrics (Prometheus text), and those\n"
"of --dialect.  Test control: POST /mock/models with a body \"a,b,c\"\n"
"replaces the served models (empty body: none), so that discovery sees\n"
"the change; it answers as GET /v1/models does.\n"
"A client that leaves before its answer is complete is logged as\n"
"\"gpugate-mock-runtime: client disconnected mid-stream path=P model=M\n"
"sent=K/N tokens\" and counted in gpugate_mock_stream_disconnects_total.\n"
"SIGTERM or SIGINT: exit 0.  Exit 2: bad command line.\n");
}


static void
mock_arg_listen(const char *v, struct sockaddr_in *sin)
{
    char         addr[64];
    const char  *colon;

    colon = strrchr(v, ':');

    memset(sin, 0, sizeof(struct sockaddr_in));
    sin->sin_family = AF_INET;

    if (colon == NULL || (size_t) (colon - v) >= sizeof(addr)) {
        goto invalid;
    }

    memcpy(addr, v, colon - v);
    addr[colon - v] = '\0';

    if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1) {
        goto invalid;
    }

    sin->sin_port = htons((uint16_t) mock_arg_long("--listen port",
                                                   colon + 1, 0, 65535));
    return;

invalid:

    fprintf(stderr, MOCK_NAME ": invalid --listen value \"%s\": expected "
            "IPV4:PORT, e.g. 127.0.0.1:8000\n", v);
    exit(2);
}


static int
mock_write_port_file(const char *file, int port)
{
    int    n;
    FILE  *f;
    char   tmp[PATH_MAX];

    n = snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    if (n < 0 || (size_t) n >= sizeof(tmp)) {
        return -1;
    }

    /* written aside and renamed, so a reader never sees half a number */
    f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }

    if (fprintf(f, "%d\n", port) < 0) {
        fclose(f);
        unlink(tmp);
        return -1;
    }

    if (fclose(f) != 0 || rename(tmp, file) != 0) {
        unlink(tmp);
        return -1;
    }

    return 0;
}


/* 2000 connections need more than the usual soft limit of 1024 fds */

static void
mock_raise_nofile(void)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }
}


/*
 * The command line into mock_conf and the values main() uses.  Returns -1
 * to go on, else the exit code (--help: 0, a bad flag: 2).
 */

static int
mock_args(int argc, char **argv, struct sockaddr_in *sin,
    const char **port_file, const char **models, const char **log_path)
{
    int          i;
    const char  *a, *v;

    for (i = 1; i < argc; i++) {
        a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            mock_usage(stdout);
            return 0;
        }

        if (strcmp(a, "--quiet") == 0) {
            mock_conf.quiet = 1;
            continue;
        }

        if (i + 1 >= argc) {
            fprintf(stderr, MOCK_NAME ": %s %s (see --help)\n", a,
                    strncmp(a, "--", 2) == 0 ? "needs a value"
                                             : "is not an option");
            return 2;
        }

        v = argv[++i];

        if (strcmp(a, "--listen") == 0) {
            mock_arg_listen(v, sin);
        } else if (strcmp(a, "--port-file") == 0) {
            *port_file = v;
        } else if (strcmp(a, "--models") == 0) {
            *models = v;
        } else if (strcmp(a, "--ttft-ms") == 0) {
            mock_conf.ttft_ms = mock_arg_long(a, v, 0, 3600000);
        } else if (strcmp(a, "--token-delay-ms") == 0) {
            mock_conf.token_delay_ms = mock_arg_long(a, v, 0, 600000);
        } else if (strcmp(a, "--tokens") == 0) {
            mock_conf.tokens = mock_arg_long(a, v, 0, 100000000);
        } else if (strcmp(a, "--fail-status") == 0) {
            mock_conf.fail_status = (int) mock_arg_long(a, v, 100, 599);
        } else if (strcmp(a, "--drop-after") == 0) {
            mock_conf.drop_after = mock_arg_long(a, v, 0, 100000000);
        } else if (strcmp(a, "--max-concurrency") == 0) {
            mock_conf.max_concurrency = mock_arg_long(a, v, 0, 100000000);
        } else if (strcmp(a, "--dialect") == 0) {
            if (strcmp(v, "vllm") != 0 && strcmp(v, "llamacpp") != 0
                && strcmp(v, "sglang") != 0 && strcmp(v, "tgi") != 0
                && strcmp(v, "ollama") != 0)
            {
                fprintf(stderr, MOCK_NAME ": --dialect: vllm, llamacpp, "
                        "sglang, tgi or ollama\n");
                return 2;
            }

            mock_conf.dialect = v;
        } else if (strcmp(a, "--waiting") == 0) {
            mock_conf.waiting = mock_arg_long(a, v, 0, 100000000);
        } else if (strcmp(a, "--keepalive-timeout-ms") == 0) {
            mock_conf.keepalive_ms = mock_arg_long(a, v, 0, 3600000);
        } else if (strcmp(a, "--embedding-dim") == 0) {
            mock_conf.embedding_dim = (int) mock_arg_long(a, v, 1, 65536);
        } else if (strcmp(a, "--openapi") == 0) {
            mock_openapi_paths = v;
        } else if (strcmp(a, "--log-file") == 0) {
            *log_path = v;
        } else if (mock_cache_option(a, v)) {
            continue;
        } else {
            fprintf(stderr, MOCK_NAME ": unknown option %s (see --help)\n",
                    a);
            return 2;
        }
    }


    return -1;
}


int
main(int argc, char **argv)
{
    int                 ls, one, rc;
    char                addr[INET_ADDRSTRLEN];
    const char         *v, *models, *port_file, *log_path;
    socklen_t           slen;
    struct sockaddr_in  sin;

    port_file = NULL;
    log_path = NULL;
    models = NULL;
    mock_log_file = stderr;

    mock_conf.tokens = 16;
    mock_conf.drop_after = -1;
    mock_conf.embedding_dim = 8;
    mock_arg_listen("127.0.0.1:8000", &sin);

    rc = mock_args(argc, argv, &sin, &port_file, &models, &log_path);

    if (rc != -1) {
        return rc;
    }

    if (models == NULL) {
        models = "mock-model";
    }

    if (*models == '\0' || mock_models_set(models, strlen(models), &v) != 0)
    {
        fprintf(stderr, MOCK_NAME ": invalid --models value: %s\n",
                *models ? v : "empty model name");
        return 2;
    }

    if (log_path) {
        mock_log_file = fopen(log_path, "a");
        if (mock_log_file == NULL) {
            fprintf(stderr, MOCK_NAME ": cannot open --log-file \"%s\": "
                    "%s\n", log_path, strerror(errno));
            return 2;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    mock_raise_nofile();

    if (gg_loop_init(&mock_loop) != 0) {
        mock_log(1, "error: event loop: %s", strerror(errno));
        return 1;
    }

    one = 1;
    ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (ls < 0
        || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0
        || bind(ls, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || listen(ls, 4096) != 0)
    {
        mock_log(1, "error: cannot listen on %s:%d: %s",
                 inet_ntop(AF_INET, &sin.sin_addr, addr, sizeof(addr)),
                 ntohs(sin.sin_port), strerror(errno));
        return 1;
    }

    slen = sizeof(sin);
    getsockname(ls, (struct sockaddr *) &sin, &slen);
    inet_ntop(AF_INET, &sin.sin_addr, addr, sizeof(addr));

    if (mock_handler_listen(ls) != 0) {
        mock_log(1, "error: epoll_ctl(listener): %s", strerror(errno));
        return 1;
    }

    mock_log(1, "listening on %s:%d", addr, ntohs(sin.sin_port));

    if (port_file && mock_write_port_file(port_file, ntohs(sin.sin_port))) {
        mock_log(1, "error: cannot write --port-file \"%s\": %s", port_file,
                 strerror(errno));
        return 1;
    }

    rc = gg_loop_run(&mock_loop);

    if (rc != 0) {
        mock_log(1, "error: epoll_wait(): %s", strerror(errno));

    } else {
        mock_log(1, "stopping (signal %d)", mock_loop.signo);
    }

    close(ls);
    mock_conns_free();
    gg_loop_free(&mock_loop);
    mock_models_free();

    if (mock_log_file != stderr) {
        fclose(mock_log_file);
    }

    return rc ? 1 : 0;
}
