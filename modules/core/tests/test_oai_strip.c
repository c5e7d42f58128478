
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the stripper: a stream asked for usage by the gateway
 * must reach the client exactly as the same stream without usage, however
 * it is split into buffers, and every event must come out in the call
 * that completes it.
 */


#include <stdlib.h>
#include <string.h>

#include "gpugate_oai_chunk.h"
#include "tap.h"


#define ID    "\"id\":\"chatcmpl-mock-7c5ecc2690386c64\",\"object\":" \
              "\"chat.completion.chunk\",\"created\":1700000000,"       \
              "\"model\":\"mock-model\","
#define ROLE  "\"choices\":[{\"index\":0,\"delta\":{\"role\":"          \
              "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]"
#define TOK   "\"choices\":[{\"index\":0,\"delta\":{\"content\":"       \
              "\" each\"},\"finish_reason\":null}]"
#define FIN   "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":" \
              "\"length\"}]"
#define USAGE "\"choices\":[],\"usage\":{\"prompt_tokens\":2,"          \
              "\"completion_tokens\":3,\"total_tokens\":5}"


/* what the mock runtime sends with include_usage, and without */

static const char  with_usage[] =
    "data: {" ID ROLE ",\"usage\":null}\n\n"
    "data: {" ID TOK ",\"usage\":null}\n\n"
    "data: {" ID FIN ",\"usage\":null}\n\n"
    "data: {" ID USAGE "}\n\n"
    "data: [DONE]\n\n";

static const char  without[] =
    "data: {" ID ROLE "}\n\n"
    "data: {" ID TOK "}\n\n"
    "data: {" ID FIN "}\n\n"
    "data: [DONE]\n\n";


typedef struct {
    unsigned char  out[8192];      /* what the client got */
    size_t         out_len;        /* its length */
    size_t         event_out[16];  /* out_len when each event ended */
    size_t         event_in[16];   /* input offset where each ended */
    int            events;         /* events seen */
    long long      prompt;         /* usage seen, -1: none */
    long long      completion;     /* usage seen */
} result_t;


/*
 * Feeds "s" in pieces of "step" bytes (0: sizes 1..7 cycling) through a
 * stripper whose hold starts at "hold_min" and doubles up to "hold_max",
 * the way the nginx filter drives it.
 */

static void
run(const char *s, size_t len, size_t step, size_t hold_min,
    size_t hold_max, int end, result_t *r)
{
    int                   what, nholds;
    size_t                off, piece, used, k, cap;
    unsigned char        *hold, *holds[32], data[4096];
    gpugate_oai_chunk_t   c;
    gpugate_oai_strip_t   st;

    memset(r, 0, sizeof(result_t));
    r->prompt = -1;

    nholds = 0;
    hold = malloc(hold_min);
    holds[nholds++] = hold;

    gpugate_oai_strip_init(&st, data, sizeof(data), hold, hold_min);

    off = 0;
    k = 1;

    while (off < len) {
        piece = step ? step : k++ % 7 + 1;
        if (piece > len - off) {
            piece = len - off;
        }

        while (piece) {
            used = gpugate_oai_strip_feed(&st, (const unsigned char *) s
                                          + off, piece, r->out,
                                          &r->out_len, &c, &what);
            off += used;
            piece -= used;

            if (what == GPUGATE_OAI_STRIP_EVENT) {
                if (r->events < 16) {
                    r->event_out[r->events] = r->out_len;
                    r->event_in[r->events] = off;
                }

                r->events++;

                if (c.usage) {
                    r->prompt = c.prompt_tokens;
                    r->completion = c.completion_tokens;
                }

            } else if (what == GPUGATE_OAI_STRIP_FULL) {
                if (st.hold_cap < hold_max && nholds < 32) {
                    cap = st.hold_cap * 2 > hold_max ? hold_max
                                                     : st.hold_cap * 2;
                    hold = malloc(cap);
                    holds[nholds++] = hold;
                    gpugate_oai_strip_grow(&st, hold, cap);

                } else {
                    gpugate_oai_strip_pass(&st, r->out, &r->out_len);
                }
            }
        }
    }

    if (end) {
        gpugate_oai_strip_pass(&st, r->out, &r->out_len);
    }

    while (nholds) {
        free(holds[--nholds]);
    }
}


