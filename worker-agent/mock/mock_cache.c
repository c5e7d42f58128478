
/*
 * Copyright (C) gpugate authors
 *
 * The mock runtime's prefix cache model (off unless --prefix-cache): a
 * bounded LRU of prompt prefix block hashes, as a runtime's KV cache
 * keeps the blocks of prompts it has seen.  A request's leading blocks
 * found there are "cached"; the time to its first token grows by
 * --prefill-us-per-byte for each byte of the prompt that is not, so that
 * a benchmark sees what sending a prompt to the runtime that already
 * holds its prefix is worth.  The blocks are cut and hashed as the
 * gateway does (gpugate_prefix.h: the messages' roles and text, the
 * model as the seed), the prompt's size is its body's.  /metrics
 * exports the hit and lookup counts, and in --dialect the runtime's own
 * cache gauges (KV use: the LRU's fill, or --kv-usage-pct).
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_prefix.h"
#include "mock_cache.h"
#include "mock_state.h"


typedef struct {
    uint64_t     hash;           /* a prefix block's cumulative hash */
    uint64_t     used;           /* tick of its last use; 0: free */
} mock_cache_entry_t;


static struct {
    long                 capacity;   /* --prefix-cache: blocks kept */
    long                 block;      /* --prefix-block: bytes a block */
    long                 prefill_us; /* --prefill-us-per-byte */
    long                 kv_pct;     /* --kv-usage-pct; -1: the fill */
    mock_cache_entry_t  *entries;    /* "capacity" of them */
    long                 n;          /* entries in use */
    uint64_t             tick;       /* the LRU's clock */
    uint64_t             hits;       /* prompt bytes found cached */
    uint64_t             queries;    /* prompt bytes looked up */
} mock_cache = { 0, 64, 50, -1, NULL, 0, 0, 0, 0 };


void
mock_cache_usage(FILE *f)
{
    fprintf(f,
"  --prefix-cache N       model a prefix cache of N blocks (LRU; default 0:\n"
"                         none): TTFT = --ttft-ms + the uncached part of\n"
"                         the prompt times --prefill-us-per-byte\n"
"  --prefix-block N       bytes of prompt text per block (default 64)\n"
"  --prefill-us-per-byte N\n"
"                         prefill cost of an uncached byte, us (default 50)\n"
"  --kv-usage-pct N       report this KV cache use in --dialect's gauges\n"
"                         instead of the cache's fill (0..100)\n");
}


/* 1 if "a" is one of this file's options (its value "v" taken), else 0 */

int
mock_cache_option(const char *a, const char *v)
{
    if (strcmp(a, "--prefix-cache") == 0) {
        mock_cache.capacity = mock_arg_long(a, v, 0, 1000000);

    } else if (strcmp(a, "--prefix-block") == 0) {
        mock_cache.block = mock_arg_long(a, v, GPUGATE_PREFIX_BLOCK_MIN,
                                         GPUGATE_PREFIX_BLOCK_MAX);

    } else if (strcmp(a, "--prefill-us-per-byte") == 0) {
        mock_cache.prefill_us = mock_arg_long(a, v, 0, 1000000);

    } else if (strcmp(a, "--kv-usage-pct") == 0) {
        mock_cache.kv_pct = mock_arg_long(a, v, 0, 100);

    } else {
        return 0;
    }

    return 1;
}


/* the entry of "hash", or NULL */

static mock_cache_entry_t *
mock_cache_find(uint64_t hash)
{
    long  i;

    for (i = 0; i < mock_cache.capacity; i++) {
        if (mock_cache.entries[i].used && mock_cache.entries[i].hash == hash)
        {
            return &mock_cache.entries[i];
        }
    }

    return NULL;
}


/* "hash" kept, the least recently used block evicted when full */

static void
mock_cache_put(uint64_t hash)
{
    long                 i;
    mock_cache_entry_t  *e, *lru;

    e = mock_cache_find(hash);

    if (e == NULL) {
        lru = &mock_cache.entries[0];

        for (i = 0; i < mock_cache.capacity; i++) {
            e = &mock_cache.entries[i];

            if (e->used == 0) {
                lru = e;
                mock_cache.n++;
                break;
            }

            if (e->used < lru->used) {
                lru = e;
            }
        }

        e = lru;
        e->hash = hash;
    }

    e->used = ++mock_cache.tick;
}


