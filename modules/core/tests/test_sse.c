
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the SSE framer and the chunk classifier.  The central
 * property: however a stream is split into buffers, the same events come
 * out, each ending at the same byte.
 */


#include <stdlib.h>
#include <string.h>

#include "gpugate_sse.h"
#include "gpugate_oai_chunk.h"
#include "tap.h"


#define MAX_EVENTS  64


typedef struct {
    size_t   end[MAX_EVENTS];      /* stream offset after each event */
    char     data[MAX_EVENTS][512]; /* each event's data */
    int      has_field[MAX_EVENTS]; /* non-comment lines seen */
    int      n;                    /* events */
} events_t;


/* feeds "s" in pieces of "step" bytes (0: byte sizes 1,2,3,... cycling) */

static void
run(const char *stream, size_t len, size_t step, events_t *ev)
{
    size_t          off, piece, used, k;
    int             done;
    unsigned char   buf[512];
    gpugate_sse_t   s;

    memset(ev, 0, sizeof(events_t));
    gpugate_sse_init(&s, buf, sizeof(buf) - 1);

    off = 0;
    k = 1;

    while (off < len) {
        piece = step ? step : k++ % 7 + 1;
        if (piece > len - off) {
            piece = len - off;
        }

        while (piece) {
            used = gpugate_sse_feed(&s, (const unsigned char *) stream + off,
                                    piece, &done);
            off += used;
            piece -= used;

            if (done && ev->n < MAX_EVENTS) {
                ev->end[ev->n] = off;
                memcpy(ev->data[ev->n], buf, s.data_len);
                ev->data[ev->n][s.data_len] = '\0';
                ev->has_field[ev->n] = s.has_field;
                ev->n++;
                gpugate_sse_next(&s);
            }
        }
    }
}


static void
classify(const char *data, gpugate_oai_chunk_t *c)
{
    gpugate_oai_chunk_classify((const unsigned char *) data, strlen(data), c);
}


static int
same(events_t *a, events_t *b)
{
    int  i;

    if (a->n != b->n) {
        return 0;
    }

    for (i = 0; i < a->n; i++) {
        if (a->end[i] != b->end[i] || strcmp(a->data[i], b->data[i]) != 0
            || a->has_field[i] != b->has_field[i])
        {
            return 0;
        }
    }

    return 1;
}



/* prompt-cache tokens in each dialect, and what an images request asks */

static void
test_usage_extra(void)
{
    long long            n;
    const char          *size;
    gpugate_oai_chunk_t  c;

    static const struct {
        const char  *data;
        long long    read, write, prompt;
        const char  *what;
    } cases[] = {
        { "{\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
          "\"completion_tokens\":2,\"prompt_tokens_details\":"
          "{\"cached_tokens\":4,\"audio_tokens\":0}}}", 4, -1, 9,
          "chat: prompt_tokens_details.cached_tokens" },
        { "{\"choices\":[],\"usage\":{\"prompt_tokens_details\":"
          "{\"cached_tokens\":4},\"prompt_tokens\":9}}", 4, -1, 9,
          "chat: details before the count" },
        { "{\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
          "\"completion_tokens\":2}}", -1, -1, 9,
          "chat without details: not reported" },
        { "{\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
          "\"prompt_tokens_details\":null}}", -1, -1, 9,
          "chat: null details: not reported" },
        { "{\"usage\":{\"prompt_tokens\":9,\"x\":{\"cached_tokens\":"
          "5}}}", -1, -1, 9, "cached_tokens of another object: not it" },
        { "{\"type\":\"response.completed\",\"response\":{\"usage\":"
          "{\"input_tokens\":11,\"input_tokens_details\":"
          "{\"cached_tokens\":3},\"output_tokens\":4}}}", 3, -1, 11,
          "responses: input_tokens_details.cached_tokens" },
        { "{\"type\":\"message_start\",\"message\":{\"usage\":"
          "{\"input_tokens\":20,\"cache_creation_input_tokens\":5,"
          "\"cache_read_input_tokens\":7,\"output_tokens\":1}}}",
          7, 5, 32, "Anthropic: read and creation, both in the prompt" },
        { "{\"type\":\"message_delta\",\"usage\":{\"input_tokens\":20,"
          "\"cache_read_input_tokens\":0,\"output_tokens\":9}}",
          0, -1, 20, "Anthropic: a reported 0 is 0" },
        { "{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}",
          -1, -1, 0, "Anthropic's output-only delta says nothing" }
    };

    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        classify(cases[i].data, &c);
        tap_ok(c.cache_read_tokens == cases[i].read
               && c.cache_write_tokens == cases[i].write
               && c.prompt_tokens == cases[i].prompt, "%s", cases[i].what);
    }

