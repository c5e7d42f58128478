
/*
 * Copyright (C) gpugate authors
 *
 * The reasoning split's state machine and the JSON walk that finds the
 * content it reads (see gpugate_think.h).
 *
 * The input is cut into units: one byte, or one whole escape ("\n",
 * "\u003c").  A unit's character is what the tags are matched against;
 * an escape of a character outside ASCII, or a malformed one, matches no
 * tag character (tags are ASCII).  An escape cut by the end of a fragment
 * waits in "esc" for the rest, so units never depend on the cuts.
 */


#include <string.h>

#include "gpugate_think.h"


/* the character of a unit that matches nothing */
#define GPUGATE_THINK_NONE  0x100

/* nesting of a chunk deeper than this is not walked */
#define GPUGATE_THINK_DEPTH  64


/* the caller's two outputs */

typedef struct {
    unsigned char  *reason;        /* reasoning bytes go here */
    size_t         *rlen;          /* at this offset */
    unsigned char  *content;       /* content bytes go here */
    size_t         *clen;          /* at this offset */
} gpugate_think_out_t;


static void gpugate_think_unit(gpugate_think_t *t, const unsigned char *raw,
    size_t n, int ch, gpugate_think_out_t *o);
static void gpugate_think_reason(gpugate_think_t *t,
    const unsigned char *raw, size_t n, int ch, gpugate_think_out_t *o);


void
gpugate_think_init(gpugate_think_t *t, const char *open, size_t open_len,
    const char *close, size_t close_len)
{
    memset(t, 0, sizeof(gpugate_think_t));

    t->open = open;
    t->open_len = open_len;
    t->close = close;
    t->close_len = close_len;
    t->state = GPUGATE_THINK_LEAD;
}


static int
gpugate_think_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * The unit at p: its length and character, or 0 when p ends inside an
 * escape.
 */

static size_t
gpugate_think_decode(const unsigned char *p, size_t len, int *ch)
{
    int     i, d, v;

    if (p[0] != '\\') {
        *ch = p[0];
        return 1;
    }

    if (len < 2) {
        return 0;
    }

    switch (p[1]) {

    case 'n':
        *ch = '\n';
        return 2;

    case 't':
        *ch = '\t';
        return 2;

    case 'r':
        *ch = '\r';
        return 2;

    case 'b':
        *ch = '\b';
        return 2;

    case 'f':
        *ch = '\f';
        return 2;

    case '/':
    case '"':
    case '\\':
        *ch = p[1];
        return 2;

    case 'u':
        break;

    default:
        *ch = GPUGATE_THINK_NONE;
        return 2;
    }

    if (len < 6) {
        return 0;
    }

    v = 0;

    for (i = 2; i < 6; i++) {
        d = gpugate_think_hex(p[i]);

        if (d < 0) {
            *ch = GPUGATE_THINK_NONE;
            return 6;
        }

        v = v * 16 + d;
    }

    *ch = v < 0x80 ? v : GPUGATE_THINK_NONE;

    return 6;
}


static int
gpugate_think_ws(int ch)
{
    return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}


static void
gpugate_think_emit(unsigned char *out, size_t *len, const unsigned char *p,
    size_t n)
{
    memcpy(out + *len, p, n);
    *len += n;
}


static void
gpugate_think_hold(gpugate_think_t *t, const unsigned char *raw, size_t n)
{
    memcpy(t->held + t->held_len, raw, n);
    t->held_len += n;
}


/* no opening tag: what was held, and this unit, are content */

static void
gpugate_think_pass(gpugate_think_t *t, const unsigned char *raw, size_t n,
    gpugate_think_out_t *o)
{
    gpugate_think_emit(o->content, o->clen, t->held, t->held_len);
    gpugate_think_emit(o->content, o->clen, raw, n);

    t->held_len = 0;
    t->match = 0;
    t->state = GPUGATE_THINK_PASS;
}


