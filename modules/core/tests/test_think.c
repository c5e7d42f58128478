
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the reasoning split: answers with and without the tags,
 * escaped tags, tags cut at every byte, unclosed reasoning, and the JSON
 * walk that finds the content and writes the split members.
 */


#include <stdio.h>
#include <string.h>

#include "gpugate_think.h"
#include "tap.h"


typedef struct {
    unsigned char  reason[4096];
    size_t         rlen;
    unsigned char  content[4096];
    size_t         clen;
    int            opened;
} split_t;


/* "s" fed in pieces of "step" bytes (0: whole), with these tags */

static void
split(const char *s, size_t step, const char *open, const char *close,
    split_t *out)
{
    size_t           len, off, n;
    gpugate_think_t  t;

    gpugate_think_init(&t, open, strlen(open), close, strlen(close));

    out->rlen = 0;
    out->clen = 0;
    len = strlen(s);

    for (off = 0; off < len; off += n) {
        n = (step && step < len - off) ? step : len - off;
        gpugate_think_feed(&t, (const unsigned char *) s + off, n,
                           out->reason, &out->rlen, out->content,
                           &out->clen);
    }

    gpugate_think_end(&t, out->reason, &out->rlen, out->content,
                      &out->clen);

    out->opened = gpugate_think_opened(&t);
}


static int
is(const unsigned char *p, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(p, s, len) == 0;
}


/* the answer split whole and at every piece size gives reason/content */

static void
check(const char *name, const char *s, const char *reason,
    const char *content)
{
    int      bad;
    size_t   step;
    split_t  o;

    bad = 0;

    for (step = 0; step <= strlen(s); step++) {
        split(s, step, "<think>", "</think>", &o);

        if (!is(o.reason, o.rlen, reason) || !is(o.content, o.clen, content))
        {
            printf("# step %zu: reason \"%.*s\" content \"%.*s\"\n", step,
                   (int) o.rlen, o.reason, (int) o.clen, o.content);
            bad = 1;
            break;
        }
    }

    tap_ok(!bad, "%s", name);
}


static void
test_machine(void)
{
    split_t  o;

    check("no tag: all content", "Hello world", "", "Hello world");
    check("plain tag", "<think>hmm</think>Answer", "hmm", "Answer");
    check("leading whitespace, escaped", " \\n\\t<think>a b</think>\\n\\nX",
          "a b", "X");
    check("escaped tags \\u003c", "\\u003cthink\\u003eR\\u003c/think\\u003eC",
          "R", "C");
    check("upper-case hex, escaped slash",
          "\\u003Cthink\\u003ER\\u003C\\/think\\u003EC", "R", "C");
    check("unclosed: all reasoning", "<think>still thinking",
          "still thinking", "");
    check("unclosed with a partial close tag", "<think>abc</thi",
          "abc</thi", "");
    check("false close tags stay reasoning",
          "<think>a<b </thin </think-x <</think>c", "a<b </thin </think-x <",
          "c");
    check("tag not at the start", "Hi <think>x</think>y",
          "", "Hi <think>x</think>y");
    check("prefix of the tag only", "<thin", "", "<thin");
    check("whitespace only", " \\n ", "", " \\n ");
    check("another tag", "<thinking>x</thinking>", "",
          "<thinking>x</thinking>");
    check("escapes kept raw in both",
          "<think>\\\"q\\\" \\u00e9\\n</think>\\u00e9 \\\\",
          "\\\"q\\\" \\u00e9\\n", "\\u00e9 \\\\");
    check("empty reasoning", "<think></think>", "", "");
    check("only the closing tag is plain content", "</think>x", "",
          "</think>x");
    check("utf-8 bytes", "<think>\xc3\xa9</think>\xe2\x82\xac",
          "\xc3\xa9", "\xe2\x82\xac");
    check("non-ASCII escape never matches",
          "\\u0130think>x", "", "\\u0130think>x");

    split("[[x]]rest", 1, "[[", "]]", &o);
    tap_ok(is(o.reason, o.rlen, "x") && is(o.content, o.clen, "rest"),
           "configured tags");

    split("<x>aaaabc", 1, "<x>", "aab", &o);
    tap_ok(is(o.reason, o.rlen, "aa") && is(o.content, o.clen, "c"),
           "closing tag found after a partial match of itself");

    split("<think>x</think>y", 0, "<think>", "</think>", &o);
    tap_ok(o.opened, "opened is set");
}