#define ASKED(body)  gpugate_oai_images_asked((const unsigned char *) body, \
                                              strlen(body), &n, &size)

    ASKED("{\"prompt\":\"a\",\"n\":3,\"size\":\"1024x1024\"}");
    tap_ok(n == 3 && size && strcmp(size, "1024x1024") == 0,
           "images asked: n and a known size");
    ASKED("{\"prompt\":\"n\",\"size\":\"auto\"}");
    tap_ok(n == 1 && size && strcmp(size, "auto") == 0,
           "images asked: no n is 1");
    ASKED("{\"n\":0,\"size\":\"1024x10240\"}");
    tap_ok(n == 1 && size == NULL, "images asked: n 0 is 1, a longer "
           "size is not known");
    ASKED("{\"n\":\"2\",\"size\":\"1024x1024 \"}");
    tap_ok(n == 1 && size == NULL, "images asked: n as a string, a size "
           "with a space");
    ASKED("{\"n\":1001,\"size\":\"10\\u0032\"}");
    tap_ok(n == 1 && size == NULL, "images asked: n over 1000, a size "
           "with an escape");
    ASKED("{\"extra\":{\"n\":5,\"size\":\"512x512\"},\"size\":7}");
    tap_ok(n == 1 && size == NULL, "images asked: nested members are not "
           "the request's");
    ASKED("[1]");
    tap_ok(n == 1 && size == NULL, "images asked: not an object");

#undef ASKED

    tap_ok(gpugate_oai_image_size("512x512", 7) != NULL
           && gpugate_oai_image_size("512x51", 6) == NULL
           && gpugate_oai_image_size("", 0) == NULL
           && gpugate_oai_image_size("AUTO", 4) == NULL,
           "image sizes: exact matches only");
}