static void
gpugate_think_unit(gpugate_think_t *t, const unsigned char *raw, size_t n,
    int ch, gpugate_think_out_t *o)
{
    switch (t->state) {

    case GPUGATE_THINK_LEAD:

        if (gpugate_think_ws(ch)) {
            if (t->held_len + n > GPUGATE_THINK_LEAD_MAX) {
                gpugate_think_pass(t, raw, n, o);
                return;
            }

            gpugate_think_hold(t, raw, n);
            return;
        }

        if (ch != (unsigned char) t->open[0]) {
            gpugate_think_pass(t, raw, n, o);
            return;
        }

        gpugate_think_hold(t, raw, n);
        t->match = 1;
        t->state = GPUGATE_THINK_OPEN;
        break;

    case GPUGATE_THINK_OPEN:

        if (ch != (unsigned char) t->open[t->match]) {
            gpugate_think_pass(t, raw, n, o);
            return;
        }

        gpugate_think_hold(t, raw, n);
        t->match++;
        break;

    case GPUGATE_THINK_REASON:
        gpugate_think_reason(t, raw, n, ch, o);
        return;

    case GPUGATE_THINK_AFTER:

        if (gpugate_think_ws(ch)) {
            return;
        }

        t->state = GPUGATE_THINK_CONTENT;

        /* fall through */

    default:
        gpugate_think_emit(o->content, o->clen, raw, n);
        return;
    }

    if (t->match == t->open_len) {
        /* the opening tag and the whitespace before it are dropped */
        t->held_len = 0;
        t->match = 0;
        t->state = GPUGATE_THINK_REASON;
    }
}


static void
gpugate_think_reason(gpugate_think_t *t, const unsigned char *raw, size_t n,
    int ch, gpugate_think_out_t *o)
{
    int             c;
    size_t          len, off, u;
    unsigned char   again[6 * GPUGATE_THINK_TAG_MAX];

    if (ch == (unsigned char) t->close[t->match]) {
        gpugate_think_hold(t, raw, n);

        if (++t->match == t->close_len) {
            t->held_len = 0;
            t->match = 0;
            t->state = GPUGATE_THINK_AFTER;
        }

        return;
    }

    if (t->match == 0) {
        gpugate_think_emit(o->reason, o->rlen, raw, n);
        return;
    }

    /*
     * Not the closing tag after all: its first unit is reasoning, and the
     * closing tag may start at any unit after it, so those are looked at
     * again (fewer than the tag's characters: the recursion is bounded).
     */

    len = t->held_len;
    memcpy(again, t->held, len);
    t->held_len = 0;
    t->match = 0;

    u = gpugate_think_decode(again, len, &c);
    gpugate_think_emit(o->reason, o->rlen, again, u);

    for (off = u; off < len; off += u) {
        u = gpugate_think_decode(again + off, len - off, &c);
        gpugate_think_reason(t, again + off, u, c, o);
    }

    gpugate_think_reason(t, raw, n, ch, o);
}


void
gpugate_think_feed(gpugate_think_t *t, const unsigned char *p, size_t len,
    unsigned char *reason, size_t *rlen, unsigned char *content,
    size_t *clen)
{
    int                  ch;
    size_t               n, need;
    gpugate_think_out_t  o;

    o.reason = reason;
    o.rlen = rlen;
    o.content = content;
    o.clen = clen;

    while (t->esc_len && len) {
        /* the rest of an escape cut by the last fragment */

        need = (t->esc_len >= 2 && t->esc[1] == 'u') ? 6 : 2;
        t->esc[t->esc_len++] = *p++;
        len--;

        if (t->esc_len == 2 && t->esc[1] == 'u') {
            continue;
        }

        if (t->esc_len == need) {
            gpugate_think_decode(t->esc, t->esc_len, &ch);
            n = t->esc_len;
            t->esc_len = 0;
            gpugate_think_unit(t, t->esc, n, ch, &o);
        }
    }

    while (len) {
        n = gpugate_think_decode(p, len, &ch);

        if (n == 0) {
            memcpy(t->esc, p, len);
            t->esc_len = len;
            return;
        }

        gpugate_think_unit(t, p, n, ch, &o);
        p += n;
        len -= n;
    }
}


void
gpugate_think_end(gpugate_think_t *t, unsigned char *reason, size_t *rlen,
    unsigned char *content, size_t *clen)
{
    if (t->state == GPUGATE_THINK_REASON) {
        /* never closed: all of it was reasoning */
        gpugate_think_emit(reason, rlen, t->held, t->held_len);
        gpugate_think_emit(reason, rlen, t->esc, t->esc_len);

    } else {
        gpugate_think_emit(content, clen, t->held, t->held_len);
        gpugate_think_emit(content, clen, t->esc, t->esc_len);
    }

    t->held_len = 0;
    t->esc_len = 0;
    t->match = 0;

    if (!gpugate_think_opened(t)) {
        t->state = GPUGATE_THINK_PASS;
    }
}


void
gpugate_think_give_up(gpugate_think_t *t, unsigned char *content,
    size_t *clen)
{
    if (t->state != GPUGATE_THINK_LEAD && t->state != GPUGATE_THINK_OPEN) {
        return;
    }

    gpugate_think_emit(content, clen, t->held, t->held_len);

    t->held_len = 0;
    t->match = 0;
    t->state = GPUGATE_THINK_PASS;
}


