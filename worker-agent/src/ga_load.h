
/*
 * Copyright (C) gpugate authors
 *
 * How loaded the runtime is, read from its own metrics in its own dialect
 * (Prometheus text from vLLM, llama.cpp server, SGLang and TGI).  Pure
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
    GA_RUNTIME_TGI
} ga_runtime_e;


typedef struct {
    uint64_t     running;      /* requests being generated */
    uint64_t     waiting;      /* requests queued in the runtime */
    unsigned     has_running:1; /* the metric was found */
    unsigned     has_waiting:1;
} ga_load_t;


/* "vllm", "llamacpp", ...: 0 and *type set, or -1 */
int ga_runtime_type(const char *name, ga_runtime_e *type);

/* the runtime type's name, for logs and --help */
const char *ga_runtime_name(ga_runtime_e type);

/* where the runtime publishes its metrics; NULL for GA_RUNTIME_OPENAI */
const char *ga_runtime_metrics_path(ga_runtime_e type);

/*
 * Reads the dialect's running and waiting gauges from Prometheus text
 * exposition format.  Samples of one metric with different labels (one
 * per model) are added up; comments, other metrics and malformed lines
 * are skipped, as are negative, NaN and infinite values.  Returns 0 when
 * the waiting gauge was found, else -1 (an endpoint that is not the
 * dialect's, or a runtime too old to export it).
 */
int ga_load_parse(ga_runtime_e type, const char *text, size_t len,
    ga_load_t *load);


#endif /* _GA_LOAD_H_INCLUDED_ */