int
main(void)
{
    size_t               step, len, i;
    events_t             one, other;
    gpugate_oai_chunk_t  c;
    int                  all_same;

    static const char  openai[] =
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\" hi\"},\"finish_reason\":null}]}\n\n"
        ": keepalive\n\n"
        "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
        "\"completion_tokens\":1,\"total_tokens\":4}}\n\n"
        "data: [DONE]\n\n";

    static const char  mixed[] =
        "event: message\r\ndata: a\r\ndata:b\r\n\r\n"
        "id: 7\rdata:  two spaces\r\r"
        "data\n\n"
        "retry: 10\n\n";

    len = sizeof(openai) - 1;
    run(openai, len, len, &one);

    tap_ok(one.n == 5, "an OpenAI stream is 5 events (%d)", one.n);
    tap_ok(one.end[4] == len, "the last event ends at the last byte");
    tap_ok(strcmp(one.data[4], "[DONE]") == 0, "[DONE] is the last data");
    tap_ok(one.has_field[2] == 0 && one.data[2][0] == '\0',
           "a comment-only event has no field");

    all_same = 1;
    for (step = 1; step < len; step++) {
        run(openai, len, step, &other);
        all_same &= same(&one, &other);
    }
    run(openai, len, 0, &other);
    all_same &= same(&one, &other);
    tap_ok(all_same, "every split size gives the same events and ends");

    gpugate_oai_chunk_classify((unsigned char *) one.data[0],
                               strlen(one.data[0]), &c);
    tap_ok(c.parsed && !c.content && !c.usage,
           "the role chunk is not a token");
    gpugate_oai_chunk_classify((unsigned char *) one.data[1],
                               strlen(one.data[1]), &c);
    tap_ok(c.content && !c.usage_only, "a content chunk is a token");
    gpugate_oai_chunk_classify((unsigned char *) one.data[3],
                               strlen(one.data[3]), &c);
    tap_ok(c.usage && c.usage_only && c.prompt_tokens == 3
           && c.completion_tokens == 1, "the usage-only chunk and counts");
    gpugate_oai_chunk_classify((unsigned char *) one.data[4],
                               strlen(one.data[4]), &c);
    tap_ok(c.done, "[DONE] recognised");

    len = sizeof(mixed) - 1;
    run(mixed, len, len, &one);
    tap_ok(one.n == 4, "CRLF, CR and LF line ends: 4 events (%d)", one.n);
    tap_ok(strcmp(one.data[0], "a\nb") == 0,
           "data lines joined with newlines, one space stripped");
    tap_ok(strcmp(one.data[1], " two spaces") == 0,
           "only one leading space is stripped");
    tap_ok(one.has_field[2] && one.data[2][0] == '\0',
           "a bare \"data\" line is an empty data field");
    tap_ok(one.has_field[3] && one.data[3][0] == '\0',
           "retry: is a field without data");

    all_same = 1;
    for (step = 1; step < len; step++) {
        run(mixed, len, step, &other);
        all_same &= same(&one, &other);
    }
    tap_ok(all_same, "CR at a buffer end followed by LF: same events");

    /* data longer than the buffer: framed, flagged, truncated */
    {
        char            big[3000];
        unsigned char   small[16];
        int             done;
        gpugate_sse_t   s;

        memcpy(big, "data: ", 6);
        memset(big + 6, 'x', 2000);
        memcpy(big + 2006, "\n\n", 2);

        gpugate_sse_init(&s, small, sizeof(small));
        i = gpugate_sse_feed(&s, (unsigned char *) big, 2008, &done);
        tap_ok(done && i == 2008 && s.overflow && s.data_len == 16,
               "overlong data: the event still ends in the right place");
    }

    classify("{\"choices\":[{\"text\":"
                               "\"x\"}]}", &c);
    tap_ok(c.content, "a completions text chunk is a token");
    classify("{\"choices\":[{\"delta\":"
                               "{\"tool_calls\":[{}]}}]}", &c);
    tap_ok(c.content, "a tool call is a token");
    classify("{\"error\":{}}", &c);
    tap_ok(c.error && !c.content, "an error object mid-stream");
    classify("{\"usage\":{\"prompt_tokens"
                               "\":-1}}", &c);
    tap_ok(!c.usage, "negative counts are not usage");
    classify("not json", &c);
    tap_ok(!c.parsed && !c.content && !c.done, "garbage is nothing");
    classify("{\"choices\":[{\"message\":"
                               "{\"content\":\"a\"}}],\"usage\":{"
                               "\"prompt_tokens\":5,\"completion_tokens\":"
                               "7}}", &c);
    tap_ok(c.content && c.usage && !c.usage_only && c.prompt_tokens == 5
           && c.completion_tokens == 7, "a whole answer: content and usage");

    /* the responses API's typed events */

    classify("{\"type\":\"response.created\",\"response\":{\"id\":"
             "\"r\",\"output\":[],\"usage\":null}}", &c);
    tap_ok(!c.content && !c.usage && !c.final, "response.created: nothing");
    classify("{\"type\":\"response.output_text.delta\",\"item_id\":\"m\","
             "\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}",
             &c);
    tap_ok(c.content && !c.final, "response.output_text.delta is a token");
    classify("{\"type\":\"response.completed\",\"response\":{\"id\":"
             "\"r\",\"usage\":{\"input_tokens\":11,"
             "\"input_tokens_details\":{\"cached_tokens\":3},"
             "\"output_tokens\":4,\"output_tokens_details\":"
             "{\"reasoning_tokens\":0},\"total_tokens\":15}}}", &c);
    tap_ok(c.final && c.usage && c.prompt_tokens == 11
           && c.completion_tokens == 4,
           "response.completed: final, usage from input/output_tokens");
    classify("{\"type\":\"response.incomplete\",\"response\":{}}", &c);
    tap_ok(c.final && !c.usage, "response.incomplete ends the stream");

    /* Anthropic's events: input at message_start, output at the delta */

    classify("{\"type\":\"message_start\",\"message\":{\"id\":\"msg\","
             "\"content\":[],\"usage\":{\"input_tokens\":20,"
             "\"cache_creation_input_tokens\":5,"
             "\"cache_read_input_tokens\":7,\"output_tokens\":1}}}", &c);
    tap_ok(c.usage && !c.content && c.prompt_tokens == 32
           && c.completion_tokens == 1,
           "message_start: input plus cache tokens, no token yet");
    classify("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
             "{\"type\":\"text_delta\",\"text\":\"Hel\"}}", &c);
    tap_ok(c.content && !c.usage, "content_block_delta is a token");
    classify("{\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
             "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\"}}",
             &c);
    tap_ok(c.content, "a tool input delta is a token");
    classify("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
             "\"end_turn\"},\"usage\":{\"output_tokens\":15}}", &c);
    tap_ok(c.usage_out && !c.usage && c.completion_tokens == 15 && !c.final,
           "message_delta: output tokens only");
    classify("{\"type\":\"message_stop\"}", &c);
    tap_ok(c.final && !c.usage && !c.usage_out, "message_stop is final");
    classify("{\"id\":\"msg\",\"type\":\"message\",\"content\":[{\"type\":"
             "\"text\",\"text\":\"x\"}],\"usage\":{\"input_tokens\":3,"
             "\"output_tokens\":2}}", &c);
    tap_ok(c.content && c.usage && !c.final && c.prompt_tokens == 3
           && c.completion_tokens == 2, "a whole Anthropic message");

    /* input-only answers */

    classify("{\"id\":\"r\",\"results\":[{\"index\":0,"
             "\"relevance_score\":0.9}],\"usage\":{\"total_tokens\":9}}",
             &c);
    tap_ok(c.usage && c.prompt_tokens == 9 && c.completion_tokens == 0,
           "rerank: total_tokens is input");
    classify("{\"text\":\"hello\",\"usage\":{\"type\":\"duration\","
             "\"seconds\":12}}", &c);
    tap_ok(c.usage && c.prompt_tokens == 12 && c.completion_tokens == 0,
           "a transcription's seconds are its input");
    classify("{\"type\":\"message_stopped\"}", &c);
    tap_ok(!c.final, "only the exact final types are final");

    /* data lines copied a line at a time: cut at every cap, any split */

    {
        static const char  ev[] = "data: 0123456789\r\n: c\ndata:abc\n\n";
        static const char  full[] = "0123456789\nabc";
        unsigned char      buf[32];
        gpugate_sse_t      s;
        size_t             cap, off, n, used;
        int                done, ok;

        ok = 1;

        for (cap = 0; cap <= sizeof(full); cap++) {
            for (step = 1; step <= sizeof(ev); step++) {
                memset(buf, 0, sizeof(buf));
                gpugate_sse_init(&s, buf, cap);
                off = 0;
                done = 0;

                while (off < sizeof(ev) - 1 && !done) {
                    n = sizeof(ev) - 1 - off;
                    n = n > step ? step : n;
                    used = gpugate_sse_feed(&s, (const unsigned char *) ev
                                            + off, n, &done);
                    off += used;
                }

                n = cap < sizeof(full) - 1 ? cap : sizeof(full) - 1;

                ok &= (done && off == sizeof(ev) - 1
                       && s.event_bytes == sizeof(ev) - 1
                       && s.data_len == n && memcmp(buf, full, n) == 0
                       && buf[n] == 0
                       && s.overflow == (cap < sizeof(full) - 1));
            }
        }

        tap_ok(ok, "data cut at every cap from 0 to its length + 1, "
               "overflow marked, fed in steps of every size");
    }

    /* names are found once per string (one pass): only as member names */

    classify("{\"choices\":[{\"delta\":{\"content\":\"say \\\"content\\\":"
             " \\\"x\\\" and \\\\\"},\"finish_reason\":null}],"
             "\"usage\":null}", &c);
    tap_ok(c.content && !c.usage, "escaped quotes and a backslash at a "
           "string's end: the value read, names inside it ignored");
    classify("{\"choices\":[{\"delta\":{\"role\":\"content\","
             "\"content\" : \"\"}}],\"x\":\"\\\"usage\\\":{\\\"prompt_tokens"
             "\\\":1}\"}", &c);
    tap_ok(!c.content && !c.usage, "a name as a value, an empty content "
           "after spaces, usage only inside a string: none counts");
    classify("{\"usage\":{\"prompt_tokens\":1},\"choices\":[],"
             "\"nested\":{\"usage\":{\"prompt_tokens\":7,"
             "\"completion_tokens\":3}}}", &c);
    tap_ok(c.usage && c.prompt_tokens == 7 && c.completion_tokens == 3
           && c.usage_only, "the last usage wins, choices found before it");
    classify("{\"error\":{\"message\":\"no\"},\"text\":\"t\","
             "\"error\":1}", &c);
    tap_ok(c.error && c.content, "the first error object wins");
    classify("{\"content\":\"cut", &c);
    tap_ok(c.content && c.parsed, "a value cut short still counts");
    classify("{\"text\":\"\",\"content", &c);
    tap_ok(!c.content && c.parsed, "a name cut short is none");

    {
        static const char  two[] = "{\"created\":1,\"data\":[{\"url\":"
                                   "\"u[,]\"},{\"b64_json\":\"QQ==\"}]}";
        static const char  none[] = "{\"created\":1,\"data\":[ ]}";
        static const char  bad[] = "{\"created\":1,\"data\":[{\"url\":";

        tap_ok(gpugate_oai_images_count((const unsigned char *) two,
                                        strlen(two)) == 2
               && gpugate_oai_images_count((const unsigned char *) none,
                                           strlen(none)) == 0
               && gpugate_oai_images_count((const unsigned char *) bad,
                                           strlen(bad)) == -1
               && gpugate_oai_images_count((const unsigned char *) "{}", 2)
                  == -1,
               "images counted from the data array (cut JSON: unknown)");
    }

    test_usage_extra();

    return tap_done();
}
