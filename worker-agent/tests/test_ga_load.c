
/*
 * Copyright (C) gpugate authors
 *
 * Runtime load parsers (agent/ga_load.c): each dialect's gauges, labels,
 * sums over models, Ollama's /api/ps, the endpoints of every runtime
 * type, and input that must be skipped or refused.
 */


#include <string.h>

#include "tests/tap.h"           /* modules/core/tests/tap.h */
#include "ga_load.h"


static int
parse(ga_runtime_e type, const char *text, ga_load_t *load)
{
    return ga_load_parse(type, text, strlen(text), load);
}


static int
same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}


int
main(void)
{
    ga_load_t     l;
    ga_runtime_e  t;
    char          big[8192];
    size_t        n;

    /* names */

    tap_ok(ga_runtime_type("vllm", &t) == 0 && t == GA_RUNTIME_VLLM,
           "type: vllm");
    tap_ok(ga_runtime_type("llamacpp", &t) == 0 && t == GA_RUNTIME_LLAMACPP,
           "type: llamacpp");
    tap_ok(ga_runtime_type("sglang", &t) == 0 && t == GA_RUNTIME_SGLANG,
           "type: sglang");
    tap_ok(ga_runtime_type("tgi", &t) == 0 && t == GA_RUNTIME_TGI,
           "type: tgi");
    tap_ok(ga_runtime_type("openai", &t) == 0 && t == GA_RUNTIME_OPENAI,
           "type: openai");
    tap_ok(ga_runtime_type("VLLM", &t) == -1
           && ga_runtime_type("", &t) == -1, "type: unknown names refused");
    tap_ok(ga_runtime_metrics_path(GA_RUNTIME_OPENAI) == NULL
           && strcmp(ga_runtime_metrics_path(GA_RUNTIME_TGI), "/metrics")
              == 0, "metrics path");
    tap_ok(strcmp(ga_runtime_name(GA_RUNTIME_SGLANG), "sglang") == 0,
           "name of a type");
    tap_ok(ga_runtime_type("ollama", &t) == 0 && t == GA_RUNTIME_OLLAMA
           && same(ga_runtime_name(GA_RUNTIME_OLLAMA), "ollama"),
           "type: ollama");

    /* endpoints of every type */

    tap_ok(same(ga_runtime_metrics_path(GA_RUNTIME_VLLM), "/metrics")
           && same(ga_runtime_metrics_path(GA_RUNTIME_LLAMACPP), "/metrics")
           && same(ga_runtime_metrics_path(GA_RUNTIME_SGLANG), "/metrics")
           && same(ga_runtime_metrics_path(GA_RUNTIME_OLLAMA), "/api/ps")
           && ga_runtime_metrics_path((ga_runtime_e) 99) == NULL,
           "metrics path of every type");
    tap_ok(same(ga_runtime_models_path(GA_RUNTIME_OPENAI), "/v1/models")
           && same(ga_runtime_models_path(GA_RUNTIME_VLLM), "/v1/models")
           && same(ga_runtime_models_path(GA_RUNTIME_LLAMACPP), "/v1/models")
           && same(ga_runtime_models_path(GA_RUNTIME_SGLANG), "/v1/models")
           && same(ga_runtime_models_path(GA_RUNTIME_TGI), "/info")
           && same(ga_runtime_models_path(GA_RUNTIME_OLLAMA), "/api/tags")
           && ga_runtime_models_path((ga_runtime_e) 99) == NULL,
           "models path of every type");
    tap_ok(same(ga_runtime_health_path(GA_RUNTIME_OPENAI), "/v1/models")
           && same(ga_runtime_health_path(GA_RUNTIME_VLLM), "/health")
           && same(ga_runtime_health_path(GA_RUNTIME_LLAMACPP), "/health")
           && same(ga_runtime_health_path(GA_RUNTIME_SGLANG), "/health")
           && same(ga_runtime_health_path(GA_RUNTIME_TGI), "/health")
           && same(ga_runtime_health_path(GA_RUNTIME_OLLAMA), "/")
           && ga_runtime_health_path((ga_runtime_e) 99) == NULL,
           "health path of every type");

    /* vLLM: labelled per model, floats, summed */

    tap_ok(parse(GA_RUNTIME_VLLM,
                 "# HELP vllm:num_requests_waiting Waiting.\n"
                 "# TYPE vllm:num_requests_waiting gauge\n"
                 "vllm:num_requests_running{model_name=\"a\"} 3.0\n"
                 "vllm:num_requests_waiting{model_name=\"a\"} 2.0\n"
                 "vllm:num_requests_waiting{model_name=\"b\"} 5.0\n"
                 "vllm:num_requests_waiting_total 99\n"
                 "vllm:gpu_cache_usage_perc{model_name=\"a\"} 0.4\n", &l)
           == 0 && l.waiting == 7 && l.running == 3 && l.has_running,
           "vllm: waiting summed over models, running read");

    /* llama.cpp server --metrics */

    tap_ok(parse(GA_RUNTIME_LLAMACPP,
                 "llamacpp:prompt_tokens_total 10\n"
                 "llamacpp:requests_processing 1\n"
                 "llamacpp:requests_deferred 4\n", &l) == 0
           && l.waiting == 4 && l.running == 1,
           "llamacpp: deferred, processing");

    /* SGLang, with a timestamp and CRLF */

    tap_ok(parse(GA_RUNTIME_SGLANG,
                 "sglang:num_running_reqs{tp_rank=\"0\"} 8 1700000000000\r\n"
                 "sglang:num_queue_reqs{tp_rank=\"0\"} 12 1700000000000\r\n",
                 &l) == 0 && l.waiting == 12 && l.running == 8,
           "sglang: timestamps and CRLF");

    /* TGI: no labels, no trailing newline */

    tap_ok(parse(GA_RUNTIME_TGI, "tgi_batch_current_size 2\ntgi_queue_size 0",
                 &l) == 0 && l.waiting == 0 && l.has_waiting && l.running == 2,
           "tgi: last line without a newline");

    /* labels holding "}" and escaped quotes */

    tap_ok(parse(GA_RUNTIME_VLLM,
                 "vllm:num_requests_waiting{model_name=\"x}\\\"y\"} 6\n", &l)
           == 0 && l.waiting == 6, "label value with } and \\\"");

    /* refused: another dialect's text, nothing, a comment only */

    tap_ok(parse(GA_RUNTIME_VLLM, "llamacpp:requests_deferred 4\n", &l) == -1,
           "vllm parser ignores llama.cpp metrics");
    tap_ok(parse(GA_RUNTIME_VLLM, "", &l) == -1, "empty text");
    tap_ok(parse(GA_RUNTIME_VLLM, "# vllm:num_requests_waiting 3\n", &l) == -1,
           "a comment is not a sample");
    tap_ok(parse(GA_RUNTIME_OPENAI, "vllm:num_requests_waiting 3\n", &l) == -1,
           "openai type reads nothing");
    tap_ok(ga_load_parse((ga_runtime_e) 99, "x", 1, &l) == -1,
           "out-of-range type");

    /* bad values are skipped, not fatal; good lines still count */

    tap_ok(parse(GA_RUNTIME_VLLM,
                 "vllm:num_requests_waiting{m=\"a\"} NaN\n"
                 "vllm:num_requests_waiting{m=\"b\"} +Inf\n"
                 "vllm:num_requests_waiting{m=\"c\"} -1\n"
                 "vllm:num_requests_waiting{m=\"d\"} 1e12\n"
                 "vllm:num_requests_waiting{m=\"e\"} 3x\n"
                 "vllm:num_requests_waiting{m=\"f\"}\n"
                 "vllm:num_requests_waiting{m=\"g\" 3\n"
                 "vllm:num_requests_waiting{m=\"h\"} 2\n", &l) == 0
           && l.waiting == 2, "NaN, Inf, negative, huge, junk, missing "
                              "value and unclosed labels skipped");
    tap_ok(parse(GA_RUNTIME_VLLM, "vllm:num_requests_waiting{m=\"a\"} NaN\n",
                 &l) == -1, "only unusable samples: not found");
    tap_ok(parse(GA_RUNTIME_VLLM, "vllm:num_requests_waiting\n", &l) == -1,
           "name alone");

    /* a value longer than the number buffer is refused, not overrun */

    memcpy(big, "vllm:num_requests_waiting ", 26);
    n = 26;
    memset(big + n, '1', sizeof(big) - n);
    tap_ok(ga_load_parse(GA_RUNTIME_VLLM, big, sizeof(big), &l) == -1,
           "8 KiB of digits: refused, no overrun");

    /* bounded by len: the text after len is not read */

    tap_ok(ga_load_parse(GA_RUNTIME_TGI, "tgi_queue_size 7\ntgi_queue_size 9",
                         17, &l) == 0 && l.waiting == 7,
           "stops at len");

    /* Ollama /api/ps: resident models and their GPU memory, no queue */

    tap_ok(parse(GA_RUNTIME_OLLAMA,
                 "{\"models\":[{\"name\":\"llama3:8b\",\"model\":"
                 "\"llama3:8b\",\"size\":6654289920,\"digest\":\"365c\","
                 "\"details\":{\"format\":\"gguf\"},\"expires_at\":"
                 "\"2024-06-04T14:38:31.83753-07:00\",\"size_vram\":"
                 "5137025024},{\"name\":\"qwen2:7b\",\"size_vram\":"
                 "1048576}]}", &l) == 0
           && l.loaded == 2 && l.has_loaded && l.has_vram
           && l.vram_mb == (5137025024ULL + 1048576) / (1024 * 1024)
           && !l.has_waiting && l.waiting == 0 && !l.has_running,
           "ollama: loaded models and size_vram summed in MiB, no queue");
    tap_ok(parse(GA_RUNTIME_OLLAMA, "{\"models\":[]}", &l) == 0
           && l.has_loaded && l.loaded == 0 && l.has_vram && l.vram_mb == 0,
           "ollama: nothing loaded is an answer");
    tap_ok(parse(GA_RUNTIME_OLLAMA, "{\"models\":[{\"name\":\"a\"},"
                 "{\"name\":\"b\",\"size_vram\":2097152}]}", &l) == 0
           && l.loaded == 2 && !l.has_vram && l.vram_mb == 0,
           "ollama: a model without size_vram: vram unknown");
    tap_ok(parse(GA_RUNTIME_OLLAMA, "{\"models\":[{\"size_vram\":1}", &l)
           == -1 && !l.has_loaded, "ollama: truncated JSON");
    tap_ok(parse(GA_RUNTIME_OLLAMA, "", &l) == -1, "ollama: empty body");
    tap_ok(parse(GA_RUNTIME_OLLAMA, "{\"object\":\"list\",\"data\":[]}",
                 &l) == -1, "ollama: no models array");
    tap_ok(parse(GA_RUNTIME_OLLAMA, "{\"models\":{}}", &l) == -1,
           "ollama: models not an array");
    tap_ok(parse(GA_RUNTIME_OLLAMA, "{\"models\":[1]}", &l) == -1,
           "ollama: a model not an object");
    tap_ok(parse(GA_RUNTIME_OLLAMA, "{\"models\":[{\"size_vram\":\"1\"}]}",
                 &l) == -1
           && parse(GA_RUNTIME_OLLAMA, "{\"models\":[{\"size_vram\":-1}]}",
                    &l) == -1
           && parse(GA_RUNTIME_OLLAMA, "{\"models\":[{\"size_vram\":1.5}]}",
                    &l) == -1 && !l.has_loaded && l.loaded == 0,
           "ollama: size_vram a string, negative or a float");
    tap_ok(parse(GA_RUNTIME_OLLAMA, "vllm:num_requests_waiting 3\n", &l)
           == -1, "ollama parser refuses Prometheus text");
    tap_ok(ga_load_parse(GA_RUNTIME_OLLAMA, "{\"models\":[]}xx", 13, &l)
           == 0 && l.has_loaded, "ollama: stops at len");
    tap_ok(parse(GA_RUNTIME_VLLM, "{\"models\":[]}", &l) == -1,
           "vllm parser refuses /api/ps");

    return tap_done();
}