static void
test_lead_cap(void)
{
    char             s[GPUGATE_THINK_LEAD_MAX + 32];
    split_t          o;
    gpugate_think_t  t;
    unsigned char    c[64];
    size_t           clen;

    memset(s, ' ', GPUGATE_THINK_LEAD_MAX + 1);
    strcpy(s + GPUGATE_THINK_LEAD_MAX + 1, "<think>x</think>");

    split(s, 7, "<think>", "</think>", &o);
    tap_ok(o.rlen == 0 && is(o.content, o.clen, s),
           "too much leading whitespace: no reasoning");

    gpugate_think_init(&t, "<think>", 7, "</think>", 8);
    clen = 0;
    gpugate_think_feed(&t, (const unsigned char *) " <thi", 5, c, &clen, c,
                       &clen);
    tap_ok(clen == 0 && gpugate_think_undecided(&t), "undecided");

    gpugate_think_give_up(&t, c, &clen);
    tap_ok(is(c, clen, " <thi") && t.state == GPUGATE_THINK_PASS,
           "given up: held bytes are content");
}


static void
test_json(void)
{
    int                   n;
    size_t                len;
    unsigned char         out[256];
    gpugate_think_loc_t   loc[4];

    static const char  chunk[] =
        "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\",\"content\":\"<th\\\"\"},\"finish_reason\":null}]}";

    static const char  answer[] =
        "{\"choices\":[{\"index\":1,\"message\":{\"content\":\"a\"}},"
        "{\"message\":{\"content\":null}},{\"message\":{\"content\":\"\"}}],"
        "\"usage\":{\"completion_tokens\":3,\"completion_tokens_details\":"
        "{\"reasoning_tokens\":12}}}";

    n = gpugate_think_locate((const unsigned char *) chunk,
                             sizeof(chunk) - 1, "delta", loc, 4);

    tap_ok(n == 1 && loc[0].index == 0
           && memcmp(chunk + loc[0].name, "\"content\"", 9) == 0
           && loc[0].value_len == 5
           && memcmp(chunk + loc[0].value, "<th\\\"", 5) == 0
           && chunk[loc[0].end] == '}',
           "chunk: delta.content found");

    n = gpugate_think_locate((const unsigned char *) chunk,
                             sizeof(chunk) - 1, "message", loc, 4);
    tap_ok(n == 0, "chunk: no message");

    n = gpugate_think_locate((const unsigned char *) answer,
                             sizeof(answer) - 1, "message", loc, 4);
    tap_ok(n == 2 && loc[0].index == 1 && loc[1].index == 2
           && loc[1].value_len == 0, "answer: string contents, indexes");

    n = gpugate_think_locate((const unsigned char *) "{\"choices\":[{]}",
                             15, "delta", loc, 4);
    tap_ok(n == -1, "malformed: -1");

    n = gpugate_think_locate((const unsigned char *) "[1]", 3, "delta",
                             loc, 4);
    tap_ok(n == -1, "not an object: -1");

    tap_ok(gpugate_think_reported((const unsigned char *) answer,
                                  sizeof(answer) - 1) == 12,
           "reported reasoning tokens");
    tap_ok(gpugate_think_reported((const unsigned char *) chunk,
                                  sizeof(chunk) - 1) == -1,
           "none reported");
    tap_ok(gpugate_think_reported((const unsigned char *)
               "{\"completion_tokens_details\":", 29) == -1,
           "cut off: none");

    len = gpugate_think_member(out, (const unsigned char *) "r", 1,
                               (const unsigned char *) "c", 1);
    tap_ok(is(out, len, "\"reasoning_content\":\"r\",\"content\":\"c\""),
           "member: both");

    len = gpugate_think_member(out, (const unsigned char *) "", 0, NULL, 0);
    tap_ok(is(out, len, "\"reasoning_content\":\"\""), "member: reasoning");

    len = gpugate_think_member(out, NULL, 0, (const unsigned char *) "c", 1);
    tap_ok(is(out, len, "\"content\":\"c\""), "member: content");
}


int
main(void)
{
    test_machine();
    test_lead_cap();
    test_json();

    return tap_done();
}
