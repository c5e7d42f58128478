
/*
 * Copyright (C) gpugate authors
 *
 * Classifies chunks by scanning bytes, without building a JSON tree: this
 * runs for every event of every stream and for every answer, where a full
 * parse (jansson) cost ~20,000 instructions per chunk (callgrind).
 *
 * Why scanning is exact enough here: inside a JSON string every '"' is
 * escaped, so an unescaped '"content"' followed by ':' can only be a
 * member name.  A runtime's own JSON is not checked for validity here: the
 * client receives it untouched either way; this only reads it.
 *
 * Stripping does change bytes, so it walks the chunk's top-level object
 * member by member (strings, nesting and bracket kinds checked) and
 * touches nothing unless the chunk is exactly what it expects.
 */


#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gpugate_oai_chunk.h"


/* nesting a chunk may have before stripping leaves it alone */
#define GPUGATE_OAI_STRIP_DEPTH  64


/* the top-level members of a chunk that stripping looks at */

typedef struct {
    unsigned char  *usage;         /* the "usage" member's name */
    unsigned char  *usage_end;     /* just after its value */
    unsigned char  *before;        /* the ',' before it, NULL: first */
    unsigned char  *after;         /* past the ',' after it and the
                                      whitespace that follows, NULL:
                                      last */
    unsigned        usages;        /* members named "usage" */
    unsigned        choices;       /* members named "choices" */
    unsigned        usage_null:1;  /* its value is null */
    unsigned        usage_object:1; /* its value is an object */
    unsigned        no_choices:1;  /* "choices" is [] */
} gpugate_oai_top_t;


static const unsigned char *
gpugate_oai_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


/*
 * Finds member "name" (given with its quotes) anywhere after p; returns
 * the first byte of its value, or NULL.  "last" picks the last one.
 */

static const unsigned char *
gpugate_oai_member(const unsigned char *p, const unsigned char *end,
    const char *name, int last)
{
    size_t                n;
    const unsigned char  *q, *v, *found;

    n = strlen(name);
    found = NULL;

    while (p + n <= end) {
        q = memchr(p, name[0], end - p);

        if (q == NULL || q + n > end) {
            break;
        }

        p = q + 1;

        if (memcmp(q, name, n) != 0) {
            continue;
        }

        v = gpugate_oai_ws(q + n, end);

        if (v < end && *v == ':') {
            found = gpugate_oai_ws(v + 1, end);

            if (!last) {
                return found;
            }
        }
    }

    return found;
}


/*
 * The members classify() looks at, found in one pass over the chunk: it
 * searched for each name apart, eleven scans of every quote of every
 * event (12,000 instructions per event of a chat stream, callgrind).
 */

enum {
    GPUGATE_OAI_K_ERROR = 0,
    GPUGATE_OAI_K_CONTENT,
    GPUGATE_OAI_K_TEXT,
    GPUGATE_OAI_K_REASONING,
    GPUGATE_OAI_K_TOOL_CALLS,
    GPUGATE_OAI_K_DELTA,
    GPUGATE_OAI_K_THINKING,
    GPUGATE_OAI_K_PARTIAL_JSON,
    GPUGATE_OAI_K_TYPE,
    GPUGATE_OAI_K_USAGE,           /* the last one is kept: see classify */
    GPUGATE_OAI_K_CHOICES,
    GPUGATE_OAI_K_INCOMPLETE,
    GPUGATE_OAI_K_FINISH,          /* every one is added: see scan */
    GPUGATE_OAI_K_STOP,            /* the same */
    GPUGATE_OAI_NKEYS
};


static const struct {
    const char  *name;             /* with its quotes */
    size_t       len;              /* strlen(name) */
} gpugate_oai_keys[GPUGATE_OAI_NKEYS] = {
    { "\"error\"", 7 },
    { "\"content\"", 9 },
    { "\"text\"", 6 },
    { "\"reasoning_content\"", 19 },
    { "\"tool_calls\"", 12 },
    { "\"delta\"", 7 },
    { "\"thinking\"", 10 },
    { "\"partial_json\"", 14 },
    { "\"type\"", 6 },
    { "\"usage\"", 7 },
    { "\"choices\"", 9 },
    { "\"incomplete_details\"", 20 },
    { "\"finish_reason\"", 15 },
    { "\"stop_reason\"", 13 }
};


