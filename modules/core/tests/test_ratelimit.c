
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the limits' arithmetic: buckets drain exactly (a limit
 * of N per minute admits N at once and one more every 60/N s, whatever
 * the number of looks in between), waits are the real time to capacity,
 * refunds never go below empty, UTC days and months end where the
 * calendar says, durations print as OpenAI's headers do, the body
 * estimate reads max_tokens however it is spelled, and prices and spend
 * round up, never down.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_ratelimit.h"
#include "tap.h"


static int
dur_is(int64_t ms, const char *want)
{
    char    buf[GPUGATE_RL_DURATION_LEN];
    size_t  n;

    n = gpugate_rl_duration(buf, ms);

    if (n != strlen(want) || strcmp(buf, want) != 0) {
        printf("# %ld ms: \"%s\", want \"%s\"\n", (long) ms, buf, want);
        return 0;
    }

    return 1;
}


static gpugate_rl_estimate_t
est(const char *body, int answers, int64_t def, int64_t bpt)
{
    gpugate_rl_estimate_t  e;

    if (gpugate_rl_estimate(body, strlen(body), answers, def, bpt, &e) != 0)
    {
        e.prompt = -1;
    }

    return e;
}


int
main(void)
{
    int                    ok, i;
    int64_t                w, left, in, out, limit, admitted;
    uint64_t               now;
    gpugate_rl_bucket_t    b;
    gpugate_rl_estimate_t  e;

    /* rpm 10: ten at once, the eleventh waits 6 s, exactly */

    memset(&b, 0, sizeof(b));
    gpugate_rl_drain(&b, 10, 1000);

    for (i = 0, ok = 1; i < 10; i++) {
        ok &= gpugate_rl_wait(&b, 10, 1) == 0;
        gpugate_rl_add(&b, 1);
    }

    tap_ok(ok, "a limit of 10 per minute admits 10 at once");
    tap_ok(gpugate_rl_wait(&b, 10, 1) == 6000, "the 11th waits 6000 ms (%ld)",
           (long) gpugate_rl_wait(&b, 10, 1));
    tap_ok(gpugate_rl_remaining(&b, 10) == 0, "none remaining");
    tap_ok(gpugate_rl_reset_ms(&b, 10) == 60000, "empty again in 60 s");

    gpugate_rl_drain(&b, 10, 1000 + 5999);
    tap_ok(gpugate_rl_wait(&b, 10, 1) == 1, "1 ms before, still 1 ms to go");
    gpugate_rl_drain(&b, 10, 1000 + 6000);
    tap_ok(gpugate_rl_wait(&b, 10, 1) == 0, "at 6 s one more fits");
    tap_ok(gpugate_rl_remaining(&b, 10) == 1, "and one is remaining");

    /* many looks drain the same as one: no rounding drift */

    memset(&b, 0, sizeof(b));
    gpugate_rl_drain(&b, 7, 0);
    gpugate_rl_add(&b, 7);

    for (now = 1; now <= 30000; now++) {
        gpugate_rl_drain(&b, 7, now);
    }

    tap_ok(b.used == 7 * GPUGATE_RL_SCALE / 2,
           "7/min drained by 30000 looks of 1 ms: half left (%ld)",
           (long) b.used);

    /* a minute of steady traffic at 3x the limit admits the limit plus
       what drained: never more */

    for (limit = 1; limit <= 1000; limit *= 10) {
        memset(&b, 0, sizeof(b));
        admitted = 0;

        for (now = 0; now < 60000; now += 20) {
            gpugate_rl_drain(&b, limit, now);

            if (gpugate_rl_wait(&b, limit, 1) == 0) {
                gpugate_rl_add(&b, 1);
                admitted++;
            }
        }

        tap_ok(admitted <= 2 * limit && admitted >= 2 * limit - 1
               - limit / 1000,
               "limit %ld over one minute of 50 tries/s: %ld admitted "
               "(burst + refill)", (long) limit, (long) admitted);
    }

    /* tokens: a reservation larger than the limit never fits */

    memset(&b, 0, sizeof(b));
    tap_ok(gpugate_rl_wait(&b, 1000, 1001) == -1,
           "1001 tokens against 1000/min: never");
    tap_ok(gpugate_rl_wait(&b, 1000, 1000) == 0, "1000 fit an empty bucket");
    gpugate_rl_add(&b, 600);
    w = gpugate_rl_wait(&b, 1000, 500);
    tap_ok(w == 6000, "500 more after 600: wait for 100 to drain, 6 s (%ld)",
           (long) w);

    /* settlement: refunds and overruns */

    gpugate_rl_add(&b, -550);
    tap_ok(gpugate_rl_remaining(&b, 1000) == 950, "refund of 550: 950 left");
    gpugate_rl_add(&b, -1000000);
    tap_ok(b.used == 0, "a refund never goes below empty");
    gpugate_rl_add(&b, 1500);
    tap_ok(gpugate_rl_remaining(&b, 1000) == 0
           && gpugate_rl_wait(&b, 1000, 1) == 30060,
           "an overrun is debt: 501 to drain before 1 fits (%ld ms)",
           (long) gpugate_rl_wait(&b, 1000, 1));
    gpugate_rl_add(&b, INT64_MAX);
    tap_ok(b.used > 0, "a huge count does not wrap");

    /* no limit */

    gpugate_rl_drain(&b, 0, 5);
    tap_ok(b.used == 0 && gpugate_rl_wait(&b, 0, 1000000) == 0,
           "limit 0: nothing counted, everything fits");

    /* a clock going back */

    memset(&b, 0, sizeof(b));
    gpugate_rl_drain(&b, 60, 10000);
    gpugate_rl_add(&b, 1);
    gpugate_rl_drain(&b, 60, 5000);
    tap_ok(b.used == GPUGATE_RL_SCALE, "time going back drains nothing");
    gpugate_rl_drain(&b, 60, 6000);
    tap_ok(b.used == 0, "and draining goes on from there");

    /* periods */

    w = gpugate_rl_period(GPUGATE_RL_PERIOD_DAY, 86400 * 3 + 10, &left);
    tap_ok(w == 3 && left == 86390, "day 3, 86390 s left");
    w = gpugate_rl_period(GPUGATE_RL_PERIOD_DAY, 86400 * 4 - 1, &left);
    tap_ok(w == 3 && left == 1, "last second of day 3");

    /* 2024-02-29 12:00:00 UTC = 1709208000; March starts at 1709251200 */
    w = gpugate_rl_period(GPUGATE_RL_PERIOD_MONTH, 1709208000, &left);
    tap_ok(w == 2024 * 12 + 1 && left == 43200,
           "leap February: month %ld, %ld s left", (long) w, (long) left);
    /* 2023-12-31 23:59:59 = 1704067199 */
    w = gpugate_rl_period(GPUGATE_RL_PERIOD_MONTH, 1704067199, &left);
    tap_ok(w == 2023 * 12 + 11 && left == 1, "December ends with the year");
    /* 2024-01-01 00:00:00 */
    w = gpugate_rl_period(GPUGATE_RL_PERIOD_MONTH, 1704067200, &left);
    tap_ok(w == 2024 * 12 && left == 31 * 86400, "January has 31 days");
    w = gpugate_rl_period(GPUGATE_RL_PERIOD_MONTH, 1706745600, &left);
    tap_ok(w == 2024 * 12 + 1 && left == 29 * 86400, "February 2024: 29");
    w = gpugate_rl_period(GPUGATE_RL_PERIOD_MONTH, 1675209600, &left);
    tap_ok(w == 2023 * 12 + 1 && left == 28 * 86400, "February 2023: 28");

    /* durations as OpenAI sends them */

    tap_ok(dur_is(0, "0s") && dur_is(-5, "0s") && dur_is(1, "1ms")
           && dur_is(20, "20ms") && dur_is(999, "999ms"),
           "under a second: ms");
    tap_ok(dur_is(1000, "1s") && dur_is(1500, "1.5s")
           && dur_is(1250, "1.25s") && dur_is(1125, "1.125s")
           && dur_is(59999, "59.999s"),
           "seconds with the fraction's zeros trimmed");
    tap_ok(dur_is(60000, "1m0s") && dur_is(360000, "6m0s")
           && dur_is(362500, "6m2.5s") && dur_is(3600000, "1h0m0s")
           && dur_is(3723250, "1h2m3.25s") && dur_is(86400000, "24h0m0s"),
           "minutes and hours");
    tap_ok(dur_is(INT64_MAX, "2562047788015h12m55.807s"),
           "the longest fits");

    /* estimates */

    e = est("{\"model\":\"m\",\"max_tokens\":100}", 1, 16, 4);
    tap_ok(e.prompt == 8 && e.completion == 100 && e.capped,
           "31 bytes / 4: 8 prompt, max_tokens 100");
    e = est("{\"model\":\"m\",\"max_completion_tokens\":50,"
            "\"max_tokens\":70}", 1, 16, 1);
    tap_ok(e.completion == 70 && e.prompt == 56,
           "both caps: the larger; 1 byte a token");
    e = est("{\"model\":\"m\",\"messages\":[{\"max_tokens\":1}]}", 1, 16, 4);
    tap_ok(e.completion == 16 && !e.capped,
           "a nested max_tokens is not the cap: the default");
    e = est("{\"model\":\"m\",\"max\\u005ftokens\":5}", 1, 16, 4);
    tap_ok(e.completion == 5 && e.capped, "an escaped member name is read");
    e = est("{\"model\":\"m\",\"max_tokens\":null}", 1, 16, 4);
    tap_ok(e.completion == 16, "null: the default");
    e = est("{\"model\":\"m\",\"max_tokens\":\"9\"}", 1, 16, 4);
    tap_ok(e.completion == 16, "a string: the default");
    e = est("{\"model\":\"m\",\"max_tokens\":1e3}", 1, 16, 4);
    tap_ok(e.completion == 1000, "1e3: 1000");
    e = est("{\"model\":\"m\",\"max_tokens\":99.5}", 1, 16, 4);
    tap_ok(e.completion == 100, "99.5 rounds up");
    e = est("{\"model\":\"m\",\"max_tokens\":2.5e-1}", 1, 16, 4);
    tap_ok(e.completion == 1, "0.25 rounds up to 1");
    e = est("{\"model\":\"m\",\"max_tokens\":10,\"n\":3}", 1, 16, 4);
    tap_ok(e.completion == 30, "n=3 triples the cap");
    e = est("{\"n\":4,\"model\":\"m\"}", 1, 16, 4);
    tap_ok(e.completion == 64, "n=4 and the default");
    e = est("{\"model\":\"m\",\"max_tokens\":99999999999999999999999}", 1,
            16, 4);
    tap_ok(e.completion == GPUGATE_RL_COUNT_MAX, "a huge cap is clamped");
    e = est("{\"model\":\"m\",\"max_tokens\":1e999,\"n\":1e999}", 1, 16, 4);
    tap_ok(e.completion == GPUGATE_RL_COUNT_MAX,
           "huge exponents: clamped, no overflow");
    e = est("{\"model\":\"m\",\"input\":\"x\",\"max_tokens\":9}", 0, 16, 4);
    tap_ok(e.completion == 0 && e.prompt == 10, "embeddings: no completion");
    e = est(" \n{ \"a\" : { \"b\" : [1,2,{\"c\":\"}\"}] } , \"max_tokens\" "
            ": 7 }", 1, 16, 4);
    tap_ok(e.completion == 7, "whitespace and nested braces in strings");
    e = est("[1]", 1, 16, 4);
    tap_ok(e.prompt == -1, "not an object: -1");
    e = est("{\"model\":\"m\",\"max_tokens\":-5}", 1, 16, 4);
    tap_ok(e.completion == 16, "a negative cap: the default");

    /* prices and spend */

    tap_ok(gpugate_rl_price("0.15/0.6", 8, &in, &out) == 0
           && in == 150000 && out == 600000, "0.15/0.6");
    tap_ok(gpugate_rl_price("3/15", 4, &in, &out) == 0
           && in == 3000000 && out == 15000000, "3/15");
    tap_ok(gpugate_rl_price("0.000001/0", 10, &in, &out) == 0
           && in == 1 && out == 0, "the smallest step");
    tap_ok(gpugate_rl_price("1", 1, &in, &out) == -1
           && gpugate_rl_price("1/", 2, &in, &out) == -1
           && gpugate_rl_price("/1", 2, &in, &out) == -1
           && gpugate_rl_price("1./1", 4, &in, &out) == -1
           && gpugate_rl_price("0.0000001/1", 11, &in, &out) == -1
           && gpugate_rl_price("-1/1", 4, &in, &out) == -1
           && gpugate_rl_price("1/1/1", 5, &in, &out) == -1
           && gpugate_rl_price("10000001/1", 10, &in, &out) == -1
           && gpugate_rl_price("1e3/1", 5, &in, &out) == -1,
           "malformed prices refused");

    tap_ok(gpugate_rl_cost(1000000, 0, 3000000, 0) == 3000000,
           "1M prompt tokens at 3/1M: 3 units");
    tap_ok(gpugate_rl_cost(1, 1, 150000, 600000) == 1,
           "one token each at 0.15/0.6: 0.75 micros rounds up to 1");
    tap_ok(gpugate_rl_cost(1000, 2000, 150000, 600000) == 1350,
           "1000 + 2000 tokens: 1350 micros");
    tap_ok(gpugate_rl_cost(GPUGATE_RL_COUNT_MAX, GPUGATE_RL_COUNT_MAX,
                           1000000000000LL, 1000000000000LL) > 0,
           "the largest spend does not wrap");
    tap_ok(gpugate_rl_cost(-5, 10, 1000000, 1000000) == 10,
           "negative counts count as 0");

    return tap_done();
}
