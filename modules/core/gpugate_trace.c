
/*
 * Copyright (C) gpugate authors
 *
 * W3C Trace Context (Level 1) and OTLP/JSON spans; see gpugate_trace.h.
 */


#include <stdio.h>
#include <string.h>

#include "gpugate_trace.h"


/* a writer that counts what it would write past its end */
typedef struct {
    char    *out;
    size_t   size;
    size_t   len;
} gg_w_t;


static void
gg_w_put(gg_w_t *w, const char *s, size_t n)
{
    if (w->out != NULL && w->len + n <= w->size) {
        memcpy(w->out + w->len, s, n);
    }

    w->len += n;
}


#define gg_w_lit(w, s)  gg_w_put(w, s, sizeof(s) - 1)


static int
gg_hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    /* uppercase too is refused: the spec's HEXDIGLC */
    return -1;
}


static int
gg_hex_bytes(const char *s, uint8_t *out, size_t n)
{
    int     hi, lo;
    size_t  i;

    for (i = 0; i < n; i++) {
        hi = gg_hex_val(s[2 * i]);
        lo = gg_hex_val(s[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        out[i] = (uint8_t) (hi << 4 | lo);
    }

    return 0;
}


static int
gg_all_zero(const uint8_t *b, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (b[i]) {
            return 0;
        }
    }

    return 1;
}


/*
 * version "-" trace-id "-" parent-id "-" trace-flags.  Version 00 is
 * exactly 55 bytes.  A later version (01 to fe) is read as 00 when its
 * first 55 bytes are, and anything after them starts with a dash, as
 * the spec asks of a parser meeting a version it does not know.
 */

int
gpugate_traceparent_parse(const char *s, size_t len, gpugate_trace_ctx_t *tc)
{
    uint8_t  version;

    if (len < GPUGATE_TRACEPARENT_LEN) {
        return GPUGATE_TRACE_E_LENGTH;
    }

    if (gg_hex_bytes(s, &version, 1) != 0) {
        return GPUGATE_TRACE_E_HEX;
    }

    if (version == 0xff) {
        return GPUGATE_TRACE_E_VERSION;
    }

    if (version == 0 && len != GPUGATE_TRACEPARENT_LEN) {
        return GPUGATE_TRACE_E_LENGTH;
    }

    if (len > GPUGATE_TRACEPARENT_LEN && s[GPUGATE_TRACEPARENT_LEN] != '-') {
        return GPUGATE_TRACE_E_FORMAT;
    }

    if (s[2] != '-' || s[35] != '-' || s[52] != '-') {
        return GPUGATE_TRACE_E_FORMAT;
    }

    if (gg_hex_bytes(s + 3, tc->trace_id, GPUGATE_TRACE_ID_SIZE) != 0
        || gg_hex_bytes(s + 36, tc->span_id, GPUGATE_SPAN_ID_SIZE) != 0
        || gg_hex_bytes(s + 53, &tc->flags, 1) != 0)
    {
        return GPUGATE_TRACE_E_HEX;
    }

    if (gg_all_zero(tc->trace_id, GPUGATE_TRACE_ID_SIZE)) {
        return GPUGATE_TRACE_E_ZERO_TRACE;
    }

    if (gg_all_zero(tc->span_id, GPUGATE_SPAN_ID_SIZE)) {
        return GPUGATE_TRACE_E_ZERO_PARENT;
    }

    return GPUGATE_TRACE_OK;
}


const char *
gpugate_traceparent_error(int rc)
{
    static const char  *names[] = {
        "valid",
        "not 55 bytes long",
        "a separator out of place",
        "not lowercase hex digits",
        "version ff",
        "a trace id of zeros",
        "a parent id of zeros"
    };

    if (rc < 0 || rc > GPUGATE_TRACE_E_ZERO_PARENT) {
        return "unknown";
    }

    return names[rc];
}


void
gpugate_trace_hex(char *out, const uint8_t *b, size_t n)
{
    size_t  i;

    static const char  hex[] = "0123456789abcdef";

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 0x0f];
    }
}


void
gpugate_traceparent_format(char *out, const uint8_t *trace_id,
    const uint8_t *span_id, uint8_t flags)
{
    memcpy(out, "00-", 3);
    gpugate_trace_hex(out + 3, trace_id, GPUGATE_TRACE_ID_SIZE);
    out[35] = '-';
    gpugate_trace_hex(out + 36, span_id, GPUGATE_SPAN_ID_SIZE);
    out[52] = '-';
    gpugate_trace_hex(out + 53, &flags, 1);
}


/*
 * tracestate = list-member 0*31( OWS "," OWS list-member ), empty
 * members allowed; key = lcalpha 0*255(lcalpha / DIGIT / "_" / "-" /
 * "*" / "/"), or tenant "@" system (tenant may start with a digit, at
 * most 241 bytes; system at most 14); value = 0*255(chr) nblk-chr,
 * chr = 0x20 / nblk-chr, nblk-chr = 0x21-0x7e but "," and "=".
 */

static int
gg_key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
           || c == '-' || c == '*' || c == '/';
}


