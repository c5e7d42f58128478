
/*
 * Copyright (C) gpugate authors
 *
 * Request bodies are checked by a single-pass validating scanner instead
 * of a JSON tree: building and freeing a jansson tree for every request
 * cost ~35,000 instructions (callgrind), more than the rest of the
 * gateway's work on a request.  The scanner validates the whole grammar
 * (RFC 8259: strings with escapes and UTF-16 surrogate pairs, numbers,
 * literals, nesting up to GPUGATE_OAI_DEPTH) and remembers where the few
 * members the router needs are, so an alias is a splice of the original
 * bytes: everything else reaches the runtime byte for byte.
 */


#include <stdio.h>
#include <string.h>

#include "gpugate_models.h"
#include "gpugate_oai_body.h"


#define GPUGATE_OAI_DEPTH  64


typedef struct {
    const unsigned char  *p;       /* next byte */
    const unsigned char  *end;     /* end of the body */
    const char           *error;   /* first syntax error */
    int                   depth;   /* current nesting */
} gpugate_oai_scan_t;


/* the top-level members the router reads: where each value starts */

typedef struct {
    const unsigned char  *model;       /* "model" */
    const unsigned char  *stream;      /* "stream" */
    const unsigned char  *opts;        /* "stream_options" */
    const unsigned char  *need;        /* the endpoint's own member */
} gpugate_oai_members_t;


static int gpugate_oai_value(gpugate_oai_scan_t *s);


static void
gpugate_oai_ws(gpugate_oai_scan_t *s)
{
    while (s->p < s->end
           && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n'
               || *s->p == '\r'))
    {
        s->p++;
    }
}


static int
gpugate_oai_syntax(gpugate_oai_scan_t *s, const char *what)
{
    if (s->error == NULL) {
        s->error = what;
    }

    return -1;
}


static int
gpugate_oai_hex4(const unsigned char *p)
{
    int  i, v, c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;
        } else {
            return -1;
        }

        v = v << 4 | c;
    }

    return v;
}


/*
 * A string at s->p (on its opening quote).  Its raw bytes (between the
 * quotes) are returned in *raw / *raw_len; *plain is 1 when it has no
 * escapes, so the raw bytes are the value.  UTF-8 is checked for shape.
 */

static int
gpugate_oai_string(gpugate_oai_scan_t *s, const unsigned char **raw,
    size_t *raw_len, int *plain)
{
    int                   u, lo;
    unsigned char         c;
    const unsigned char  *start;

    start = ++s->p;
    *plain = 1;

    while (s->p < s->end) {
        c = *s->p;

        if (c == '"') {
            *raw = start;
            *raw_len = s->p - start;
            s->p++;
            return 0;
        }

        if (c < 0x20) {
            return gpugate_oai_syntax(s, "control character in a string");
        }

        if (c == '\\') {
            *plain = 0;

            if (s->end - s->p < 2) {
                break;
            }

            c = s->p[1];

            if (c == 'u') {
                if (s->end - s->p < 6
                    || (u = gpugate_oai_hex4(s->p + 2)) < 0)
                {
                    return gpugate_oai_syntax(s, "invalid \\u escape");
                }

                if (u == 0) {
                    return gpugate_oai_syntax(s, "\\u0000 is not allowed");
                }

                s->p += 6;

                if (u >= 0xd800 && u <= 0xdbff) {
                    /* a high surrogate needs its low half next */
                    if (s->end - s->p < 6 || s->p[0] != '\\'
                        || s->p[1] != 'u'
                        || (lo = gpugate_oai_hex4(s->p + 2)) < 0xdc00
                        || lo > 0xdfff)
                    {
                        return gpugate_oai_syntax(s, "invalid surrogate "
                                                  "pair");
                    }

                    s->p += 6;

                } else if (u >= 0xdc00 && u <= 0xdfff) {
                    return gpugate_oai_syntax(s, "invalid surrogate pair");
                }

                continue;
            }

            if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
                return gpugate_oai_syntax(s, "invalid escape");
            }

            s->p += 2;
            continue;
        }

        if (c >= 0x80) {
            /* the shape of UTF-8: a lead byte and its continuations */
            int  n = (c >= 0xf0 && c <= 0xf4) ? 3
                     : (c >= 0xe0) ? ((c <= 0xef) ? 2 : -1)
                     : (c >= 0xc2 && c <= 0xdf) ? 1 : -1;

            if (n < 0 || s->end - s->p <= n) {
                return gpugate_oai_syntax(s, "invalid UTF-8");
            }

            for (u = 1; u <= n; u++) {
                if ((s->p[u] & 0xc0) != 0x80) {
                    return gpugate_oai_syntax(s, "invalid UTF-8");
                }
            }

            s->p += n + 1;
            continue;
        }

        s->p++;
    }

    return gpugate_oai_syntax(s, "unterminated string");
}


