
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
 */


#include <string.h>

#include "gpugate_oai_chunk.h"


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


/* reads a non-negative integer member of the object starting at obj */

static int
gpugate_oai_count(const unsigned char *obj, const unsigned char *end,
    const char *name, long long *out)
{
    int                   depth, in_string;
    size_t                n;
    long long             v;
    const unsigned char  *p, *q;

    n = strlen(name);
    depth = 0;
    in_string = 0;

    /* only members of the object itself (depth 1), not of nested ones */

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
                return 0;
            }
            continue;
        }

        if (*p != '"') {
            continue;
        }

        if (depth == 1 && p + n <= end && memcmp(p, name, n) == 0) {
            q = gpugate_oai_ws(p + n, end);

            if (q < end && *q == ':') {
                q = gpugate_oai_ws(q + 1, end);

                if (q >= end || *q < '0' || *q > '9') {
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
        }

        in_string = 1;
    }

    return 0;
}


void
gpugate_oai_chunk_classify(const unsigned char *data, size_t len,
    gpugate_oai_chunk_t *c)
{
    const unsigned char  *p, *end, *v;

    memset(c, 0, sizeof(gpugate_oai_chunk_t));

    end = data + len;
    p = gpugate_oai_ws(data, end);

    if ((size_t) (end - p) >= 6 && memcmp(p, "[DONE]", 6) == 0
        && gpugate_oai_ws(p + 6, end) == end)
    {
        c->done = 1;
        return;
    }

    if (p >= end || *p != '{') {
        return;
    }

    c->parsed = 1;

    v = gpugate_oai_member(p, end, "\"error\"", 0);
    c->error = (v && v < end && *v == '{');

    /* chat chunks (delta), whole answers (message), completions (text) */

    if (gpugate_oai_nonempty(gpugate_oai_member(p, end, "\"content\"", 0),
                             end)
        || gpugate_oai_nonempty(gpugate_oai_member(p, end, "\"text\"", 0),
                                end)
        || gpugate_oai_nonempty(gpugate_oai_member(p, end,
                                                   "\"reasoning_content\"",
                                                   0), end)
        || gpugate_oai_nonempty(gpugate_oai_member(p, end, "\"tool_calls\"",
                                                   0), end))
    {
        c->content = 1;
    }

    /* usage is the answer's last member: take the last "usage" */

    v = gpugate_oai_member(p, end, "\"usage\"", 1);

    if (v && v < end && *v == '{'
        && gpugate_oai_count(v, end, "\"prompt_tokens\"", &c->prompt_tokens))
    {
        c->usage = 1;

        /* embeddings have no completion tokens */
        (void) gpugate_oai_count(v, end, "\"completion_tokens\"",
                                 &c->completion_tokens);

        v = gpugate_oai_member(p, end, "\"choices\"", 0);
        c->usage_only = (v && v < end && *v == '['
                         && !gpugate_oai_nonempty(v, end));
    }
}
