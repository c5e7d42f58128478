
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of the tunnel handshake header parsers (gpugate_tunnel_proto.c,
 * docs/tunnel-protocol.md), TAP output.  From the repository root:
 *
 *   make -C modules/core BUILDDIR=$PWD/build check
 */


#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gpugate_oai_body.h"
#include "gpugate_tunnel_proto.h"
#include "tap.h"


/* a literal and its length, embedded NULs included */
#define S(s)  s, sizeof(s) - 1


#define SID   "0123456789abcdef0123456789abcdef"
#define SID2  "fedcba9876543210fedcba9876543210"
#define B64   "biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8="


/* "got" is "expect" and lies inside the input; NULL expects absence */

static int
span_is(const char *in, size_t in_len, const char *got, size_t got_len,
    const char *expect)
{
    if (expect == NULL) {
        return got == NULL && got_len == 0;
    }

    return got != NULL && got >= in && got <= in + in_len
           && got_len <= (size_t) (in + in_len - got)
           && got_len == strlen(expect) && memcmp(got, expect, got_len) == 0;
}


static void
auth_ok(const char *p, size_t len, int scheme, const char *sid,
    const char *data, const char *what)
{
    int                    rc, ok;
    gpugate_tunnel_auth_t  a;

    rc = gpugate_tunnel_parse_auth(p, len, scheme, &a);

    ok = rc == 0 && span_is(p, len, a.sid, a.sid_len, sid)
         && span_is(p, len, a.data, a.data_len, data);

    tap_ok(ok, "auth accepts %s", what);

    if (!ok) {
        printf("#   rc %d, sid '%.*s', data '%.*s'\n", rc,
               a.sid ? (int) a.sid_len : 6, a.sid ? a.sid : "(null)",
               a.data ? (int) a.data_len : 6, a.data ? a.data : "(null)");
    }
}


static void
auth_bad(const char *p, size_t len, int scheme, const char *what)
{
    int                    rc;
    gpugate_tunnel_auth_t  a;

    rc = gpugate_tunnel_parse_auth(p, len, scheme, &a);

    tap_ok(rc == -1, "auth refuses %s (rc %d)", what, rc);
}


static void
worker_ok(const char *p, size_t len, unsigned slot, unsigned workers,
    uint64_t pid, uint64_t generation, const char *what)
{
    int                      rc, ok;
    gpugate_tunnel_worker_t  w;

    rc = gpugate_tunnel_parse_worker(p, len, &w);

    ok = rc == 0 && w.slot == slot && w.workers == workers && w.pid == pid
         && w.generation == generation;

    tap_ok(ok, "worker accepts %s", what);

    if (!ok) {
        printf("#   rc %d, slot %u, workers %u, pid %llu, generation %llu\n",
               rc, w.slot, w.workers, (unsigned long long) w.pid,
               (unsigned long long) w.generation);
    }
}


static void
worker_bad(const char *p, size_t len, const char *what)
{
    int                      rc;
    gpugate_tunnel_worker_t  w;

    rc = gpugate_tunnel_parse_worker(p, len, &w);

    tap_ok(rc == -1, "worker refuses %s (rc %d)", what, rc);
}


static void
instance_is(const char *p, size_t len, int expect, const char *what)
{
    int  rc;

    rc = gpugate_tunnel_check_instance(p, len);

    tap_ok(rc == expect, "instance %s %s (rc %d)",
           expect == 0 ? "accepts" : "refuses", what, rc);
}


static void
capacity_ok(const char *p, size_t len, unsigned expect, const char *what)
{
    int       rc;
    unsigned  c;

    c = 0;
    rc = gpugate_tunnel_parse_capacity(p, len, &c);

    tap_ok(rc == 0 && c == expect, "capacity accepts %s (rc %d, %u)", what,
           rc, c);
}


static void
capacity_bad(const char *p, size_t len, const char *what)
{
    int       rc;
    unsigned  c;

    c = 12345;
    rc = gpugate_tunnel_parse_capacity(p, len, &c);

    tap_ok(rc == -1 && c == 12345, "capacity refuses %s (rc %d)", what, rc);
}


static void
models_is(const char *p, size_t len, int expect, const char *what)
{
    int  rc;

    rc = gpugate_tunnel_check_models(p, len);

    tap_ok(rc == expect, "models: %s: %d (got %d)", what, expect, rc);
}


static void
has_is(const char *list, size_t list_len, const char *model,
    size_t model_len, int expect, const char *what)
{
    int  rc;

    rc = gpugate_tunnel_models_has(list, list_len, model, model_len);

    tap_ok(rc == expect, "models_has: %s: %d (got %d)", what, expect, rc);
}


static void
load_ok(const char *p, size_t len, int has_queue, uint64_t queue,
    int has_gpu, uint64_t gpu, const char *what)
{
    int                    rc, ok;
    gpugate_tunnel_load_t  l;

    rc = gpugate_tunnel_parse_load(p, len, &l);

    ok = rc == 0 && l.has_queue == (unsigned) has_queue
         && l.queue == queue && l.has_gpu == (unsigned) has_gpu
         && l.gpu_free_mb == gpu;

    tap_ok(ok, "load accepts %s", what);

    if (!ok) {
        printf("#   rc %d, queue %d/%llu, gpu_free_mb %d/%llu\n", rc,
               (int) l.has_queue, (unsigned long long) l.queue,
               (int) l.has_gpu, (unsigned long long) l.gpu_free_mb);
    }
}


/* "capacity": cap -1 means the key must be absent */

static void
load_cap(const char *p, size_t len, long cap, const char *what)
{
    int                    rc, ok;
    gpugate_tunnel_load_t  l;

    rc = gpugate_tunnel_parse_load(p, len, &l);

    ok = rc == 0 && (cap < 0 ? !l.has_capacity
                             : l.has_capacity && l.capacity == (uint64_t) cap);

    tap_ok(ok, "load accepts %s", what);

    if (!ok) {
        printf("#   rc %d, capacity %d/%llu\n", rc, (int) l.has_capacity,
               (unsigned long long) l.capacity);
    }
}


/* "kv_pct" and "hit_pct": -1 means the key must be absent */