/* a string value at v (null and other values are not reasons) */

static void
gpugate_oai_reason(const unsigned char *v, const unsigned char *end,
    gpugate_oai_reasons_t *set)
{
    const unsigned char  *e;

    if (v >= end || *v != '"') {
        return;
    }

    for (e = v + 1; e < end && *e != '"'; e++) {
        if (*e == '\\') {
            e++;
        }
    }

    if (e < end && e > v + 1) {
        gpugate_oai_reasons_add(set, v + 1, e - v - 1);
    }
}


/*
 * The string q..p (its quotes included) of a chunk that ends at "end": if
 * a ':' follows, it is a member name, and v[k] or c->reasons take its
 * value when it is one of gpugate_oai_keys (see gpugate_oai_scan).
 */

static void
gpugate_oai_match(const unsigned char *q, const unsigned char *p,
    const unsigned char *end, const unsigned char **v,
    gpugate_oai_chunk_t *c)
{
    size_t                k, n;
    const unsigned char  *colon;

    colon = gpugate_oai_ws(p, end);

    if (colon >= end || *colon != ':') {
        return;
    }

    n = (size_t) (p - q);

    for (k = 0; k < GPUGATE_OAI_NKEYS; k++) {
        if (gpugate_oai_keys[k].len != n
            || memcmp(q, gpugate_oai_keys[k].name, n) != 0)
        {
            continue;
        }

        if (k == GPUGATE_OAI_K_FINISH || k == GPUGATE_OAI_K_STOP) {
            gpugate_oai_reason(gpugate_oai_ws(colon + 1, end), end,
                               &c->reasons);

        } else if (v[k] == NULL || k == GPUGATE_OAI_K_USAGE) {
            v[k] = gpugate_oai_ws(colon + 1, end);
        }

        return;
    }
}


/*
 * Sets v[k] to the value of the first member named gpugate_oai_keys[k]
 * anywhere in p..end (the last one for "usage"), or NULL: what
 * gpugate_oai_member() finds for each.  Strings are read whole, so a
 * name is compared once per string, not at every quote; in JSON a string
 * followed by ':' is a member name, wherever it is nested.  Every
 * finish_reason and stop_reason that is a string goes to c->reasons in
 * the same pass: a whole answer has one per choice.
 */

static void
gpugate_oai_scan(const unsigned char *p, const unsigned char *end,
    const unsigned char **v, gpugate_oai_chunk_t *c)
{
    size_t                k;
    const unsigned char  *q, *e;

    for (k = 0; k < GPUGATE_OAI_NKEYS; k++) {
        v[k] = NULL;
    }

    while (p < end) {
        q = memchr(p, '"', end - p);

        if (q == NULL) {
            return;
        }

        /* the string's closing quote: escapes skipped */

        for (e = q + 1; e < end && *e != '"'; e++) {
            if (*e == '\\') {
                e++;
            }
        }

        if (e >= end) {
            return;
        }

        p = e + 1;
        gpugate_oai_match(q, p, end, v, c);
    }
}


/* a value that is a non-empty string or a non-empty array */

static int
gpugate_oai_nonempty(const unsigned char *v, const unsigned char *end)
{
    if (v == NULL || v >= end) {
        return 0;
    }

    if (*v == '"') {
        return v + 1 < end && v[1] != '"';
    }

    if (*v == '[') {
        v = gpugate_oai_ws(v + 1, end);
        return v < end && *v != ']';
    }

    return 0;
}


/*
 * The value of member "name" (given with its quotes) of the object
 * starting at obj, not of objects nested in it; NULL when it has none.
 */

static const unsigned char *
gpugate_oai_member1(const unsigned char *obj, const unsigned char *end,
    const char *name)
{
    int                   depth, in_string;
    size_t                n;
    const unsigned char  *p, *q;

    n = strlen(name);
    depth = 0;
    in_string = 0;

    for (p = obj; p < end; p++) {

        if (in_string) {
            if (*p == '\\') {
                p++;
            } else if (*p == '"') {
                in_string = 0;
            }
            continue;
        }

        if (*p == '{' || *p == '[') {
            depth++;
            continue;
        }

        if (*p == '}' || *p == ']') {
            if (--depth == 0) {
                return NULL;
            }
            continue;
        }

        if (*p != '"') {
            continue;
        }

        if (depth == 1 && p + n <= end && memcmp(p, name, n) == 0) {
            q = gpugate_oai_ws(p + n, end);

            if (q < end && *q == ':') {
                return gpugate_oai_ws(q + 1, end);
            }
        }

        in_string = 1;
    }

    return NULL;
}


