
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of gpugate_trace: traceparent accepted and refused (every
 * position with an uppercase, a non-hex byte, a dash out of place, every
 * length around 55, ids of zeros, version ff, later versions), the
 * format round trip, tracestate's grammar and bounds, ids never zero,
 * and OTLP/JSON that jansson reads back with every byte escaped.
 */


#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gpugate_trace.h"
#include "tap.h"


#define GOOD  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


static int
parses(const char *s, size_t len)
{
    gpugate_trace_ctx_t  tc;

    return gpugate_traceparent_parse(s, len, &tc) == GPUGATE_TRACE_OK;
}


static void
test_traceparent(void)
{
    int                  bad_upper, bad_hex, bad_dash, bad_len, rc;
    char                 s[80], out[GPUGATE_TRACEPARENT_LEN];
    size_t               i, len;
    gpugate_trace_ctx_t  tc;

    rc = gpugate_traceparent_parse(GOOD, strlen(GOOD), &tc);
    tap_ok(rc == GPUGATE_TRACE_OK && tc.flags == 1 && tc.trace_id[0] == 0x4b
           && tc.trace_id[15] == 0x36 && tc.span_id[0] == 0x00
           && tc.span_id[7] == 0xb7, "the spec's example parses");

    gpugate_traceparent_format(out, tc.trace_id, tc.span_id, tc.flags);
    tap_ok(memcmp(out, GOOD, GPUGATE_TRACEPARENT_LEN) == 0,
           "and formats back to itself");

    bad_upper = bad_hex = bad_dash = 0;

    for (i = 0; i < GPUGATE_TRACEPARENT_LEN; i++) {
        memcpy(s, GOOD, GPUGATE_TRACEPARENT_LEN);

        if (i == 2 || i == 35 || i == 52) {
            s[i] = '_';
            bad_dash += parses(s, GPUGATE_TRACEPARENT_LEN);
            s[i] = 'a';
            bad_dash += parses(s, GPUGATE_TRACEPARENT_LEN);
            continue;
        }

        s[i] = 'A';
        bad_upper += parses(s, GPUGATE_TRACEPARENT_LEN);
        s[i] = 'g';
        bad_hex += parses(s, GPUGATE_TRACEPARENT_LEN);
        s[i] = '-';
        bad_hex += parses(s, GPUGATE_TRACEPARENT_LEN);
        s[i] = '\0';
        bad_hex += parses(s, GPUGATE_TRACEPARENT_LEN);
    }

    tap_ok(bad_upper == 0, "an uppercase digit anywhere is refused");
    tap_ok(bad_hex == 0, "a non-hex byte anywhere is refused");
    tap_ok(bad_dash == 0, "each separator must be a dash");

    bad_len = 0;

    for (len = 0; len < sizeof(s); len++) {
        memset(s, 'a', sizeof(s));
        memcpy(s, GOOD, GPUGATE_TRACEPARENT_LEN);
        bad_len += (len != GPUGATE_TRACEPARENT_LEN && parses(s, len));
    }

    tap_ok(bad_len == 0, "version 00 of any other length is refused");

    tap_ok(gpugate_traceparent_parse(
               "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
               55, &tc) == GPUGATE_TRACE_E_ZERO_TRACE,
           "a trace id of zeros is refused");
    tap_ok(gpugate_traceparent_parse(
               "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
               55, &tc) == GPUGATE_TRACE_E_ZERO_PARENT,
           "a parent id of zeros is refused");
    tap_ok(gpugate_traceparent_parse(
               "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
               55, &tc) == GPUGATE_TRACE_E_VERSION,
           "version ff is refused");
    tap_ok(parses("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                  55)
           && parses("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
                     "-01-what-the-future-holds", 80)
           && !parses("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
                      "-01what", 60),
           "a later version: its first 55 bytes, then a dash");
    tap_ok(parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                  55)
           && parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
                     "-ff", 55),
           "any flags byte of lowercase hex is taken");
    tap_ok(strcmp(gpugate_traceparent_error(GPUGATE_TRACE_E_HEX),
                  "not lowercase hex digits") == 0
           && strcmp(gpugate_traceparent_error(99), "unknown") == 0,
           "errors have names");
}


