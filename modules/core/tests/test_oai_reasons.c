
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the finish reasons the classifier finds
 * (gen_ai.response.finish_reasons): every dialect, a whole answer's
 * several choices, the bounds of the set, escapes, and streams split at
 * every byte through the framer and through the stripper.
 */


#include <stdlib.h>
#include <string.h>

#include "gpugate_oai_chunk.h"
#include "tap.h"


/* the set as a comma-separated list, NUL-terminated */

static const char *
joined(const gpugate_oai_reasons_t *set)
{
    size_t       n;
    static char  buf[256];

    n = gpugate_oai_reasons_join(set, buf, sizeof(buf) - 1);
    buf[n] = '\0';

    return buf;
}


/* the reasons of one chunk or answer */

static const char *
reasons(const char *data)
{
    gpugate_oai_chunk_t  c;

    gpugate_oai_chunk_classify((const unsigned char *) data, strlen(data),
                               &c);

    return joined(&c.reasons);
}


static int
is(const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        printf("# got \"%s\", want \"%s\"\n", got, want);
        return 0;
    }

    return 1;
}


/* the stream through the framer in pieces of "step" (0: 1..7 cycling) */

static void
framed(const char *s, size_t step, gpugate_oai_reasons_t *set)
{
    int                   done;
    size_t                len, off, piece, used, k;
    unsigned char         data[1024];
    gpugate_sse_t         sse;
    gpugate_oai_chunk_t   c;

    memset(set, 0, sizeof(gpugate_oai_reasons_t));
    gpugate_sse_init(&sse, data, sizeof(data));

    len = strlen(s);
    off = 0;
    k = 1;

    while (off < len) {
        piece = step ? step : k++ % 7 + 1;
        if (piece > len - off) {
            piece = len - off;
        }

        while (piece) {
            used = gpugate_sse_feed(&sse, (const unsigned char *) s + off,
                                    piece, &done);
            off += used;
            piece -= used;

            if (done) {
                if (sse.has_data && !sse.overflow) {
                    gpugate_oai_chunk_classify(data, sse.data_len, &c);
                    gpugate_oai_reasons_merge(set, &c.reasons);
                }

                gpugate_sse_next(&sse);
            }
        }
    }
}


/* the same through the stripper, whose hold is "hold" bytes */

static void
stripped(const char *s, size_t step, size_t hold_cap,
    gpugate_oai_reasons_t *set)
{
    int                   what;
    size_t                len, off, piece, used, k, out_len;
    unsigned char        *out, *hold, data[1024];
    gpugate_oai_chunk_t   c;
    gpugate_oai_strip_t   st;

    memset(set, 0, sizeof(gpugate_oai_reasons_t));

    len = strlen(s);
    out = malloc(len + hold_cap + 1);
    hold = malloc(hold_cap);
    out_len = 0;

    gpugate_oai_strip_init(&st, data, sizeof(data), hold, hold_cap);

    off = 0;
    k = 1;

    while (off < len) {
        piece = step ? step : k++ % 7 + 1;
        if (piece > len - off) {
            piece = len - off;
        }

        while (piece) {
            used = gpugate_oai_strip_feed(&st, (const unsigned char *) s
                                          + off, piece, out, &out_len, &c,
                                          &what);
            off += used;
            piece -= used;

            if (what == GPUGATE_OAI_STRIP_EVENT) {
                gpugate_oai_reasons_merge(set, &c.reasons);

            } else if (what == GPUGATE_OAI_STRIP_FULL) {
                gpugate_oai_strip_pass(&st, out, &out_len);
            }
        }

        /* out is sent after each buffer */
        out_len = 0;
    }

    free(hold);
    free(out);
}


#define CHUNK(choice)  "data: {\"id\":\"c\",\"object\":"                     \
                       "\"chat.completion.chunk\",\"choices\":[" choice   \
                       "],\"usage\":null}\n\n"