/* reads a non-negative integer member of the object starting at obj */

static int
gpugate_oai_count(const unsigned char *obj, const unsigned char *end,
    const char *name, long long *out)
{
    long long             v;
    const unsigned char  *q;

    q = gpugate_oai_member1(obj, end, name);

    if (q == NULL || q >= end || *q < '0' || *q > '9') {
        return 0;
    }

    for (v = 0; q < end && *q >= '0' && *q <= '9'; q++) {
        if (v > 1000000000000LL) {
            return 0;
        }
        v = v * 10 + (*q - '0');
    }

    *out = v;
    return 1;
}


/*
 * The cached prompt tokens of an OpenAI usage object: chat and
 * completions say them in prompt_tokens_details, the responses API in
 * input_tokens_details.
 */

static void
gpugate_oai_cached(const unsigned char *usage, const unsigned char *end,
    const char *details, gpugate_oai_chunk_t *c)
{
    const unsigned char  *d;

    d = gpugate_oai_member1(usage, end, details);

    if (d && d < end && *d == '{') {
        (void) gpugate_oai_count(d, end, "\"cached_tokens\"",
                                 &c->cache_read_tokens);
    }
}


/* a value that is a non-empty string (not an object or array) */

static int
gpugate_oai_string_nonempty(const unsigned char *v, const unsigned char *end)
{
    return v != NULL && v + 1 < end && v[0] == '"' && v[1] != '"';
}


/* the "type" of a stream's last event: its usage is final */