static void
load_cache(const char *p, size_t len, long kv, long hit, const char *what)
{
    int                    rc, ok;
    gpugate_tunnel_load_t  l;

    rc = gpugate_tunnel_parse_load(p, len, &l);

    ok = rc == 0
         && (kv < 0 ? !l.has_kv : l.has_kv && l.kv_pct == (uint64_t) kv)
         && (hit < 0 ? !l.has_hit : l.has_hit && l.hit_pct == (uint64_t) hit);

    tap_ok(ok, "load accepts %s", what);
}


static void
load_bad(const char *p, size_t len, const char *what)
{
    int                    rc;
    gpugate_tunnel_load_t  l;

    rc = gpugate_tunnel_parse_load(p, len, &l);

    tap_ok(rc == -1, "load refuses %s (rc %d)", what, rc);
}


static void
test_auth(void)
{
    char  big[4096 + 32];

    /* what the agent and the gateway send */

    auth_ok(S("SCRAM-SHA-256 data=" B64), 1, NULL, B64, "step 1 (data only)");
    auth_ok(S("SCRAM-SHA-256 sid=" SID ", data=" B64), 1, SID, B64,
            "step 2 (sid, data)");
    auth_ok(S("sid=" SID ", data=dj1ybUY5cHFWOFM3c3VBb1pXamE0ZEpSa0ZzS1E9"),
            0, SID, "dj1ybUY5cHFWOFM3c3VBb1pXamE0ZEpSa0ZzS1E9",
            "Authentication-Info without a scheme");
    auth_ok(S("data=" B64), 0, NULL, B64, "data only without a scheme");

    /* variants the contract allows */

    auth_ok(S("SCRAM-SHA-256 data=" B64 ", sid=" SID), 1, SID, B64,
            "data before sid");
    auth_ok(S("scram-sha-256 sid=" SID ", data=" B64), 1, SID, B64,
            "a lower-case scheme");
    auth_ok(S("Scram-Sha-256 data=" B64), 1, NULL, B64, "a mixed-case scheme");
    auth_ok(S("SCRAM-SHA-256    sid=" SID ",data=" B64), 1, SID, B64,
            "spaces after the scheme, no space after the comma");
    auth_ok(S("SCRAM-SHA-256 sid=" SID "  ,   data=" B64 "   "), 1, SID, B64,
            "spaces around the comma and at the end");
    auth_ok(S("   sid=" SID ", data=" B64), 0, SID, B64,
            "leading spaces without a scheme");
    auth_ok(S("SCRAM-SHA-256 realm=x, sid=" SID ", data=" B64 ", v=1"), 1,
            SID, B64, "unknown parameters before and after");
    auth_ok(S("SCRAM-SHA-256 x=, data=" B64), 1, NULL, B64,
            "an unknown parameter with an empty value");
    auth_ok(S("SCRAM-SHA-256 realm=x"), 1, NULL, NULL,
            "only an unknown parameter (sid, data absent)");
    auth_ok(S("SCRAM-SHA-256 SID=" SID ", DATA=" B64), 1, NULL, NULL,
            "parameter names in upper case as unknown ones");
    auth_ok(S("data=YQ=="), 0, NULL, "YQ==", "data with \"==\" padding");
    auth_ok(S("data=YWI="), 0, NULL, "YWI=", "data with \"=\" padding");
    auth_ok(S("data=ABCXYZabcxyz0189+/"), 0, NULL, "ABCXYZabcxyz0189+/",
            "every base64 character class");
    auth_ok(S("data=x"), 0, NULL, "x", "one-character data");

    memcpy(big, "SCRAM-SHA-256 data=", 19);
    memset(big + 19, 'A', 4096);
    big[19 + 4096] = '\0';

    auth_ok(big, 19 + 4096, 1, NULL, big + 19, "4096 bytes of data");

    /* the scheme */

    auth_bad(S(""), 1, "an empty value");
    auth_bad(S(""), 0, "an empty value without a scheme");
    auth_bad(S("    "), 0, "only spaces");
    auth_bad(S("SCRAM-SHA-256"), 1, "the scheme alone");
    auth_bad(S("SCRAM-SHA-256 "), 1, "the scheme and a space");
    auth_bad(S("SCRAM-SHA-256    "), 1, "the scheme and spaces");
    auth_bad(S("SCRAM-SHA-256data=" B64), 1, "no space after the scheme");
    auth_bad(S("SCRAM-SHA-256\tdata=" B64), 1, "a tab after the scheme");
    auth_bad(S("SCRAM-SHA-2567 data=" B64), 1, "a longer scheme name");
    auth_bad(S("SCRAM-SHA-1 data=" B64), 1, "SCRAM-SHA-1");
    auth_bad(S("Basic dXNlcjpwYXNz"), 1, "Basic");
    auth_bad(S(" SCRAM-SHA-256 data=" B64), 1, "a space before the scheme");
    auth_bad(S("SCRAM\0SHA-256 data=" B64), 1, "a NUL in the scheme");
    auth_bad(S("SCRAM-SHA-256 data=" B64), 0,
             "a scheme where none is expected");
    auth_bad(S("SCRAM-SHA-256, data=" B64), 1, "a comma after the scheme");

    /* sid */

    auth_bad(S("sid=0123456789abcdef0123456789abcde, data=" B64), 0,
             "a 31-character sid");
    auth_bad(S("sid=" SID "0, data=" B64), 0, "a 33-character sid");
    auth_bad(S("sid=0123456789ABCDEF0123456789abcdef, data=" B64), 0,
             "an upper-case sid");
    auth_bad(S("sid=0123456789abcdeg0123456789abcdef, data=" B64), 0,
             "a non-hex sid");
    auth_bad(S("sid=0123456789abcdef\0" "123456789abcdef, data=" B64), 0,
             "a NUL in the sid");
    auth_bad(S("sid=, data=" B64), 0, "an empty sid");
    auth_bad(S("sid=" SID ", sid=" SID ", data=" B64), 0, "a repeated sid");
    auth_bad(S("sid=" SID ", data=" B64 ", sid=" SID2), 0,
             "a second, different sid");

    /* data */

    auth_bad(S("sid=" SID ", data="), 0, "empty data");
    auth_bad(S("data=" B64 ", data=" B64), 0, "repeated data");
    auth_bad(S("data=ab-c"), 0, "\"-\" in data (base64url)");
    auth_bad(S("data=ab_c"), 0, "\"_\" in data (base64url)");
    auth_bad(S("data=a=bc"), 0, "padding in the middle of data");
    auth_bad(S("data=ab=c"), 0, "padding before the last character");
    auth_bad(S("data=a==="), 0, "three padding characters");
    auth_bad(S("data=YQ\0="), 0, "a NUL in data");
    auth_bad(S("data=abc;"), 0, "trailing garbage in data");
    auth_bad(S("data=\"abc\""), 0, "quoted data");

    /* structure */

    auth_bad(S("data=" B64 ","), 0, "a trailing comma");
    auth_bad(S("data=" B64 " ,  "), 0, "a trailing comma and spaces");
    auth_bad(S(", data=" B64), 0, "a leading comma");
    auth_bad(S("sid=" SID ",, data=" B64), 0, "two commas");
    auth_bad(S("sid=" SID " data=" B64), 0, "a space and no comma");
    auth_bad(S("data=" B64 " x"), 0, "a trailing word");
    auth_bad(S("data"), 0, "a name without a value");
    auth_bad(S("sid=" SID ", data"), 0, "a last name without a value");
    auth_bad(S("=" B64), 0, "a value without a name");
    auth_bad(S("data =" B64), 0, "a space before \"=\"");
    auth_bad(S("data= " B64), 0, "a space after \"=\"");
}