static int
gpugate_oai_number(gpugate_oai_scan_t *s)
{
    const unsigned char  *p;

    p = s->p;

    if (p < s->end && *p == '-') {
        p++;
    }

    if (p >= s->end || *p < '0' || *p > '9') {
        return gpugate_oai_syntax(s, "invalid number");
    }

    if (*p == '0') {
        p++;

    } else {
        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < s->end && *p == '.') {
        p++;

        if (p >= s->end || *p < '0' || *p > '9') {
            return gpugate_oai_syntax(s, "invalid number");
        }

        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < s->end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p >= s->end || *p < '0' || *p > '9') {
            return gpugate_oai_syntax(s, "invalid number");
        }

        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    s->p = p;

    return 0;
}


static int
gpugate_oai_literal(gpugate_oai_scan_t *s, const char *word)
{
    size_t  n;

    n = strlen(word);

    if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        return gpugate_oai_syntax(s, "invalid literal");
    }

    s->p += n;

    return 0;
}


/* an object or array: only checked, its members are not remembered */

static int
gpugate_oai_container(gpugate_oai_scan_t *s)
{
    int                   plain;
    size_t                len;
    unsigned char         close;
    const unsigned char  *raw;

    close = (*s->p == '{') ? '}' : ']';

    if (++s->depth > GPUGATE_OAI_DEPTH) {
        return gpugate_oai_syntax(s, "nested too deeply");
    }

    s->p++;
    gpugate_oai_ws(s);

    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }

    for ( ;; ) {
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"') {
                return gpugate_oai_syntax(s, "expected a member name");
            }

            if (gpugate_oai_string(s, &raw, &len, &plain) != 0) {
                return -1;
            }

            gpugate_oai_ws(s);

            if (s->p >= s->end || *s->p != ':') {
                return gpugate_oai_syntax(s, "expected ':'");
            }

            s->p++;
        }

        if (gpugate_oai_value(s) != 0) {
            return -1;
        }

        gpugate_oai_ws(s);

        if (s->p < s->end && *s->p == ',') {
            s->p++;
            gpugate_oai_ws(s);
            continue;
        }

        if (s->p < s->end && *s->p == close) {
            s->p++;
            s->depth--;
            return 0;
        }

        return gpugate_oai_syntax(s, close == '}' ? "expected ',' or '}'"
                                                  : "expected ',' or ']'");
    }
}


static int
gpugate_oai_value(gpugate_oai_scan_t *s)
{
    int                   plain;
    size_t                len;
    const unsigned char  *raw;

    gpugate_oai_ws(s);

    if (s->p >= s->end) {
        return gpugate_oai_syntax(s, "unexpected end of the body");
    }

    switch (*s->p) {
    case '{':
    case '[':
        return gpugate_oai_container(s);
    case '"':
        return gpugate_oai_string(s, &raw, &len, &plain);
    case 't':
        return gpugate_oai_literal(s, "true");
    case 'f':
        return gpugate_oai_literal(s, "false");
    case 'n':
        return gpugate_oai_literal(s, "null");
    default:
        return gpugate_oai_number(s);
    }
}


static int
gpugate_oai_fail(gpugate_oai_body_t *b, const char *error, const char *param,
    const char *code)
{
    b->error = error;
    b->param = param;
    b->code = code;

    return -1;
}


/*
 * 1 if the raw member name is "name" (lowercase ASCII) when compared as
 * Go's encoding/json compares them, so as Ollama would read it: letters
 * without case, and the two non-ASCII letters that Unicode folds onto
 * ASCII ones, U+017F LONG S (s) and U+212A KELVIN SIGN (k).
 */

