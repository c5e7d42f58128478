
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of gpugate_oai_event_classify_strip(), the stripper's one
 * walk that also classifies: for every event, valid or not, it must give
 * the bytes gpugate_oai_event_strip() gives and the chunk
 * gpugate_oai_chunk_classify() gives of the event's data.  Events of each
 * dialect, in events of one data line and of several lines, then each of
 * them with every byte replaced by each of the bytes that change JSON's
 * structure, and cut at every length.
 */


#include <stdlib.h>
#include <string.h>

#include "gpugate_oai_chunk.h"
#include "tap.h"


static const char  *events[] = {
    /* OpenAI chat with include_usage: every chunk, then the usage one */
    "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{"
    "\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}],\"usage\":null}",
    "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
    "\" a \\\"b\\\"\"},\"finish_reason\":null}],\"usage\":null}",
    "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"length\"}],\"usage\":null}",
    "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,"
    "\"completion_tokens\":3,\"total_tokens\":5,\"prompt_tokens_details\":"
    "{\"cached_tokens\":1}}}",
    "{\"usage\":null,\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":"
    "\"t\"}]},\"finish_reason\":\"tool_calls\"}]}",
    "{ \"choices\" : [ { \"delta\" : { \"reasoning_content\" : \"hm\" } } ]"
    " , \"usage\" : null }",
    "{\"choices\":[{\"text\":\"x\",\"finish_reason\":\"stop\"},{\"text\":"
    "\"y\",\"finish_reason\":\"length\"}],\"usage\":null}",
    /* the responses API and Anthropic */
    "{\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}",
    "{\"type\":\"response.completed\",\"response\":{\"status\":"
    "\"completed\",\"incomplete_details\":null,\"usage\":{\"input_tokens\":"
    "4,\"output_tokens\":5,\"input_tokens_details\":{\"cached_tokens\":2}"
    "}}}",
    "{\"type\":\"response.incomplete\",\"response\":{\"status\":"
    "\"incomplete\",\"incomplete_details\":{\"reason\":"
    "\"max_output_tokens\"}}}",
    "{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":"
    "7,\"cache_creation_input_tokens\":1,\"cache_read_input_tokens\":2}}}",
    "{\"type\":\"content_block_delta\",\"delta\":{\"type\":"
    "\"thinking_delta\",\"thinking\":\"so\"}}",
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
    "\"usage\":{\"output_tokens\":9}}",
    "{\"type\":\"message_stop\"}",
    /* errors, [DONE], nesting, and what is not an object */
    "{\"error\":{\"message\":\"x\",\"type\":\"server_error\"}}",
    "[DONE]",
    "{\"a\":[[[{\"usage\":null}]]],\"usage\":null,\"b\":{\"c\":[1,2.5e3,"
    "true,false,null]}}",
    "[{\"usage\":null}]",
    "\"usage\"",
    ""
};


/* lines before and after the data line, for events of several lines */
static const char  *more[][2] = {
    { "data: a\ndata: ", "\n\n" },
    { "data\ndata: ", "\n\n" },
    { "data:\r\ndata:", "\r\n\r" },
    { ": ping\ndata: ", "\n\n" },
    { "data: ", "\n: ping\n\n" },
    { "data: ", "\ndata\n\n" },
    { "data: ", "\rdata:\r\r" },
    { "data: ", "\nid: 1\n\n" },
    { "event: x\ndata: ", "\n\n" }
};


/* the bytes tried in place of each byte of each event */
static const char  bytes[] = "\"\\{}[],: \x01n0";


static int
same_chunk(const gpugate_oai_chunk_t *a, const gpugate_oai_chunk_t *b)
{
    unsigned  i;

    if (a->done != b->done || a->parsed != b->parsed
        || a->content != b->content || a->usage_only != b->usage_only
        || a->usage != b->usage || a->usage_out != b->usage_out
        || a->final != b->final || a->error != b->error
        || a->prompt_tokens != b->prompt_tokens
        || a->completion_tokens != b->completion_tokens
        || a->cache_read_tokens != b->cache_read_tokens
        || a->cache_write_tokens != b->cache_write_tokens
        || a->reasons.n != b->reasons.n)
    {
        return 0;
    }

    for (i = 0; i < a->reasons.n; i++) {
        if (a->reasons.len[i] != b->reasons.len[i]
            || memcmp(a->reasons.s[i], b->reasons.s[i], a->reasons.len[i])
               != 0)
        {
            return 0;
        }
    }

    return 1;
}


