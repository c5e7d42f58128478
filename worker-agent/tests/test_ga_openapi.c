
/*
 * Copyright (C) gpugate authors
 *
 * The route list parser (agent/ga_openapi.c) on fixtures shaped like the
 * /openapi.json vLLM serves for a chat model, a Whisper model and a
 * reranker (tests/fixtures/), and on documents it must refuse whole.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tap.h"           /* modules/core/tests/tap.h */
#include "gpugate_tunnel_proto.h"
#include "ga_openapi.h"


static char  out[GPUGATE_TUNNEL_ENDPOINTS_MAX + 1];
static char  err[256];


static int
parse_str(const char *body, size_t len, int want, const char *list)
{
    int  rc;

    rc = ga_openapi_parse(body, len, out, sizeof(out), err, sizeof(err));

    if (rc != want || strcmp(out, list) != 0 || (rc < 0 && err[0] == '\0'))
    {
        printf("#   got %d \"%s\" \"%s\"\n", rc, out, err);
        return 0;
    }

    return 1;
}


static int
parse_fixture(const char *name, int want, const char *list)
{
    int     ok;
    char    path[512], *body;
    long    len;
    FILE   *f;

    snprintf(path, sizeof(path), "%s/%s", GA_FIXTURES, name);

    f = fopen(path, "rb");
    if (f == NULL) {
        printf("#   %s: cannot open\n", path);
        return 0;
    }

    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);

    body = malloc(len + 1);
    if (body == NULL || fread(body, 1, len, f) != (size_t) len) {
        fclose(f);
        free(body);
        return 0;
    }

    fclose(f);

    ok = parse_str(body, len, want, list);
    free(body);

    return ok;
}


#define S(s)  s, sizeof(s) - 1


int
main(void)
{
    uint32_t  mask;

    tap_ok(parse_fixture("openapi-vllm-chat.json", 5,
                         "chat, completions, embeddings, messages, "
                         "responses"),
           "a vLLM chat model: its five endpoints, other routes skipped, "
           "a path named in a schema is not a route");
    tap_ok(parse_fixture("openapi-vllm-whisper.json", 2,
                         "transcriptions, translations"),
           "a vLLM Whisper model: only the audio endpoints");
    tap_ok(parse_fixture("openapi-vllm-rerank.json", 2, "rerank, score"),
           "a vLLM reranker: /rerank, /v2/rerank, /score count once each");

    tap_ok(parse_fixture("openapi-vllm-chat.json", 5,
                         "chat, completions, embeddings, messages, "
                         "responses")
           && gpugate_tunnel_parse_endpoints(out, strlen(out), &mask) == 0
           && mask == (GPUGATE_TUNNEL_ENDPOINTS_TOLD | 0x1f),
           "the list is a valid X-Gpugate-Endpoints the gateway reads back");

    tap_ok(parse_str(S("{\"paths\":{\"/v1/images/generations\":{},"
                       "\"/v1/images/edits\":{},\"/v1/audio/speech\":{}}}"),
                     3, "images, speech, image_edits"),
           "images, edits and speech: in the router's order");
    tap_ok(parse_str(S("{\"paths\":{\"/v1/chat/completions/\":{},"
                       "\"/V1/embeddings\":{},\"/api/v1/completions\":{},"
                       "\"v1/score\":{}}}"), -1, ""),
           "near misses are not endpoints: none left is refused");
    tap_ok(parse_str(S("{\"paths\":{}}"), -1, ""), "no paths: refused");
    tap_ok(parse_str(S("{\"paths\":[\"/v1/chat/completions\"]}"), -1, ""),
           "paths not an object: refused");
    tap_ok(parse_str(S("{\"info\":{\"paths\":{\"/v1/completions\":{}}}}"),
                     -1, ""),
           "a nested paths object is not the document's");
    tap_ok(parse_str(S("<html>Not Found</html>"), -1, ""),
           "not JSON: refused");
    tap_ok(parse_str(S("{\"paths\":{\"/v1/chat/completions\":{}"), -1, ""),
           "cut JSON: refused");
    tap_ok(parse_str(S("[1,2]"), -1, ""), "not an object: refused");
    tap_ok(parse_str(S("{\"paths\":{\"/v1/embeddings\":1,"
                       "\"/v1/embeddings\\u0000x\":{}}}"), -1, ""),
           "a key with a NUL: refused whole, not cut at it");

    tap_ok(ga_openapi_path(GA_RUNTIME_VLLM) != NULL
           && ga_openapi_path(GA_RUNTIME_SGLANG) != NULL
           && ga_openapi_path(GA_RUNTIME_OPENAI) == NULL
           && ga_openapi_path(GA_RUNTIME_OLLAMA) == NULL,
           "only vLLM and SGLang are asked");

    return tap_done();
}