static int
gpugate_oai_name_folds(const unsigned char *raw, size_t len,
    const char *name)
{
    unsigned char         c;
    const unsigned char  *p, *end;

    p = raw;
    end = raw + len;

    for ( /* void */ ; *name; name++) {
        if (p >= end) {
            return 0;
        }

        c = *p;

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (c == (unsigned char) *name) {
            p++;
            continue;
        }

        if (*name == 's' && end - p >= 2 && p[0] == 0xc5 && p[1] == 0xbf) {
            p += 2;
            continue;
        }

        if (*name == 'k' && end - p >= 3 && p[0] == 0xe2 && p[1] == 0x84
            && p[2] == 0xaa)
        {
            p += 3;
            continue;
        }

        return 0;
    }

    return p == end;
}


/*
 * A member that is not one the router reads but that a case-insensitive
 * runtime would read as one: the router would check one value and the
 * runtime use another.  The checked name it stands for, or NULL.
 */

static const char *
gpugate_oai_case_variant(const unsigned char *raw, size_t len,
    const char *need)
{
    size_t       i;
    const char  *names[4];

    names[0] = "model";
    names[1] = "stream";
    names[2] = "stream_options";
    names[3] = need;

    for (i = 0; i < 4; i++) {
        if (gpugate_oai_name_folds(raw, len, names[i])) {
            return names[i];
        }
    }

    return NULL;
}


static int
gpugate_oai_fail_variant(gpugate_oai_body_t *b, const char *name,
    const char *param)
{
    snprintf(b->msg, sizeof(b->msg), "A member name differs from '%s' "
             "only by case (the request would be ambiguous).", name);

    return gpugate_oai_fail(b, b->msg, param, "invalid_value");
}


/* the kind of a value by its first byte */

enum {
    GPUGATE_OAI_V_NONE = 0, GPUGATE_OAI_V_NULL, GPUGATE_OAI_V_BOOL_TRUE,
    GPUGATE_OAI_V_BOOL_FALSE, GPUGATE_OAI_V_STRING, GPUGATE_OAI_V_ARRAY,
    GPUGATE_OAI_V_EMPTY_ARRAY, GPUGATE_OAI_V_OBJECT, GPUGATE_OAI_V_OTHER
};


static int
gpugate_oai_kind_of(const unsigned char *v, const unsigned char *end)
{
    const unsigned char  *p;

    switch (*v) {
    case 'n': return GPUGATE_OAI_V_NULL;
    case 't': return GPUGATE_OAI_V_BOOL_TRUE;
    case 'f': return GPUGATE_OAI_V_BOOL_FALSE;
    case '"': return GPUGATE_OAI_V_STRING;
    case '{': return GPUGATE_OAI_V_OBJECT;
    case '[':
        for (p = v + 1; p < end && (*p == ' ' || *p == '\t' || *p == '\n'
                                    || *p == '\r'); p++) { /* void */ }
        return (p < end && *p == ']') ? GPUGATE_OAI_V_EMPTY_ARRAY
                                      : GPUGATE_OAI_V_ARRAY;
    default: return GPUGATE_OAI_V_OTHER;
    }
}


/* every element of the array at v is an object (messages) */

static int
gpugate_oai_all_objects(const unsigned char *v, const unsigned char *end)
{
    gpugate_oai_scan_t  s;

    s = (gpugate_oai_scan_t) { v + 1, end, NULL, 1 };

    for ( ;; ) {
        gpugate_oai_ws(&s);

        if (s.p >= s.end || *s.p != '{') {
            return 0;
        }

        if (gpugate_oai_container(&s) != 0) {
            return 0;
        }

        gpugate_oai_ws(&s);

        if (s.p < s.end && *s.p == ',') {
            s.p++;
            continue;
        }

        return 1;
    }
}


static int
gpugate_oai_fail_duplicate(gpugate_oai_body_t *b)
{
    return gpugate_oai_fail(b, "We could not parse the JSON body of your "
                            "request: duplicate member (the request is "
                            "ambiguous).", NULL, "invalid_json");
}


static int
gpugate_oai_fail_syntax(gpugate_oai_body_t *b, gpugate_oai_scan_t *s,
    const char *data, const char *error)
{
    snprintf(b->msg, sizeof(b->msg), "We could not parse the JSON body of "
             "your request: %s (at character %d).", error,
             (int) (s->p - (const unsigned char *) data));

    return gpugate_oai_fail(b, b->msg, NULL, "invalid_json");
}