static void
test_worker(void)
{
    worker_ok(S("slot=0, pid=123, workers=4, generation=7"), 0, 4, 123, 7,
              "the documented example");
    worker_ok(S("generation=2, workers=8, pid=99, slot=7"), 7, 8, 99, 2,
              "any order, the last slot");
    worker_ok(S("slot=3,pid=1,workers=4,generation=0"), 3, 4, 1, 0,
              "no spaces, generation 0");
    worker_ok(S("  slot=0 ,  pid=5 , workers=1 ,generation=1  "), 0, 1, 5, 1,
              "extra spaces everywhere");
    worker_ok(S("slot=1023, pid=4294967295, workers=1024, "
                "generation=18446744073709551615"),
              1023, 1024, 4294967295ULL, UINT64_MAX, "every maximum");
    worker_ok(S("slot=0, pid=0, workers=1, generation=0"), 0, 1, 0, 0,
              "every minimum");
    worker_ok(S("slot=0, pid=1, node=x, workers=2, generation=3, z="), 0, 2,
              1, 3, "unknown keys, one with an empty value");

    worker_bad(S(""), "an empty value");
    worker_bad(S("   "), "only spaces");
    worker_bad(S("pid=1, workers=2, generation=3"), "no slot");
    worker_bad(S("slot=0, workers=2, generation=3"), "no pid");
    worker_bad(S("slot=0, pid=1, generation=3"), "no workers");
    worker_bad(S("slot=0, pid=1, workers=2"), "no generation");
    worker_bad(S("Slot=0, pid=1, workers=2, generation=3"),
               "an upper-case key (so no slot)");
    worker_bad(S("slot=0, slot=0, pid=1, workers=2, generation=3"),
               "a repeated slot");
    worker_bad(S("slot=0, pid=1, pid=1, workers=2, generation=3"),
               "a repeated pid");
    worker_bad(S("slot=0, pid=1, workers=2, workers=2, generation=3"),
               "repeated workers");
    worker_bad(S("slot=0, pid=1, workers=2, generation=3, generation=3"),
               "a repeated generation");
    worker_bad(S("slot=4, pid=1, workers=4, generation=3"),
               "slot equal to workers");
    worker_bad(S("slot=5, pid=1, workers=4, generation=3"),
               "slot above workers");
    worker_bad(S("slot=1024, pid=1, workers=1024, generation=3"),
               "slot 1024");
    worker_bad(S("slot=0, pid=1, workers=0, generation=3"), "workers 0");
    worker_bad(S("slot=0, pid=1, workers=1025, generation=3"),
               "workers 1025");
    worker_bad(S("slot=0, pid=4294967296, workers=1, generation=3"),
               "pid 2^32");
    worker_bad(S("slot=0, pid=1, workers=1, "
                 "generation=18446744073709551616"), "generation 2^64");
    worker_bad(S("slot=0, pid=1, workers=1, "
                 "generation=99999999999999999999"), "generation 20 nines");
    worker_bad(S("slot=0, pid=1, workers=1, "
                 "generation=100000000000000000000"), "a 21-digit generation");
    worker_bad(S("slot=00, pid=1, workers=1, generation=3"), "slot \"00\"");
    worker_bad(S("slot=0, pid=01, workers=1, generation=3"),
               "a leading zero in pid");
    worker_bad(S("slot=0, pid=+1, workers=1, generation=3"), "a plus sign");
    worker_bad(S("slot=0, pid=-1, workers=1, generation=3"), "a minus sign");
    worker_bad(S("slot=0, pid=0x10, workers=1, generation=3"), "hex pid");
    worker_bad(S("slot=0, pid=, workers=1, generation=3"), "an empty pid");
    worker_bad(S("slot=0, pid= 1, workers=1, generation=3"),
               "a space after \"=\"");
    worker_bad(S("slot=0, pid=1, workers=1, generation=3x"),
               "trailing garbage in a number");
    worker_bad(S("slot=0, pid=1\0, workers=1, generation=3"),
               "a NUL after a number");
    worker_bad(S("slot=0, pid=1, workers=1, generation=3,"),
               "a trailing comma");
    worker_bad(S(",slot=0, pid=1, workers=1, generation=3"),
               "a leading comma");
    worker_bad(S("slot=0 pid=1, workers=1, generation=3"), "a missing comma");
    worker_bad(S("slot=0, pid=1, workers=1, generation"),
               "a key without a value");
}


static void
test_instance(void)
{
    instance_is(S("0123456789abcdef"), 0, "16 hex characters");
    instance_is(S("0123456789abcdef0123456789abcdef"), 0,
                "32 hex characters");
    instance_is(S("0123456789ABCDEFabcdef"), 0, "mixed-case hex");

    instance_is(S(""), -1, "an empty value");
    instance_is(S("0123456789abcde"), -1, "15 characters");
    instance_is(S("0123456789abcdef0123456789abcdef0"), -1, "33 characters");
    instance_is(S("0123456789abcdeg"), -1, "a non-hex character");
    instance_is(S("0123456789abcdef "), -1, "a trailing space");
    instance_is(S(" 0123456789abcdef"), -1, "a leading space");
    instance_is(S("01234567-89abcdef"), -1, "a dash");
    instance_is(S("0123456789abcdef\0" "0"), -1, "a NUL");
}


