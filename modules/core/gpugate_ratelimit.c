
/*
 * Copyright (C) gpugate authors
 *
 * The arithmetic of limits and budgets (gpugate_ratelimit.h).  Integers
 * throughout: a bucket counts in 1/60000 of a request or token so that a
 * per-minute rate drains a whole number of units each millisecond.
 */


#include <stdio.h>
#include <string.h>

#include "gpugate_ratelimit.h"


#define GPUGATE_RL_KEY_MAX  32


static int64_t
gpugate_rl_clamp(int64_t n)
{
    if (n < 0) {
        return 0;
    }

    return n > GPUGATE_RL_COUNT_MAX ? GPUGATE_RL_COUNT_MAX : n;
}


void
gpugate_rl_drain(gpugate_rl_bucket_t *b, int64_t limit, uint64_t now)
{
    uint64_t  elapsed;

    if (limit <= 0) {
        b->used = 0;
        b->stamp = now;
        return;
    }

    /* a clock that went back drains nothing, and moves the stamp back */

    elapsed = now > b->stamp ? now - b->stamp : 0;
    b->stamp = now;

    if (b->used <= 0) {
        b->used = 0;
        return;
    }

    /* limit <= COUNT_MAX: limit * elapsed only overflows past the point
       where the bucket is empty anyway */

    if (elapsed >= (uint64_t) (b->used / limit + 1)) {
        b->used = 0;
        return;
    }

    b->used -= limit * (int64_t) elapsed;

    if (b->used < 0) {
        b->used = 0;
    }
}


int64_t
gpugate_rl_wait(const gpugate_rl_bucket_t *b, int64_t limit, int64_t n)
{
    int64_t  cap, over;

    if (limit <= 0) {
        return 0;
    }

    limit = gpugate_rl_clamp(limit);
    n = gpugate_rl_clamp(n);

    if (n > limit) {
        return -1;
    }

    cap = limit * GPUGATE_RL_SCALE;
    over = b->used + n * GPUGATE_RL_SCALE - cap;

    if (over <= 0) {
        return 0;
    }

    /* "over" units must drain first, "limit" a millisecond */

    return (over + limit - 1) / limit;
}


void
gpugate_rl_add(gpugate_rl_bucket_t *b, int64_t n)
{
    if (n > GPUGATE_RL_COUNT_MAX) {
        n = GPUGATE_RL_COUNT_MAX;

    } else if (n < -GPUGATE_RL_COUNT_MAX) {
        n = -GPUGATE_RL_COUNT_MAX;
    }

    b->used += n * GPUGATE_RL_SCALE;

    if (b->used < 0) {
        b->used = 0;
    }
}


int64_t
gpugate_rl_remaining(const gpugate_rl_bucket_t *b, int64_t limit)
{
    int64_t  left;

    if (limit <= 0) {
        return 0;
    }

    left = gpugate_rl_clamp(limit) * GPUGATE_RL_SCALE - b->used;

    return left > 0 ? left / GPUGATE_RL_SCALE : 0;
}


int64_t
gpugate_rl_reset_ms(const gpugate_rl_bucket_t *b, int64_t limit)
{
    if (limit <= 0 || b->used <= 0) {
        return 0;
    }

    limit = gpugate_rl_clamp(limit);

    return (b->used + limit - 1) / limit;
}


/* days since 1970-01-01 of a proleptic Gregorian date (m 1..12) */

