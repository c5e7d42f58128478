
/*
 * Copyright (C) gpugate authors
 *
 * The runtimes' cache figures (agent/ga_load.c): KV cache use and prefix
 * cache hits in each dialect, from fixtures shaped like the runtimes'
 * own /metrics pages (HELP and TYPE lines, labels, several models), the
 * hit rate between two reads of vLLM's counters, and figures that are
 * not ratios skipped.
 */


#include <string.h>

#include "tests/tap.h"           /* modules/core/tests/tap.h */
#include "ga_load.h"


/* vLLM V1 (0.8 and later): gauges and counters labelled by model */
static const char  vllm_v1[] =
    "# HELP vllm:num_requests_running Number of requests in model "
    "execution batches.\n"
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"llama\"} 3.0\n"
    "# HELP vllm:num_requests_waiting Number of requests waiting.\n"
    "# TYPE vllm:num_requests_waiting gauge\n"
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"llama\"} 1.0\n"
    "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent "
    "usage.\n"
    "# TYPE vllm:kv_cache_usage_perc gauge\n"
    "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"llama\"} "
    "0.4213\n"
    "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in "
    "terms of number of queried tokens.\n"
    "# TYPE vllm:prefix_cache_queries_total counter\n"
    "vllm:prefix_cache_queries_total{engine=\"0\",model_name=\"llama\"} "
    "6.0e+09\n"
    "# HELP vllm:prefix_cache_hits_total Prefix cache hits.\n"
    "# TYPE vllm:prefix_cache_hits_total counter\n"
    "vllm:prefix_cache_hits_total{engine=\"0\",model_name=\"llama\"} "
    "4.5e+09\n"
    "vllm:prefix_cache_queries_created{engine=\"0\",model_name=\"llama\"} "
    "1.7e+09\n";

/* vLLM V0: the older names, a hit-rate gauge */
static const char  vllm_v0[] =
    "vllm:num_requests_running{model_name=\"m\"} 0.0\n"
    "vllm:num_requests_waiting{model_name=\"m\"} 0.0\n"
    "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.9\n"
    "vllm:cpu_cache_usage_perc{model_name=\"m\"} 0.2\n"
    "vllm:gpu_prefix_cache_hit_rate{model_name=\"m\"} 0.375\n"
    "vllm:cpu_prefix_cache_hit_rate{model_name=\"m\"} -1.0\n";

/* SGLang: token usage of the KV pool, the radix cache's hit rate */
static const char  sglang[] =
    "# TYPE sglang:num_running_reqs gauge\n"
    "sglang:num_running_reqs{model_name=\"qwen\",tp_rank=\"0\"} 2.0\n"
    "sglang:num_queue_reqs{model_name=\"qwen\",tp_rank=\"0\"} 0.0\n"
    "sglang:token_usage{model_name=\"qwen\",tp_rank=\"0\"} 0.12\n"
    "sglang:cache_hit_rate{model_name=\"qwen\",tp_rank=\"0\"} 0.61\n"
    "sglang:gen_throughput{model_name=\"qwen\",tp_rank=\"0\"} 12.5\n";

/* llama.cpp server --metrics: its KV ratio, no prefix hit figure */
static const char  llamacpp[] =
    "# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 "
    "percent usage.\n"
    "# TYPE llamacpp:kv_cache_usage_ratio gauge\n"
    "llamacpp:kv_cache_usage_ratio 0.05\n"
    "llamacpp:kv_cache_tokens 410\n"
    "llamacpp:requests_processing 1\n"
    "llamacpp:requests_deferred 0\n";

/* TGI: no cache figure at all */
static const char  tgi[] =
    "tgi_queue_size 0\ntgi_batch_current_size 1\n";


static int
parse(ga_runtime_e type, const char *text, ga_load_t *load)
{
    return ga_load_parse(type, text, strlen(text), load);
}


static int
near(double a, double b)
{
    return a - b < 1e-9 && b - a < 1e-9;
}


