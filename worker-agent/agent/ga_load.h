
/*
 * Copyright (C) gpugate authors
 *
 * How loaded the runtime is, read from its own metrics in its own dialect
 * (Prometheus text from vLLM, llama.cpp server, SGLang and TGI; the JSON
 * of /api/ps from Ollama, which has no Prometheus endpoint), and where
 * each runtime type lists its models and answers health checks.  Pure
 * parsing, no I/O, so that each dialect has unit tests and a fuzz target;
 * the agent reports the result to the gateway (X-Gpugate-Load), where it
 * breaks ties between equally busy agents.
 */


#ifndef _GA_LOAD_H_INCLUDED_
#define _GA_LOAD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef enum {
    GA_RUNTIME_OPENAI = 0,      /* plain OpenAI-compatible: no load read */
    GA_RUNTIME_VLLM,
    GA_RUNTIME_LLAMACPP,
    GA_RUNTIME_SGLANG,
    GA_RUNTIME_TGI,
    GA_RUNTIME_OLLAMA           /* no queue gauge: resident models only */
} ga_runtime_e;


typedef struct {
    uint64_t     running;      /* requests being generated */
    uint64_t     waiting;      /* requests queued in the runtime */
    uint64_t     loaded;       /* models resident in memory (Ollama) */
    uint64_t     vram_mb;      /* GPU memory they hold, MiB (Ollama) */
    double       kv;           /* KV cache in use, 0..1 (the fullest
                                  model's) */
    double       hit;          /* prefix cache hit rate, 0..1, where
                                  the runtime exports it as a gauge */
    double       hits;         /* prefix cache hits, a counter (vLLM
                                  v1: tokens), all models */
    double       queries;      /* prefix cache lookups, a counter */
    unsigned     has_kv:1;     /* "kv" was read */
    unsigned     has_hit:1;    /* "hit" was read */
    unsigned     has_hits:1;   /* "hits" was read */
    unsigned     has_queries:1; /* "queries" was read */
    unsigned     has_counts:1; /* both, and hits <= queries */
    unsigned     has_running:1; /* the metric was found */
    unsigned     has_waiting:1; /* the metric was found */
    unsigned     has_loaded:1; /* "loaded" was read */
    unsigned     has_vram:1;   /* every resident model gave size_vram */
} ga_load_t;


/* "vllm", "llamacpp", ...: 0 and *type set, or -1 */
int ga_runtime_type(const char *name, ga_runtime_e *type);

/* the runtime type's name, for logs and --help */
const char *ga_runtime_name(ga_runtime_e type);

/*
 * Where the runtime publishes its load: NULL for GA_RUNTIME_OPENAI,
 * "/api/ps" for Ollama (its resident models), "/metrics" for the others.
 */
const char *ga_runtime_metrics_path(ga_runtime_e type);

/*
 * Where the runtime lists the models it serves (ga_models_parse() reads
 * the answer): "/v1/models", Ollama's "/api/tags", TGI's "/info" (its
 * one "model_id"); NULL for an unknown type.
 */
const char *ga_runtime_models_path(ga_runtime_e type);

/*
 * What answers 200 while the runtime is up: "/health"; Ollama's "/"
 * ("Ollama is running"); "/v1/models" for a plain OpenAI-compatible one,
 * which promises nothing else; NULL for an unknown type.
 */
const char *ga_runtime_health_path(ga_runtime_e type);

/*
 * The prefix cache hit rate, per cent, between two reads of the runtime's
 * counters ("prev" NULL or older counters than "now": since the start);
 * -1 when there is nothing to tell (no lookups since, or no figure).
 */
int ga_load_hit_pct(const ga_load_t *prev, const ga_load_t *now);

/*
 * Reads the dialect's running and waiting gauges from Prometheus text
 * exposition format, and its cache figures where it exports them: vLLM's
 * vllm:kv_cache_usage_perc (older: vllm:gpu_cache_usage_perc) and
 * vllm:prefix_cache_hits_total / _queries_total (older: the gauge
 * vllm:gpu_prefix_cache_hit_rate); SGLang's sglang:token_usage and
 * sglang:cache_hit_rate; llama.cpp's llamacpp:kv_cache_usage_ratio.
 * Ratios of several models: the largest.  Samples of one metric with
 * different labels (one per model) are added up; comments, other
 * metrics and malformed lines are skipped, as are negative, NaN and
 * infinite values.  Returns 0 when
 * the waiting gauge was found, else -1 (an endpoint that is not the
 * dialect's, or a runtime too old to export it).
 *
 * GA_RUNTIME_OLLAMA reads the JSON of /api/ps instead: "loaded" counts
 * its "models", "vram_mb" adds up their "size_vram".  Ollama has no queue
 * to read, so has_waiting stays 0, yet the result is 0 whenever "models"
 * is an array: 0 always means "this is the dialect's answer", not "the
 * waiting gauge was found".  Malformed JSON, or a member of the wrong
 * type, is -1.
 */
int ga_load_parse(ga_runtime_e type, const char *text, size_t len,
    ga_load_t *load);


#endif /* _GA_LOAD_H_INCLUDED_ */