static const char  chat_stream[] =
    CHUNK("{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
          "\"finish_reason\":null}")
    CHUNK("{\"index\":0,\"delta\":{\"content\":\" finish_reason\"},"
          "\"finish_reason\":null}")
    CHUNK("{\"index\":1,\"delta\":{},\"finish_reason\":\"length\"}")
    CHUNK("{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}")
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,"
    "\"completion_tokens\":3}}\n\n"
    "data: [DONE]\n\n";

static const char  anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\","
    "\"stop_reason\":null,\"usage\":{\"input_tokens\":3}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
    "{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"max_tokens\",\"stop_sequence\":null},\"usage\":"
    "{\"output_tokens\":1}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

static const char  responses_stream[] =
    "event: response.created\n"
    "data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\","
    "\"status\":\"in_progress\",\"incomplete_details\":null}}\n\n"
    "event: response.output_text.delta\n"
    "data: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n"
    "event: response.incomplete\n"
    "data: {\"type\":\"response.incomplete\",\"response\":{\"id\":\"r\","
    "\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":"
    "\"max_output_tokens\"},\"output\":[{\"type\":\"message\","
    "\"status\":\"incomplete\"}]}}\n\n";


/* every split through both paths gives "want" */

static int
all_splits(const char *stream, const char *want)
{
    size_t                 step, len;
    gpugate_oai_reasons_t  set;

    len = strlen(stream);

    for (step = 0; step <= len; step++) {
        framed(stream, step, &set);

        if (!is(joined(&set), want)) {
            printf("# framer, step %zu\n", step);
            return 0;
        }

        stripped(stream, step, 2048, &set);

        if (!is(joined(&set), want)) {
            printf("# stripper, step %zu\n", step);
            return 0;
        }
    }

    return 1;
}