/*
 * A top-level "priority" in any case (name to value's end).  Not refused:
 * the body is sent as is unless the pool forwards the gateway's priority;
 * then every spelling a runtime could read is replaced, so a client cannot
 * ask past its key's maximum.  A duplicate is cut with the separator
 * before it (b->members_end: the previous value's end).
 */

static void
gpugate_oai_note_priority(gpugate_oai_body_t *b, const unsigned char *name,
    const unsigned char *end)
{
    if (b->prio_start == NULL) {
        b->prio_start = name;
        b->prio_end = end;

    } else {
        b->prio_cut += end - b->members_end;
    }

    b->prio_count++;
}


/*
 * Reads the top-level object member by member up to the end of the body:
 * notes where the members the router reads start, refuses duplicates of
 * them, names with escapes and case variants; everything else is only
 * checked for syntax.
 */

static int
gpugate_oai_body_members(gpugate_oai_body_t *b, gpugate_oai_scan_t *s,
    const char *data, const char *need, gpugate_oai_members_t *m)
{
    int                   plain;
    size_t                raw_len;
    const unsigned char  *raw, *v, *name;
    const char           *variant;

    /* the top-level object, member by member */

    s->p++;
    s->depth = 1;
    gpugate_oai_ws(s);

    if (s->p < s->end && *s->p == '}') {
        s->p++;
        goto members_done;
    }

    for ( ;; ) {
        if (s->p >= s->end || *s->p != '"') {
            gpugate_oai_syntax(s, "expected a member name");
            goto syntax;
        }

        name = s->p;

        if (gpugate_oai_string(s, &raw, &raw_len, &plain) != 0) {
            goto syntax;
        }

        gpugate_oai_ws(s);

        if (s->p >= s->end || *s->p != ':') {
            gpugate_oai_syntax(s, "expected ':'");
            goto syntax;
        }

        s->p++;
        gpugate_oai_ws(s);

        v = s->p;

        if (gpugate_oai_value(s) != 0) {
            goto syntax;
        }

        /*
         * Member names the router reads are compared raw: a name written
         * with escapes ("mod\u0065l") is a different member to us, and a
         * runtime may read it as "model": refuse such bodies as ambiguous.
         */

#define gpugate_oai_name_is(n)                                                \
    (raw_len == sizeof(n) - 1 && memcmp(raw, n, sizeof(n) - 1) == 0)

        if (!plain) {
            return gpugate_oai_fail(b, "Top-level member names with escapes "
                                    "are not accepted (the request would "
                                    "be ambiguous).", NULL, "invalid_json");
        }

        if (gpugate_oai_name_is("model")) {
            if (m->model) {
                return gpugate_oai_fail_duplicate(b);
            }
            m->model = v;
            b->model_end = s->p;

        } else if (gpugate_oai_name_is("stream")) {
            if (m->stream) {
                return gpugate_oai_fail_duplicate(b);
            }
            m->stream = v;

        } else if (gpugate_oai_name_is("stream_options")) {
            if (m->opts) {
                return gpugate_oai_fail_duplicate(b);
            }
            m->opts = v;
            b->opts_end = s->p;

        } else if (raw_len == strlen(need)
                   && memcmp(raw, need, raw_len) == 0)
        {
            if (m->need) {
                return gpugate_oai_fail_duplicate(b);
            }
            m->need = v;
            b->need_start = v;
            b->need_end = s->p;

        } else if (gpugate_oai_name_folds(raw, raw_len, "priority")) {
            gpugate_oai_note_priority(b, name, s->p);

        } else {
            variant = gpugate_oai_case_variant(raw, raw_len, need);

            if (variant) {
                return gpugate_oai_fail_variant(b, variant, variant);
            }
        }

#undef gpugate_oai_name_is

        /* where a new member goes: after the last value, before any
           whitespace, so the body keeps its layout */
        b->members_end = s->p;

        gpugate_oai_ws(s);

        if (s->p < s->end && *s->p == ',') {
            s->p++;
            gpugate_oai_ws(s);
            continue;
        }

        if (s->p < s->end && *s->p == '}') {
            s->p++;
            break;
        }

        gpugate_oai_syntax(s, "expected ',' or '}'");
        goto syntax;
    }

members_done:

    gpugate_oai_ws(s);

    if (s->p != s->end) {
        gpugate_oai_syntax(s, "end of file expected");
        goto syntax;
    }

    return 0;

syntax:

    return gpugate_oai_fail_syntax(b, s, data, s->error);
}


