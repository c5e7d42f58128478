
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the OpenAI request body checks and rewrite.
 */


#include <stdlib.h>
#include <string.h>

#include "gpugate_oai_body.h"
#include "tap.h"


static int
parse(gpugate_oai_body_t *b, const char *s, gpugate_oai_kind_e kind)
{
    return gpugate_oai_body_parse(b, s, strlen(s), kind);
}


/* the rewritten body in a buffer of its length, NUL added; free() it */

static char *
rewrite(gpugate_oai_body_t *b, const char *model, int ask_usage,
    int priority, size_t *len)
{
    char    *out;
    size_t   size;

    size = gpugate_oai_body_rewrite_len(b, model, ask_usage, priority);
    if (size == 0) {
        return NULL;
    }

    out = malloc(size + 1);
    if (out == NULL) {
        return NULL;
    }

    *len = gpugate_oai_body_rewrite(b, model, ask_usage, priority, out);
    out[*len] = '\0';

    return out;
}


/*
 * The body rewritten (model NULL: kept; priority -1: left) is "want", and
 * parses again, with one priority member of the value asked for.
 */

static int
rewrites_prio(const char *s, const char *model, int ask_usage,
    int priority, const char *want)
{
    int                 ok;
    char               *out;
    size_t              len;
    gpugate_oai_body_t  b, again;

    if (parse(&b, s, GPUGATE_OAI_CHAT) != 0) {
        printf("# refused: %s (%s)\n", s, b.error);
        return 0;
    }

    out = rewrite(&b, model, ask_usage, priority, &len);
    gpugate_oai_body_free(&b);

    if (out == NULL) {
        return 0;
    }

    ok = (len == strlen(want) && strcmp(out, want) == 0);

    if (!ok) {
        printf("# got %s\n", out);
    }

    if (ok && ask_usage) {
        ok = parse(&again, out, GPUGATE_OAI_CHAT) == 0
             && again.include_usage == 1;
        gpugate_oai_body_free(&again);
    }

    if (ok && priority >= 0) {
        ok = parse(&again, out, GPUGATE_OAI_CHAT) == 0
             && again.prio_count == 1 && again.prio_cut == 0
             && again.prio_end[-1] == '0' + priority
             && strncmp((const char *) again.prio_start, "\"priority\":",
                        11) == 0;
        gpugate_oai_body_free(&again);
    }

    free(out);

    return ok;
}


static int
rewrites_to(const char *s, const char *model, int ask_usage,
    const char *want)
{
    return rewrites_prio(s, model, ask_usage, -1, want);
}


static int
fails_with(const char *s, gpugate_oai_kind_e kind, const char *param,
    const char *code)
{
    int                 ok;
    gpugate_oai_body_t  b;

    ok = parse(&b, s, kind) != 0
         && ((param == NULL && b.param == NULL)
             || (param && b.param && strcmp(param, b.param) == 0))
         && b.code && strcmp(code, b.code) == 0
         && b.error && b.error[0];

    gpugate_oai_body_free(&b);

    return ok;
}


/*
 * The endpoints whose requests each runtime reads a "priority" of (its
 * request classes): a rewrite adds it on those, with the same rules as
 * chat (one member, the client's in any case replaced), and the router
 * adds nothing on the others.
 */