static int64_t
gpugate_rl_days(int64_t y, int64_t m, int64_t d)
{
    int64_t  era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


/* the date of a day number (the inverse of gpugate_rl_days) */

static void
gpugate_rl_civil(int64_t z, int64_t *y, int64_t *m)
{
    int64_t  era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;

    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}


int64_t
gpugate_rl_period(int period, int64_t now, int64_t *left)
{
    int64_t  day, y, m, next;

    if (now < 0) {
        now = 0;
    }

    day = now / 86400;

    if (period != GPUGATE_RL_PERIOD_MONTH) {
        *left = (day + 1) * 86400 - now;
        return day;
    }

    gpugate_rl_civil(day, &y, &m);

    next = m == 12 ? gpugate_rl_days(y + 1, 1, 1)
                   : gpugate_rl_days(y, m + 1, 1);

    *left = next * 86400 - now;

    return y * 12 + m - 1;
}


size_t
gpugate_rl_duration(char *out, int64_t ms)
{
    char     *p;
    int64_t   h, m, s, frac;

    p = out;

    if (ms <= 0) {
        memcpy(out, "0s", 3);
        return 2;
    }

    if (ms < 1000) {
        p += sprintf(p, "%ldms", (long) ms);
        return p - out;
    }

    h = ms / 3600000;
    m = ms / 60000 % 60;
    s = ms / 1000 % 60;
    frac = ms % 1000;

    if (h) {
        p += sprintf(p, "%ldh", (long) h);
    }

    if (h || m) {
        p += sprintf(p, "%ldm", (long) m);
    }

    p += sprintf(p, "%ld", (long) s);

    if (frac) {
        /* Go trims the fraction's trailing zeros: 1.5s, 1.25s, 1.125s */
        p += sprintf(p, ".%03ld", (long) frac);

        while (p[-1] == '0') {
            p--;
        }
    }

    *p++ = 's';
    *p = '\0';

    return p - out;
}


/* JSON skipping over a body already known to be valid JSON; still safe
   (bounded, never past "end") on anything else */

static const char *
gpugate_rl_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


static const char *
gpugate_rl_string_end(const char *p, const char *end)
{
    /* p is past the opening quote */

    while (p < end) {
        if (*p == '\\') {
            p += 2;
            continue;
        }

        if (*p == '"') {
            return p + 1;
        }

        p++;
    }

    return end;
}


static const char *
gpugate_rl_value_end(const char *p, const char *end)
{
    size_t  depth;

    if (p < end && *p == '"') {
        return gpugate_rl_string_end(p + 1, end);
    }

    if (p < end && (*p == '{' || *p == '[')) {
        depth = 0;

        while (p < end) {
            if (*p == '"') {
                p = gpugate_rl_string_end(p + 1, end);
                continue;
            }

            if (*p == '{' || *p == '[') {
                depth++;

            } else if (*p == '}' || *p == ']') {
                if (--depth == 0) {
                    return p + 1;
                }
            }

            p++;
        }

        return end;
    }

    while (p < end && *p != ',' && *p != '}' && *p != ']'
           && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
    {
        p++;
    }

    return p;
}


static int
gpugate_rl_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


/*
 * A member name decoded into "key" (NUL-terminated): escapes as the
 * runtime's JSON parser reads them, so "max\u005ftokens" is max_tokens.
 * Names that do not fit, or decode to anything but ASCII, come out empty:
 * none of those the estimate reads.
 */

static void
gpugate_rl_key(const char *p, const char *q, char *key)
{
    int     i, d, c;
    size_t  n;

    n = 0;

    while (p < q) {
        c = (unsigned char) *p++;

        if (c == '\\' && p < q) {
            c = (unsigned char) *p++;

            switch (c) {
            case 'u':
                if (q - p < 4) {
                    goto none;
                }

                c = 0;

                for (i = 0; i < 4; i++) {
                    d = gpugate_rl_hex(p[i]);
                    if (d < 0) {
                        goto none;
                    }

                    c = c * 16 + d;
                }

                p += 4;
                break;

            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            default: break;
            }
        }

        if (c == 0 || c > 0x7f || n + 1 >= GPUGATE_RL_KEY_MAX) {
            goto none;
        }

        key[n++] = (char) c;
    }

    key[n] = '\0';
    return;

none:

    key[0] = '\0';
}


/*
 * A JSON number rounded up to a whole count (a runtime's lax integer
 * parsing takes 1e3 or 100.0 as integers); -1 for anything else or a
 * negative number.
 */

static int64_t
gpugate_rl_number(const char *p, const char *end)
{
    int      neg_exp;
    int64_t  n, exp, frac_digits;
    int      frac_nonzero;

    if (p >= end || *p < '0' || *p > '9') {
        return -1;
    }

    n = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        if (n <= GPUGATE_RL_COUNT_MAX) {
            n = n * 10 + (*p - '0');
        }

        p++;
    }

    frac_digits = 0;
    frac_nonzero = 0;

    if (p < end && *p == '.') {
        p++;

        while (p < end && *p >= '0' && *p <= '9') {
            if (n <= GPUGATE_RL_COUNT_MAX) {
                n = n * 10 + (*p - '0');
                frac_digits++;

            } else if (*p != '0') {
                frac_nonzero = 1;
            }

            p++;
        }
    }

    exp = 0;
    neg_exp = 0;

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            neg_exp = (*p == '-');
            p++;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            if (exp < 1000) {
                exp = exp * 10 + (*p - '0');
            }

            p++;
        }
    }

    exp = (neg_exp ? -exp : exp) - frac_digits;

    while (exp > 0 && n <= GPUGATE_RL_COUNT_MAX) {
        n *= 10;
        exp--;
    }

    while (exp < 0 && n > 0) {
        frac_nonzero |= (n % 10 != 0);
        n /= 10;
        exp++;
    }

    n += frac_nonzero;

    return gpugate_rl_clamp(n);
}


