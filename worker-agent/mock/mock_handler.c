
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime endpoints, and the timed generation of answers:
 * a small state machine (mock_phase_e) advanced by mock_gen_run() from
 * the connection's generation timer, so that a thousand slow streams cost
 * a thousand timers and nothing else.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_runtime.h"


int
mock_served(const char *model)
{
    int  i;

    for (i = 0; i < mock_conf.nmodels; i++) {
        if (strcmp(mock_conf.models[i], model) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * Ends an inference request: "completed" 1 after its last byte was sent,
 * 0 when the client left first (logged and counted), -1 at exit.
 */

void
mock_gen_release(mock_conn_t *c, int completed)
{
    if (!c->active) {
        return;
    }

    c->active = 0;
    mock_in_flight--;
    gg_timer_del(&mock_loop, &c->gen_timer);

    if (completed == 0) {
        mock_disconnects++;

        if (c->status == 0) {
            /* no status was sent: nginx's 499 says "client closed" */
            mock_count(c->path, 499);
        }

        mock_log(1, "client disconnected mid-stream path=%s model=%s "
                 "sent=%ld/%ld tokens", c->path, c->req.model, c->sent,
                 c->n);

    } else if (completed == 1 && !c->drop) {
        mock_log(0, "%s %s %d%s model=%s tokens=%ld+%ld", c->method,
                 c->path, c->status, c->req.stream ? " stream" : "",
                 c->req.model, c->req.prompt_tokens, c->n);
    }

    json_decref(c->json);
    c->json = NULL;
    c->req.model = NULL;
}


/* one "data: <json>\n\n" event; commits it unless bulk mode collects */

static void
mock_gen_event(mock_conn_t *c, char *json)
{
    if (json == NULL) {
        mock_log(1, "error: out of memory");
        mock_conn_fail(c);
        return;
    }

    mock_body_add(c, "data: ", 6);
    mock_body_add(c, json, strlen(json));
    mock_body_add(c, "\n\n", 2);
    free(json);

    if (c->write_mode != MOCK_WRITE_BULK) {
        mock_body_commit(c);
    }
}


static int
mock_gen_wait(mock_conn_t *c, long ms)
{
    if (ms <= 0 || c->write_mode == MOCK_WRITE_BULK) {
        return 0;
    }

    if (gg_timer_add(&mock_loop, &c->gen_timer, (uint64_t) ms * 1000) != 0)
    {
        mock_conn_fail(c);
    }

    return 1;
}


static void
mock_gen_full(mock_conn_t *c)
{
    char  *body;

    if (c->phase == MOCK_PH_TTFT) {
        c->phase = MOCK_PH_DONE;

        if (mock_gen_wait(c, c->ttft_ms + c->n * c->token_delay_ms)) {
            return;
        }
    }

    body = mock_full(&c->req, c->n, c->finish);
    if (body == NULL) {
        mock_conn_fail(c);
        return;
    }

    c->phase = MOCK_PH_END;
    c->sent = c->n;
    mock_completion_tokens += c->n;
    mock_respond(c, 200, "application/json", body, NULL);
    free(body);
}


void
mock_gen_run(mock_conn_t *c)
{
    if (!c->active || c->dead || c->stalled) {
        return;
    }

    if (!c->req.stream) {
        mock_gen_full(c);
        return;
    }

    while (!c->dead && c->phase != MOCK_PH_END) {

        /* a client reading slowly holds back generation, not memory */
        if (gg_buf_len(&c->out) > MOCK_OUT_HIGH
            || gg_buf_len(&c->drip) > MOCK_OUT_HIGH)
        {
            c->gen_blocked = 1;
            return;
        }

        switch (c->phase) {

        case MOCK_PH_TTFT:
            c->phase = (c->req.kind == MOCK_CHAT) ? MOCK_PH_ROLE
                                                  : MOCK_PH_TOKEN;
            if (mock_gen_wait(c, c->ttft_ms)) {
                return;
            }
            break;

        case MOCK_PH_ROLE:
            mock_gen_event(c, mock_chunk(&c->req, -1, c->n, NULL));
            c->phase = MOCK_PH_TOKEN;
            break;

        case MOCK_PH_TOKEN:
            if (c->tok == c->n) {
                c->phase = MOCK_PH_FINISH;
                break;
            }

            if (c->tok > 0 && !c->delayed) {
                c->delayed = 1;
                if (mock_gen_wait(c, c->token_delay_ms)) {
                    return;
                }
            }

            c->delayed = 0;

            if (c->drop_after >= 0 && c->tok >= c->drop_after) {
                /* an abrupt end: no last chunk, no [DONE] */
                mock_log(1, "dropping the stream after %ld tokens "
                         "(drop-after) path=%s model=%s", c->tok, c->path,
                         c->req.model);
                c->drop = 1;
                c->phase = MOCK_PH_END;
                mock_body_end(c, 0);
                return;
            }

            if (c->stall_after >= 0 && c->tok >= c->stall_after) {
                /* held until the client leaves: only EOF ends it */
                mock_log(0, "stalling after %ld tokens until the client "
                         "leaves path=%s model=%s", c->tok, c->path,
                         c->req.model);
                c->stalled = 1;
                mock_body_commit(c);
                return;
            }

            mock_gen_event(c, mock_chunk(&c->req, c->tok, c->n, NULL));
            c->tok++;
            c->sent++;
            mock_completion_tokens++;
            break;

        case MOCK_PH_FINISH:
            mock_gen_event(c, mock_chunk(&c->req, -2, c->n, c->finish));
            c->phase = c->req.include_usage ? MOCK_PH_USAGE : MOCK_PH_DONE;
            break;

        case MOCK_PH_USAGE:
            mock_gen_event(c, mock_chunk(&c->req, -3, c->n, NULL));
            c->phase = MOCK_PH_DONE;
            break;

        case MOCK_PH_DONE:
            mock_body_add(c, "data: [DONE]\n\n", 14);
            c->phase = MOCK_PH_END;
            mock_body_end(c, 1);
            break;

        case MOCK_PH_END:
            break;
        }
    }
}


void
mock_not_found_model(mock_conn_t *c, const char *model)
{
    char  msg[512];

    snprintf(msg, sizeof(msg), "The model `%.400s` does not exist.", model);
    mock_respond_error(c, 404, msg, "invalid_request_error", "model",
                       "model_not_found", NULL);
}


static void
mock_embeddings_answer(mock_conn_t *c, json_t *root)
{
    char        *out;
    json_t      *m;
    const char  *err;

    m = json_object_get(root, "model");

    if (!json_is_string(m) || json_string_length(m) == 0) {
        mock_respond_error(c, 400, "you must provide a model parameter",
                           "invalid_request_error", "model", NULL, NULL);
        return;
    }

    if (!mock_served(json_string_value(m))) {
        mock_not_found_model(c, json_string_value(m));
        return;
    }

    out = mock_embeddings(root, json_string_value(m), mock_conf.embedding_dim,
                          &err);
    if (out == NULL) {
        mock_respond_error(c, 400, err, "invalid_request_error", "input",
                           NULL, NULL);
        return;
    }

    mock_respond(c, 200, "application/json", out, NULL);
    free(out);
}


/* inference endpoints: limits, faults, validation, then generation */

static void
mock_inference(mock_conn_t *c, mock_kind_e kind)
{
    int           status;
    char          msg[512];
    json_t       *root;
    const char   *err, *param, *type;
    json_error_t  jerr;

    if (c->header_error) {
        mock_respond_error(c, 400, c->header_error, "invalid_request_error",
                           NULL, "invalid_mock_header", NULL);
        return;
    }

    if (mock_conf.max_concurrency
        && mock_in_flight >= mock_conf.max_concurrency)
    {
        mock_respond_error(c, 429, "The mock runtime is at its "
                           "--max-concurrency limit.", "rate_limit_error",
                           NULL, "too_many_requests", "Retry-After: 1\r\n");
        return;
    }

    if (c->fail_status) {
        snprintf(msg, sizeof(msg), "Injected failure (status %d).",
                 c->fail_status);
        type = (c->fail_status == 429) ? "rate_limit_error"
               : (c->fail_status >= 500) ? "server_error"
               : "invalid_request_error";
        mock_respond_error(c, c->fail_status, msg, type, NULL,
                           "mock_injected", NULL);
        return;
    }

    root = json_loadb(c->body.data ? gg_buf_pos(&c->body) : "",
                      gg_buf_len(&c->body), 0, &jerr);

    if (root == NULL) {
        snprintf(msg, sizeof(msg), "We could not parse the JSON body of "
                 "your request: %s", jerr.text);
        mock_respond_error(c, 400, msg, "invalid_request_error", NULL,
                           "invalid_json", NULL);
        return;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        mock_respond_error(c, 400, "The request body must be a JSON object.",
                           "invalid_request_error", NULL, NULL, NULL);
        return;
    }

    if (kind == MOCK_EMBEDDING) {
        mock_embeddings_answer(c, root);
        json_decref(root);
        return;
    }

    status = mock_parse_request(root, kind, &c->req, &err, &param);
    c->req.cache_read = c->cache_read;

    if (status) {
        mock_respond_error(c, status, err, "invalid_request_error", param,
                           NULL, NULL);
        json_decref(root);
        return;
    }

    if (!mock_served(c->req.model)) {
        mock_not_found_model(c, c->req.model);
        json_decref(root);
        return;
    }

    /* the prefix cache model's prefill time (--prefix-cache) */
    mock_cache_request(c);

    /* from here the connection owns "root" until mock_gen_release() */
    c->json = root;
    c->active = 1;
    mock_in_flight++;

    c->req.think = c->think;
    c->req.think_bytes = c->think_bytes;
    c->req.think_report = c->think_report;

    c->n = c->tokens;
    c->finish = "stop";

    if (c->req.max_tokens >= 0 && c->req.max_tokens < c->n) {
        c->n = c->req.max_tokens;
        c->finish = "length";
    }

    if (c->req.stream) {
        mock_head(c, 200, "text/event-stream", -1,
                  "Cache-Control: no-cache\r\n");
    }

    mock_gen_run(c);
}


static void
mock_models(mock_conn_t *c)
{
    int      i;
    char    *s;
    json_t  *data, *root;

    data = json_array();

    for (i = 0; i < mock_conf.nmodels; i++) {
        json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}",
                              "id", mock_conf.models[i], "object", "model",
                              "created", MOCK_CREATED,
                              "owned_by", "gpugate-mock"));
    }

    root = json_pack("{s:s, s:o}", "object", "list", "data", data);
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);

    if (s == NULL) {
        mock_conn_fail(c);
        return;
    }

    mock_respond(c, 200, "application/json", s, NULL);
    free(s);
}