static void
test_priority_endpoints(void)
{
    size_t  i;
    char   *out;
    size_t  len;

    static const struct {
        gpugate_oai_kind_e   kind;
        const char          *body;
        int                  vllm;
        int                  sglang;
    } eps[] = {
        { GPUGATE_OAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":"
          "\"user\",\"content\":\"hi\"}]", 1, 1 },
        { GPUGATE_OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"hi\"",
          1, 1 },
        { GPUGATE_OAI_RESPONSES, "{\"model\":\"m\",\"input\":\"hi\"",
          1, 1 },
        { GPUGATE_OAI_EMBEDDINGS, "{\"model\":\"m\",\"input\":[\"a\"]",
          1, 1 },
        { GPUGATE_OAI_RERANK, "{\"model\":\"m\",\"query\":\"q\","
          "\"documents\":[\"a\"]", 1, 0 },
        { GPUGATE_OAI_SCORE, "{\"model\":\"m\",\"text_1\":\"a\","
          "\"text_2\":\"b\"", 1, 0 },
        { GPUGATE_OAI_MESSAGES, "{\"model\":\"m\",\"max_tokens\":2,"
          "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]",
          0, 0 },
        { GPUGATE_OAI_IMAGES, "{\"model\":\"m\",\"prompt\":\"a cat\"",
          0, 0 },
        { GPUGATE_OAI_SPEECH, "{\"model\":\"m\",\"input\":\"hi\"", 0, 0 },
        { GPUGATE_OAI_TRANSCRIPTIONS, NULL, 0, 0 },
        { GPUGATE_OAI_TRANSLATIONS, NULL, 0, 0 },
        { GPUGATE_OAI_IMAGE_EDITS, NULL, 0, 0 }
    };

    for (i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
        char                body[256], want[256];
        gpugate_oai_body_t  b;

        tap_ok(gpugate_oai_priority_takes(GPUGATE_OAI_PRIO_VLLM, eps[i].kind)
               == eps[i].vllm
               && gpugate_oai_priority_takes(GPUGATE_OAI_PRIO_SGLANG,
                                             eps[i].kind)
                  == eps[i].sglang
               && !gpugate_oai_priority_takes(GPUGATE_OAI_PRIO_OFF,
                                              eps[i].kind),
               "%s: vllm %s, sglang %s, off none",
               gpugate_oai_kind_name(eps[i].kind),
               eps[i].vllm ? "takes it" : "none",
               eps[i].sglang ? "takes it" : "none");

        if (eps[i].body == NULL) {
            continue;
        }

        /* the client's own, in two cases and twice, become one member */

        snprintf(body, sizeof(body), "%s,\"Priority\":1,\"priority\":"
                 "\"x\"}", eps[i].body);
        snprintf(want, sizeof(want), "%s,\"priority\":6}", eps[i].body);

        out = NULL;

        if (parse(&b, body, eps[i].kind) == 0) {
            out = rewrite(&b, NULL, 0, 6, &len);
        }

        tap_ok(out != NULL && strcmp(out, want) == 0,
               "%s: the client's priority members replaced by one",
               gpugate_oai_kind_name(eps[i].kind));

        if (out == NULL || strcmp(out, want) != 0) {
            printf("# got %s (%s)\n", out ? out : "nothing",
                   b.error ? b.error : "");
        }

        free(out);
        gpugate_oai_body_free(&b);
    }

    tap_ok(!gpugate_oai_priority_takes(GPUGATE_OAI_PRIO_VLLM,
                                       (gpugate_oai_kind_e) 99),
           "an unknown endpoint: none");
}