int
main(void)
{
    ga_load_t  l, prev;

    tap_ok(parse(GA_RUNTIME_VLLM, vllm_v1, &l) == 0 && l.waiting == 1
           && l.running == 3, "vllm v1: the load as before");
    tap_ok(l.has_kv && near(l.kv, 0.4213), "vllm v1: kv_cache_usage_perc");
    tap_ok(l.has_counts && near(l.hits, 4.5e9) && near(l.queries, 6e9)
           && !l.has_hit, "vllm v1: hit and query counters past 2^32, "
           "_created not taken for them");
    tap_ok(ga_load_hit_pct(NULL, &l) == 75, "vllm v1: 75%% since the start");

    /* between two reads: the counters' growth */

    prev = l;
    prev.hits = 4.4e9;
    prev.queries = 5.6e9;
    tap_ok(ga_load_hit_pct(&prev, &l) == 25,
           "vllm v1: 25%% between two reads (0.1e9 of 0.4e9)");
    prev.queries = 6e9;
    prev.hits = 4.5e9;
    tap_ok(ga_load_hit_pct(&prev, &l) == -1,
           "vllm v1: no lookups since: nothing to tell");
    prev.queries = 7e9;
    tap_ok(ga_load_hit_pct(&prev, &l) == 75,
           "vllm v1: counters went back (a restart): since the start");

    tap_ok(parse(GA_RUNTIME_VLLM, vllm_v0, &l) == 0 && l.has_kv
           && near(l.kv, 0.9) && l.has_hit && near(l.hit, 0.375)
           && !l.has_counts && ga_load_hit_pct(NULL, &l) == 38,
           "vllm v0: gpu_cache_usage_perc and the hit-rate gauge; the "
           "CPU figures are not the GPU's");

    tap_ok(parse(GA_RUNTIME_SGLANG, sglang, &l) == 0 && l.running == 2
           && l.has_kv && near(l.kv, 0.12) && l.has_hit
           && ga_load_hit_pct(NULL, &l) == 61,
           "sglang: token_usage and cache_hit_rate");

    tap_ok(parse(GA_RUNTIME_LLAMACPP, llamacpp, &l) == 0 && l.has_kv
           && near(l.kv, 0.05) && !l.has_hit && !l.has_counts
           && ga_load_hit_pct(NULL, &l) == -1,
           "llamacpp: kv_cache_usage_ratio, no hit figure");

    tap_ok(parse(GA_RUNTIME_TGI, tgi, &l) == 0 && !l.has_kv && !l.has_hit
           && !l.has_counts, "tgi: no cache figure");

    /* several models: the fullest cache, counters summed */

    tap_ok(parse(GA_RUNTIME_VLLM,
                 "vllm:num_requests_waiting{model_name=\"a\"} 0\n"
                 "vllm:kv_cache_usage_perc{model_name=\"a\"} 0.3\n"
                 "vllm:kv_cache_usage_perc{model_name=\"b\"} 0.8\n"
                 "vllm:prefix_cache_hits_total{model_name=\"a\"} 10\n"
                 "vllm:prefix_cache_hits_total{model_name=\"b\"} 30\n"
                 "vllm:prefix_cache_queries_total{model_name=\"a\"} 50\n"
                 "vllm:prefix_cache_queries_total{model_name=\"b\"} 50\n",
                 &l) == 0 && near(l.kv, 0.8)
           && ga_load_hit_pct(NULL, &l) == 40,
           "two models: the fullest KV cache, hits 40 of 100");

    /* what is not a figure */

    tap_ok(parse(GA_RUNTIME_VLLM,
                 "vllm:num_requests_waiting 0\n"
                 "vllm:kv_cache_usage_perc 42\n"
                 "vllm:gpu_prefix_cache_hit_rate NaN\n", &l) == 0
           && !l.has_kv && !l.has_hit,
           "a per-cent value under a ratio's name, NaN: skipped");
    tap_ok(parse(GA_RUNTIME_VLLM,
                 "vllm:num_requests_waiting 0\n"
                 "vllm:prefix_cache_hits_total 10\n", &l) == 0
           && !l.has_counts && ga_load_hit_pct(NULL, &l) == -1,
           "hits without queries: no rate");
    tap_ok(parse(GA_RUNTIME_VLLM,
                 "vllm:num_requests_waiting 0\n"
                 "vllm:prefix_cache_hits_total 10\n"
                 "vllm:prefix_cache_queries_total 5\n", &l) == 0
           && !l.has_counts, "more hits than queries: no rate");
    tap_ok(parse(GA_RUNTIME_VLLM,
                 "vllm:num_requests_waiting 5e9\n"
                 "vllm:kv_cache_usage_perc 0.5\n", &l) == -1 && l.has_kv,
           "a waiting gauge past 2^32 is still refused");
    tap_ok(parse(GA_RUNTIME_SGLANG,
                 "sglang:num_queue_reqs 0\nvllm:kv_cache_usage_perc 0.5\n",
                 &l) == 0 && !l.has_kv,
           "another dialect's names are not read");

    return tap_done();
}