static int
gg_tracestate_member(const char *s, size_t len)
{
    size_t         i, at, eq;
    unsigned char  c;

    eq = len;
    at = len;

    for (i = 0; i < len; i++) {
        if (s[i] == '=') {
            eq = i;
            break;
        }
    }

    if (eq == len || eq == 0 || len - eq - 1 == 0 || len - eq - 1 > 256) {
        return 0;
    }

    /* the key */

    for (i = 0; i < eq; i++) {
        c = (unsigned char) s[i];

        if (c == '@' && at == len) {
            at = i;
            continue;
        }

        if (!gg_key_char(c)) {
            return 0;
        }
    }

    if (at == len) {
        if (eq > 256 || s[0] < 'a' || s[0] > 'z') {
            return 0;
        }

    } else if (at == 0 || at > 241 || eq - at - 1 == 0 || eq - at - 1 > 14
               || s[at + 1] < 'a' || s[at + 1] > 'z')
    {
        return 0;
    }

    /* the value: no "," or "=", and not ending in a space */

    for (i = eq + 1; i < len; i++) {
        c = (unsigned char) s[i];

        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') {
            return 0;
        }
    }

    return s[len - 1] != ' ';
}


int
gpugate_tracestate_valid(const char *s, size_t len)
{
    size_t  i, start, end, members;

    if (len > GPUGATE_TRACESTATE_MAX) {
        return 0;
    }

    members = 0;
    i = 0;

    for ( ;; ) {
        /* OWS, a member, OWS, then "," or the end */

        while (i < len && (s[i] == ' ' || s[i] == '\t')) {
            i++;
        }

        start = i;

        while (i < len && s[i] != ',') {
            i++;
        }

        end = i;

        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t')) {
            end--;
        }

        if (end > start) {
            if (++members > 32 || !gg_tracestate_member(s + start,
                                                        end - start))
            {
                return 0;
            }
        }

        if (i == len) {
            return 1;
        }

        i++;
    }
}


static uint64_t
gg_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}


static uint64_t
gg_rng_next(gpugate_trace_rng_t *rng)
{
    uint64_t  *s, result, t;

    s = rng->s;
    result = gg_rotl(s[1] * 5, 7) * 9;
    t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = gg_rotl(s[3], 45);

    return result;
}


void
gpugate_trace_rng_seed(gpugate_trace_rng_t *rng, const uint8_t *seed)
{
    memcpy(rng->s, seed, sizeof(rng->s));

    if (gg_all_zero((const uint8_t *) rng->s, sizeof(rng->s))) {
        /* the one state the generator cannot leave */
        rng->s[0] = 0x9e3779b97f4a7c15ULL;
    }
}


void
gpugate_trace_rng_id(gpugate_trace_rng_t *rng, uint8_t *out, size_t n)
{
    size_t    i;
    uint64_t  v;

    do {
        for (i = 0; i < n; i += 8) {
            v = gg_rng_next(rng);
            memcpy(out + i, &v, n - i < 8 ? n - i : 8);
        }
    } while (gg_all_zero(out, n));
}