static void
test_capacity(void)
{
    capacity_ok(S("1"), 1, "1");
    capacity_ok(S("9"), 9, "9");
    capacity_ok(S("100"), 100, "100");
    capacity_ok(S("65535"), 65535, "65535 (the maximum)");

    capacity_bad(S(""), "an empty value");
    capacity_bad(S("0"), "0");
    capacity_bad(S("65536"), "65536");
    capacity_bad(S("4294967297"), "2^32 + 1");
    capacity_bad(S("18446744073709551617"), "2^64 + 1");
    capacity_bad(S("100000000000000000000000"), "24 digits");
    capacity_bad(S("00"), "\"00\"");
    capacity_bad(S("01"), "a leading zero");
    capacity_bad(S("+1"), "a plus sign");
    capacity_bad(S("-1"), "a minus sign");
    capacity_bad(S(" 1"), "a leading space");
    capacity_bad(S("1 "), "a trailing space");
    capacity_bad(S("1.0"), "a decimal point");
    capacity_bad(S("1e3"), "an exponent");
    capacity_bad(S("0x10"), "hex");
    capacity_bad(S("1\0"), "a trailing NUL");
}


static void
test_models(void)
{
    size_t  i;
    char    buf[GPUGATE_TUNNEL_MODELS_MAX + 16];

    models_is(S(""), 0, "empty (any model)");
    models_is(S("   "), 0, "only spaces (any model)");
    models_is(S("llama3"), 1, "one id");
    models_is(S("a, b, c"), 3, "three ids");
    models_is(S("a,b"), 2, "no space after the comma");
    models_is(S("  a  ,  b  "), 2, "spaces around");
    models_is(S("a, a"), 2, "a repeated id (counted twice)");
    models_is(S("meta-llama/Llama-3.1-8B-Instruct:q4_K_M, qwen2.5:7b"), 2,
              "ids with \"/\", \":\" and \".\"");
    models_is(S("!\"#$%&'()*+-./:;<=>?@[\\]^_`{|}~"), 1,
              "every printable punctuation character but \",\"");

    memset(buf, 'm', GPUGATE_TUNNEL_MODEL_MAX + 1);
    models_is(buf, GPUGATE_TUNNEL_MODEL_MAX, 1, "a 256-byte id");
    models_is(buf, GPUGATE_TUNNEL_MODEL_MAX + 1, -1, "a 257-byte id");

    /* three 256-byte ids fit in 1024 bytes, four do not */

    for (i = 0; i < 4; i++) {
        memset(buf + i * 258, 'a' + i, 256);
        memcpy(buf + i * 258 + 256, ", ", 2);
    }

    models_is(buf, 3 * 258 - 2, 3, "three 256-byte ids");
    models_is(buf, 4 * 258 - 2, -1, "four 256-byte ids (1030 bytes)");

    /* the most ids: "a,a,...,a " is 1024 bytes, 512 ids */

    for (i = 0; i < 512; i++) {
        memcpy(buf + i * 2, "a,", 2);
    }

    buf[1023] = ' ';

    models_is(buf, GPUGATE_TUNNEL_MODELS_MAX, 512, "512 ids in 1024 bytes");
    has_is(buf, GPUGATE_TUNNEL_MODELS_MAX, S("a"), 1, "in the 512-id list");
    has_is(buf, GPUGATE_TUNNEL_MODELS_MAX, S("b"), 0,
           "not in the 512-id list");

    buf[1023] = ',';
    buf[1024] = 'a';

    models_is(buf, GPUGATE_TUNNEL_MODELS_MAX + 1, -1, "513 ids in 1025 bytes");

    memset(buf, ' ', GPUGATE_TUNNEL_MODELS_MAX + 1);
    models_is(buf, GPUGATE_TUNNEL_MODELS_MAX, 0, "1024 spaces");
    models_is(buf, GPUGATE_TUNNEL_MODELS_MAX + 1, -1, "1025 spaces");

    models_is(S("a,"), -1, "a trailing comma");
    models_is(S("a, "), -1, "a trailing comma and a space");
    models_is(S(",a"), -1, "a leading comma");
    models_is(S(" , "), -1, "only a comma");
    models_is(S("a,,b"), -1, "two commas");
    models_is(S("a b"), -1, "a space and no comma");
    models_is(S("a\tb"), -1, "a tab");
    models_is(S("a\x7f"), -1, "DEL");
    models_is(S("caf\xc3\xa9"), -1, "UTF-8");
    models_is(S("a\0b"), -1, "a NUL");
    models_is(S("a\r\n"), -1, "CR LF");
}


static void
test_models_has(void)
{
    has_is(S("a, b, c"), S("a"), 1, "the first id");
    has_is(S("a, b, c"), S("b"), 1, "the middle id");
    has_is(S("a, b, c"), S("c"), 1, "the last id");
    has_is(S("x,y"), S("y"), 1, "the last id, no spaces");
    has_is(S("  a  ,  b  "), S("b"), 1, "an id among spaces");
    has_is(S("a, b, c"), S("d"), 0, "an absent id");
    has_is(S("a, b, c"), S(""), 0, "an empty model");
    has_is(S("a, b, c"), S("A"), 0, "another case");
    has_is(S("a, b, c"), S("a,"), 0, "an id and its comma");
    has_is(S("a, b, c"), S("a, b"), 0, "two ids");
    has_is(S("llama3.1"), S("llama3"), 0, "a prefix of an id");
    has_is(S("llama3"), S("llama3.1"), 0, "an id as a prefix");
    has_is(S("xllama3"), S("llama3"), 0, "a suffix of an id");
    has_is(S("a"), S("a\0"), 0, "an id and a NUL");
    has_is(S(""), S("anything"), 1, "an empty list serves any model");
    has_is(S("   "), S("anything"), 1, "a list of spaces serves any model");
    has_is(S(""), S(""), 1, "an empty list and an empty model");
}