/* the JSON walk */

static const unsigned char *
gpugate_think_skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


/* past the string whose opening quote is at p, or NULL */

static const unsigned char *
gpugate_think_skip_string(const unsigned char *p, const unsigned char *end)
{
    for (p++; p < end; p++) {

        if (*p == '\\') {
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


/* past the value at p, or NULL when it is not one */

static const unsigned char *
gpugate_think_skip_value(const unsigned char *p, const unsigned char *end)
{
    unsigned              depth;
    unsigned char         stack[GPUGATE_THINK_DEPTH];
    const unsigned char  *start;

    if (p >= end) {
        return NULL;
    }

    if (*p == '"') {
        return gpugate_think_skip_string(p, end);
    }

    if (*p != '{' && *p != '[') {
        for (start = p; p < end; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')
                  || *p == '-' || *p == '+' || *p == '.' || *p == 'E'))
            {
                break;
            }
        }

        return p > start ? p : NULL;
    }

    depth = 0;

    while (p < end) {

        if (*p == '"') {
            p = gpugate_think_skip_string(p, end);
            if (p == NULL) {
                return NULL;
            }
            continue;
        }

        if (*p == '{' || *p == '[') {
            if (depth == GPUGATE_THINK_DEPTH) {
                return NULL;
            }

            stack[depth++] = (*p == '{') ? '}' : ']';

        } else if (*p == '}' || *p == ']') {
            if (depth == 0 || stack[depth - 1] != *p) {
                return NULL;
            }

            if (--depth == 0) {
                return p + 1;
            }
        }

        p++;
    }

    return NULL;
}


/*
 * Walks the members of the object at p, calling back for each: "name"
 * without its quotes, "v" its value, "ve" past it.  Returns past the
 * object, or NULL when it is not one or the callback says stop (-1).
 */

typedef int (*gpugate_think_member_pt)(void *data, const unsigned char *name,
    size_t name_len, const unsigned char *v, const unsigned char *ve);


static const unsigned char *
gpugate_think_members(const unsigned char *p, const unsigned char *end,
    gpugate_think_member_pt handler, void *data)
{
    const unsigned char  *name, *v, *ve;

    p = gpugate_think_skip_ws(p, end);

    if (p >= end || *p != '{') {
        return NULL;
    }

    p = gpugate_think_skip_ws(p + 1, end);

    if (p < end && *p == '}') {
        return p + 1;
    }

    for ( ;; ) {
        if (p >= end || *p != '"') {
            return NULL;
        }

        name = p;
        p = gpugate_think_skip_string(p, end);
        if (p == NULL) {
            return NULL;
        }

        p = gpugate_think_skip_ws(p, end);

        if (p >= end || *p != ':') {
            return NULL;
        }

        v = gpugate_think_skip_ws(p + 1, end);
        ve = gpugate_think_skip_value(v, end);
        if (ve == NULL) {
            return NULL;
        }

        if (handler(data, name + 1, p - name - 2, v, ve) != 0) {
            return NULL;
        }

        p = gpugate_think_skip_ws(ve, end);

        if (p < end && *p == ',') {
            p = gpugate_think_skip_ws(p + 1, end);
            continue;
        }

        if (p < end && *p == '}') {
            return p + 1;
        }

        return NULL;
    }
}


typedef struct {
    const unsigned char  *base;     /* the document, for offsets */
    const char           *holder;   /* "delta" or "message" */
    gpugate_think_loc_t  *locs;     /* the caller's array */
    int                   max;      /* its size */
    int                   n;        /* locations found */
    long                  position; /* of the current choice */
    long                  index;    /* its "index", -1: none yet */
    int                   found;    /* it has a content string */
    gpugate_think_loc_t   loc;      /* that string */
} gpugate_think_walk_t;


static int
gpugate_think_name_is(const unsigned char *name, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(name, s, len) == 0;
}


static int
gpugate_think_holder_member(void *data, const unsigned char *name,
    size_t len, const unsigned char *v, const unsigned char *ve)
{
    gpugate_think_walk_t  *w = data;

    if (gpugate_think_name_is(name, len, "content") && *v == '"') {
        w->found = 1;
        w->loc.name = name - 1 - w->base;
        w->loc.value = v + 1 - w->base;
        w->loc.value_len = ve - v - 2;
        w->loc.end = ve - w->base;
    }

    return 0;
}


static int
gpugate_think_choice_member(void *data, const unsigned char *name,
    size_t len, const unsigned char *v, const unsigned char *ve)
{
    long                   n;
    gpugate_think_walk_t  *w = data;

    if (gpugate_think_name_is(name, len, "index")) {
        n = 0;

        for ( /* void */ ; v < ve && *v >= '0' && *v <= '9'; v++) {
            if (n > 100000000) {
                return -1;
            }

            n = n * 10 + (*v - '0');
        }

        w->index = n;
        return 0;
    }

    if (gpugate_think_name_is(name, len, w->holder) && *v == '{') {
        return gpugate_think_members(v, ve, gpugate_think_holder_member, w)
               ? 0 : -1;
    }

    return 0;
}


static int
gpugate_think_top_member(void *data, const unsigned char *name, size_t len,
    const unsigned char *v, const unsigned char *ve)
{
    const unsigned char   *p;
    gpugate_think_walk_t  *w = data;

    if (!gpugate_think_name_is(name, len, "choices") || *v != '[') {
        return 0;
    }

    p = gpugate_think_skip_ws(v + 1, ve);

    while (p < ve && *p != ']') {
        w->index = -1;
        w->found = 0;

        if (*p == '{') {
            p = gpugate_think_members(p, ve, gpugate_think_choice_member, w);
            if (p == NULL) {
                return -1;
            }

            if (w->found && w->n < w->max) {
                w->loc.index = w->index >= 0 ? w->index : w->position;
                w->locs[w->n++] = w->loc;
            }

        } else {
            p = gpugate_think_skip_value(p, ve);
            if (p == NULL) {
                return -1;
            }
        }

        w->position++;
        p = gpugate_think_skip_ws(p, ve);

        if (p < ve && *p == ',') {
            p = gpugate_think_skip_ws(p + 1, ve);
        }
    }

    return 0;
}


int
gpugate_think_locate(const unsigned char *json, size_t len,
    const char *holder, gpugate_think_loc_t *locs, int max)
{
    const unsigned char   *end, *p;
    gpugate_think_walk_t   w;

    memset(&w, 0, sizeof(gpugate_think_walk_t));

    w.base = json;
    w.holder = holder;
    w.locs = locs;
    w.max = max;

    end = json + len;

    p = gpugate_think_members(json, end, gpugate_think_top_member, &w);

    if (p == NULL || gpugate_think_skip_ws(p, end) != end) {
        return -1;
    }

    return w.n;
}


size_t
gpugate_think_member(unsigned char *out, const unsigned char *reason,
    size_t rlen, const unsigned char *content, size_t clen)
{
    unsigned char  *p;

    p = out;

    if (reason) {
        memcpy(p, "\"reasoning_content\":\"", 21);
        p += 21;
        memcpy(p, reason, rlen);
        p += rlen;
        *p++ = '"';
    }

    if (reason && content) {
        *p++ = ',';
    }

    if (content) {
        memcpy(p, "\"content\":\"", 11);
        p += 11;
        memcpy(p, content, clen);
        p += clen;
        *p++ = '"';
    }

    return p - out;
}


/*
 * Member names cannot occur unescaped inside JSON strings, so a search
 * for the quoted name followed by ':' finds only members.
 */

static const unsigned char *
gpugate_think_find(const unsigned char *p, const unsigned char *end,
    const char *name)
{
    size_t                n;
    const unsigned char  *q;

    n = strlen(name);

    while (end - p >= (ptrdiff_t) n) {
        q = memchr(p, '"', end - p);

        if (q == NULL || end - q < (ptrdiff_t) n) {
            return NULL;
        }

        p = q + 1;

        if (memcmp(q, name, n) != 0) {
            continue;
        }

        q = gpugate_think_skip_ws(q + n, end);

        if (q < end && *q == ':') {
            return gpugate_think_skip_ws(q + 1, end);
        }
    }

    return NULL;
}


long long
gpugate_think_reported(const unsigned char *json, size_t len)
{
    long long             v;
    const unsigned char  *end, *p;

    end = json + len;

    p = gpugate_think_find(json, end, "\"completion_tokens_details\"");
    if (p == NULL || p == end || *p != '{') {
        return -1;
    }

    p = gpugate_think_find(p, end, "\"reasoning_tokens\"");
    if (p == NULL || p == end || *p < '0' || *p > '9') {
        return -1;
    }

    for (v = 0; p < end && *p >= '0' && *p <= '9'; p++) {
        if (v > 1000000000000LL) {
            return -1;
        }

        v = v * 10 + (*p - '0');
    }

    return v;
}
