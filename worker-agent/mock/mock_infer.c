
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: chat completions, completions and embeddings,
 * and the timed generation of their answers: a small state machine
 * (mock_phase_e) advanced by mock_infer_run() from the connection's
 * generation timer, so that a thousand slow streams cost a thousand
 * timers and nothing else.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_cache.h"
#include "mock_gen.h"
#include "mock_infer.h"
#include "mock_models.h"
#include "mock_state.h"


void
mock_infer_release(mock_conn_t *c, int completed)
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
mock_infer_event(mock_conn_t *c, char *json)
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
mock_infer_wait(mock_conn_t *c, long ms)
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
mock_infer_full(mock_conn_t *c)
{
    char  *body;

    if (c->phase == MOCK_PH_TTFT) {
        c->phase = MOCK_PH_DONE;

        if (mock_infer_wait(c, c->ttft_ms + c->n * c->token_delay_ms)) {
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
mock_infer_run(mock_conn_t *c)
{
    if (!c->active || c->dead || c->stalled) {
        return;
    }

    if (!c->req.stream) {
        mock_infer_full(c);
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
            if (mock_infer_wait(c, c->ttft_ms)) {
                return;
            }
            break;

        case MOCK_PH_ROLE:
            mock_infer_event(c, mock_chunk(&c->req, -1, c->n, NULL));
            c->phase = MOCK_PH_TOKEN;
            break;

        case MOCK_PH_TOKEN:
            if (c->tok == c->n) {
                c->phase = MOCK_PH_FINISH;
                break;
            }

            if (c->tok > 0 && !c->delayed) {
                c->delayed = 1;
                if (mock_infer_wait(c, c->token_delay_ms)) {
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

            mock_infer_event(c, mock_chunk(&c->req, c->tok, c->n, NULL));
            c->tok++;
            c->sent++;
            mock_completion_tokens++;
            break;

        case MOCK_PH_FINISH:
            mock_infer_event(c, mock_chunk(&c->req, -2, c->n, c->finish));
            c->phase = c->req.include_usage ? MOCK_PH_USAGE : MOCK_PH_DONE;
            break;

        case MOCK_PH_USAGE:
            mock_infer_event(c, mock_chunk(&c->req, -3, c->n, NULL));
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


static void
mock_infer_embeddings(mock_conn_t *c, json_t *root)
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

void
mock_infer(mock_conn_t *c, mock_kind_e kind)
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
        mock_infer_embeddings(c, root);
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

    /* from here the connection owns "root" until mock_infer_release() */
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

    mock_infer_run(c);
}