/*
 * A chat or completion request about to be generated: its prefix looked
 * up and kept, its prefill time added to c->ttft_ms.
 */

void
mock_cache_request(mock_conn_t *c)
{
    long       k, n, len, cached, uncached;
    uint64_t   hashes[GPUGATE_PREFIX_DEPTH_MAX], seed;

    if (mock_cache.capacity == 0 || c->req.kind == MOCK_EMBEDDING) {
        return;
    }

    if (mock_cache.entries == NULL) {
        mock_cache.entries = calloc(mock_cache.capacity,
                                    sizeof(mock_cache_entry_t));
        if (mock_cache.entries == NULL) {
            mock_cache.capacity = 0;
            return;
        }
    }

    len = (long) gg_buf_len(&c->body);
    seed = gpugate_prefix_bytes(c->req.model, strlen(c->req.model), 0);

    n = (long) gpugate_prefix_hashes(c->req.kind == MOCK_CHAT
                                     ? GPUGATE_PREFIX_CHAT
                                     : GPUGATE_PREFIX_COMPLETIONS,
                                     gg_buf_pos(&c->body), (size_t) len,
                                     (size_t) mock_cache.block,
                                     GPUGATE_PREFIX_DEPTH_MAX, seed, hashes);

    /* the longest prefix held: blocks are useful only from the start */

    for (k = 0; k < n && mock_cache_find(hashes[k]); k++) { /* void */ }

    for (n--; n >= 0; n--) {
        mock_cache_put(hashes[n]);
    }

    cached = k * mock_cache.block;
    uncached = (len > cached) ? len - cached : 0;

    mock_cache.hits += (uint64_t) (cached < len ? cached : len);
    mock_cache.queries += (uint64_t) len;

    c->ttft_ms += uncached * mock_cache.prefill_us / 1000;
}


/* the cache's counters, and the dialect's own gauges of it */

int
mock_cache_metrics(gg_buf_t *b)
{
    int          rc;
    double       kv, hit;
    const char  *d, *model;

    if (mock_cache.capacity == 0 && mock_cache.kv_pct < 0) {
        return 0;
    }

    kv = (mock_cache.kv_pct >= 0) ? mock_cache.kv_pct / 100.0
         : mock_cache.capacity ? (double) mock_cache.n / mock_cache.capacity
         : 0;
    hit = mock_cache.queries ? (double) mock_cache.hits / mock_cache.queries
                             : 0;
    d = mock_conf.dialect ? mock_conf.dialect : "";
    model = mock_conf.nmodels ? mock_conf.models[0] : "";

    rc = gg_buf_printf(b, "gpugate_mock_prefix_cache_hit_bytes_total %llu\n"
                       "gpugate_mock_prefix_cache_query_bytes_total %llu\n"
                       "gpugate_mock_prefix_cache_blocks %ld\n",
                       (unsigned long long) mock_cache.hits,
                       (unsigned long long) mock_cache.queries,
                       mock_cache.n);

    if (strcmp(d, "vllm") == 0) {
        rc |= gg_buf_printf(b,
                  "vllm:kv_cache_usage_perc{model_name=\"%s\"} %.4f\n"
                  "vllm:prefix_cache_queries_total{model_name=\"%s\"} "
                  "%llu.0\n"
                  "vllm:prefix_cache_hits_total{model_name=\"%s\"} %llu.0\n",
                  model, kv, model, (unsigned long long) mock_cache.queries,
                  model, (unsigned long long) mock_cache.hits);

    } else if (strcmp(d, "sglang") == 0) {
        rc |= gg_buf_printf(b, "sglang:token_usage{tp_rank=\"0\"} %.4f\n"
                            "sglang:cache_hit_rate{tp_rank=\"0\"} %.4f\n",
                            kv, hit);

    } else if (strcmp(d, "llamacpp") == 0) {
        rc |= gg_buf_printf(b, "llamacpp:kv_cache_usage_ratio %.4f\n", kv);
    }

    return rc;
}