static void
mock_json_respond(mock_conn_t *c, json_t *root)
{
    char  *s;

    s = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);

    if (s == NULL) {
        mock_conn_fail(c);
        return;
    }

    mock_respond(c, 200, "application/json", s, NULL);
    free(s);
}


/*
 * Ollama's /api/tags (the models pulled) and /api/ps (those in memory):
 * every --models name, with the fields Ollama gives and fixed values, as
 * a real one's would be.
 */

#define MOCK_OLLAMA_DIGEST                                                    \
    "8934d96d3f08982e95922b2b7a2c626a1fe873d7c3b06e8e56d7bc0a1fef9246"
#define MOCK_OLLAMA_SIZE       4661224676LL
#define MOCK_OLLAMA_VRAM       5137025024LL

static void
mock_ollama_models(mock_conn_t *c, int ps)
{
    int      i;
    json_t  *models, *m, *details;

    models = json_array();

    for (i = 0; models && i < mock_conf.nmodels; i++) {
        details = json_pack("{s:s, s:s, s:s, s:[s], s:s, s:s}",
                            "parent_model", "", "format", "gguf",
                            "family", "llama", "families", "llama",
                            "parameter_size", "8.0B",
                            "quantization_level", "Q4_0");

        if (ps) {
            m = json_pack("{s:s, s:s, s:I, s:s, s:o, s:s, s:I}",
                          "name", mock_conf.models[i],
                          "model", mock_conf.models[i],
                          "size", (json_int_t) MOCK_OLLAMA_VRAM,
                          "digest", MOCK_OLLAMA_DIGEST, "details", details,
                          "expires_at", "2030-01-01T00:00:00Z",
                          "size_vram", (json_int_t) MOCK_OLLAMA_VRAM);

        } else {
            m = json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}",
                          "name", mock_conf.models[i],
                          "model", mock_conf.models[i],
                          "modified_at", "2024-05-01T10:00:00Z",
                          "size", (json_int_t) MOCK_OLLAMA_SIZE,
                          "digest", MOCK_OLLAMA_DIGEST, "details", details);
        }

        if (json_array_append_new(models, m) != 0) {
            json_decref(models);
            models = NULL;
        }
    }

    mock_json_respond(c, models ? json_pack("{s:o}", "models", models)
                                : NULL);
}


