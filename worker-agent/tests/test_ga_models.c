
/*
 * Copyright (C) gpugate authors
 *
 * Model discovery parsers (agent/ga_models.c): each runtime's listing,
 * the ids the gateway would refuse, a list that does not fit, and
 * answers of the wrong shape, which must be refused whole.
 */


#include <stdio.h>
#include <string.h>

#include "tests/tap.h"           /* modules/core/tests/tap.h */
#include "gpugate_tunnel_proto.h"
#include "ga_models.h"


static char  out[GPUGATE_TUNNEL_MODELS_MAX + 1];
static char  err[256];


static int
parse(ga_runtime_e type, const char *body)
{
    return ga_models_parse(type, body, strlen(body), out, sizeof(out), err,
                           sizeof(err));
}


/* the result, the list and the note are all as expected */

static int
is(int rc, int want, const char *list, const char *note)
{
    if (rc != want || strcmp(out, list) != 0 || strcmp(err, note) != 0) {
        printf("#   got %d \"%s\" \"%s\"\n", rc, out, err);
        return 0;
    }

    return 1;
}


/* refused whole: -1, nothing listed, the reason given */

static int
refused(int rc, const char *reason)
{
    if (rc != -1 || out[0] != '\0' || strcmp(err, reason) != 0) {
        printf("#   got %d \"%s\" \"%s\"\n", rc, out, err);
        return 0;
    }

    return 1;
}