int
main(void)
{
    char                *out;
    size_t               len, i;
    gpugate_oai_body_t   b;
    const char          *chat = "{\"model\":\"m1\",\"stream\":true,"
                                "\"stream_options\":{\"include_usage\":"
                                "true},\"messages\":[{\"role\":\"user\","
                                "\"content\":\"h\\u00e9llo \\\"q\\\"\"}],"
                                "\"temperature\":0.5}";

    tap_ok(parse(&b, chat, GPUGATE_OAI_CHAT) == 0, "valid chat body");
    tap_ok(b.model_len == 2 && strcmp(b.model, "m1") == 0, "model read");
    tap_ok(b.stream == 1 && b.include_usage == 1, "stream flags read");

    out = rewrite(&b, "runtime/m-1", 0, -1, &len);
    tap_ok(out != NULL && len == strlen(out), "rewrite produced a body");
    tap_ok(out && strncmp(out, "{\"model\":\"runtime/m-1\",\"stream\":true,",
                          37) == 0, "model replaced in place, order kept");
    tap_ok(out && strcmp(out + 22, chat + 13) == 0,
           "every other byte is the original (escapes kept as written)");
    tap_ok(out && strstr(out, "\"temperature\":0.5") != NULL,
           "numbers survive");
    free(out);
    gpugate_oai_body_free(&b);

    tap_ok(parse(&b, "{\"model\":\"e\",\"input\":[\"a\",\"b\"]}",
                 GPUGATE_OAI_EMBEDDINGS) == 0 && b.stream == 0,
           "valid embeddings body");
    gpugate_oai_body_free(&b);

    tap_ok(parse(&b, "{\"model\":\"c\",\"prompt\":\"x\"}",
                 GPUGATE_OAI_COMPLETIONS) == 0, "valid completions body");
    gpugate_oai_body_free(&b);

    tap_ok(fails_with("{\"model\":", GPUGATE_OAI_CHAT, NULL, "invalid_json"),
           "truncated JSON");
    tap_ok(fails_with("[1]", GPUGATE_OAI_CHAT, NULL, "invalid_json"),
           "not an object");
    tap_ok(fails_with("{\"messages\":[{}]}", GPUGATE_OAI_CHAT, "model",
                      "missing_required_parameter"), "no model");
    tap_ok(fails_with("{\"model\":null,\"messages\":[{}]}", GPUGATE_OAI_CHAT,
                      "model", "missing_required_parameter"), "null model");
    tap_ok(fails_with("{\"model\":1,\"messages\":[{}]}", GPUGATE_OAI_CHAT,
                      "model", "invalid_type"), "numeric model");
    tap_ok(fails_with("{\"model\":\"\",\"messages\":[{}]}", GPUGATE_OAI_CHAT,
                      "model", "invalid_value"), "empty model");
    tap_ok(fails_with("{\"model\":\"a\\u0000b\",\"messages\":[{}]}",
                      GPUGATE_OAI_CHAT, NULL, "invalid_json"),
           "NUL inside a string is refused by the parser");
    tap_ok(fails_with("{\"model\":\"m\",\"model\":\"n\",\"messages\":[{}]}",
                      GPUGATE_OAI_CHAT, NULL, "invalid_json"),
           "duplicate keys");
    tap_ok(fails_with("{\"model\":\"m\",\"stream\":1,\"messages\":[{}]}",
                      GPUGATE_OAI_CHAT, "stream", "invalid_type"),
           "numeric stream");
    tap_ok(fails_with("{\"model\":\"m\",\"stream_options\":[],"
                      "\"messages\":[{}]}", GPUGATE_OAI_CHAT,
                      "stream_options", "invalid_type"),
           "stream_options not an object");
    tap_ok(fails_with("{\"model\":\"m\",\"messages\":[]}", GPUGATE_OAI_CHAT,
                      "messages", "invalid_type"), "empty messages");
    tap_ok(fails_with("{\"model\":\"m\",\"messages\":[1]}", GPUGATE_OAI_CHAT,
                      "messages", "invalid_type"), "message not an object");
    tap_ok(fails_with("{\"model\":\"m\"}", GPUGATE_OAI_COMPLETIONS, "prompt",
                      "missing_required_parameter"), "no prompt");
    tap_ok(fails_with("{\"model\":\"m\",\"prompt\":{}}",
                      GPUGATE_OAI_COMPLETIONS, "prompt", "invalid_type"),
           "prompt object");
    tap_ok(fails_with("{\"model\":\"m\"}", GPUGATE_OAI_EMBEDDINGS, "input",
                      "missing_required_parameter"), "no input");
    tap_ok(fails_with("{\"model\":\"m\",\"input\":\"x\",\"stream\":true}",
                      GPUGATE_OAI_EMBEDDINGS, "stream", "invalid_value"),
           "streamed embeddings");

    {
        /* every routed kind: its own member, named when it is wrong */
        static const struct {
            const char          *body;
            gpugate_oai_kind_e   kind;
            const char          *param;   /* NULL: valid */
            const char          *code;
        } kinds[] = {
            { "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{}]}",
              GPUGATE_OAI_MESSAGES, NULL, NULL },
            { "{\"model\":\"m\",\"max_tokens\":5}",
              GPUGATE_OAI_MESSAGES, "messages", "missing_required_parameter" },
            { "{\"model\":\"m\",\"messages\":\"hi\"}",
              GPUGATE_OAI_MESSAGES, "messages", "invalid_type" },
            { "{\"messages\":[{}]}",
              GPUGATE_OAI_MESSAGES, "model", "missing_required_parameter" },
            { "{\"model\":\"m\",\"input\":\"hi\",\"stream\":true}",
              GPUGATE_OAI_RESPONSES, NULL, NULL },
            { "{\"model\":\"m\",\"input\":[{\"role\":\"user\"}]}",
              GPUGATE_OAI_RESPONSES, NULL, NULL },
            { "{\"model\":\"m\",\"instructions\":\"x\"}",
              GPUGATE_OAI_RESPONSES, "input", "missing_required_parameter" },
            { "{\"model\":\"m\",\"input\":7}",
              GPUGATE_OAI_RESPONSES, "input", "invalid_type" },
            { "{\"model\":\"m\",\"query\":\"q\",\"documents\":[\"a\"]}",
              GPUGATE_OAI_RERANK, NULL, NULL },
            { "{\"model\":\"m\",\"documents\":[\"a\"]}",
              GPUGATE_OAI_RERANK, "query", "missing_required_parameter" },
            { "{\"model\":\"m\",\"query\":[\"q\"]}",
              GPUGATE_OAI_RERANK, "query", "invalid_type" },
            { "{\"model\":\"m\",\"query\":\"q\",\"stream\":true}",
              GPUGATE_OAI_RERANK, "stream", "invalid_value" },
            { "{\"model\":\"m\",\"text_1\":\"a\",\"text_2\":[\"b\"]}",
              GPUGATE_OAI_SCORE, NULL, NULL },
            { "{\"model\":\"m\",\"text_2\":\"b\"}",
              GPUGATE_OAI_SCORE, "text_1", "missing_required_parameter" },
            { "{\"model\":\"m\",\"prompt\":\"a cat\",\"n\":2}",
              GPUGATE_OAI_IMAGES, NULL, NULL },
            { "{\"model\":\"m\",\"prompt\":[\"a cat\"]}",
              GPUGATE_OAI_IMAGES, "prompt", "invalid_type" },
            { "{\"model\":\"m\",\"size\":\"1x1\"}",
              GPUGATE_OAI_IMAGES, "prompt", "missing_required_parameter" },
            { "{\"model\":\"m\",\"input\":\"hello\",\"voice\":\"v\"}",
              GPUGATE_OAI_SPEECH, NULL, NULL },
            { "{\"model\":\"m\",\"voice\":\"v\"}",
              GPUGATE_OAI_SPEECH, "input", "missing_required_parameter" },
            { "{\"model\":\"m\",\"input\":[\"x\"]}",
              GPUGATE_OAI_SPEECH, "input", "invalid_type" },
            { "{\"model\":\"m\",\"Input\":\"x\"}",
              GPUGATE_OAI_SPEECH, "input", "invalid_value" },
            { NULL, 0, NULL, NULL }
        };

        int  k, ok = 1, r;

        for (k = 0; kinds[k].body; k++) {
            if (kinds[k].param == NULL) {
                r = (parse(&b, kinds[k].body, kinds[k].kind) == 0);
                gpugate_oai_body_free(&b);

            } else {
                r = fails_with(kinds[k].body, kinds[k].kind, kinds[k].param,
                               kinds[k].code);
            }

            if (!r) {
                printf("# kind %d: %s\n", (int) kinds[k].kind,
                       kinds[k].body);
                ok = 0;
            }
        }

        tap_ok(ok, "messages, responses, rerank, score, images and speech: "
               "each endpoint's member checked and named");
        tap_ok(parse(&b, "{\"model\":\"m\",\"input\":\"h\\u00e9\\n"
                     "\\ud83d\\ude00\xc3\xa9\xf0\x9f\x98\x80!\"}",
                     GPUGATE_OAI_SPEECH) == 0
               && gpugate_oai_string_chars(b.need_start, b.need_end) == 7
               && gpugate_oai_string_chars(b.model_start, b.model_end) == 1,
               "speech input counted in characters: escapes, surrogate "
               "pairs and UTF-8 sequences are one each");
        gpugate_oai_body_free(&b);
        tap_ok(gpugate_oai_path_kind(GPUGATE_OAI_PATH_SPEECH)
               == GPUGATE_OAI_SPEECH
               && gpugate_oai_path_kind(GPUGATE_OAI_PATH_IMAGE_EDITS)
                  == GPUGATE_OAI_IMAGE_EDITS
               && gpugate_oai_multipart(GPUGATE_OAI_TRANSCRIPTIONS)
               && !gpugate_oai_multipart(GPUGATE_OAI_SPEECH)
               && gpugate_oai_path_kind(GPUGATE_OAI_PATH_MODELS) == -1
               && strcmp(gpugate_oai_kind_name(GPUGATE_OAI_MESSAGES),
                         "messages") == 0
               && strcmp(gpugate_oai_kind_name(-1), "other") == 0,
               "path to kind to endpoint label");
    }

    {
        /* the grammar: what RFC 8259 allows passes, what it forbids fails */
        static const char  *good[] = {
            "{\"model\":\"m\",\"prompt\":\"x\",\"n\":-0.5e+10,"
            "\"a\":[true,false,null,0,1.0,-2E-3,{},[],\"\\u00e9\\ud83d"
            "\\ude00\\n\\/\"]}",
            " \t\r\n{ \"model\" : \"m\" , \"prompt\" : [ ] } \n",
            "{\"model\":\"m\",\"prompt\":\"\xc3\xa9\xe2\x82\xac"
            "\xf0\x9f\x98\x80\"}",
            NULL
        };
        static const char  *bad[] = {
            "{\"model\":\"m\",\"prompt\":01}",
            "{\"model\":\"m\",\"prompt\":1.}",
            "{\"model\":\"m\",\"prompt\":.5}",
            "{\"model\":\"m\",\"prompt\":1e}",
            "{\"model\":\"m\",\"prompt\":tru}",
            "{\"model\":\"m\",\"prompt\":\"\\x\"}",
            "{\"model\":\"m\",\"prompt\":\"\\ud83d\"}",
            "{\"model\":\"m\",\"prompt\":\"\\ude00\"}",
            "{\"model\":\"m\",\"prompt\":\"a\nb\"}",
            "{\"model\":\"m\",\"prompt\":\"\xc3\"}",
            "{\"model\":\"m\",\"prompt\":\"x\",}",
            "{\"model\":\"m\",\"prompt\":\"x\"} x",
            "{\"model\":\"m\" \"prompt\":\"x\"}",
            "{\"mod\\u0065l\":\"m\",\"prompt\":\"x\"}",
            NULL
        };
        int   good_ok = 1, bad_ok = 1, k;
        char  deep[300];

        for (k = 0; good[k]; k++) {
            if (parse(&b, good[k], GPUGATE_OAI_COMPLETIONS) != 0) {
                printf("# refused: %s (%s)\n", good[k], b.error);
                good_ok = 0;
            }
        }
        tap_ok(good_ok, "valid JSON of every kind is accepted");

        for (k = 0; bad[k]; k++) {
            if (parse(&b, bad[k], GPUGATE_OAI_COMPLETIONS) == 0
                || strcmp(b.code, "invalid_json") != 0)
            {
                printf("# accepted: %s\n", bad[k]);
                bad_ok = 0;
            }
        }
        tap_ok(bad_ok, "invalid JSON of every kind is refused");

        strcpy(deep, "{\"model\":\"m\",\"prompt\":\"x\",\"d\":");
        for (k = 0; k < 70; k++) {
            strcat(deep, "[");
        }
        for (k = 0; k < 70; k++) {
            strcat(deep, "]");
        }
        strcat(deep, "}");
        tap_ok(parse(&b, deep, GPUGATE_OAI_COMPLETIONS) != 0
               && strstr(b.error, "nested too deeply") != NULL,
               "nesting is bounded");
    }

    /* every truncation of a valid body fails cleanly (no crash, an error) */

    for (i = 0; i < strlen(chat); i++) {
        if (gpugate_oai_body_parse(&b, chat, i, GPUGATE_OAI_CHAT) == 0) {
            gpugate_oai_body_free(&b);
            break;
        }
        gpugate_oai_body_free(&b);
    }
    tap_ok(i == strlen(chat), "every proper prefix of a body is refused");

    /* asking the runtime for usage */

#define MSG  "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

    tap_ok(rewrites_to("{\"model\":\"m\",\"stream\":true," MSG "}", NULL, 1,
                       "{\"model\":\"m\",\"stream\":true," MSG
                       ",\"stream_options\":{\"include_usage\":true}}"),
           "no stream_options: a new last member");
    tap_ok(rewrites_to("{\"model\":\"m\",\"stream\":true," MSG " \n}", NULL,
                       1, "{\"model\":\"m\",\"stream\":true," MSG
                       ",\"stream_options\":{\"include_usage\":true} \n}"),
           "...placed after the last value, the layout kept");
    tap_ok(rewrites_to("{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{}," MSG "}", NULL, 1,
                       "{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true}," MSG
                       "}"),
           "an empty stream_options");
    tap_ok(rewrites_to("{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{ \"continuous_usage_stats\":"
                       "true }," MSG "}", NULL, 1,
                       "{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true, "
                       "\"continuous_usage_stats\":true }," MSG "}"),
           "other stream_options members are kept");
    tap_ok(rewrites_to("{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{\"a\":1,\"include_usage\": false"
                       "}," MSG "}", NULL, 1,
                       "{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{\"a\":1,\"include_usage\": true"
                       "}," MSG "}"),
           "an explicit false becomes true");
    tap_ok(rewrites_to("{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":null}," MSG
                       "}", NULL, 1,
                       "{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true}," MSG
                       "}"),
           "include_usage null becomes true");
    tap_ok(rewrites_to("{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\": null," MSG "}", NULL, 1,
                       "{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\": {\"include_usage\":true}," MSG
                       "}"),
           "stream_options null becomes the object");
    tap_ok(rewrites_to("{\"stream_options\":{},\"model\":\"alias\","
                       "\"stream\":true," MSG "}", "runtime-name", 1,
                       "{\"stream_options\":{\"include_usage\":true},"
                       "\"model\":\"runtime-name\",\"stream\":true," MSG
                       "}"),
           "with a model alias, stream_options first");
    tap_ok(rewrites_to("{\"model\":\"alias\",\"stream\":true," MSG "}",
                       "runtime-name", 1,
                       "{\"model\":\"runtime-name\",\"stream\":true," MSG
                       ",\"stream_options\":{\"include_usage\":true}}"),
           "with a model alias, stream_options added");
    tap_ok(rewrites_to("{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true}," MSG
                       "}", NULL, 1,
                       "{\"model\":\"m\",\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true}," MSG
                       "}"),
           "the client's own include_usage: unchanged");
    tap_ok(rewrites_to("{\"model\":\"a\",\"stream\":true," MSG "}", "b", 0,
                       "{\"model\":\"b\",\"stream\":true," MSG "}"),
           "alias only: stream_options untouched");

    /* the gateway's priority for the runtime */

    tap_ok(rewrites_prio("{\"model\":\"m\"," MSG "}", NULL, 0, 7,
                         "{\"model\":\"m\"," MSG ",\"priority\":7}"),
           "priority: a new last member");
    tap_ok(rewrites_prio("{\"model\":\"m\"," MSG " \n}", NULL, 0, 0,
                         "{\"model\":\"m\"," MSG ",\"priority\":0 \n}"),
           "...after the last value, the layout kept");
    tap_ok(rewrites_prio("{\"priority\": -100,\"model\":\"m\"," MSG "}",
                         NULL, 0, 3,
                         "{\"priority\":3,\"model\":\"m\"," MSG "}"),
           "the client's priority, first member, is replaced");
    tap_ok(rewrites_prio("{\"model\":\"m\",\"PRIORITY\":{\"a\":[1]},"
                         MSG "}", NULL, 0, 9,
                         "{\"model\":\"m\",\"priority\":9," MSG "}"),
           "...in another case and of another type");
    tap_ok(rewrites_prio("{\"priority\":1,\"model\":\"m\", \"Priority\""
                         " : 2 ," MSG ",\"pRiOrItY\":\"x\",\"priority\":4}",
                         NULL, 0, 5,
                         "{\"priority\":5,\"model\":\"m\" ," MSG "}"),
           "every duplicate and case variant is taken out");
    tap_ok(rewrites_prio("{\"model\":\"m\",\"priority\":1,\"priority\":2,"
                         "\"priority\":3," MSG "}", NULL, 0, 6,
                         "{\"model\":\"m\",\"priority\":6," MSG "}"),
           "adjacent duplicates");
    tap_ok(rewrites_prio("{\"model\":\"a\",\"stream\":true," MSG
                         ",\"Priority\":8,\"priority\":null}", "b", 1, 2,
                         "{\"model\":\"b\",\"stream\":true," MSG
                         ",\"priority\":2"
                         ",\"stream_options\":{\"include_usage\":true}}"),
           "with an alias and usage asked: three splices and a cut");
    tap_ok(rewrites_prio("{\"model\":\"a\",\"stream\":true," MSG "}", "b",
                         1, 1,
                         "{\"model\":\"b\",\"stream\":true," MSG
                         ",\"stream_options\":{\"include_usage\":true}"
                         ",\"priority\":1}"),
           "two members added after the last one");
    tap_ok(rewrites_prio("{\"model\":\"m\",\"metadata\":{\"priority\":1},"
                         MSG "}", NULL, 0, 4,
                         "{\"model\":\"m\",\"metadata\":{\"priority\":1},"
                         MSG ",\"priority\":4}"),
           "a nested priority is not the request's: kept");
    tap_ok(rewrites_prio("{\"model\":\"m\",\"priority\":1," MSG "}", NULL,
                         0, -1, "{\"model\":\"m\",\"priority\":1," MSG "}"),
           "priority -1: the client's is left as it is");
    tap_ok(fails_with("{\"model\":\"m\",\"pr\\u0069ority\":1," MSG "}",
                      GPUGATE_OAI_CHAT, NULL, "invalid_json"),
           "an escaped spelling is refused as every escaped name is");

    tap_ok(parse(&b, "{\"model\":\"m\"," MSG "}", GPUGATE_OAI_CHAT) == 0
           && gpugate_oai_body_rewrite_len(&b, NULL, 0, 10) == 0,
           "a priority over 9 is not written");
    gpugate_oai_body_free(&b);

    for (i = 0; i <= 9; i++) {
        if (gpugate_oai_priority_for(GPUGATE_OAI_PRIO_VLLM, (int) i)
            != 9 - (int) i
            || gpugate_oai_priority_for(GPUGATE_OAI_PRIO_SGLANG, (int) i)
               != (int) i
            || gpugate_oai_priority_for(GPUGATE_OAI_PRIO_OFF, (int) i) != -1)
        {
            break;
        }
    }
    tap_ok(i == 10, "vllm maps 0..9 to 9..0, sglang passes it, off: none");
    tap_ok(gpugate_oai_priority_for(GPUGATE_OAI_PRIO_VLLM, 10) == -1
           && gpugate_oai_priority_for(GPUGATE_OAI_PRIO_SGLANG, -1) == -1,
           "out of range: none");

    /*
     * A member a case-insensitive runtime (Go's encoding/json: Ollama)
     * reads as a checked one is refused, naming the member it stands for,
     * whether the exact one is there too or not; other members are not.
     */

    {
        static const struct {
            const char          *body;
            gpugate_oai_kind_e   kind;
            const char          *param;
        } variants[] = {
            { "{\"model\":\"a\",\"Model\":\"b\"," MSG "}",
              GPUGATE_OAI_CHAT, "model" },
            { "{\"MODEL\":\"b\",\"model\":\"a\"," MSG "}",
              GPUGATE_OAI_CHAT, "model" },
            { "{\"model\":\"a\",\"mOdEl\":\"b\"," MSG "}",
              GPUGATE_OAI_CHAT, "model" },
            { "{\"Model\":\"b\"," MSG "}", GPUGATE_OAI_CHAT, "model" },
            { "{\"model\":\"a\",\"Stream\":true," MSG "}",
              GPUGATE_OAI_CHAT, "stream" },
            { "{\"model\":\"a\",\"\xc5\xbftream\":true," MSG "}",
              GPUGATE_OAI_CHAT, "stream" },
            { "{\"model\":\"a\",\"STREAM_OPTIONS\":{}," MSG "}",
              GPUGATE_OAI_CHAT, "stream_options" },
            { "{\"model\":\"a\",\"stream_option\xc5\xbf\":{}," MSG "}",
              GPUGATE_OAI_CHAT, "stream_options" },
            { "{\"model\":\"a\"," MSG ",\"Messages\":[]}",
              GPUGATE_OAI_CHAT, "messages" },
            { "{\"model\":\"a\",\"prompt\":\"x\",\"Prompt\":\"y\"}",
              GPUGATE_OAI_COMPLETIONS, "prompt" },
            { "{\"model\":\"a\",\"input\":\"x\",\"INPUT\":[1]}",
              GPUGATE_OAI_EMBEDDINGS, "input" },
            { "{\"model\":\"a\",\"stream\":true,\"stream_options\":"
              "{\"include_usage\":false,\"Include_Usage\":true}," MSG "}",
              GPUGATE_OAI_CHAT, "stream_options.include_usage" },
            { NULL, 0, NULL }
        };

        int  k, ok = 1;

        for (k = 0; variants[k].body; k++) {
            if (!fails_with(variants[k].body, variants[k].kind,
                            variants[k].param, "invalid_value"))
            {
                printf("# not refused as %s: %s\n", variants[k].param,
                       variants[k].body);
                ok = 0;
            }
        }

        tap_ok(ok, "case variants of checked members are refused");

        tap_ok(parse(&b, "{\"model\":\"a\",\"Prompt\":\"x\",\"Input\":1,"
                     "\"modelx\":1,\"Modl\":2,\"mode\xc5\xbf\":3," MSG "}",
                     GPUGATE_OAI_CHAT) == 0,
               "names of other members (and of other endpoints) pass");
        gpugate_oai_body_free(&b);

        tap_ok(fails_with("{\"model\":\"a\",\"stream\":true,\"stream_options\""
                          ":{\"include\\u005fusage\":true}," MSG "}",
                          GPUGATE_OAI_CHAT, "stream_options",
                          "invalid_json"),
               "escaped member names in stream_options are refused");
    }

