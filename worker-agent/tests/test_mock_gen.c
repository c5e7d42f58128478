
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the mock runtime's generator: the same request must give
 * the same bytes (tests compare bodies), and validation must name the
 * offending parameter.  Prints TAP.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_gen.h"


static int  tap_n;
static int  tap_failed;


static void
tap_ok(int ok, const char *what)
{
    tap_n++;
    printf("%sok %d - %s\n", ok ? "" : "not ", tap_n, what);

    if (!ok) {
        tap_failed++;
    }
}


static json_t *
parse(const char *s)
{
    json_t  *j = json_loads(s, 0, NULL);

    if (j == NULL) {
        printf("Bail out! bad test JSON: %s\n", s);
        exit(1);
    }

    return j;
}


static int
status_of(const char *body, mock_kind_e kind, const char **param)
{
    int          st;
    json_t      *j;
    mock_req_t   req;
    const char  *msg;

    *param = NULL;
    j = parse(body);
    st = mock_parse_request(j, kind, &req, &msg, param);
    json_decref(j);

    return st;
}


int
main(void)
{
    int          st;
    char        *a, *b, *c;
    json_t      *j1, *j2, *j3;
    mock_req_t   r1, r2, r3;
    const char  *msg, *param;

    j1 = parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"hello there world\"}]}");
    j2 = parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"hello there world\"}]}");
    j3 = parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"something else\"}]}");

    tap_ok(mock_parse_request(j1, MOCK_CHAT, &r1, &msg, &param) == 0,
           "valid chat request parses");
    mock_parse_request(j2, MOCK_CHAT, &r2, &msg, &param);
    mock_parse_request(j3, MOCK_CHAT, &r3, &msg, &param);

    tap_ok(r1.prompt_tokens == 3, "prompt tokens count words");

    a = mock_full(&r1, 5, "stop");
    b = mock_full(&r2, 5, "stop");
    c = mock_full(&r3, 5, "stop");
    tap_ok(a && b && strcmp(a, b) == 0, "same request, same answer");
    tap_ok(c && strcmp(a, c) != 0, "another prompt, another answer");
    tap_ok(strstr(a, "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5,"
                  "\"total_tokens\":8}") != NULL, "usage in the answer");
    free(a);
    free(b);
    free(c);

    a = mock_chunk(&r1, 0, 5, NULL);
    tap_ok(a && strstr(a, "\"delta\":{\"content\":\"") != NULL,
           "token chunk carries delta.content");
    tap_ok(strstr(a, "\"usage\"") == NULL,
           "no usage field unless usage was asked");
    free(a);

    a = mock_chunk(&r1, -3, 5, NULL);
    tap_ok(a && strstr(a, "\"choices\":[]") != NULL
           && strstr(a, "\"completion_tokens\":5") != NULL,
           "usage chunk has empty choices and the counts");
    free(a);

    json_decref(j1);
    json_decref(j2);
    json_decref(j3);

    j1 = parse("{\"model\":\"m\",\"stream\":true,\"stream_options\":"
               "{\"include_usage\":true},\"max_tokens\":2,"
               "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
               "\"text\",\"text\":\"parts work too\"}]}]}");
    tap_ok(mock_parse_request(j1, MOCK_CHAT, &r1, &msg, &param) == 0
           && r1.stream && r1.include_usage && r1.max_tokens == 2
           && r1.prompt_tokens == 3, "stream, include_usage, max_tokens, "
           "content parts");
    a = mock_chunk(&r1, 1, 2, NULL);
    tap_ok(a && strstr(a, "\"usage\":null") != NULL,
           "usage: null on every chunk when usage was asked");
    free(a);
    json_decref(j1);

    st = status_of("[1,2]", MOCK_CHAT, &param);
    tap_ok(st == 400, "non-object body refused");
    st = status_of("{\"messages\":[]}", MOCK_CHAT, &param);
    tap_ok(st == 400 && param && strcmp(param, "model") == 0,
           "missing model names param model");
    st = status_of("{\"model\":\"m\"}", MOCK_CHAT, &param);
    tap_ok(st == 400 && param && strcmp(param, "messages") == 0,
           "missing messages names param messages");
    st = status_of("{\"model\":\"m\",\"prompt\":5}", MOCK_COMPLETION, &param);
    tap_ok(st == 400 && param && strcmp(param, "prompt") == 0,
           "bad prompt names param prompt");
    st = status_of("{\"model\":\"m\",\"prompt\":\"x\",\"stream\":\"yes\"}",
                   MOCK_COMPLETION, &param);
    tap_ok(st == 400 && param && strcmp(param, "stream") == 0,
           "non-boolean stream refused");
    st = status_of("{\"model\":\"m\",\"prompt\":[\"a\",\"b c\"],"
                   "\"max_tokens\":-1}", MOCK_COMPLETION, &param);
    tap_ok(st == 400 && param && strcmp(param, "max_tokens") == 0,
           "negative max_tokens refused");

    j1 = parse("{\"model\":\"e\",\"input\":[\"one\",\"two words\"]}");
    a = mock_embeddings(j1, "e", 4, &msg);
    b = mock_embeddings(j1, "e", 4, &msg);
    tap_ok(a && b && strcmp(a, b) == 0 && strstr(a, "\"index\":1") != NULL
           && strstr(a, "\"prompt_tokens\":3") != NULL,
           "embeddings deterministic, one per input, usage counted");
    free(a);
    free(b);
    json_decref(j1);

    j1 = parse("{\"model\":\"e\",\"input\":[1]}");
    tap_ok(mock_embeddings(j1, "e", 4, &msg) == NULL,
           "non-string embedding input refused");
    json_decref(j1);

    a = mock_error("m \"q\"", "t", NULL, "c");
    tap_ok(a && strcmp(a, "{\"error\":{\"message\":\"m \\\"q\\\"\","
                       "\"type\":\"t\",\"param\":null,\"code\":\"c\"}}")
                == 0, "error JSON shape and escaping");
    free(a);

    /* golden bytes: t/002-proxy.t compares these through nginx */
    j1 = parse("{\"model\":\"mock-model\",\"max_tokens\":4,\"messages\":"
               "[{\"role\":\"user\",\"content\":\"Say hello\"}]}");
    mock_parse_request(j1, MOCK_CHAT, &r1, &msg, &param);
    a = mock_full(&r1, 4, "length");
    tap_ok(a && strcmp(a, "{\"id\":\"chatcmpl-mock-7c5ecc2690386c64\","
                       "\"object\":\"chat.completion\",\"created\":"
                       "1700000000,\"model\":\"mock-model\",\"choices\":"
                       "[{\"index\":0,\"message\":{\"role\":\"assistant\","
                       "\"content\":\" each one as soon\"},\"finish_reason\":"
                       "\"length\"}],\"usage\":{\"prompt_tokens\":2,"
                       "\"completion_tokens\":4,\"total_tokens\":6}}") == 0,
           "golden chat answer (id from fnv1a of model and prompt)");
    free(a);
    json_decref(j1);

    j1 = parse("{\"model\":\"other-model\",\"prompt\":\"Once upon\"}");
    tap_ok(mock_parse_request(j1, MOCK_COMPLETION, &r1, &msg, &param) == 0
           && strcmp(r1.id, "cmpl-mock-0c352cb18e2492ba") == 0
           && strcmp(mock_token(&r1, 0), " gamma") == 0
           && strcmp(mock_token(&r1, 1), " delta") == 0,
           "golden completion id and tokens");
    json_decref(j1);

    j1 = parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"   \"}]}");
    tap_ok(mock_parse_request(j1, MOCK_CHAT, &r1, &msg, &param) == 0
           && r1.prompt_tokens == 1, "empty prompt counts as one token");
    json_decref(j1);

    printf("1..%d\n", tap_n);

    return tap_failed ? 1 : 0;
}
