
/*
 * Copyright (C) gpugate authors
 *
 * Prompt prefix hashes (gpugate_prefix.h).  The body was checked by
 * gpugate_oai_body_parse() before the router asks, but this code trusts
 * nothing: every read is bounded by the body's end, nesting is bounded,
 * and a malformed body ends the walk with the blocks hashed so far (they
 * are a true prefix of what was read).
 */


#include <string.h>

#include "gpugate_prefix.h"


/* nesting followed inside a prompt before it is taken as raw bytes */
#define GPUGATE_PREFIX_NEST  16

/* between a message's role and content, and after each message or part */
#define GPUGATE_PREFIX_SEP_ROLE  0x1f
#define GPUGATE_PREFIX_SEP_ITEM  0x1e

/* the rolling hash's multiplier: odd, no short cycles modulo 2^64 */
#define GPUGATE_PREFIX_MUL  0x100000001b3ULL


typedef struct {
    const unsigned char  *p;       /* next byte to read */
    const unsigned char  *end;     /* end of the body */
} gpugate_prefix_js_t;


typedef struct {
    uint64_t     cum;      /* hash of every full block so far */
    uint64_t     h;        /* rolling hash of the block being filled */
    size_t       fill;     /* bytes in that block */
    size_t       block;    /* block size */
    size_t       depth;    /* blocks wanted */
    size_t       n;        /* blocks done, hashes in "out" */
    uint64_t    *out;      /* the cumulative hashes; NULL: none kept */
} gpugate_prefix_acc_t;


static uint64_t gpugate_prefix_mix(uint64_t x);
static int gpugate_prefix_byte(gpugate_prefix_acc_t *acc, unsigned c);
static void gpugate_prefix_ws(gpugate_prefix_js_t *s);
static int gpugate_prefix_skip(gpugate_prefix_js_t *s, int nest);
static int gpugate_prefix_string(gpugate_prefix_js_t *s,
    gpugate_prefix_acc_t *acc);
static int gpugate_prefix_raw(gpugate_prefix_js_t *s,
    gpugate_prefix_acc_t *acc, int nest);
static int gpugate_prefix_value(gpugate_prefix_js_t *s,
    gpugate_prefix_acc_t *acc, int nest);
static int gpugate_prefix_messages(gpugate_prefix_js_t *s,
    gpugate_prefix_acc_t *acc);
static int gpugate_prefix_member(gpugate_prefix_js_t *s, const char *name,
    gpugate_prefix_js_t *value);
static int gpugate_prefix_key_is(gpugate_prefix_js_t *s, const char *name,
    int *is);


/* splitmix64's finalizer: every input bit reaches every output bit */

static uint64_t
gpugate_prefix_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;

    return x;
}


uint64_t
gpugate_prefix_bytes(const void *p, size_t len, uint64_t seed)
{
    size_t                i;
    uint64_t              h;
    const unsigned char  *c;

    c = p;
    h = seed ^ 0x9e3779b97f4a7c15ULL;

    for (i = 0; i < len; i++) {
        h = h * GPUGATE_PREFIX_MUL + c[i] + 1;
    }

    return gpugate_prefix_mix(h ^ len);
}


/* one byte of prompt text; 1 once "depth" blocks are done */

static int
gpugate_prefix_byte(gpugate_prefix_acc_t *acc, unsigned c)
{
    acc->h = acc->h * GPUGATE_PREFIX_MUL + (c & 0xff) + 1;

    if (++acc->fill < acc->block) {
        return 0;
    }

    /* the block's hash joins the chain: it names the whole prefix */

    acc->cum = gpugate_prefix_mix(acc->cum
                                  ^ gpugate_prefix_mix(acc->h + acc->n));

    if (acc->out) {
        acc->out[acc->n] = acc->cum;
    }

    acc->n++;
    acc->h = 0;
    acc->fill = 0;

    return acc->n >= acc->depth;
}