#undef MSG

    /* request paths */

    {
        static const struct {
            const char          *path;
            gpugate_oai_path_e   want;
            const char          *id;
        } paths[] = {
            { "/v1/chat/completions", GPUGATE_OAI_PATH_CHAT, NULL },
            { "/retry/v1/chat/completions", GPUGATE_OAI_PATH_CHAT, NULL },
            { "/v1/completions", GPUGATE_OAI_PATH_COMPLETIONS, NULL },
            { "/v1/embeddings", GPUGATE_OAI_PATH_EMBEDDINGS, NULL },
            { "/v1/models", GPUGATE_OAI_PATH_MODELS, NULL },
            { "/v1/models/", GPUGATE_OAI_PATH_MODELS, NULL },
            { "/v1/models/m-1", GPUGATE_OAI_PATH_MODEL, "m-1" },
            { "/v1/models/org/m:7b", GPUGATE_OAI_PATH_MODEL, "org/m:7b" },
            { "/v1/chat/completions/", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v1/Chat/Completions", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v1/chat/completionsx", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/chat/completions", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v2/completions", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v1/responses", GPUGATE_OAI_PATH_RESPONSES, NULL },
            { "/v1/messages", GPUGATE_OAI_PATH_MESSAGES, NULL },
            { "/anthropic/v1/messages", GPUGATE_OAI_PATH_MESSAGES, NULL },
            { "/v1/rerank", GPUGATE_OAI_PATH_RERANK, NULL },
            { "/v1/score", GPUGATE_OAI_PATH_SCORE, NULL },
            { "/v1/images/generations", GPUGATE_OAI_PATH_IMAGES, NULL },
            { "/v1/audio/speech", GPUGATE_OAI_PATH_SPEECH, NULL },
            { "/v1/messages/", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v1/messages/batches", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v1/responses/resp_1", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v1/images/edits", GPUGATE_OAI_PATH_IMAGE_EDITS, NULL },
            { "/v1/audio/transcriptions", GPUGATE_OAI_PATH_TRANSCRIPTIONS,
              NULL },
            { "/v1/audio/translations", GPUGATE_OAI_PATH_TRANSLATIONS,
              NULL },
            { "/v1/images/edits/", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v1/audio/Speech", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v1/embeddings/", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/v1/modelsx", GPUGATE_OAI_PATH_OTHER, NULL },
            { "/V1/models", GPUGATE_OAI_PATH_OTHER, NULL },
            { "", GPUGATE_OAI_PATH_OTHER, NULL },
            { NULL, 0, NULL }
        };

        int          k, ok = 1;
        size_t       id_len;
        const char  *id;

        for (k = 0; paths[k].path; k++) {
            id = NULL;
            id_len = 0;

            if (gpugate_oai_path(paths[k].path, strlen(paths[k].path), &id,
                                 &id_len) != paths[k].want
                || (paths[k].id == NULL) != (id == NULL)
                || (id && (id_len != strlen(paths[k].id)
                           || memcmp(id, paths[k].id, id_len) != 0)))
            {
                printf("# path %s: not %d\n", paths[k].path,
                       (int) paths[k].want);
                ok = 0;
            }
        }

        tap_ok(ok, "endpoints by exact path, under any mount point");
    }

    tap_ok(gpugate_oai_model_allowed("*", 1, "x", 1), "* allows all");
    tap_ok(gpugate_oai_model_allowed("a,bb,c", 6, "bb", 2), "listed model");
    tap_ok(!gpugate_oai_model_allowed("a,bb,c", 6, "b", 1),
           "a prefix of a listed model is not it");
    tap_ok(!gpugate_oai_model_allowed("a,bb,c", 6, "bb,c", 4),
           "a comma-joined pair is not a model");
    tap_ok(!gpugate_oai_model_allowed("", 0, "a", 1), "empty list: nothing");

    test_priority_endpoints();

    return tap_done();
}