static void
test_load(void)
{
    load_ok(S("queue=3, gpu_free_mb=1024"), 1, 3, 1, 1024, "both keys");
    load_ok(S("gpu_free_mb=1024,queue=3"), 1, 3, 1, 1024,
            "both keys, reversed, no space");
    load_ok(S("queue=0"), 1, 0, 0, 0, "queue 0 alone");
    load_ok(S("gpu_free_mb=0"), 0, 0, 1, 0, "gpu_free_mb 0 alone");
    load_ok(S("queue=4294967295, gpu_free_mb=4294967295"), 1, 4294967295ULL,
            1, 4294967295ULL, "both at 2^32-1");
    load_ok(S("  queue=1 ,  kv_cache=0.5 , gpu_free_mb=2  "), 1, 1, 1, 2,
            "an unknown key and spaces");
    load_ok(S("Queue=1"), 0, 0, 0, 0, "an upper-case key as an unknown one");
    load_ok(S(""), 0, 0, 0, 0, "an empty value (nothing reported)");
    load_ok(S("   "), 0, 0, 0, 0, "only spaces");

    load_bad(S("queue=4294967296"), "queue 2^32");
    load_bad(S("gpu_free_mb=4294967296"), "gpu_free_mb 2^32");
    load_bad(S("queue=01"), "a leading zero");
    load_bad(S("queue=-1"), "a minus sign");
    load_bad(S("queue=+1"), "a plus sign");
    load_bad(S("queue="), "an empty queue");
    load_bad(S("queue=1x"), "trailing garbage in a number");
    load_bad(S("queue=1.5"), "a decimal point");
    load_bad(S("queue=1, queue=1"), "a repeated queue");
    load_bad(S("gpu_free_mb=1, queue=1, gpu_free_mb=2"),
             "a repeated gpu_free_mb");
    load_bad(S("queue=1, future="), "an unknown key with an empty value");
    load_bad(S("queue"), "a key without a value");
    load_bad(S("=1"), "a value without a key");
    load_bad(S("queue=1,"), "a trailing comma");
    load_bad(S(",queue=1"), "a leading comma");
    load_bad(S("queue=1 gpu_free_mb=2"), "a missing comma");
    load_bad(S("queue=1\0"), "a NUL");

    /* capacity: a gateway's share of a multi-gateway agent */

    load_cap(S("capacity=0"), 0, "capacity 0 (everything used elsewhere)");
    load_cap(S("capacity=65535"), 65535, "capacity at its most");
    load_cap(S("queue=2, capacity=3, gpu_free_mb=9"), 3,
             "capacity between the other keys");
    load_cap(S("queue=2"), -1, "no capacity key: none reported");
    load_bad(S("capacity=65536"), "capacity over 65535");
    load_bad(S("capacity=1, capacity=1"), "a repeated capacity");
    load_bad(S("capacity="), "an empty capacity");
    load_bad(S("capacity=01"), "a capacity with a leading zero");
    load_bad(S("capacity=-1"), "a negative capacity");

    /* the runtime's cache: KV use and prefix hits, percent */

    load_cache(S("kv_pct=0, hit_pct=0"), 0, 0, "cache figures of 0");
    load_cache(S("queue=1, hit_pct=100, capacity=2, kv_pct=93"), 93, 100,
               "cache figures between the other keys");
    load_cache(S("queue=1"), -1, -1, "no cache keys: none reported");
    load_cache(S("kv_pct=7"), 7, -1, "kv_pct alone");
    load_bad(S("kv_pct=101"), "kv_pct over 100");
    load_bad(S("hit_pct=101"), "hit_pct over 100");
    load_bad(S("kv_pct=1, kv_pct=1"), "a repeated kv_pct");
    load_bad(S("hit_pct=5, hit_pct=5"), "a repeated hit_pct");
    load_bad(S("kv_pct=0.5"), "a fractional kv_pct");
    load_bad(S("hit_pct="), "an empty hit_pct");
    load_bad(S("kv_pct=05"), "a kv_pct with a leading zero");
}


static void
tele_is(const char *p, size_t len, int expect, const char *what)
{
    int                         rc;
    gpugate_tunnel_telemetry_t  t;

    rc = gpugate_tunnel_parse_telemetry(p, len, &t);

    tap_ok(rc == expect, "telemetry %s %s (rc %d)",
           expect == 0 ? "accepts" : "refuses", what, rc);
}


/* a host section ahead of what a test puts after it */

#define HOST   "cpu_pct=5, cpus=2, mem_used_mb=3, mem_total_mb=4, "
#define GPU0   "; gpu=0, name=\"A\""