static void
gpugate_prefix_ws(gpugate_prefix_js_t *s)
{
    while (s->p < s->end
           && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n'
               || *s->p == '\r'))
    {
        s->p++;
    }
}


/* past one JSON value; -1 if it is not one */

static int
gpugate_prefix_skip(gpugate_prefix_js_t *s, int nest)
{
    unsigned char  open, close;

    gpugate_prefix_ws(s);

    if (s->p >= s->end) {
        return -1;
    }

    if (*s->p == '"') {
        return gpugate_prefix_string(s, NULL);
    }

    if (*s->p == '{' || *s->p == '[') {
        if (nest <= 0) {
            return -1;
        }

        open = *s->p++;
        close = (open == '{') ? '}' : ']';

        gpugate_prefix_ws(s);

        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }

        for ( ;; ) {
            if (open == '{') {
                gpugate_prefix_ws(s);

                if (gpugate_prefix_string(s, NULL) != 0) {
                    return -1;
                }

                gpugate_prefix_ws(s);

                if (s->p >= s->end || *s->p++ != ':') {
                    return -1;
                }
            }

            if (gpugate_prefix_skip(s, nest - 1) != 0) {
                return -1;
            }

            gpugate_prefix_ws(s);

            if (s->p >= s->end) {
                return -1;
            }

            if (*s->p == close) {
                s->p++;
                return 0;
            }

            if (*s->p++ != ',') {
                return -1;
            }
        }
    }

    /* number or literal: up to the next delimiter */

    open = 0;

    while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']'
           && *s->p != ' ' && *s->p != '\t' && *s->p != '\n'
           && *s->p != '\r' && *s->p != '"' && *s->p != '{'
           && *s->p != '[' && *s->p != ':')
    {
        s->p++;
        open = 1;
    }

    /* a prompt's number is inside an array or object: one that runs to
       the end of the body is cut, and its bytes must not count */

    return (open && s->p < s->end) ? 0 : -1;
}


/*
 * A string at s->p, its decoded bytes fed to "acc" (NULL: only skipped);
 * 1 when the blocks wanted are done, -1 on a malformed string.
 */

static int
gpugate_prefix_string(gpugate_prefix_js_t *s, gpugate_prefix_acc_t *acc)
{
    int            k;
    unsigned       c, u, lo;
    unsigned char  utf[4];

    if (s->p >= s->end || *s->p != '"') {
        return -1;
    }

    s->p++;

    while (s->p < s->end) {
        c = *s->p++;

        if (c == '"') {
            return 0;
        }

        if (c == '\\') {
            if (s->p >= s->end) {
                return -1;
            }

            c = *s->p++;

            switch (c) {
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case '"': case '\\': case '/': break;

            case 'u':
                u = 0;

                for (k = 0; k < 4; k++) {
                    if (s->p >= s->end) {
                        return -1;
                    }

                    c = *s->p++;
                    lo = (c >= '0' && c <= '9') ? c - '0'
                         : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                         : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : 16;

                    if (lo == 16) {
                        return -1;
                    }

                    u = u * 16 + lo;
                }

                /* a surrogate pair's halves: each is its own code unit
                   here, which is as stable as decoding them */

                if (u < 0x80) {
                    utf[0] = u; k = 1;
                } else if (u < 0x800) {
                    utf[0] = 0xc0 | (u >> 6);
                    utf[1] = 0x80 | (u & 0x3f); k = 2;
                } else {
                    utf[0] = 0xe0 | (u >> 12);
                    utf[1] = 0x80 | ((u >> 6) & 0x3f);
                    utf[2] = 0x80 | (u & 0x3f); k = 3;
                }

                for (lo = 0; acc && lo < (unsigned) k; lo++) {
                    if (gpugate_prefix_byte(acc, utf[lo])) {
                        return 1;
                    }
                }

                continue;

            default:
                return -1;
            }
        }

        if (acc && gpugate_prefix_byte(acc, c)) {
            return 1;
        }
    }

    return -1;
}


