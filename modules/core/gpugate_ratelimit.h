
/*
 * Copyright (C) gpugate authors
 *
 * The arithmetic of limits and budgets, independent of nginx (unit-tested
 * and fuzzed on its own): per-minute buckets in exact integers, UTC days
 * and months, OpenAI's duration format for the x-ratelimit-reset-*
 * headers, the token estimate of a request body, prices and spend.
 */


#ifndef _GPUGATE_RATELIMIT_H_INCLUDED_
#define _GPUGATE_RATELIMIT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * One request or token is GPUGATE_RL_SCALE units in a bucket, so a limit
 * of N per minute drains exactly N units a millisecond: no rounding, and
 * no drift however often the bucket is looked at.
 */
#define GPUGATE_RL_SCALE       60000

/* the most tokens one request may be counted for: keeps every product of
   counts and scales well inside int64_t */
#define GPUGATE_RL_COUNT_MAX   ((int64_t) 1000000000000LL)

/* the longest duration string ("2562047h47m16.854s" and a NUL) */
#define GPUGATE_RL_DURATION_LEN  32

#define GPUGATE_RL_PERIOD_DAY    1
#define GPUGATE_RL_PERIOD_MONTH  2


/*
 * A per-minute limit as a leaky bucket: "used" units drain at "limit"
 * units a millisecond; a request fits while used + its units stay within
 * limit * GPUGATE_RL_SCALE (the whole minute's allowance at once, like
 * OpenAI's limits, refilling continuously).
 */
typedef struct {
    int64_t   used;    /* units taken and not yet drained */
    uint64_t  stamp;   /* when "used" was last drained, ms */
} gpugate_rl_bucket_t;


/* drains the bucket to "now" (ms) at the limit's rate; limit 0: empties */
void gpugate_rl_drain(gpugate_rl_bucket_t *b, int64_t limit, uint64_t now);

/*
 * For a drained bucket: 0 if "n" more fit now; else the milliseconds
 * until they do (at least 1), or -1 if they never can (n > limit).
 */
int64_t gpugate_rl_wait(const gpugate_rl_bucket_t *b, int64_t limit,
    int64_t n);

/* takes "n" (refunds when negative; the bucket never goes below empty) */
void gpugate_rl_add(gpugate_rl_bucket_t *b, int64_t n);

/* whole requests or tokens left in a drained bucket (0 when over) */
int64_t gpugate_rl_remaining(const gpugate_rl_bucket_t *b, int64_t limit);

/* milliseconds until a drained bucket is empty again (its full limit) */
int64_t gpugate_rl_reset_ms(const gpugate_rl_bucket_t *b, int64_t limit);


/*
 * The number of the UTC day or month (GPUGATE_RL_PERIOD_*) that the Unix
 * time "now" falls in, and in *left the seconds until that period ends.
 * Days count from 1970-01-01, months as year * 12 + month - 1.
 */
int64_t gpugate_rl_period(int period, int64_t now, int64_t *left);


/*
 * A duration in OpenAI's (Go's) format: "0s", "20ms", "1.5s", "59s",
 * "6m0s", "1h2m3.25s".  Writes a NUL-terminated string into "out" (at
 * least GPUGATE_RL_DURATION_LEN bytes); returns its length.  Negative
 * durations are written as "0s".
 */
size_t gpugate_rl_duration(char *out, int64_t ms);


typedef struct {
    int64_t   prompt;      /* prompt tokens estimated from the size */
    int64_t   completion;  /* completion tokens the answer may have:
                              the cap times "n" */
    int       capped;      /* the body caps the answer (max_tokens or
                              max_completion_tokens) */
} gpugate_rl_estimate_t;

/*
 * The tokens a request may cost, from its body (a JSON object the router
 * already checked): the prompt as one token per "bytes_per_token" bytes
 * of the whole body, rounded up; the answer as the larger of
 * "max_tokens" and "max_completion_tokens" (rounded up when not whole),
 * else "default_max", times "n" (at least 1).  Member names are compared
 * after their escapes are decoded, as the runtime reads them.  "answers"
 * 0 (embeddings): no completion.  Every count is at most
 * GPUGATE_RL_COUNT_MAX.  0, or -1 when the body is not a JSON object.
 */
int gpugate_rl_estimate(const char *body, size_t len, int answers,
    int64_t default_max, int64_t bytes_per_token,
    gpugate_rl_estimate_t *out);


/*
 * A price "IN/OUT" (currency units per 1M prompt / completion tokens, up
 * to 6 decimals, e.g. "0.15/0.6") into micro-units per 1M tokens.
 * 0, or -1 when malformed or above 1000000 units.
 */
int gpugate_rl_price(const char *s, size_t len, int64_t *in, int64_t *out);

/* the spend of "prompt" and "completion" tokens at those prices, in
   micro-units, rounded up */
int64_t gpugate_rl_cost(int64_t prompt, int64_t completion, int64_t in,
    int64_t out);


#endif /* _GPUGATE_RATELIMIT_H_INCLUDED_ */