/* "model": a plain string of 1 to 256 characters, copied to b */

static int
gpugate_oai_body_model(gpugate_oai_body_t *b, const unsigned char *model_v,
    const unsigned char *vend)
{
    int                   k, plain;
    size_t                raw_len;
    const unsigned char  *raw;
    gpugate_oai_scan_t    o;

    k = model_v ? gpugate_oai_kind_of(model_v, vend) : GPUGATE_OAI_V_NONE;

    if (k == GPUGATE_OAI_V_NONE || k == GPUGATE_OAI_V_NULL) {
        return gpugate_oai_fail(b, "You must provide a model parameter.",
                                "model", "missing_required_parameter");
    }

    if (k != GPUGATE_OAI_V_STRING) {
        return gpugate_oai_fail(b, "'model' must be a string.", "model",
                                "invalid_type");
    }

    o = (gpugate_oai_scan_t) { model_v, vend, NULL, 0 };
    (void) gpugate_oai_string(&o, &raw, &raw_len, &plain);

    if (!plain) {
        /* model names are plain ASCII; escapes would need decoding */
        return gpugate_oai_fail(b, "'model' must not contain escapes.",
                                "model", "invalid_value");
    }

    if (raw_len == 0 || raw_len > GPUGATE_OAI_MODEL_MAX) {
        return gpugate_oai_fail(b, "'model' must be 1 to 256 characters.",
                                "model", "invalid_value");
    }

    memcpy(b->model_buf, raw, raw_len);
    b->model_buf[raw_len] = '\0';
    b->model = b->model_buf;
    b->model_len = raw_len;
    b->model_start = model_v;

    return 0;
}


/* "stream" and "stream_options.include_usage": booleans or null */

static int
gpugate_oai_body_stream(gpugate_oai_body_t *b, const unsigned char *stream_v,
    const unsigned char *opts_v, const unsigned char *vend)
{
    int                   k, plain, seen_include;
    size_t                raw_len;
    const unsigned char  *raw, *ov;
    gpugate_oai_scan_t    o;

    if (stream_v) {
        k = gpugate_oai_kind_of(stream_v, vend);

        if (k != GPUGATE_OAI_V_NULL && k != GPUGATE_OAI_V_BOOL_TRUE
            && k != GPUGATE_OAI_V_BOOL_FALSE)
        {
            return gpugate_oai_fail(b, "'stream' must be a boolean.",
                                    "stream", "invalid_type");
        }

        b->stream = (k == GPUGATE_OAI_V_BOOL_TRUE);
    }

    b->opts_start = opts_v;

    if (opts_v == NULL
        || gpugate_oai_kind_of(opts_v, vend) == GPUGATE_OAI_V_NULL)
    {
        return 0;
    }

    if (gpugate_oai_kind_of(opts_v, vend) != GPUGATE_OAI_V_OBJECT) {
        return gpugate_oai_fail(b, "'stream_options' must be an object.",
                                "stream_options", "invalid_type");
    }

    /* the object's syntax was checked with the whole body */

    o = (gpugate_oai_scan_t) { opts_v + 1, vend, NULL, 1 };
    seen_include = 0;
    gpugate_oai_ws(&o);

    while (o.p < o.end && *o.p == '"') {
        (void) gpugate_oai_string(&o, &raw, &raw_len, &plain);

        if (!plain) {
            return gpugate_oai_fail(b, "Member names with escapes are "
                                    "not accepted in stream_options "
                                    "(the request would be "
                                    "ambiguous).", "stream_options",
                                    "invalid_json");
        }

        gpugate_oai_ws(&o);
        o.p++;                                  /* ':' */
        gpugate_oai_ws(&o);
        ov = o.p;
        (void) gpugate_oai_value(&o);

        if (raw_len == 13 && memcmp(raw, "include_usage", 13) == 0) {
            if (seen_include) {
                return gpugate_oai_fail_duplicate(b);
            }
            seen_include = 1;

            k = gpugate_oai_kind_of(ov, vend);

            if (k != GPUGATE_OAI_V_NULL && k != GPUGATE_OAI_V_BOOL_TRUE
                && k != GPUGATE_OAI_V_BOOL_FALSE)
            {
                return gpugate_oai_fail(b, "'stream_options."
                                        "include_usage' must be a "
                                        "boolean.",
                                        "stream_options.include_usage",
                                        "invalid_type");
            }

            b->include_usage = (k == GPUGATE_OAI_V_BOOL_TRUE);
            b->usage_start = ov;
            b->usage_end = o.p;

        } else if (gpugate_oai_name_folds(raw, raw_len, "include_usage")) {
            return gpugate_oai_fail_variant(b, "include_usage",
                                            "stream_options.include_usage");
        }

        gpugate_oai_ws(&o);

        if (o.p < o.end && *o.p == ',') {
            o.p++;
            gpugate_oai_ws(&o);
        }
    }

    return 0;
}