/* a value's bytes as written (numbers, objects without "text") */

static int
gpugate_prefix_raw(gpugate_prefix_js_t *s, gpugate_prefix_acc_t *acc,
    int nest)
{
    const unsigned char  *start;

    gpugate_prefix_ws(s);
    start = s->p;

    if (gpugate_prefix_skip(s, nest) != 0) {
        return -1;
    }

    for ( /* void */ ; start < s->p; start++) {
        if (gpugate_prefix_byte(acc, *start)) {
            return 1;
        }
    }

    return 0;
}


/*
 * A prompt value: strings decoded, arrays element by element, an object
 * by its "text" string (a content part) or else as raw JSON, the rest raw.
 */

static int
gpugate_prefix_value(gpugate_prefix_js_t *s, gpugate_prefix_acc_t *acc,
    int nest)
{
    int                  rc;
    gpugate_prefix_js_t  v;

    gpugate_prefix_ws(s);

    if (s->p >= s->end) {
        return -1;
    }

    if (*s->p == '"') {
        return gpugate_prefix_string(s, acc);
    }

    if (*s->p == '{') {
        v = *s;

        if (gpugate_prefix_member(&v, "text", &v) == 0 && v.p < v.end
            && *v.p == '"')
        {
            if (gpugate_prefix_skip(s, nest) != 0) {
                return -1;
            }

            return gpugate_prefix_string(&v, acc);
        }

        return gpugate_prefix_raw(s, acc, nest);
    }

    if (*s->p != '[' || nest <= 0) {
        return gpugate_prefix_raw(s, acc, nest);
    }

    s->p++;
    gpugate_prefix_ws(s);

    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }

    for ( ;; ) {
        rc = gpugate_prefix_value(s, acc, nest - 1);

        if (rc != 0) {
            return rc;
        }

        if (gpugate_prefix_byte(acc, GPUGATE_PREFIX_SEP_ITEM)) {
            return 1;
        }

        gpugate_prefix_ws(s);

        if (s->p >= s->end) {
            return -1;
        }

        if (*s->p == ']') {
            s->p++;
            return 0;
        }

        if (*s->p++ != ',') {
            return -1;
        }
    }
}


/* the "messages" array: role, then content, of each message in order */

static int
gpugate_prefix_messages(gpugate_prefix_js_t *s, gpugate_prefix_acc_t *acc)
{
    int                  rc;
    gpugate_prefix_js_t  m, role, content;

    gpugate_prefix_ws(s);

    if (s->p >= s->end || *s->p++ != '[') {
        return -1;
    }

    gpugate_prefix_ws(s);

    if (s->p < s->end && *s->p == ']') {
        return 0;
    }

    for ( ;; ) {
        gpugate_prefix_ws(s);
        m = *s;

        if (gpugate_prefix_skip(s, GPUGATE_PREFIX_NEST) != 0) {
            return -1;
        }

        if (m.p < m.end && *m.p == '{') {
            role = m;
            content = m;

            if (gpugate_prefix_member(&role, "role", &role) == 0) {
                rc = gpugate_prefix_value(&role, acc, 0);

                if (rc != 0) {
                    return rc;
                }
            }

            if (gpugate_prefix_byte(acc, GPUGATE_PREFIX_SEP_ROLE)) {
                return 1;
            }

            if (gpugate_prefix_member(&content, "content", &content) == 0) {
                rc = gpugate_prefix_value(&content, acc, GPUGATE_PREFIX_NEST);

                if (rc != 0) {
                    return rc;
                }
            }

        } else {
            rc = gpugate_prefix_raw(&m, acc, GPUGATE_PREFIX_NEST);

            if (rc != 0) {
                return rc;
            }
        }

        if (gpugate_prefix_byte(acc, GPUGATE_PREFIX_SEP_ITEM)) {
            return 1;
        }

        gpugate_prefix_ws(s);

        if (s->p >= s->end || *s->p == ']') {
            return 0;
        }

        if (*s->p++ != ',') {
            return -1;
        }
    }
}