double
gpugate_trace_rng_unit(gpugate_trace_rng_t *rng)
{
    return (double) (gg_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}


/*
 * Length of the UTF-8 character at s (at most len bytes), 0 when the
 * bytes there are not one (overlong forms, surrogates, past U+10FFFF).
 */

static size_t
gg_utf8_char(const unsigned char *s, size_t len)
{
    size_t    n, i;
    uint32_t  cp, min;

    if (s[0] < 0x80) {
        return 1;
    }

    if ((s[0] & 0xe0) == 0xc0) {
        n = 2; cp = s[0] & 0x1f; min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3; cp = s[0] & 0x0f; min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4; cp = s[0] & 0x07; min = 0x10000;
    } else {
        return 0;
    }

    if (n > len) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = cp << 6 | (s[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n;
}


static void
gg_w_escape(gg_w_t *w, const char *str, size_t len)
{
    char                  u[6];
    size_t                i, n;
    const unsigned char  *s;

    static const char  hex[] = "0123456789abcdef";

    s = (const unsigned char *) str;

    for (i = 0; i < len; i += n) {

        /* a run of bytes that need nothing goes in one piece */

        for (n = 0; i + n < len && s[i + n] >= 0x20 && s[i + n] < 0x7f
                    && s[i + n] != '"' && s[i + n] != '\\'; n++)
        {
            /* void */
        }

        if (n) {
            gg_w_put(w, (const char *) s + i, n);
            continue;
        }

        n = 1;

        if (s[i] == '"' || s[i] == '\\') {
            gg_w_put(w, "\\", 1);
            gg_w_put(w, (const char *) s + i, 1);

        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[s[i] >> 4];
            u[5] = hex[s[i] & 0x0f];
            gg_w_put(w, u, 6);

        } else if (s[i] < 0x80) {
            gg_w_put(w, (const char *) s + i, 1);

        } else {
            n = gg_utf8_char(s + i, len - i);

            if (n == 0) {
                gg_w_lit(w, "\\ufffd");
                n = 1;

            } else {
                gg_w_put(w, (const char *) s + i, n);
            }
        }
    }
}


size_t
gpugate_otlp_escape(char *out, size_t size, const char *s, size_t len)
{
    gg_w_t  w = { out, size, 0 };

    gg_w_escape(&w, s, len);

    return w.len;
}


static void
gg_w_u64(gg_w_t *w, uint64_t v)
{
    char  buf[24];
    int   n;

    n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long) v);
    gg_w_put(w, buf, (size_t) n);
}


static void
gg_w_hex(gg_w_t *w, const uint8_t *b, size_t n)
{
    char  buf[2 * GPUGATE_TRACE_ID_SIZE];

    gpugate_trace_hex(buf, b, n);
    gg_w_put(w, buf, 2 * n);
}


static void
gg_w_attr(gg_w_t *w, const gpugate_otlp_attr_t *a)
{
    int          n;
    char         buf[32];
    size_t       i, start;

    gg_w_lit(w, "{\"key\":\"");
    gg_w_put(w, a->key, strlen(a->key));
    gg_w_lit(w, "\",\"value\":{");

    switch (a->type) {

    case GPUGATE_OTLP_INT:
        /* proto3 JSON: 64-bit integers are strings */
        n = snprintf(buf, sizeof(buf), "\"intValue\":\"%lld\"",
                     (long long) a->i);
        gg_w_put(w, buf, (size_t) n);
        break;

    case GPUGATE_OTLP_BOOL:
        if (a->i) {
            gg_w_lit(w, "\"boolValue\":true");
        } else {
            gg_w_lit(w, "\"boolValue\":false");
        }
        break;

    case GPUGATE_OTLP_DOUBLE:
        n = snprintf(buf, sizeof(buf), "\"doubleValue\":%.6f", a->d);
        gg_w_put(w, buf, (size_t) n);
        break;

    case GPUGATE_OTLP_STRS:
        gg_w_lit(w, "\"arrayValue\":{\"values\":[");

        start = 0;

        for (i = 0; i <= a->len; i++) {
            if (i < a->len && a->s[i] != ',') {
                continue;
            }

            if (start) {
                gg_w_lit(w, ",");
            }

            gg_w_lit(w, "{\"stringValue\":\"");
            gg_w_escape(w, a->s + start, i - start);
            gg_w_lit(w, "\"}");
            start = i + 1;
        }

        gg_w_lit(w, "]}");
        break;

    default:
        gg_w_lit(w, "\"stringValue\":\"");
        gg_w_escape(w, a->s, a->len);
        gg_w_lit(w, "\"");
        break;
    }

    gg_w_lit(w, "}}");
}


size_t
gpugate_otlp_span_json(char *out, size_t size, const gpugate_otlp_span_t *sp)
{
    char    buf[8];
    size_t  i;
    gg_w_t  w = { out, size, 0 };

    gg_w_lit(&w, "{\"traceId\":\"");
    gg_w_hex(&w, sp->trace_id, GPUGATE_TRACE_ID_SIZE);
    gg_w_lit(&w, "\",\"spanId\":\"");
    gg_w_hex(&w, sp->span_id, GPUGATE_SPAN_ID_SIZE);
    gg_w_lit(&w, "\"");

    if (sp->parent_id) {
        gg_w_lit(&w, ",\"parentSpanId\":\"");
        gg_w_hex(&w, sp->parent_id, GPUGATE_SPAN_ID_SIZE);
        gg_w_lit(&w, "\"");
    }

    if (sp->tracestate_len) {
        gg_w_lit(&w, ",\"traceState\":\"");
        gg_w_escape(&w, sp->tracestate, sp->tracestate_len);
        gg_w_lit(&w, "\"");
    }

    gg_w_lit(&w, ",\"name\":\"");
    gg_w_escape(&w, sp->name, sp->name_len);
    gg_w_lit(&w, "\",\"kind\":");
    (void) snprintf(buf, sizeof(buf), "%d", sp->kind & 7);
    gg_w_put(&w, buf, 1);
    gg_w_lit(&w, ",\"startTimeUnixNano\":\"");
    gg_w_u64(&w, sp->start_ns);
    gg_w_lit(&w, "\",\"endTimeUnixNano\":\"");
    gg_w_u64(&w, sp->end_ns);
    gg_w_lit(&w, "\",\"attributes\":[");

    for (i = 0; i < sp->nattrs; i++) {
        if (i) {
            gg_w_lit(&w, ",");
        }

        gg_w_attr(&w, &sp->attrs[i]);
    }

    gg_w_lit(&w, "],\"status\":{\"code\":");

    if (sp->error) {
        gg_w_lit(&w, "2");
    } else {
        gg_w_lit(&w, "0");
    }

    gg_w_lit(&w, "}}");

    return w.len;
}


size_t
gpugate_otlp_head(char *out, size_t size, const char *service,
    size_t service_len)
{
    gg_w_t  w = { out, size, 0 };

    gg_w_lit(&w, "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
             "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"");
    gg_w_escape(&w, service, service_len);
    gg_w_lit(&w, "\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"gpugate\"},"
             "\"spans\":[");

    return w.len;
}