/* the endpoint's own required member, by kind */

static const struct {
    const char  *name;             /* the member */
    unsigned     string:1;         /* a string is accepted */
    unsigned     array:1;          /* an array is accepted */
    unsigned     objects:1;        /* a non-empty array of objects only */
    unsigned     no_stream:1;      /* "stream": true is refused */
} gpugate_oai_needs[] = {
    { "messages", 0, 0, 1, 0 },    /* chat */
    { "prompt",   1, 1, 0, 0 },    /* completions */
    { "input",    1, 1, 0, 1 },    /* embeddings */
    { "messages", 0, 0, 1, 0 },    /* messages */
    { "input",    1, 1, 0, 0 },    /* responses */
    { "query",    1, 0, 0, 1 },    /* rerank */
    { "text_1",   1, 1, 0, 1 },    /* score */
    { "prompt",   1, 0, 0, 0 },    /* images */
    { "input",    1, 0, 0, 1 }     /* speech */
};


static int
gpugate_oai_body_need(gpugate_oai_body_t *b, gpugate_oai_kind_e kind,
    const unsigned char *need_v, const unsigned char *vend)
{
    int          k;
    const char  *name;

    k = need_v ? gpugate_oai_kind_of(need_v, vend) : GPUGATE_OAI_V_NONE;
    name = gpugate_oai_needs[kind].name;

    if (gpugate_oai_needs[kind].objects) {

        if (k == GPUGATE_OAI_V_ARRAY && gpugate_oai_all_objects(need_v, vend))
        {
            return 0;
        }

        if (k == GPUGATE_OAI_V_ARRAY) {
            return gpugate_oai_fail(b, "Each message must be an object.",
                                    name, "invalid_type");
        }

        snprintf(b->msg, sizeof(b->msg), "'%s' must be a non-empty array.",
                 name);

        return gpugate_oai_fail(b, b->msg, name,
                                k == GPUGATE_OAI_V_NONE
                                ? "missing_required_parameter"
                                : "invalid_type");
    }

    if (k == GPUGATE_OAI_V_NONE) {
        snprintf(b->msg, sizeof(b->msg), "You must provide %s %s "
                 "parameter.", name[0] == 'i' ? "an" : "a", name);

        return gpugate_oai_fail(b, b->msg, name,
                                "missing_required_parameter");
    }

    if (!((k == GPUGATE_OAI_V_STRING && gpugate_oai_needs[kind].string)
          || ((k == GPUGATE_OAI_V_ARRAY || k == GPUGATE_OAI_V_EMPTY_ARRAY)
              && gpugate_oai_needs[kind].array)))
    {
        snprintf(b->msg, sizeof(b->msg), "'%s' must be a string%s.", name,
                 gpugate_oai_needs[kind].array ? " or an array" : "");

        return gpugate_oai_fail(b, b->msg, name, "invalid_type");
    }

    if (b->stream && gpugate_oai_needs[kind].no_stream) {
        snprintf(b->msg, sizeof(b->msg), "%s cannot be streamed.",
                 kind == GPUGATE_OAI_EMBEDDINGS ? "Embeddings"
                 : kind == GPUGATE_OAI_SPEECH ? "Speech"
                 : kind == GPUGATE_OAI_RERANK ? "Rerank" : "Scores");

        return gpugate_oai_fail(b, b->msg, "stream", "invalid_value");
    }

    return 0;
}