static void
test_telemetry(void)
{
    int                          rc, ok;
    char                         big[GPUGATE_TUNNEL_TELEMETRY_MAX + 64];
    size_t                       i, n, accepted;
    gpugate_tunnel_telemetry_t   t;
    const gpugate_tunnel_gpu_t  *g;

    static const char  full[] =
        "cpu_pct=12, cpus=8, mem_used_mb=1000, mem_total_mb=16000, gpus=2"
        "; gpu=0, name=\"NVIDIA H200\", util_pct=37, mem_used_mb=81234, "
        "mem_total_mb=143771, temp_c=45, power_w=312"
        "; gpu=1, name=\"NVIDIA A100-SXM4-80GB\", temp_c=0";

    static const char  prefix[] = HOST "gpus=1; gpu=0, name=\"A\", temp_c=40";

    /* what the agent sends */

    rc = gpugate_tunnel_parse_telemetry(S(full), &t);
    g = &t.gpu[0];

    ok = rc == 0 && t.cpu_pct == 12 && t.cpus == 8 && t.mem_used_mb == 1000
         && t.mem_total_mb == 16000 && t.gpus == 2 && t.ngpus == 2
         && g->index == 0 && g->name_len == 11
         && strcmp(g->name, "NVIDIA H200") == 0
         && g->has_util && g->util_pct == 37
         && g->has_mem_used && g->mem_used_mb == 81234
         && g->has_mem_total && g->mem_total_mb == 143771
         && g->has_temp && g->temp_c == 45 && g->has_power
         && g->power_w == 312;

    g = &t.gpu[1];

    ok = ok && g->index == 1 && g->name_len == 21
         && strcmp(g->name, "NVIDIA A100-SXM4-80GB") == 0
         && !g->has_util && !g->has_mem_used && !g->has_mem_total
         && g->has_temp && g->temp_c == 0 && !g->has_power;

    tap_ok(ok, "telemetry: two GPUs, all values, optional ones left out");

    rc = gpugate_tunnel_parse_telemetry(S(HOST "gpus=0"), &t);
    tap_ok(rc == 0 && t.cpu_pct == 5 && t.cpus == 2 && t.mem_used_mb == 3
           && t.mem_total_mb == 4 && t.gpus == 0 && t.ngpus == 0,
           "telemetry: no GPU");

    rc = gpugate_tunnel_parse_telemetry(S("gpus=0,mem_total_mb=4,cpus=2 ,"
                                          "  mem_used_mb=3, cpu_pct=100"),
                                        &t);
    tap_ok(rc == 0 && t.cpu_pct == 100 && t.cpus == 2 && t.gpus == 0,
           "telemetry: host keys in any order, odd spacing, cpu_pct 100");

    rc = gpugate_tunnel_parse_telemetry(S("  " HOST "gpus=1  ;  "
                                          "name=\"x, y; z=1\" ,gpu=7  "), &t);
    tap_ok(rc == 0 && t.ngpus == 1 && t.gpu[0].index == 7
           && strcmp(t.gpu[0].name, "x, y; z=1") == 0
           && t.gpu[0].name_len == 9,
           "telemetry: spaces around \";\", name first, \",\" \";\" \"=\" in "
           "a name");

    rc = gpugate_tunnel_parse_telemetry(S(HOST "load=0.5, gpus=1, x=\"a b\""
                                          GPU0 ", fan_pct=30, "
                                          "uuid=\"GPU-1234\""), &t);
    tap_ok(rc == 0 && t.gpus == 1 && t.ngpus == 1
           && strcmp(t.gpu[0].name, "A") == 0,
           "telemetry: unknown keys skipped, tokens and quoted strings");

    rc = gpugate_tunnel_parse_telemetry(S("cpu_pct=0, cpus=4294967295, "
                                          "mem_used_mb=4294967295, "
                                          "mem_total_mb=4294967295, gpus=1; "
                                          "gpu=4294967295, name=\"A\", "
                                          "util_pct=4294967295, "
                                          "power_w=4294967295"), &t);
    tap_ok(rc == 0 && t.cpus == UINT32_MAX && t.mem_total_mb == UINT32_MAX
           && t.gpu[0].index == UINT32_MAX && t.gpu[0].power_w == UINT32_MAX
           && t.gpu[0].util_pct == UINT32_MAX, "telemetry: 2^32-1");

    n = sizeof(HOST "gpus=1; gpu=0, name=\"") - 1;
    memcpy(big, HOST "gpus=1; gpu=0, name=\"", n);
    memset(big + n, '~', 63);
    big[n + 63] = '"';

    rc = gpugate_tunnel_parse_telemetry(big, n + 64, &t);
    tap_ok(rc == 0 && t.gpu[0].name_len == 63 && t.gpu[0].name[63] == '\0'
           && t.gpu[0].name[62] == '~', "telemetry: a 63-byte name");

    big[n + 63] = '~';
    big[n + 64] = '"';
    tele_is(big, n + 65, -1, "a 64-byte name");

    tele_is(S(HOST "gpus=1; gpu=0, name=\" !#$%&'()*+,-./09:;<=>?@AZ[]^_`az"
              "{|}~\""), 0, "every printable character but '\"' and '\\'");

    /* ten sections: all checked, eight kept */

    n = sizeof(HOST "gpus=10") - 1;
    memcpy(big, HOST "gpus=10", n);

    for (i = 0; i < 10; i++) {
        n += sprintf(big + n, "; gpu=%zu, name=\"G%zu\", temp_c=%zu", i, i,
                     40 + i);
    }

    rc = gpugate_tunnel_parse_telemetry(big, n, &t);
    tap_ok(rc == 0 && t.gpus == 10 && t.ngpus == GPUGATE_TUNNEL_GPUS_MAX
           && t.gpu[7].index == 7 && strcmp(t.gpu[7].name, "G7") == 0
           && t.gpu[7].temp_c == 47,
           "telemetry: ten sections, the first eight kept");

    memcpy(big + n - 2, "4x", 2);
    tele_is(big, n, -1, "a bad number in the tenth section (not kept)");

    tele_is(big, sizeof(HOST "gpus=10") - 1, -1,
            "gpus=10 and no sections");

    /* the size limit */

    n = sizeof(HOST "gpus=0, pad=") - 1;
    memcpy(big, HOST "gpus=0, pad=", n);
    memset(big + n, 'p', GPUGATE_TUNNEL_TELEMETRY_MAX - n);

    tele_is(big, GPUGATE_TUNNEL_TELEMETRY_MAX, 0, "2048 bytes");

    big[GPUGATE_TUNNEL_TELEMETRY_MAX] = 'p';
    tele_is(big, GPUGATE_TUNNEL_TELEMETRY_MAX + 1, -1, "2049 bytes");

    /* the host section */

    tele_is(S(""), -1, "an empty value");
    tele_is(S("   "), -1, "only spaces");
    tele_is(S("cpus=2, mem_used_mb=3, mem_total_mb=4, gpus=0"), -1,
            "no cpu_pct");
    tele_is(S("cpu_pct=5, mem_used_mb=3, mem_total_mb=4, gpus=0"), -1,
            "no cpus");
    tele_is(S("cpu_pct=5, cpus=2, mem_total_mb=4, gpus=0"), -1,
            "no mem_used_mb");
    tele_is(S("cpu_pct=5, cpus=2, mem_used_mb=3, gpus=0"), -1,
            "no mem_total_mb");
    tele_is(S("cpu_pct=5, cpus=2, mem_used_mb=3, mem_total_mb=4"), -1,
            "no gpus");
    tele_is(S(HOST "gpus=0, cpus=2"), -1, "a repeated host key");
    tele_is(S(HOST "gpus=0, gpus=0"), -1, "a repeated gpus");
    tele_is(S(HOST "gpus=0, CPUS=2"), 0, "an upper-case key as unknown");
    tele_is(S("cpu_pct=101, cpus=2, mem_used_mb=3, mem_total_mb=4, gpus=0"),
            -1, "cpu_pct 101");
    tele_is(S("cpu_pct=05, cpus=2, mem_used_mb=3, mem_total_mb=4, gpus=0"),
            -1, "a leading zero");
    tele_is(S("cpu_pct=5, cpus=-2, mem_used_mb=3, mem_total_mb=4, gpus=0"),
            -1, "a minus sign");
    tele_is(S("cpu_pct=5, cpus=+2, mem_used_mb=3, mem_total_mb=4, gpus=0"),
            -1, "a plus sign");
    tele_is(S("cpu_pct=5, cpus=2, mem_used_mb=4294967296, mem_total_mb=4, "
              "gpus=0"), -1, "2^32");
    tele_is(S("cpu_pct=5, cpus=2x, mem_used_mb=3, mem_total_mb=4, gpus=0"),
            -1, "a letter in a number");
    tele_is(S("cpu_pct=5, cpus=1.5, mem_used_mb=3, mem_total_mb=4, gpus=0"),
            -1, "a decimal point");
    tele_is(S("cpu_pct=, cpus=2, mem_used_mb=3, mem_total_mb=4, gpus=0"),
            -1, "an empty number");
    tele_is(S("cpu_pct=\"5\", cpus=2, mem_used_mb=3, mem_total_mb=4, "
              "gpus=0"), -1, "a quoted number");
    tele_is(S(HOST "gpus=0, x="), -1, "an unknown key with an empty value");
    tele_is(S(HOST "gpus=0, x=\"a"), -1, "an unterminated quoted unknown");
    tele_is(S(HOST "gpus=0, x=a\"b\""), -1, "a quote inside a token");
    tele_is(S(HOST "gpus=0,"), -1, "a trailing comma");
    tele_is(S(HOST "gpus=0 ,  "), -1, "a trailing comma and spaces");
    tele_is(S(", " HOST "gpus=0"), -1, "a leading comma");
    tele_is(S(HOST "gpus=0;"), -1, "a trailing semicolon");
    tele_is(S(HOST "gpus=0 ; "), -1, "a trailing semicolon and a space");
    tele_is(S("cpu_pct=5 cpus=2, mem_used_mb=3, mem_total_mb=4, gpus=0"),
            -1, "a missing comma");
    tele_is(S("cpu_pct=5,, cpus=2, mem_used_mb=3, mem_total_mb=4, gpus=0"),
            -1, "two commas");
    tele_is(S(HOST "gpus"), -1, "a key without a value");
    tele_is(S(HOST "=0"), -1, "a value without a key");
    tele_is(S(HOST "gpus =0"), -1, "a space before \"=\"");
    tele_is(S(HOST "gpus= 0"), -1, "a space after \"=\"");
    tele_is(S(HOST "gpus=0\0"), -1, "a NUL");
    tele_is(S(HOST "gpus=0\r\n"), -1, "CR LF");

    /* GPU sections */

    tele_is(S(HOST "gpus=1; name=\"A\""), -1, "a section without gpu=");
    tele_is(S(HOST "gpus=1; gpu=0"), -1, "a section without name=");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"A\", gpu=1"), -1,
            "a repeated gpu=");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"A\", name=\"B\""), -1,
            "a repeated name=");
    tele_is(S(HOST "gpus=1" GPU0 ", temp_c=1, temp_c=1"), -1,
            "a repeated temp_c");
    tele_is(S(HOST "gpus=2; gpu=0, name=\"A\", temp_c=1; gpu=1, name=\"B\", "
              "temp_c=1"), 0, "the same key in two sections");
    tele_is(S(HOST "gpus=1" GPU0 ", cpus=3"), 0,
            "a host key in a GPU section as unknown");
    tele_is(S(HOST "gpus=1; gpu=0, name=A"), -1, "an unquoted name");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"\""), -1, "an empty name");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"a\\\"b\""), -1,
            "an escaped quote in a name");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"a\\b\""), -1,
            "a backslash in a name");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"caf\xc3\xa9\""), -1,
            "UTF-8 in a name");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"a\tb\""), -1, "a tab in a name");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"a\x7f\""), -1, "DEL in a name");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"a\0\""), -1, "a NUL in a name");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"A"), -1, "an unterminated name");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"A\"x"), -1,
            "a name followed by a letter");
    tele_is(S(HOST "gpus=1; gpu=0, name=\"A\"\"B\""), -1,
            "two quoted strings");
    tele_is(S(HOST "gpus=1; gpu=\"0\", name=\"A\""), -1, "a quoted gpu=");
    tele_is(S(HOST "gpus=1" GPU0 ", util_pct=01"), -1,
            "a leading zero in util_pct");
    tele_is(S(HOST "gpus=1" GPU0 ", power_w=4294967296"), -1,
            "power_w 2^32");
    tele_is(S(HOST "gpus=1" GPU0 ", temp_c="), -1, "an empty temp_c");
    tele_is(S(HOST "gpus=1" GPU0 ", temp_c=-3"), -1, "a negative temp_c");
    tele_is(S(HOST "gpus=1" GPU0 ", util_pct=101"), 0,
            "util_pct above 100 (only cpu_pct is bounded)");
    tele_is(S(HOST "gpus=0" GPU0), -1, "gpus=0 and one section");
    tele_is(S(HOST "gpus=2" GPU0), -1, "gpus=2 and one section");
    tele_is(S(HOST "gpus=1" GPU0 ";"), -1, "a trailing semicolon");
    tele_is(S(HOST "gpus=1;" GPU0), -1, "an empty section");
    tele_is(S(HOST "gpus=1" GPU0 ","), -1, "a trailing comma in a section");
    tele_is(S(HOST "gpus=1; , gpu=0, name=\"A\""), -1,
            "a section opening with a comma");

    /*
     * every prefix: only those ending after name="A", after "temp_c=4"
     * and the whole are valid
     */

    accepted = 0;
    ok = 1;

    for (i = 0; i <= sizeof(prefix) - 1; i++) {
        rc = gpugate_tunnel_parse_telemetry(prefix, i, &t);

        if (rc != 0) {
            continue;
        }

        accepted++;

        if ((i != sizeof(prefix) - 1 && i != sizeof(prefix) - 2
             && i != sizeof(HOST "gpus=1; gpu=0, name=\"A\"") - 1)
            || t.ngpus != 1)
        {
            ok = 0;
        }
    }

    tap_ok(ok && accepted == 3,
           "telemetry: of every prefix, exactly the valid three accepted "
           "(%zu)", accepted);

    accepted = 0;

    for (i = 0; i <= sizeof(full) - 1; i++) {
        if (gpugate_tunnel_parse_telemetry(full, i, &t) == 0) {
            accepted++;
        }
    }

    /* gpus=2 holds back all but the last section's name= and temp_c=0 */

    tap_ok(accepted == 2, "telemetry: prefixes of a two-GPU value: %zu "
           "accepted", accepted);
}