/* TGI serves one model: /info names it, with a few of its other fields */

static void
mock_tgi_info(mock_conn_t *c)
{
    mock_json_respond(c, json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, "
                                   "s:s}",
                      "model_id", mock_conf.nmodels ? mock_conf.models[0]
                                                    : "",
                      "model_sha", "0000000000000000000000000000000000000000",
                      "model_dtype", "torch.float16",
                      "model_device_type", "cuda",
                      "max_concurrent_requests",
                      (json_int_t) (mock_conf.max_concurrency
                                    ? mock_conf.max_concurrency : 128),
                      "max_input_tokens", 4095, "max_total_tokens", 4096,
                      "version", "2.4.1-gpugate-mock"));
}


/* test control: the served models change, as when a runtime loads one */

static void
mock_models_post(mock_conn_t *c)
{
    size_t       len;
    const char  *p, *err;

    p = c->body.data ? gg_buf_pos(&c->body) : "";
    len = gg_buf_len(&c->body);

    /* "curl --data-binary @file" keeps the file's last newline */
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r')) {
        len--;
    }

    if (mock_models_set(p, len, &err) != 0) {
        mock_respond_error(c, 400, err, "invalid_request_error", NULL, NULL,
                           NULL);
        return;
    }

    mock_log(0, "models replaced: %d served", mock_conf.nmodels);
    mock_models(c);
}