static int
strip_is(const char *ev, const char *want)
{
    size_t          n;
    unsigned char   buf[1024];

    n = strlen(ev);
    memcpy(buf, ev, n);
    n = gpugate_oai_event_strip(buf, n);

    if (n != strlen(want) || memcmp(buf, want, n) != 0) {
        printf("# got \"%.*s\"\n", (int) n, buf);
        return 0;
    }

    return 1;
}


static int
unchanged(const char *ev)
{
    return strip_is(ev, ev);
}


/* every split of "in" gives "want", each event out when it completes */

static int
all_splits(const char *in, const char *want, size_t hold_min,
    size_t hold_max)
{
    int       ok, i;
    size_t    len, step;
    result_t  whole, r;

    len = strlen(in);
    run(in, len, len, hold_min, hold_max, 1, &whole);

    ok = (whole.out_len == strlen(want)
          && memcmp(whole.out, want, whole.out_len) == 0);

    if (!ok) {
        printf("# got \"%.*s\"\n", (int) whole.out_len, whole.out);
    }

    for (step = 0; ok && step <= len; step++) {
        run(in, len, step, hold_min, hold_max, 1, &r);

        if (r.out_len != whole.out_len
            || memcmp(r.out, whole.out, r.out_len) != 0
            || r.events != whole.events)
        {
            printf("# step %zu differs\n", step);
            ok = 0;
            break;
        }

        /* each event was written by the feed call that ended it */

        for (i = 0; i < r.events && i < 16; i++) {
            if (r.event_out[i] != whole.event_out[i]
                || r.event_in[i] != whole.event_in[i])
            {
                printf("# step %zu: event %d late\n", step, i);
                ok = 0;
            }
        }
    }

    return ok;
}