/*
 * "ev" (len bytes, a whole event) through the framer for its data, then
 * through both paths; 1 if they agree, -1 if it is not one event.
 */

static int
agree(const unsigned char *ev, size_t len)
{
    int                   done;
    size_t                n, ref, one;
    unsigned char         data[1024], a[1200], b[1200];
    gpugate_sse_t         sse;
    gpugate_oai_chunk_t   ca, cb;

    gpugate_sse_init(&sse, data, sizeof(data));
    n = gpugate_sse_feed(&sse, ev, len, &done);

    if (!done || n != len || !sse.has_data || sse.overflow) {
        return -1;
    }

    memcpy(a, ev, len);
    memcpy(b, ev, len);

    gpugate_oai_chunk_classify(sse.data, sse.data_len, &ca);
    ref = gpugate_oai_event_strip(a, len);

    one = gpugate_oai_event_classify_strip(b, len, sse.data, sse.data_len,
                                           &cb);

    if (one != ref || memcmp(a, b, ref) != 0 || !same_chunk(&ca, &cb)) {
        printf("# differs: \"%.*s\" (%zu vs %zu)\n", (int) len, ev, one,
               ref);
        return 0;
    }

    return 1;
}


/* "data: " json "\n\n" (or with "prefix" and "end" as given) */

static size_t
event(unsigned char *ev, const char *prefix, const unsigned char *json,
    size_t len, const char *end)
{
    size_t  n;

    n = strlen(prefix);
    memcpy(ev, prefix, n);
    memcpy(ev + n, json, len);
    n += len;
    memcpy(ev + n, end, strlen(end));

    return n + strlen(end);
}


int
main(void)
{
    int             r;
    size_t          i, j, k, len, n, tried, single, bad;
    unsigned char   json[1024], ev[1200];

    tried = 0;
    single = 0;
    bad = 0;

    for (i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        len = strlen(events[i]);
        memcpy(json, events[i], len);

        /* as it is, with other line ends and prefixes */

        n = event(ev, "data: ", json, len, "\n\n");
        bad += (agree(ev, n) != 1);
        n = event(ev, "data:", json, len, "\r\n\r");
        bad += (agree(ev, n) != 1);
        n = event(ev, "id: 1\ndata: ", json, len, "\r\r");
        bad += (agree(ev, n) != 1);
        tried += 3;

        /* the same data in events of more than one line */

        for (j = 0; j < sizeof(more) / sizeof(more[0]); j++) {
            n = event(ev, more[j][0], json, len, more[j][1]);
            bad += (agree(ev, n) != 1);
            tried++;
        }

        /* every byte replaced by each structural byte */

        for (j = 0; j < len; j++) {
            for (k = 0; k < sizeof(bytes) - 1; k++) {
                memcpy(json, events[i], len);
                json[j] = bytes[k];

                n = event(ev, "data: ", json, len, "\n\n");
                r = agree(ev, n);
                bad += (r == 0);
                tried++;
                single += (r == 1);
            }
        }

        /* cut at every length */

        memcpy(json, events[i], len);

        for (j = 0; j < len; j++) {
            n = event(ev, "data: ", json, j, "\n\n");
            r = agree(ev, n);
            bad += (r == 0);
            tried++;
            single += (r == 1);
        }
    }

    printf("# %zu events, %zu of them one data line\n", tried, single);

    tap_ok(bad == 0, "one walk: the stripper's bytes and the classifier's"
           " chunk for every event of %zu (%zu differ)", tried, bad);
    tap_ok(single > tried / 2, "most variants are one data line (%zu)",
           single);

    return tap_done();
}