static int
mock_dialect_is(const char *name)
{
    return mock_conf.dialect && strcmp(mock_conf.dialect, name) == 0;
}


static void
mock_metrics(mock_conn_t *c)
{
    gg_buf_t  b;

    memset(&b, 0, sizeof(b));

    if (mock_metrics_text(&b) != 0 || gg_buf_append(&b, "", 1) != 0) {
        gg_buf_free(&b);
        mock_conn_fail(c);
        return;
    }

    /* mock_respond() adds the final newline back */
    if (b.end >= 2 && b.data[b.end - 2] == '\n') {
        b.data[b.end - 2] = '\0';
    }

    mock_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
                 gg_buf_pos(&b), NULL);
    gg_buf_free(&b);
}


static int
mock_method_is(mock_conn_t *c, const char *method, const char *allow)
{
    char  extra[64];

    if (strcmp(c->method, method) == 0) {
        return 1;
    }

    snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
    mock_respond_error(c, 405, "Method not allowed.",
                       "invalid_request_error", NULL, "method_not_allowed",
                       extra);
    return 0;
}


void
mock_dispatch(mock_conn_t *c)
{
    if (strcmp(c->path, "/v1/chat/completions") == 0) {
        if (mock_method_is(c, "POST", "POST")) {
            mock_inference(c, MOCK_CHAT);
        }

    } else if (strcmp(c->path, "/v1/completions") == 0) {
        if (mock_method_is(c, "POST", "POST")) {
            mock_inference(c, MOCK_COMPLETION);
        }

    } else if (strcmp(c->path, "/v1/embeddings") == 0) {
        if (mock_method_is(c, "POST", "POST")) {
            mock_inference(c, MOCK_EMBEDDING);
        }

    } else if (mock_api(c) || mock_ext_dispatch(c)) {
        /* answered by mock_api.c or mock_ext.c */

    } else if (strcmp(c->path, "/v1/models") == 0) {
        if (mock_method_is(c, "GET", "GET")) {
            mock_models(c);
        }

    } else if (strcmp(c->path, "/health") == 0) {
        if (mock_method_is(c, "GET", "GET")) {
            mock_respond(c, 200, "application/json", "{\"status\":\"ok\"}",
                         NULL);
        }

    } else if (strcmp(c->path, "/metrics") == 0) {
        if (mock_method_is(c, "GET", "GET")) {
            mock_metrics(c);
        }

    } else if (strcmp(c->path, "/mock/models") == 0) {
        if (mock_method_is(c, "POST", "POST")) {
            mock_models_post(c);
        }

    } else if (mock_dialect_is("ollama")
               && (strcmp(c->path, "/api/tags") == 0
                   || strcmp(c->path, "/api/ps") == 0))
    {
        if (mock_method_is(c, "GET", "GET")) {
            mock_ollama_models(c, c->path[5] == 'p');
        }

    } else if (mock_dialect_is("ollama") && strcmp(c->path, "/") == 0) {
        if (mock_method_is(c, "GET", "GET")) {
            /* as Ollama says it: no newline, unlike mock_respond() */
            mock_head(c, 200, "text/plain; charset=utf-8", 17, NULL);
            mock_body_add(c, "Ollama is running", 17);
            mock_body_end(c, 1);
        }

    } else if (mock_dialect_is("tgi") && strcmp(c->path, "/info") == 0) {
        if (mock_method_is(c, "GET", "GET")) {
            mock_tgi_info(c);
        }

    } else {
        mock_respond_error(c, 404, "Unknown endpoint.",
                           "invalid_request_error", NULL, "unknown_url",
                           NULL);
    }
}