int
gpugate_rl_estimate(const char *body, size_t len, int answers,
    int64_t default_max, int64_t bytes_per_token,
    gpugate_rl_estimate_t *out)
{
    char         key[GPUGATE_RL_KEY_MAX];
    int64_t      v, max, choices;
    const char  *p, *q, *end;

    memset(out, 0, sizeof(gpugate_rl_estimate_t));

    if (bytes_per_token < 1) {
        bytes_per_token = 1;
    }

    out->prompt = gpugate_rl_clamp((int64_t) (len / bytes_per_token
                                              + (len % bytes_per_token != 0)));

    end = body + len;
    p = gpugate_rl_ws(body, end);

    if (p == end || *p != '{') {
        return -1;
    }

    max = -1;
    choices = 1;
    p++;

    for ( ;; ) {
        p = gpugate_rl_ws(p, end);

        if (p == end || *p != '"') {
            break;
        }

        q = gpugate_rl_string_end(p + 1, end);
        gpugate_rl_key(p + 1, q > p + 1 ? q - 1 : q, key);

        p = gpugate_rl_ws(q, end);

        if (p == end || *p != ':') {
            break;
        }

        p = gpugate_rl_ws(p + 1, end);
        q = gpugate_rl_value_end(p, end);

        if (strcmp(key, "max_tokens") == 0
            || strcmp(key, "max_completion_tokens") == 0)
        {
            v = gpugate_rl_number(p, q);

            if (v >= 0) {
                out->capped = 1;

                if (v > max) {
                    max = v;
                }
            }

        } else if (strcmp(key, "n") == 0) {
            v = gpugate_rl_number(p, q);

            if (v > 1) {
                choices = v;
            }
        }

        p = gpugate_rl_ws(q, end);

        if (p == end || *p != ',') {
            break;
        }

        p++;
    }

    if (!answers) {
        return 0;
    }

    if (max < 0) {
        max = gpugate_rl_clamp(default_max);
    }

    /* both at most COUNT_MAX (1e12): the product is kept in range by
       dividing first */

    if (choices > 1 && max > GPUGATE_RL_COUNT_MAX / choices) {
        out->completion = GPUGATE_RL_COUNT_MAX;

    } else {
        out->completion = max * choices;
    }

    return 0;
}


/* one decimal amount with up to 6 decimals, in micro-units */

static int
gpugate_rl_amount(const char *p, const char *end, int64_t *out)
{
    int      digits, decimals;
    int64_t  n;

    n = 0;
    digits = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        n = n * 10 + (*p++ - '0');

        if (++digits > 7) {
            return -1;
        }
    }

    if (digits == 0) {
        return -1;
    }

    n *= 1000000;
    decimals = 0;

    if (p < end && *p == '.') {
        p++;

        if (p == end) {
            return -1;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            if (++decimals > 6) {
                return -1;
            }

            n += (*p++ - '0') * (int64_t) (decimals == 1 ? 100000
                                           : decimals == 2 ? 10000
                                           : decimals == 3 ? 1000
                                           : decimals == 4 ? 100
                                           : decimals == 5 ? 10 : 1);
        }
    }

    if (p != end || n > (int64_t) 1000000 * 1000000) {
        return -1;
    }

    *out = n;

    return 0;
}


int
gpugate_rl_price(const char *s, size_t len, int64_t *in, int64_t *out)
{
    const char  *slash, *end;

    end = s + len;
    slash = memchr(s, '/', len);

    if (slash == NULL) {
        return -1;
    }

    if (gpugate_rl_amount(s, slash, in) != 0
        || gpugate_rl_amount(slash + 1, end, out) != 0)
    {
        return -1;
    }

    return 0;
}


int64_t
gpugate_rl_cost(int64_t prompt, int64_t completion, int64_t in, int64_t out)
{
    unsigned __int128  t;

    prompt = gpugate_rl_clamp(prompt);
    completion = gpugate_rl_clamp(completion);

    if (in < 0) {
        in = 0;
    }

    if (out < 0) {
        out = 0;
    }

    /* micro-units per 1M tokens times tokens: below 2^127 for counts of
       1e12 and prices of 1e12 */

    t = (unsigned __int128) prompt * (uint64_t) in
        + (unsigned __int128) completion * (uint64_t) out;

    t = (t + 999999) / 1000000;

    return t > (unsigned __int128) INT64_MAX ? INT64_MAX : (int64_t) t;
}