int
main(void)
{
    int          rc, t;
    char         body[8192], id[300], small[12];
    size_t       n;
    const char  *s;

    /* each dialect's well-formed answer */

    for (t = GA_RUNTIME_OPENAI; t <= GA_RUNTIME_SGLANG; t++) {
        rc = parse((ga_runtime_e) t,
                   "{\"object\":\"list\",\"data\":[{\"id\":\"llama-3-8b\","
                   "\"object\":\"model\",\"owned_by\":\"vllm\"},"
                   "{\"id\":\"org/Qwen2.5-7B\",\"object\":\"model\"}]}");
        tap_ok(is(rc, 2, "llama-3-8b, org/Qwen2.5-7B", ""),
               "%s: /v1/models data ids", ga_runtime_name((ga_runtime_e) t));
    }

    tap_ok(is(parse(GA_RUNTIME_OLLAMA,
                    "{\"models\":[{\"name\":\"llama3:8b\",\"model\":"
                    "\"llama3:8b\",\"modified_at\":\"2024-05-01T10:00:00Z\","
                    "\"size\":4661224676,\"digest\":\"365c\",\"details\":"
                    "{\"format\":\"gguf\"}},{\"name\":\"qwen2:7b\","
                    "\"model\":\"qwen2:7b\"}]}"),
              2, "llama3:8b, qwen2:7b", ""), "ollama: /api/tags names");
    tap_ok(is(parse(GA_RUNTIME_OLLAMA,
                    "{\"models\":[{\"model\":\"old:latest\"},"
                    "{\"name\":\"new:1b\",\"model\":\"other\"}]}"),
              2, "old:latest, new:1b", ""),
           "ollama: \"model\" when \"name\" is absent, \"name\" first");
    tap_ok(is(parse(GA_RUNTIME_TGI,
                    "{\"model_id\":\"bigscience/bloom-560m\",\"model_sha\":"
                    "\"abc\",\"max_concurrent_requests\":128,"
                    "\"version\":\"2.0.4\"}"),
              1, "bigscience/bloom-560m", ""), "tgi: /info model_id");

    /* empty lists are answers */

    tap_ok(is(parse(GA_RUNTIME_VLLM, "{\"object\":\"list\",\"data\":[]}"), 0,
              "", ""), "openai: empty data: 0");
    tap_ok(is(parse(GA_RUNTIME_OLLAMA, "{\"models\":[]}"), 0, "", ""),
           "ollama: no models pulled: 0");

    /* duplicates: once, first place kept */

    tap_ok(is(parse(GA_RUNTIME_LLAMACPP,
                    "{\"data\":[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"a\"},"
                    "{\"id\":\"ab\"},{\"id\":\"b\"}]}"),
              3, "a, b, ab", ""), "duplicates removed, order kept");

    /* ids the gateway would refuse: skipped, counted, the first quoted */

    tap_ok(is(parse(GA_RUNTIME_VLLM,
                    "{\"data\":[{\"id\":\"a b\"},{\"id\":\"good\"},"
                    "{\"id\":\"x,y\"},{\"id\":\"\"},{\"id\":\"tab\\there\"},"
                    "{\"id\":\"\\u00e9t\\u00e9\"},{\"id\":\" lead\"}]}"),
              1, "good",
              "skipped 6 ids (first: \"a b\": not a valid model id)"),
           "space, comma, empty, control, non-ASCII, leading space skipped");
    tap_ok(is(parse(GA_RUNTIME_VLLM, "{\"data\":[{\"id\":\"\"},"
                    "{\"id\":\"ok\"}]}"),
              1, "ok", "skipped 1 id (first: \"\": empty)"),
           "one skipped: singular note");
    tap_ok(is(parse(GA_RUNTIME_TGI, "{\"model_id\":\"q\\\"\\\\\\u0001\"}"),
              0, "", "skipped 1 id (first: \"q\\x22\\x5c\\x01\": not a "
              "valid model id)"), "quote, backslash, control escaped in "
              "the note");

    memset(id, 'm', 257);
    id[257] = '\0';
    snprintf(body, sizeof(body), "{\"data\":[{\"id\":\"%s\"},{\"id\":\"%.256s"
             "\"}]}", id, id);
    tap_ok(is(parse(GA_RUNTIME_SGLANG, body), 1, id + 1,
              "skipped 1 id (first: \"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
              "...\": longer than 256 bytes)"),
           "257 bytes skipped and cut in the note, 256 kept");

    /* overflow: what does not fit is skipped, a shorter one may still */

    n = (size_t) snprintf(body, sizeof(body), "{\"data\":[");
    for (t = 0; t < 5; t++) {
        memset(id, 'a' + t, 250);
        id[250] = '\0';
        n += (size_t) snprintf(body + n, sizeof(body) - n, "{\"id\":\"%s\"},",
                               id);
    }
    snprintf(body + n, sizeof(body) - n, "{\"id\":\"tiny\"}]}");
    rc = parse(GA_RUNTIME_VLLM, body);
    tap_ok(rc == 5 && strlen(out) == 4 * 250 + 3 * 2 + 2 + 4
           && strcmp(out + strlen(out) - 6, ", tiny") == 0
           && strncmp(err, "skipped 1 id (first: \"eeee", 26) == 0
           && strstr(err, "...\": the list is full)") != NULL
           && gpugate_tunnel_check_models(out, strlen(out)) == 5,
           "list over GPUGATE_TUNNEL_MODELS_MAX: the fifth skipped, "
           "tiny fits");

    s = "{\"data\":[{\"id\":\"abcd\"},{\"id\":\"efgh\"},"
        "{\"id\":\"ijklmn\"},{\"id\":\"x\"}]}";
    rc = ga_models_parse(GA_RUNTIME_VLLM, s, strlen(s), small, sizeof(small),
                         err, sizeof(err));
    tap_ok(rc == 2 && strcmp(small, "abcd, efgh") == 0
           && strcmp(err, "skipped 2 ids (first: \"ijklmn\": the list is "
                     "full)") == 0, "small buffer: cut at size - 1");

    /* wrong shapes: refused whole */

    tap_ok(refused(parse(GA_RUNTIME_VLLM, "{\"data\":"),
                   "invalid JSON at line 1 column 8: unexpected token "
                   "near end of file"), "truncated JSON");
    rc = parse(GA_RUNTIME_VLLM, "{\"data\" [}");
    tap_ok(rc == -1 && out[0] == '\0'
           && strncmp(err, "invalid JSON at line 1 column ", 30) == 0,
           "invalid JSON: where, said");
    tap_ok(refused(parse(GA_RUNTIME_VLLM, ""), "invalid JSON at line 1 "
                   "column 0: '[' or '{' expected near end of file"),
           "empty body");
    tap_ok(refused(parse(GA_RUNTIME_VLLM, "[{\"id\":\"a\"}]"),
                   "the answer is not a JSON object"), "top-level array");
    tap_ok(refused(parse(GA_RUNTIME_VLLM, "{\"object\":\"list\"}"),
                   "no \"data\" array"), "no data");
    tap_ok(refused(parse(GA_RUNTIME_VLLM, "{\"data\":{\"id\":\"a\"}}"),
                   "\"data\" is not an array"), "data is an object");
    tap_ok(refused(parse(GA_RUNTIME_VLLM, "{\"data\":[{\"id\":\"a\"},\"b\"]}"),
                   "\"data\"[1] is not an object"), "item not an object");
    tap_ok(refused(parse(GA_RUNTIME_VLLM, "{\"data\":[{\"id\":7}]}"),
                   "\"data\"[0]: \"id\" is not a string"), "id a number");
    tap_ok(refused(parse(GA_RUNTIME_OPENAI, "{\"data\":[{\"id\":null}]}"),
                   "\"data\"[0]: \"id\" is not a string"), "id null");
    tap_ok(refused(parse(GA_RUNTIME_VLLM, "{\"data\":[{\"name\":\"a\"}]}"),
                   "\"data\"[0] has no \"id\""), "item without id");
    tap_ok(refused(parse(GA_RUNTIME_OLLAMA, "{\"data\":[{\"id\":\"a\"}]}"),
                   "no \"models\" array"),
           "ollama reading an OpenAI list");
    tap_ok(refused(parse(GA_RUNTIME_OLLAMA, "{\"models\":[{\"size\":1}]}"),
                   "\"models\"[0] has no \"name\" or \"model\""),
           "ollama item without name or model");
    tap_ok(refused(parse(GA_RUNTIME_OLLAMA,
                         "{\"models\":[{\"name\":[],\"model\":\"a\"}]}"),
                   "\"models\"[0]: \"name\" is not a string"),
           "ollama name not a string: no fall back");
    tap_ok(refused(parse(GA_RUNTIME_OLLAMA, "{\"models\":\"llama3\"}"),
                   "\"models\" is not an array"), "ollama models a string");
    tap_ok(refused(parse(GA_RUNTIME_TGI, "{\"data\":[{\"id\":\"a\"}]}"),
                   "no \"model_id\""), "tgi reading an OpenAI list");
    tap_ok(refused(parse(GA_RUNTIME_TGI, "{\"model_id\":false}"),
                   "\"model_id\" is not a string"), "tgi model_id a bool");
    tap_ok(refused(ga_models_parse((ga_runtime_e) 99, "{}", 2, out,
                                   sizeof(out), err, sizeof(err)),
                   "unknown runtime type 99"), "out-of-range type");
    tap_ok(ga_models_parse(GA_RUNTIME_VLLM, "{}", 2, out, 0, err, sizeof(err))
           == -1 && err[0] != '\0', "size 0 refused");

    /* a refusal after ids were written leaves nothing behind */

    tap_ok(refused(parse(GA_RUNTIME_VLLM,
                         "{\"data\":[{\"id\":\"a\"},{\"id\":\"b\"},{}]}"),
                   "\"data\"[2] has no \"id\""), "late refusal: out empty");

    /* bounded by len: garbage after it is not read */

    memcpy(body, "{\"data\":[{\"id\":\"a\"}]}GARBAGE\xff{", 31);
    tap_ok(ga_models_parse(GA_RUNTIME_VLLM, body, 21, out, sizeof(out), err,
                           sizeof(err)) == 1 && strcmp(out, "a") == 0
           && err[0] == '\0', "not NUL-terminated: only len bytes read");
    tap_ok(ga_models_parse(GA_RUNTIME_VLLM, body, 20, out, sizeof(out), err,
                           sizeof(err)) == -1 && out[0] == '\0'
           && err[0] != '\0', "cut short by len: refused");

    /* err NULL, or too small for the note */

    s = "{\"data\":[{\"id\":\"a b\"}]}";
    tap_ok(ga_models_parse(GA_RUNTIME_VLLM, s, strlen(s), out, sizeof(out),
                           NULL, 0) == 0, "err NULL with errsize 0");
    tap_ok(ga_models_parse(GA_RUNTIME_VLLM, s, strlen(s), out, sizeof(out),
                           small, sizeof(small)) == 0
           && strcmp(small, "skipped 1 i") == 0, "note cut at errsize");

    return tap_done();
}