static void
test_tracestate(void)
{
    int     i;
    char    big[GPUGATE_TRACESTATE_MAX + 2];
    size_t  n;

    static const char  *good[] = {
        "", "rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        " rojo=1 ,  congo=2 ", "a=1,,b=c", "t@sys=v", "1tenant@vendor=x",
        "k=v with spaces", "a/b*c_d-e=!\"$%&'()*+-./:;<>?@[]^_`{|}~"
    };
    static const char  *bad[] = {
        "Rojo=1", "rojo", "=v", "rojo=", "rojo=v ,x", "k=a=b", "k=v\x01",
        "k=\xc3\xa9", "@sys=v", "t@=v", "t@Sys=v", "1abc=v",
        "t@waytoolongsystemname=v", "k=v,K=w", "a b=c"
    };

    for (i = 0; i < (int) (sizeof(good) / sizeof(good[0])); i++) {
        tap_ok(gpugate_tracestate_valid(good[i], strlen(good[i])),
               "tracestate \"%s\" taken", good[i]);
    }

    for (i = 0; i < (int) (sizeof(bad) / sizeof(bad[0])); i++) {
        tap_ok(!gpugate_tracestate_valid(bad[i], strlen(bad[i])),
               "tracestate #%d refused", i);
    }

    /* 32 members pass, 33 do not; 512 bytes pass, 513 do not */

    n = 0;
    for (i = 0; i < 33; i++) {
        n += (size_t) sprintf(big + n, "%sk%d=v", i ? "," : "", i);

        if (gpugate_tracestate_valid(big, n) != (i < 32)) {
            break;
        }
    }

    tap_ok(i == 33, "1 to 32 members taken, 33 refused (%d)", i);
    tap_ok(gpugate_tracestate_valid("k=a#b", 5), "a hash sign in a value");

    memset(big, 'x', sizeof(big));
    memcpy(big, "k=", 2);
    tap_ok(gpugate_tracestate_valid(big, 2 + 256)
           && !gpugate_tracestate_valid(big, 2 + 257),
           "a value of 256 bytes passes, 257 not");
    tap_ok(!gpugate_tracestate_valid(big, GPUGATE_TRACESTATE_MAX + 1),
           "over %d bytes is refused", GPUGATE_TRACESTATE_MAX);
}


static void
test_rng(void)
{
    int                  i, zero, same, below;
    double               u;
    uint8_t              seed[32], a[16], b[16];
    gpugate_trace_rng_t  rng;

    memset(seed, 0, sizeof(seed));
    gpugate_trace_rng_seed(&rng, seed);

    zero = same = below = 0;

    for (i = 0; i < 10000; i++) {
        gpugate_trace_rng_id(&rng, a, 16);
        gpugate_trace_rng_id(&rng, b, 8);
        zero += (a[0] | a[15]) == 0 && (b[0] | b[7]) == 0;
        same += memcmp(a, b, 8) == 0;
        u = gpugate_trace_rng_unit(&rng);
        below += u < 0.1;

        if (u < 0.0 || u >= 1.0) {
            zero += 1000;
        }
    }

    tap_ok(zero == 0 && same == 0, "ids from a zero seed are never zero "
           "nor repeated");
    tap_ok(below > 800 && below < 1200, "unit() is uniform enough: %d of "
           "10000 below 0.1", below);
}