static void
endpoints_is(const char *p, size_t len, uint32_t expect, const char *what)
{
    int       rc;
    uint32_t  mask;

    rc = gpugate_tunnel_parse_endpoints(p, len, &mask);

    tap_ok(rc == 0 && mask == (expect | GPUGATE_TUNNEL_ENDPOINTS_TOLD),
           "endpoints accepts %s (rc %d, mask %08x)", what, rc,
           (unsigned) mask);
}


static void
endpoints_bad(const char *p, size_t len, const char *what)
{
    uint32_t  mask;

    tap_ok(gpugate_tunnel_parse_endpoints(p, len, &mask) == -1,
           "endpoints refuses %s", what);
}


static void
test_endpoints(void)
{
    int       k, all_ok;
    char      buf[GPUGATE_TUNNEL_ENDPOINTS_MAX + 16], out[256];
    size_t    n;
    uint32_t  mask, all;

    /* the wire names are the router's endpoint labels, kind for kind */

    all_ok = 1;
    all = 0;

    for (k = 0; gpugate_tunnel_endpoint_name(k); k++) {
        if (strcmp(gpugate_tunnel_endpoint_name(k),
                   gpugate_oai_kind_name(k)) != 0)
        {
            all_ok = 0;
        }

        all |= 1u << k;
    }

    tap_ok(all_ok && k == GPUGATE_OAI_IMAGE_EDITS + 1
           && strcmp(gpugate_oai_kind_name(k), "other") == 0,
           "endpoint names are gpugate_oai_kind_name()'s (%d)", k);

    endpoints_is(S("chat"), 1u << GPUGATE_OAI_CHAT, "one name");
    endpoints_is(S("embeddings, rerank"),
                 1u << GPUGATE_OAI_EMBEDDINGS | 1u << GPUGATE_OAI_RERANK,
                 "two names");
    endpoints_is(S(" score ,messages,  image_edits "),
                 1u << GPUGATE_OAI_SCORE | 1u << GPUGATE_OAI_MESSAGES
                 | 1u << GPUGATE_OAI_IMAGE_EDITS, "spaces around");
    endpoints_is(S("chat, chat"), 1u << GPUGATE_OAI_CHAT, "a repeated name");
    endpoints_is(S("video.generations, chat"), 1u << GPUGATE_OAI_CHAT,
                 "an unknown name skipped");
    endpoints_is(S("video.generations"), 0, "only unknown names (TOLD)");

    n = gpugate_tunnel_endpoints_print(all | GPUGATE_TUNNEL_ENDPOINTS_TOLD,
                                       out, sizeof(out));
    endpoints_is(out, n, all, "every name, as printed");
    tap_ok(strcmp(out, "chat, completions, embeddings, messages, responses, "
                  "rerank, score, images, speech, transcriptions, "
                  "translations, image_edits") == 0,
           "print: every name in kind order (%s)", out);

    endpoints_bad(S(""), "an empty list");
    endpoints_bad(S("  "), "only spaces");
    endpoints_bad(S(","), "a lone comma");
    endpoints_bad(S("chat,,rerank"), "an empty name");
    endpoints_bad(S("chat,"), "a trailing comma");
    endpoints_bad(S("Chat"), "upper case");
    endpoints_bad(S("/v1/chat/completions"), "a path");
    endpoints_bad(S("chat rerank"), "a space without a comma");
    endpoints_bad(S("chat\trerank"), "a tab");
    endpoints_bad(S("chat\0"), "a NUL");
    endpoints_bad(S("chat;rerank"), "a semicolon");
    endpoints_bad(S("abcdefghijklmnopqrstuvwxyz0123456"), "a 33-byte name");
    endpoints_is(S("abcdefghijklmnopqrstuvwxyz012345"), 0, "a 32-byte name");

    /* the size limit, exactly */

    memset(buf, ' ', sizeof(buf));
    memcpy(buf, "chat", 4);
    endpoints_is(buf, GPUGATE_TUNNEL_ENDPOINTS_MAX, 1u << GPUGATE_OAI_CHAT,
                 "ENDPOINTS_MAX bytes");
    endpoints_bad(buf, GPUGATE_TUNNEL_ENDPOINTS_MAX + 1, "one byte more");

    /* served: no header serves all; a told mask only its kinds */

    tap_ok(gpugate_tunnel_endpoint_served(GPUGATE_TUNNEL_ENDPOINTS_ANY,
                                          GPUGATE_OAI_SPEECH)
           && gpugate_tunnel_endpoint_served(GPUGATE_TUNNEL_ENDPOINTS_TOLD,
                                             -1),
           "served: any mask, any path");

    mask = GPUGATE_TUNNEL_ENDPOINTS_TOLD | 1u << GPUGATE_OAI_EMBEDDINGS
           | 1u << GPUGATE_OAI_RERANK;
    all_ok = 1;

    for (k = 0; k <= GPUGATE_OAI_IMAGE_EDITS + 3; k++) {
        if (gpugate_tunnel_endpoint_served(mask, k)
            != (k == GPUGATE_OAI_EMBEDDINGS || k == GPUGATE_OAI_RERANK))
        {
            all_ok = 0;
        }
    }

    tap_ok(all_ok, "served: embeddings and rerank only, every kind asked");
    tap_ok(!gpugate_tunnel_endpoint_served(GPUGATE_TUNNEL_ENDPOINTS_TOLD,
                                           GPUGATE_OAI_CHAT),
           "served: a told mask of unknown names serves no known kind");

    n = gpugate_tunnel_endpoints_print(GPUGATE_TUNNEL_ENDPOINTS_ANY, out,
                                       sizeof(out));
    tap_ok(n == 1 && strcmp(out, "*") == 0, "print: any is \"*\"");
    n = gpugate_tunnel_endpoints_print(mask, out, 12);
    tap_ok(n == strlen(out) && strcmp(out, "embeddings") == 0,
           "print: cut before a name that does not fit (%s)", out);
}


int
main(void)
{
    test_auth();
    test_worker();
    test_instance();
    test_capacity();
    test_models();
    test_models_has();
    test_load();
    test_telemetry();
    test_endpoints();

    return tap_done();
}