/*
 * The value of member "name" of the object at s->p, in *value (positioned
 * at it); 0 if found, -1 if absent or malformed.  Only the object's own
 * members count, the first of a repeated name.
 */

static int
gpugate_prefix_member(gpugate_prefix_js_t *s, const char *name,
    gpugate_prefix_js_t *value)
{
    int                  is;
    gpugate_prefix_js_t  o;

    o = *s;
    gpugate_prefix_ws(&o);

    if (o.p >= o.end || *o.p++ != '{') {
        return -1;
    }

    gpugate_prefix_ws(&o);

    if (o.p < o.end && *o.p == '}') {
        return -1;
    }

    for ( ;; ) {
        gpugate_prefix_ws(&o);

        if (gpugate_prefix_key_is(&o, name, &is) != 0) {
            return -1;
        }

        gpugate_prefix_ws(&o);

        if (o.p >= o.end || *o.p++ != ':') {
            return -1;
        }

        gpugate_prefix_ws(&o);

        if (is) {
            *value = o;
            return 0;
        }

        if (gpugate_prefix_skip(&o, GPUGATE_PREFIX_NEST) != 0) {
            return -1;
        }

        gpugate_prefix_ws(&o);

        if (o.p >= o.end || *o.p++ != ',') {
            return -1;
        }
    }
}


/* a member's key; *is: it is "name" (as written, no escapes) */

static int
gpugate_prefix_key_is(gpugate_prefix_js_t *s, const char *name, int *is)
{
    size_t                n;
    const unsigned char  *start;

    start = s->p;

    if (gpugate_prefix_string(s, NULL) != 0) {
        return -1;
    }

    n = strlen(name);
    *is = ((size_t) (s->p - start) == n + 2
           && memcmp(start + 1, name, n) == 0);

    return 0;
}


size_t
gpugate_prefix_hashes(gpugate_prefix_kind_e kind, const char *json,
    size_t len, size_t block, size_t depth, uint64_t seed, uint64_t *out)
{
    gpugate_prefix_js_t   s, v;
    gpugate_prefix_acc_t  acc;

    if (depth > GPUGATE_PREFIX_DEPTH_MAX) {
        depth = GPUGATE_PREFIX_DEPTH_MAX;
    }

    if (depth == 0 || block < GPUGATE_PREFIX_BLOCK_MIN
        || block > GPUGATE_PREFIX_BLOCK_MAX)
    {
        return 0;
    }

    s.p = (const unsigned char *) json;
    s.end = s.p + len;

    memset(&acc, 0, sizeof(acc));
    acc.cum = gpugate_prefix_mix(seed);
    acc.block = block;
    acc.depth = depth;
    acc.out = out;

    if (kind == GPUGATE_PREFIX_CHAT) {
        if (gpugate_prefix_member(&s, "messages", &v) == 0) {
            (void) gpugate_prefix_messages(&v, &acc);
        }

    } else if (gpugate_prefix_member(&s, "prompt", &v) == 0) {
        (void) gpugate_prefix_value(&v, &acc, GPUGATE_PREFIX_NEST);
    }

    return acc.n;
}


int
gpugate_prefix_user(const char *json, size_t len, uint64_t seed,
    uint64_t *hash)
{
    gpugate_prefix_js_t   s, v;
    gpugate_prefix_acc_t  acc;

    s.p = (const unsigned char *) json;
    s.end = s.p + len;

    if (gpugate_prefix_member(&s, "user", &v) != 0
        || v.p >= v.end || *v.p != '"')
    {
        return -1;
    }

    memset(&acc, 0, sizeof(acc));
    acc.block = (size_t) -1;
    acc.depth = 1;
    acc.h = seed;

    if (gpugate_prefix_string(&v, &acc) != 0 || acc.fill == 0) {
        return -1;
    }

    *hash = gpugate_prefix_mix(acc.h ^ acc.fill);

    return 0;
}