int
main(void)
{
    size_t                 n;
    char                   big[128];
    gpugate_oai_reasons_t  a, b;

    /* chat and completions */

    tap_ok(is(reasons("{\"choices\":[{\"delta\":{},\"finish_reason\":"
                      "\"stop\"}]}"), "stop"),
           "a chat chunk's finish_reason");
    tap_ok(is(reasons("{\"choices\":[{\"delta\":{\"content\":\"a\"},"
                      "\"finish_reason\":null}]}"), ""),
           "null is no reason");
    tap_ok(is(reasons("{\"choices\":[{\"index\":0,\"message\":{},"
                      "\"finish_reason\":\"stop\"},{\"index\":1,"
                      "\"message\":{},\"finish_reason\" : \"length\"},"
                      "{\"index\":2,\"finish_reason\":\"stop\"},"
                      "{\"index\":3,\"finish_reason\":\"tool_calls\"}],"
                      "\"usage\":{\"prompt_tokens\":1}}"),
              "stop,length,tool_calls"),
           "a whole answer: each choice's reason, once, in order");
    tap_ok(is(reasons("{\"choices\":[{\"text\":\"x\",\"finish_reason\":"
                      "\"length\"}]}"), "length"),
           "a completions answer");
    tap_ok(is(reasons("{\"choices\":[{\"delta\":{\"content\":"
                      "\"\\\"finish_reason\\\":\\\"no\\\"\"},"
                      "\"finish_reason\":null}]}"), ""),
           "a finish_reason inside the text is no member");

    /* Anthropic */

    tap_ok(is(reasons("{\"type\":\"message_delta\",\"delta\":"
                      "{\"stop_reason\":\"end_turn\",\"stop_sequence\":"
                      "null},\"usage\":{\"output_tokens\":15}}"),
              "end_turn"),
           "Anthropic's message_delta");
    tap_ok(is(reasons("{\"type\":\"message_start\",\"message\":{\"id\":"
                      "\"m\",\"stop_reason\":null}}"), ""),
           "Anthropic's message_start: null");
    tap_ok(is(reasons("{\"id\":\"m\",\"type\":\"message\",\"content\":[],"
                      "\"stop_reason\":\"stop_sequence\"}"),
              "stop_sequence"),
           "Anthropic's whole answer");

    /* the responses API */

    tap_ok(is(reasons("{\"type\":\"response.completed\",\"response\":"
                      "{\"id\":\"r\",\"status\":\"completed\","
                      "\"incomplete_details\":null,\"output\":[{\"type\":"
                      "\"message\",\"status\":\"done\"}]}}"), "completed"),
           "response.completed: the response's status");
    tap_ok(is(reasons("{\"type\":\"response.in_progress\",\"response\":"
                      "{\"status\":\"in_progress\",\"incomplete_details\":"
                      "null}}"), ""),
           "response.in_progress: none");
    tap_ok(is(reasons("{\"id\":\"r\",\"object\":\"response\",\"status\":"
                      "\"incomplete\",\"incomplete_details\":{\"reason\":"
                      "\"content_filter\"},\"output\":[]}"),
              "content_filter"),
           "a whole responses answer: incomplete_details.reason");
    tap_ok(is(reasons("{\"id\":\"r\",\"object\":\"response\",\"status\":"
                      "\"failed\",\"output\":[{\"type\":\"message\"}],"
                      "\"incomplete_details\":null}"), "failed"),
           "a whole responses answer: its status");

    /* what a runtime may put in the strings */

    tap_ok(is(reasons("{\"finish_reason\":\"a\\\"b\\\\c\\/d\\u0041\\n\"}"),
              "a\"b\\c/dA\n"),
           "escapes decoded (the span's writer escapes them again)");
    tap_ok(is(reasons("{\"finish_reason\":\"x,y\\u002cz\"}"), "x_y_z"),
           "a comma, sent or escaped, cannot split the list");
    tap_ok(is(reasons("{\"finish_reason\":\"\\u00e9\\u20ac\\ud83d\"}"),
              "\xc3\xa9\xe2\x82\xac?"),
           "\\u escapes as UTF-8, a lone surrogate as '?'");
    tap_ok(is(reasons("{\"finish_reason\":\"\\u00zz\"}"), "u00zz"),
           "a \\u without four hex digits is kept as sent");

    memset(big, 'r', sizeof(big));
    memcpy(big, "{\"finish_reason\":\"", 18);
    memcpy(big + 100, "\"}", 3);
    n = strlen(reasons(big));
    tap_ok(n == GPUGATE_OAI_REASON_MAX, "a long reason is cut to %d bytes "
           "(%zu)", GPUGATE_OAI_REASON_MAX, n);

    tap_ok(is(reasons("{\"choices\":[{\"finish_reason\":\"a\"},"
                      "{\"finish_reason\":\"b\"},{\"finish_reason\":\"c\"},"
                      "{\"finish_reason\":\"d\"},{\"finish_reason\":\"e\"},"
                      "{\"finish_reason\":\"a\"}]}"), "a,b,c,d"),
           "at most %d reasons", GPUGATE_OAI_REASONS);
    tap_ok(is(reasons("{\"finish_reason\":\"\",\"finish_reason\":7,"
                      "\"finish_reason\":\"cut"), ""),
           "empty, non-string and cut values are no reasons");

    /* merge keeps the bounds; join the size given */

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    gpugate_oai_reasons_add(&a, (const unsigned char *) "stop", 4);
    gpugate_oai_reasons_add(&b, (const unsigned char *) "length", 6);
    gpugate_oai_reasons_add(&b, (const unsigned char *) "stop", 4);
    gpugate_oai_reasons_merge(&a, &b);
    tap_ok(is(joined(&a), "stop,length"), "merge: distinct, in order");

    {
        char  small[8];

        n = gpugate_oai_reasons_join(&a, small, sizeof(small));
        tap_ok(n == 4 && memcmp(small, "stop", 4) == 0,
               "join stops at a reason that does not fit");
    }

    /* streams, split at every byte */

    tap_ok(all_splits(chat_stream, "length,stop"),
           "a chat stream: every split, framer and stripper");
    tap_ok(all_splits(anthropic_stream, "max_tokens"),
           "an Anthropic stream: every split");
    tap_ok(all_splits(responses_stream, "max_output_tokens"),
           "a responses stream: every split, in_progress skipped");

    return tap_done();
}