static void
test_json(void)
{
    int                   i, bad;
    char                 *buf, raw[256];
    size_t                n, m;
    json_t               *root, *span, *attrs;
    json_error_t          err;
    gpugate_otlp_attr_t   attrs_in[5];
    gpugate_otlp_span_t   sp;

    static const uint8_t  tid[16] = { 0x4b, 0xf9, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                      10, 11, 12, 13, 14 };
    static const uint8_t  sid[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    static const uint8_t  pid[8] = { 8, 7, 6, 5, 4, 3, 2, 1 };

    for (i = 0; i < 256; i++) {
        raw[i] = (char) i;
    }

    memset(&sp, 0, sizeof(sp));
    sp.trace_id = tid;
    sp.span_id = sid;
    sp.parent_id = pid;
    sp.name = raw;
    sp.name_len = 256;
    sp.kind = 2;
    sp.start_ns = 1700000000000000000ULL;
    sp.end_ns = 1700000000123456789ULL;
    sp.error = 1;
    sp.tracestate = "rojo=1";
    sp.tracestate_len = 6;

    attrs_in[0] = (gpugate_otlp_attr_t) { "gen_ai.request.model",
                                          GPUGATE_OTLP_STR, "m\"\\\n\xff",
                                          5, 0, 0 };
    attrs_in[1] = (gpugate_otlp_attr_t) { "gen_ai.usage.input_tokens",
                                          GPUGATE_OTLP_INT, NULL, 0, -42, 0 };
    attrs_in[2] = (gpugate_otlp_attr_t) { "gpugate.partial",
                                          GPUGATE_OTLP_BOOL, NULL, 0, 1, 0 };
    attrs_in[3] = (gpugate_otlp_attr_t) { "gpugate.ttft",
                                          GPUGATE_OTLP_DOUBLE, NULL, 0, 0,
                                          0.25 };
    attrs_in[4] = (gpugate_otlp_attr_t) { "gen_ai.response.finish_reasons",
                                          GPUGATE_OTLP_STRS, "stop,length",
                                          11, 0, 0 };
    sp.attrs = attrs_in;
    sp.nattrs = 5;

    n = gpugate_otlp_span_json(NULL, 0, &sp);
    buf = malloc(n + 1);

    bad = 0;
    for (m = 0; m < n; m++) {
        /* too small: nothing past the room, the same length asked */
        memset(buf, '#', n + 1);
        bad += gpugate_otlp_span_json(buf, m, &sp) != n || buf[m] != '#';
    }
    tap_ok(bad == 0, "every size too small writes nothing past it");

    tap_ok(gpugate_otlp_span_json(buf, n, &sp) == n, "the span fits");

    root = json_loadb(buf, n, JSON_ALLOW_NUL, &err);
    tap_ok(root != NULL, "the span is JSON (%s)", root ? "" : err.text);

    span = root;
    tap_ok(span && strcmp(json_string_value(json_object_get(span, "traceId")),
                          "4bf90102030405060708090a0b0c0d0e") == 0
           && strcmp(json_string_value(json_object_get(span,
                                                        "parentSpanId")),
                     "0807060504030201") == 0
           && strcmp(json_string_value(json_object_get(span,
                                                       "endTimeUnixNano")),
                     "1700000000123456789") == 0
           && json_integer_value(json_object_get(span, "kind")) == 2
           && json_integer_value(json_object_get(json_object_get(span,
                                      "status"), "code")) == 2,
           "ids in hex, times as strings, kind and status");

    m = span ? json_string_length(json_object_get(span, "name")) : 0;
    tap_ok(m == 128 + 128 * 3, "the name's 256 bytes: ASCII as they are, "
           "the 128 others as U+FFFD (%zu bytes)", m);

    attrs = span ? json_object_get(span, "attributes") : NULL;
    tap_ok(json_array_size(attrs) == 5
           && strcmp(json_string_value(json_object_get(json_object_get(
                  json_array_get(attrs, 0), "value"), "stringValue")),
                  "m\"\\\n\xef\xbf\xbd") == 0
           && strcmp(json_string_value(json_object_get(json_object_get(
                  json_array_get(attrs, 1), "value"), "intValue")),
                  "-42") == 0
           && json_is_true(json_object_get(json_object_get(
                  json_array_get(attrs, 2), "value"), "boolValue"))
           && json_array_size(json_object_get(json_object_get(
                  json_object_get(json_array_get(attrs, 4), "value"),
                  "arrayValue"), "values")) == 2,
           "attributes of each type read back");

    json_decref(root);
    free(buf);

    /* valid UTF-8 of every length goes through unchanged */
    m = gpugate_otlp_escape(raw, sizeof(raw), "\xc3\xa9\xe2\x82\xac"
                            "\xf0\x9f\x98\x80", 9);
    tap_ok(m == 9 && memcmp(raw, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)
           == 0, "2, 3 and 4-byte characters pass");
    m = gpugate_otlp_escape(raw, sizeof(raw), "\xc0\xaf\xed\xa0\x80\xf4\x90"
                            "\x80\x80", 9);
    tap_ok(m == 9 * 6, "overlong, surrogate, past U+10FFFF: each byte "
           "U+FFFD");

    n = gpugate_otlp_head(NULL, 0, "gw\"1", 4);
    buf = malloc(n + sizeof(GPUGATE_OTLP_TAIL));
    gpugate_otlp_head(buf, n, "gw\"1", 4);
    memcpy(buf + n, GPUGATE_OTLP_TAIL, sizeof(GPUGATE_OTLP_TAIL));
    root = json_loads(buf, 0, &err);
    tap_ok(root != NULL && json_array_size(json_object_get(json_array_get(
               json_object_get(json_array_get(json_object_get(root,
               "resourceSpans"), 0), "scopeSpans"), 0), "spans")) == 0,
           "head and tail make an empty batch");
    json_decref(root);
    free(buf);
}


int
main(void)
{
    test_traceparent();
    test_tracestate();
    test_rng();
    test_json();

    return tap_done();
}