static int
gpugate_oai_final_type(const unsigned char *v, const unsigned char *end)
{
    size_t  i, n;

    static const char  *finals[] = {
        "\"message_stop\"", "\"response.completed\"",
        "\"response.incomplete\"", "\"response.failed\"",
        "\"transcript.text.done\""
    };

    for (i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
        n = strlen(finals[i]);

        if ((size_t) (end - v) >= n && memcmp(v, finals[i], n) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * The counts of a usage object in any of the dialects: OpenAI's chat and
 * completions (prompt_tokens, completion_tokens), the responses API and
 * Anthropic (input_tokens, output_tokens; Anthropic counts cache writes
 * and reads apart from input_tokens, all of them are prompt the runtime
 * processed), rerank and score (total_tokens, all input), transcriptions
 * billed by duration ({"type":"duration","seconds":N}: N as input).
 */

static void
gpugate_oai_usage(const unsigned char *v, const unsigned char *end,
    gpugate_oai_chunk_t *c)
{
    long long  n;

    if (gpugate_oai_count(v, end, "\"prompt_tokens\"", &c->prompt_tokens)) {
        c->usage = 1;

        /* embeddings have no completion tokens */
        (void) gpugate_oai_count(v, end, "\"completion_tokens\"",
                                 &c->completion_tokens);
        gpugate_oai_cached(v, end, "\"prompt_tokens_details\"", c);
        return;
    }

    if (gpugate_oai_count(v, end, "\"input_tokens\"", &c->prompt_tokens)) {
        c->usage = 1;

        if (gpugate_oai_count(v, end, "\"cache_creation_input_tokens\"",
                              &n))
        {
            c->prompt_tokens += n;
            c->cache_write_tokens = n;
        }

        if (gpugate_oai_count(v, end, "\"cache_read_input_tokens\"", &n)) {
            c->prompt_tokens += n;
            c->cache_read_tokens = n;
        }

        gpugate_oai_cached(v, end, "\"input_tokens_details\"", c);

        (void) gpugate_oai_count(v, end, "\"output_tokens\"",
                                 &c->completion_tokens);
        return;
    }

    if (gpugate_oai_count(v, end, "\"output_tokens\"",
                          &c->completion_tokens))
    {
        c->usage_out = 1;
        return;
    }

    if (gpugate_oai_count(v, end, "\"total_tokens\"", &c->prompt_tokens)) {
        c->usage = 1;
        return;
    }

    /* transcriptions billed by duration: seconds of audio in */

    if (gpugate_oai_count(v, end, "\"seconds\"", &c->prompt_tokens)) {
        c->usage = 1;
    }
}


/*
 * The finish reason of a responses API answer, or of its stream's final
 * event: incomplete_details.reason ("max_output_tokens") when it has one,
 * else the response's status ("completed", "failed").  Only responses
 * have incomplete_details, so chat streams never come here; the other
 * typed events of a responses stream (response.created, ...) carry a
 * response still "in_progress" and are skipped.
 */

static void
gpugate_oai_response_reason(const unsigned char *inc,
    const unsigned char *type, const unsigned char *obj,
    const unsigned char *end, gpugate_oai_chunk_t *c)
{
    const unsigned char  *v;

    if (type && (size_t) (end - type) >= 10
        && memcmp(type, "\"response.", 10) == 0
        && !c->final)
    {
        return;
    }

    if (inc < end && *inc == '{') {
        v = gpugate_oai_member1(inc, end, "\"reason\"");

        if (v) {
            gpugate_oai_reason(v, end, &c->reasons);
            return;
        }
    }

    /* the first "status": the response's, before its output items' */

    v = gpugate_oai_member(obj, end, "\"status\"", 0);

    if (v && !((size_t) (end - v) >= 13
               && memcmp(v, "\"in_progress\"", 13) == 0))
    {
        gpugate_oai_reason(v, end, &c->reasons);
    }
}


/*
 * Classification up to the scan: *c cleared, [DONE] and values that are
 * not objects told; returns the object's '{' to scan, or NULL.
 */

static const unsigned char *
gpugate_oai_classify_start(const unsigned char *data, size_t len,
    gpugate_oai_chunk_t *c)
{
    const unsigned char  *p, *end;

    /* the reasons' strings are only read up to their count */
    memset(c, 0, offsetof(gpugate_oai_chunk_t, reasons));
    c->reasons.n = 0;
    c->cache_read_tokens = -1;
    c->cache_write_tokens = -1;

    end = data + len;
    p = gpugate_oai_ws(data, end);

    if ((size_t) (end - p) >= 6 && memcmp(p, "[DONE]", 6) == 0
        && gpugate_oai_ws(p + 6, end) == end)
    {
        c->done = 1;
        return NULL;
    }

    if (p >= end || *p != '{') {
        return NULL;
    }

    c->parsed = 1;

    return p;
}


/* classification from the members the scan found in p..end */

static void
gpugate_oai_classify_end(const unsigned char **m, const unsigned char *p,
    const unsigned char *end, gpugate_oai_chunk_t *c)
{
    const unsigned char  *v;

    v = m[GPUGATE_OAI_K_ERROR];
    c->error = (v && v < end && *v == '{');

    /* chat chunks (delta), whole answers (message), completions (text) */

    if (gpugate_oai_nonempty(m[GPUGATE_OAI_K_CONTENT], end)
        || gpugate_oai_nonempty(m[GPUGATE_OAI_K_TEXT], end)
        || gpugate_oai_nonempty(m[GPUGATE_OAI_K_REASONING], end)
        || gpugate_oai_nonempty(m[GPUGATE_OAI_K_TOOL_CALLS], end))
    {
        c->content = 1;
    }

    /* the responses API's text deltas, Anthropic's thinking and tool
       input deltas */

    if (gpugate_oai_string_nonempty(m[GPUGATE_OAI_K_DELTA], end)
        || gpugate_oai_nonempty(m[GPUGATE_OAI_K_THINKING], end)
        || gpugate_oai_nonempty(m[GPUGATE_OAI_K_PARTIAL_JSON], end))
    {
        c->content = 1;
    }

    /* a typed event names itself first: {"type":"message_stop"} */

    v = m[GPUGATE_OAI_K_TYPE];

    if (v && gpugate_oai_final_type(v, end)) {
        c->final = 1;
    }

    if (m[GPUGATE_OAI_K_INCOMPLETE]) {
        gpugate_oai_response_reason(m[GPUGATE_OAI_K_INCOMPLETE], v, p, end,
                                    c);
    }

    /* usage is the answer's last member: take the last "usage" */

    v = m[GPUGATE_OAI_K_USAGE];

    if (v && v < end && *v == '{') {
        gpugate_oai_usage(v, end, c);

        if (c->usage) {
            v = m[GPUGATE_OAI_K_CHOICES];
            c->usage_only = (v && v < end && *v == '['
                             && !gpugate_oai_nonempty(v, end));
        }
    }
}


void
gpugate_oai_chunk_classify(const unsigned char *data, size_t len,
    gpugate_oai_chunk_t *c)
{
    const unsigned char  *p, *m[GPUGATE_OAI_NKEYS];

    p = gpugate_oai_classify_start(data, len, c);

    if (p) {
        gpugate_oai_scan(p, data + len, m, c);
        gpugate_oai_classify_end(m, p, data + len, c);
    }
}


static unsigned char *gpugate_oai_skip_value(unsigned char *p,
    unsigned char *end, const unsigned char **m, gpugate_oai_chunk_t *c);


long long
gpugate_oai_images_count(const unsigned char *data, size_t len)
{
    long long             n;
    unsigned char        *p, *end;
    const unsigned char  *v;

    end = (unsigned char *) data + len;
    v = gpugate_oai_member(data, end, "\"data\"", 0);

    if (v == NULL || v >= end || *v != '[') {
        return -1;
    }

    /* the scan only reads; skip_value takes writable bytes for the
       stripper's sake */

    p = (unsigned char *) gpugate_oai_ws(v + 1, end);

    if (p < end && *p == ']') {
        return 0;
    }

    for (n = 0; p < end; n++) {
        p = gpugate_oai_skip_value(p, end, NULL, NULL);

        if (p == NULL) {
            return -1;
        }

        p = (unsigned char *) gpugate_oai_ws(p, end);

        if (p < end && *p == ']') {
            return n + 1;
        }

        if (p >= end || *p != ',') {
            return -1;
        }

        p = (unsigned char *) gpugate_oai_ws(p + 1, end);
    }

    return -1;
}


/*
 * The sizes the ledger keeps: OpenAI's DALL-E 2 and 3 and gpt-image
 * sizes and the usual Stable Diffusion ones.  A fixed set, so a client
 * cannot fill the ledger's column with strings of its own.
 */

static const char  *gpugate_oai_sizes[] = {
    "auto", "256x256", "512x512", "768x768", "1024x1024", "1024x1536",
    "1536x1024", "1024x1792", "1792x1024", "1024x768", "768x1024",
    "2048x2048"
};


const char *
gpugate_oai_image_size(const char *v, size_t len)
{
    size_t  i;

    for (i = 0; i < sizeof(gpugate_oai_sizes) / sizeof(gpugate_oai_sizes[0]);
         i++)
    {
        if (strlen(gpugate_oai_sizes[i]) == len
            && memcmp(gpugate_oai_sizes[i], v, len) == 0)
        {
            return gpugate_oai_sizes[i];
        }
    }

    return NULL;
}


void
gpugate_oai_images_asked(const unsigned char *body, size_t len,
    long long *n, const char **size)
{
    const unsigned char  *p, *end, *v, *q;

    *n = 1;
    *size = NULL;

    end = body + len;
    p = gpugate_oai_ws(body, end);

    if (p >= end || *p != '{') {
        return;
    }

    if (!gpugate_oai_count(p, end, "\"n\"", n) || *n < 1 || *n > 1000) {
        *n = 1;
    }

    v = gpugate_oai_member1(p, end, "\"size\"");

    if (v == NULL || v >= end || *v != '"') {
        return;
    }

    /* a known size has no escapes: the first quote ends it */

    q = memchr(v + 1, '"', end - v - 1);

    if (q) {
        *size = gpugate_oai_image_size((const char *) v + 1, q - v - 1);
    }
}


/* a string at p (its opening quote): returns just past it, or NULL */

static unsigned char *
gpugate_oai_skip_string(unsigned char *p, unsigned char *end)
{
    for (p++; p < end; p++) {

        if (*p == '\\') {
            if (end - p < 2) {
                return NULL;
            }

            p++;
            continue;
        }

        if (*p == '"') {
            return p + 1;
        }

        if (*p < 0x20) {
            return NULL;
        }
    }

    return NULL;
}


/*
 * Any value at p: returns just past it, or NULL if it is not one.  With
 * m, each string in it that is a member name goes to gpugate_oai_match(),
 * as gpugate_oai_scan() would: the stripper's walk then classifies too.
 */

static unsigned char *
gpugate_oai_skip_value(unsigned char *p, unsigned char *end,
    const unsigned char **m, gpugate_oai_chunk_t *c)
{
    unsigned        depth;
    uint64_t        objects;
    unsigned char  *start;

    if (p >= end) {
        return NULL;
    }

    if (*p == '"') {
        return gpugate_oai_skip_string(p, end);
    }

    if (*p != '{' && *p != '[') {
        /* a number or a literal */

        for (start = p; p < end; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')
                  || *p == '-' || *p == '+' || *p == '.' || *p == 'E'))
            {
                break;
            }
        }

        return p > start ? p : NULL;
    }

    /* "objects" is a stack of bits: is each open level an object? */

    depth = 0;
    objects = 0;

    while (p < end) {

        switch (*p) {

        case '"':
            start = p;
            p = gpugate_oai_skip_string(p, end);
            if (p == NULL) {
                return NULL;
            }

            if (m) {
                gpugate_oai_match(start, p, end, m, c);
            }

            continue;

        case '{':
        case '[':
            if (depth == GPUGATE_OAI_STRIP_DEPTH) {
                return NULL;
            }

            objects = objects << 1 | (*p == '{');
            depth++;
            break;

        case '}':
        case ']':
            if ((*p == '}') != (objects & 1)) {
                return NULL;
            }

            objects >>= 1;

            if (--depth == 0) {
                return p + 1;
            }

            break;
        }

        p++;
    }

    return NULL;
}


/*
 * Walks the object in [p, end): -1 unless it is one object with nothing
 * after it but whitespace.  With m, classifies on the way (see
 * gpugate_oai_skip_value).
 */

static int
gpugate_oai_top(unsigned char *p, unsigned char *end, gpugate_oai_top_t *t,
    const unsigned char **m, gpugate_oai_chunk_t *c)
{
    size_t          n;
    unsigned char  *name, *v, *comma;

    memset(t, 0, sizeof(gpugate_oai_top_t));

    p = (unsigned char *) gpugate_oai_ws(p, end);

    if (p >= end || *p != '{') {
        return -1;
    }

    p = (unsigned char *) gpugate_oai_ws(p + 1, end);
    comma = NULL;

    if (p < end && *p == '}') {
        p++;
        goto closed;
    }

    for ( ;; ) {
        if (p >= end || *p != '"') {
            return -1;
        }

        name = p;
        p = gpugate_oai_skip_string(p, end);
        if (p == NULL) {
            return -1;
        }

        if (m) {
            gpugate_oai_match(name, p, end, m, c);
        }

        n = p - name;
        p = (unsigned char *) gpugate_oai_ws(p, end);

        if (p >= end || *p != ':') {
            return -1;
        }

        v = (unsigned char *) gpugate_oai_ws(p + 1, end);
        p = gpugate_oai_skip_value(v, end, m, c);
        if (p == NULL) {
            return -1;
        }

        if (n == 7 && memcmp(name, "\"usage\"", 7) == 0) {
            t->usages++;
            t->usage = name;
            t->usage_end = p;
            t->before = comma;
            t->after = NULL;
            t->usage_null = (p - v == 4 && memcmp(v, "null", 4) == 0);
            t->usage_object = (*v == '{');

        } else if (n == 9 && memcmp(name, "\"choices\"", 9) == 0) {
            t->choices++;
            t->no_choices = (*v == '['
                             && gpugate_oai_ws(v + 1, end) == p - 1);
        }

        p = (unsigned char *) gpugate_oai_ws(p, end);

        if (p < end && *p == ',') {
            comma = p;
            p = (unsigned char *) gpugate_oai_ws(p + 1, end);

            if (t->usage && t->after == NULL && t->usage_end <= comma) {
                /* the member after "usage" starts here */
                t->after = p;
            }

            continue;
        }

        if (p < end && *p == '}') {
            p++;
            break;
        }

        return -1;
    }

closed:

    return gpugate_oai_ws(p, end) == end ? 0 : -1;
}


/*
 * The JSON of an event that is exactly one line, a "data" field, then the
 * empty line: sets *v and *e to its bounds in ev; 0 for any other event.
 */

static int
gpugate_oai_event_line(unsigned char *ev, size_t len, unsigned char **v,
    unsigned char **e)
{
    unsigned char  *end, *p;

    if (len < 5 || memcmp(ev, "data:", 5) != 0) {
        return 0;
    }

    end = ev + len;
    *v = ev + 5;

    if (*v < end && **v == ' ') {
        (*v)++;
    }

    for (*e = *v; *e < end && **e != '\r' && **e != '\n'; (*e)++) {
        /* void */
    }

    for (p = *e; p < end; p++) {
        if (*p != '\r' && *p != '\n') {
            return 0;
        }
    }

    return 1;
}


/* the event's new length once t's walk of its JSON is applied */

static size_t
gpugate_oai_event_cut(unsigned char *ev, size_t len, gpugate_oai_top_t *t)
{
    unsigned char  *end, *from, *to;

    if (t->usages != 1 || t->choices > 1) {
        return len;
    }

    if (t->usage_object && t->choices == 1 && t->no_choices) {
        /* the usage-only chunk that only the gateway asked for */
        return 0;
    }

    if (!t->usage_null) {
        /* usage the runtime sends unasked, or not null: not ours */
        return len;
    }

    /*
     * Remove the member with one of its commas, so the object reads as if
     * it had never been there: ',"usage":null' when it follows another
     * member (OpenAI puts it last), '"usage":null,' when it leads.
     */

    if (t->before) {
        from = t->before;
        to = t->usage_end;

    } else if (t->after) {
        from = t->usage;
        to = t->after;

    } else {
        from = t->usage;
        to = t->usage_end;
    }

    end = ev + len;
    memmove(from, to, end - to);

    return len - (to - from);
}


size_t
gpugate_oai_event_strip(unsigned char *ev, size_t len)
{
    unsigned char      *v, *e;
    gpugate_oai_top_t   t;

    if (!gpugate_oai_event_line(ev, len, &v, &e)
        || gpugate_oai_top(v, e, &t, NULL, NULL) != 0)
    {
        return len;
    }

    return gpugate_oai_event_cut(ev, len, &t);
}


size_t
gpugate_oai_event_classify_strip(unsigned char *ev, size_t len,
    const unsigned char *data, size_t data_len, gpugate_oai_chunk_t *c)
{
    size_t                k;
    unsigned char        *v, *e;
    gpugate_oai_top_t     t;
    const unsigned char  *p, *m[GPUGATE_OAI_NKEYS];

    /*
     * One data line: "data:", a space or not, data_len bytes, then only
     * line ends.  Any other line would put bytes of its own ("data" at
     * least) past data_len, so the line need not be searched for its end.
     */

    v = NULL;

    if (len >= 5 && memcmp(ev, "data:", 5) == 0) {
        v = ev + 5;
        v += (v < ev + len && *v == ' ');
    }

    if (v == NULL || data_len > (size_t) (ev + len - v)) {
        goto two;
    }

    for (e = v + data_len, p = e; p < ev + len; p++) {
        if (*p != '\r' && *p != '\n') {
            goto two;
        }
    }

    /* the line is the event's data: classified where it lies in ev */

    p = gpugate_oai_classify_start(v, data_len, c);

    if (p == NULL) {
        return len;
    }

    for (k = 0; k < GPUGATE_OAI_NKEYS; k++) {
        m[k] = NULL;
    }

    if (gpugate_oai_top(v, e, &t, m, c) != 0) {
        /*
         * Not JSON as the stripper expects it (truncated, bad strings,
         * brackets that do not match): the scan, which reads any bytes,
         * classifies it from the start; the event is left as it is.
         */

        c->reasons.n = 0;
        gpugate_oai_scan(p, e, m, c);
        gpugate_oai_classify_end(m, p, e, c);
        return len;
    }

    gpugate_oai_classify_end(m, p, e, c);

    return gpugate_oai_event_cut(ev, len, &t);

two:

    /* not one data line: the stripper leaves it as it is */

    gpugate_oai_chunk_classify(data, data_len, c);

    return gpugate_oai_event_strip(ev, len);
}