int
main(void)
{
    char      crlf_in[2048], crlf_want[2048], *q;
    size_t    len, i;
    result_t  r;

    /* single events */

    tap_ok(strip_is("data: {\"id\":\"x\",\"choices\":[],\"usage\":null}\n\n",
                    "data: {\"id\":\"x\",\"choices\":[]}\n\n"),
           "\"usage\":null after another member: removed with its comma");
    tap_ok(strip_is("data: {\"usage\":null,\"id\":\"x\"}\n\n",
                    "data: {\"id\":\"x\"}\n\n"),
           "\"usage\":null first: removed with the comma after it");
    tap_ok(strip_is("data: {\"a\": 1, \"usage\": null}\r\n\r",
                    "data: {\"a\": 1}\r\n\r"),
           "spaced JSON and CRLF: the same bytes as without usage");
    tap_ok(strip_is("data: { \"usage\" : null , \"b\": [1, {\"c\": 2}] }\n\n",
                    "data: { \"b\": [1, {\"c\": 2}] }\n\n"),
           "whitespace around a leading member");
    tap_ok(strip_is("data:{\"usage\":null}\n\n", "data:{}\n\n"),
           "the only member");
    tap_ok(strip_is("data: {" ID USAGE "}\n\n", ""),
           "the usage-only chunk is dropped");
    tap_ok(strip_is("data: {\"choices\": [ ], \"usage\": {}}\r\r", ""),
           "the usage-only chunk with spaces and CR line ends");
    tap_ok(strip_is("data: {\"choices\":[],\"prompt_filter_results\":[],"
                    "\"usage\":null}\n\n",
                    "data: {\"choices\":[],\"prompt_filter_results\":[]}"
                    "\n\n"),
           "empty choices without a usage object: kept, usage:null out");

    tap_ok(unchanged("data: {\"choices\":[{\"delta\":{}}],"
                     "\"usage\":{\"prompt_tokens\":1}}\n\n"),
           "usage next to content (runtimes that send it unasked): kept");
    tap_ok(unchanged("data: {\"choices\":[{\"usage\":null}]}\n\n"),
           "a nested \"usage\" is not the chunk's");
    tap_ok(unchanged("data: {\"x\":\"\\\"usage\\\":null\",\"y\":1}\n\n"),
           "\"usage\":null inside a string is text");
    tap_ok(unchanged("data: {\"usage\":null,\"usage\":null}\n\n"),
           "two usage members: not touched");
    tap_ok(unchanged("data: {\"choices\":[],\"choices\":[],\"usage\":{}}\n\n"),
           "two choices members: not touched");
    tap_ok(unchanged("data: {\"usage\":nullx}\n\n"), "not null: kept");
    tap_ok(unchanged("data: {\"usage\":null\n\n"), "unterminated object");
    tap_ok(unchanged("data: {\"a\":[},\"usage\":null}\n\n"),
           "mismatched brackets");
    tap_ok(unchanged("data: {\"a\":\"x,\"usage\":null}\n\n"),
           "a string that swallows the member");
    tap_ok(unchanged("data: {\"usage\":null} x\n\n"),
           "bytes after the object");
    tap_ok(unchanged("data: [{\"usage\":null}]\n\n"), "not an object");
    tap_ok(unchanged("data: {\"a\":\n"
                     "data: 1,\"usage\":null}\n\n"),
           "an event of two data lines is not rewritten");
    tap_ok(unchanged("id: 4\ndata: {\"usage\":null}\n\n"),
           "an event with other fields is not rewritten");
    tap_ok(unchanged("event: usage\ndata: {\"choices\":[],\"usage\":{}}\n\n"),
           "...nor dropped");
    tap_ok(unchanged(": ping\n\n"), "a comment passes");
    tap_ok(unchanged("data: [DONE]\n\n"), "[DONE] passes");
    tap_ok(unchanged("\n"), "a stray empty line passes");
    tap_ok(unchanged("Data: {\"usage\":null}\n\n"),
           "field names are case-sensitive");

    {
        char  deep[400];

        strcpy(deep, "data: {\"usage\":null,\"d\":");
        for (i = 0; i < 70; i++) {
            strcat(deep, "[");
        }
        for (i = 0; i < 70; i++) {
            strcat(deep, "]");
        }
        strcat(deep, "}\n\n");
        tap_ok(unchanged(deep), "nesting past the limit: not touched");
    }

    /* whole streams */

    len = strlen(with_usage);
    run(with_usage, len, len, 1024, 1024, 0, &r);
    tap_ok(r.out_len == strlen(without)
           && memcmp(r.out, without, r.out_len) == 0,
           "the mock's stream with usage becomes the stream without");
    tap_ok(r.prompt == 2 && r.completion == 3,
           "the dropped chunk's counts are reported");
    tap_ok(r.events == 5, "5 events reported (%d)", r.events);

    tap_ok(all_splits(with_usage, without, 1024, 1024),
           "every split size: the same bytes, no event late");
    tap_ok(all_splits(without, without, 1024, 1024),
           "a stream without usage passes byte for byte");

    /* the same with CRLF line ends: the LF after a dropped CR goes too */

    for (q = crlf_in, i = 0; with_usage[i]; i++) {
        if (with_usage[i] == '\n') {
            *q++ = '\r';
        }
        *q++ = with_usage[i];
    }
    *q = '\0';

    for (q = crlf_want, i = 0; without[i]; i++) {
        if (without[i] == '\n') {
            *q++ = '\r';
        }
        *q++ = without[i];
    }
    *q = '\0';

    tap_ok(all_splits(crlf_in, crlf_want, 1024, 1024),
           "CRLF: every split size gives the CRLF stream without usage");

    /* a hold that starts small and grows */

    tap_ok(all_splits(with_usage, without, 8, 1024),
           "a growing hold: the same bytes");

    /* events longer than the hold can grow to: passed unchanged */

    {
        char  longer[1024], want[1024];

        strcpy(longer, "data: {\"x\":\"");
        len = strlen(longer);
        memset(longer + len, 'a', 300);
        strcpy(longer + len + 300, "\",\"usage\":null}\n\n");
        strcpy(want, longer);
        strcat(longer, "data: {\"choices\":[],\"usage\":{}}\n\n"
                       "data: {\"usage\":null,\"y\":2}\n\n");
        strcat(want, "data: {\"y\":2}\n\n");

        tap_ok(all_splits(longer, want, 8, 128),
               "an event longer than the hold passes as it came; the "
               "events after it are stripped again");
    }

    /* the incomplete tail: held, and given back at the end */

    run("data: [DONE]\n\ndata: {\"us", 25, 25, 1024, 1024, 0, &r);
    tap_ok(r.out_len == 14, "an incomplete event is held back");
    run("data: [DONE]\n\ndata: {\"us", 25, 25, 1024, 1024, 1, &r);
    tap_ok(r.out_len == 25 && memcmp(r.out, "data: [DONE]\n\ndata: {\"us", 25)
           == 0, "...and passed unchanged at the end of the stream");

    return tap_done();
}
