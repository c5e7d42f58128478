
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: the request dispatcher, on top of the endpoints'
 * files (mock_infer.c, mock_api.c, mock_ext.c, mock_models.c), with the
 * few answers too small for a file of their own (/health, /metrics, a
 * wrong method, an unknown path).  It gives the connections
 * (mock_conn.c) the hooks through which they reach it.
 */


#include <stdio.h>
#include <string.h>

#include "mock_api.h"
#include "mock_cache.h"
#include "mock_ext.h"
#include "mock_handler.h"
#include "mock_infer.h"
#include "mock_models.h"
#include "mock_prio.h"
#include "mock_state.h"


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

    if (mock_metrics_text(&b) != 0 || mock_cache_metrics(&b) != 0
        || gg_buf_append(&b, "", 1) != 0)
    {
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


static void
mock_dispatch(mock_conn_t *c)
{
    mock_prio_log(c->body.data ? gg_buf_pos(&c->body) : "",
                  c->body.data ? gg_buf_len(&c->body) : 0, c->method,
                  c->path);

    if (strcmp(c->path, "/v1/chat/completions") == 0) {
        if (mock_method_is(c, "POST", "POST")) {
            mock_infer(c, MOCK_CHAT);
        }

    } else if (strcmp(c->path, "/v1/completions") == 0) {
        if (mock_method_is(c, "POST", "POST")) {
            mock_infer(c, MOCK_COMPLETION);
        }

    } else if (strcmp(c->path, "/v1/embeddings") == 0) {
        if (mock_method_is(c, "POST", "POST")) {
            mock_infer(c, MOCK_EMBEDDING);
        }

    } else if (mock_api(c) || mock_ext_dispatch(c)) {
        /* answered by mock_api.c or mock_ext.c */

    } else if (strcmp(c->path, "/v1/models") == 0) {
        if (mock_method_is(c, "GET", "GET")) {
            mock_models_list(c);
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
            mock_models_ollama(c, c->path[5] == 'p');
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
            mock_models_tgi_info(c);
        }

    } else {
        mock_respond_error(c, 404, "Unknown endpoint.",
                           "invalid_request_error", NULL, "unknown_url",
                           NULL);
    }
}


static const mock_conn_ops_t  mock_handler_ops = {
    mock_dispatch,
    mock_infer_run,
    mock_infer_release
};


int
mock_handler_listen(int fd)
{
    return mock_listen_start(fd, &mock_handler_ops);
}