int
gpugate_oai_body_parse(gpugate_oai_body_t *b, const char *data, size_t len,
    gpugate_oai_kind_e kind)
{
    const char             *need;
    gpugate_oai_scan_t      s;
    const unsigned char    *vend;
    gpugate_oai_members_t   m;

    memset(b, 0, sizeof(gpugate_oai_body_t));

    b->body = (const unsigned char *) data;
    b->body_len = len;

    s = (gpugate_oai_scan_t) { (const unsigned char *) data,
                               (const unsigned char *) data + len, NULL, 0 };

    gpugate_oai_ws(&s);

    if (s.p >= s.end || *s.p != '{') {
        if (s.p < s.end && (*s.p == '[' || *s.p == '"'
                            || (*s.p >= '0' && *s.p <= '9') || *s.p == '-'
                            || *s.p == 't' || *s.p == 'f' || *s.p == 'n')
            && gpugate_oai_value(&s) == 0
            && (gpugate_oai_ws(&s), s.p == s.end))
        {
            return gpugate_oai_fail(b, "The request body must be a JSON "
                                    "object.", NULL, "invalid_json");
        }

        return gpugate_oai_fail_syntax(b, &s, data,
                                       s.error ? s.error : "expected '{'");
    }

    if ((unsigned) kind >= sizeof(gpugate_oai_needs)
                           / sizeof(gpugate_oai_needs[0]))
    {
        return gpugate_oai_fail(b, "This endpoint takes no JSON body.", NULL,
                                "invalid_request");
    }

    need = gpugate_oai_needs[kind].name;

    memset(&m, 0, sizeof(m));
    vend = (const unsigned char *) data + len;

    if (gpugate_oai_body_members(b, &s, data, need, &m) != 0
        || gpugate_oai_body_model(b, m.model, vend) != 0
        || gpugate_oai_body_stream(b, m.stream, m.opts, vend) != 0
        || gpugate_oai_body_need(b, kind, m.need, vend) != 0)
    {
        return -1;
    }

    return 0;
}


/*
 * The next "priority" member after "*at" (the end of a top-level value):
 * 1, the bytes to cut (from the value before it to its end) and *at past
 * it; 0: none.  Found again, not listed at parse: the parse allocates
 * nothing, and duplicates are rare.
 */

int
gpugate_oai_body_next_priority(gpugate_oai_body_t *b,
    const unsigned char **at, size_t *off, size_t *cut)
{
    int                   plain;
    size_t                raw_len;
    gpugate_oai_scan_t    s;
    const unsigned char  *raw, *prev;

    s = (gpugate_oai_scan_t) { *at, b->body + b->body_len, NULL, 1 };

    for ( ;; ) {
        prev = s.p;
        gpugate_oai_ws(&s);

        if (s.p >= s.end || *s.p != ',') {
            return 0;
        }

        s.p++;
        gpugate_oai_ws(&s);

        /* the body parsed: the syntax needs no checks here */

        (void) gpugate_oai_string(&s, &raw, &raw_len, &plain);
        gpugate_oai_ws(&s);
        s.p++;                                  /* ':' */
        gpugate_oai_ws(&s);
        (void) gpugate_oai_value(&s);

        if (gpugate_oai_name_folds(raw, raw_len, "priority")) {
            *off = prev - b->body;
            *cut = s.p - prev;
            *at = s.p;
            return 1;
        }
    }
}


void
gpugate_oai_body_free(gpugate_oai_body_t *b)
{
    b->model = NULL;
}


size_t
gpugate_oai_string_chars(const unsigned char *p, const unsigned char *end)
{
    size_t  n;

    if (p >= end || *p != '"') {
        return 0;
    }

    n = 0;

    for (p++; p < end && *p != '"'; p++) {

        if (*p == '\\' && p + 1 < end) {
            /* an escape is one character; a surrogate pair's second half
               (a \uDC00..\uDFFF escape) is counted with the first */
            if (p[1] == 'u' && end - p >= 6 && (p[2] | 0x20) == 'd'
                && (p[3] | 0x20) >= 'c' && (p[3] | 0x20) <= 'f')
            {
                p += 5;
                continue;
            }

            n++;
            p += (p[1] == 'u') ? 5 : 1;
            continue;
        }

        /* UTF-8 continuation bytes are part of the character before */
        if ((*p & 0xc0) != 0x80) {
            n++;
        }
    }

    return n;
}
