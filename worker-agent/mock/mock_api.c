
/*
 * Copyright (C) gpugate authors
 *
 * The mock runtime's other inference APIs, each in its real shape so the
 * official SDKs parse them: Anthropic's /v1/messages (JSON, and SSE with
 * "event:" lines, usage in message_start and message_delta), OpenAI's
 * /v1/responses (JSON, and typed response.* events, usage in
 * response.completed), /v1/rerank and /v1/score (vLLM's shapes),
 * /v1/images/generations (no usage, as DALL-E answers) and
 * /v1/audio/speech (binary audio, about 256 bytes per input character),
 * and the multipart uploads /v1/audio/transcriptions, /v1/audio/
 * translations (text, usage in seconds: one per 32,000 bytes of upload,
 * 16 kHz 16-bit mono) and /v1/images/edits (one image, no usage).
 * The text is the mock's deterministic words (mock_token()); X-Mock-Tokens
 * sets how many.  Answers come whole, without the chat stream's timing
 * faults: they are for shapes and counts, not for timing tests.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_multipart.h"
#include "mock_api.h"
#include "mock_ext.h"
#include "mock_gen.h"
#include "mock_models.h"
#include "mock_state.h"


#define MOCK_SPEECH_BYTES_PER_CHAR  256
#define MOCK_SPEECH_MAX             (4 * 1024 * 1024)

/* a 1x1 PNG, the image of every images answer */
#define MOCK_PNG_B64  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlE" \
                      "QVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


typedef enum {
    MOCK_API_MESSAGES = 0,
    MOCK_API_RESPONSES,
    MOCK_API_RERANK,
    MOCK_API_SCORE,
    MOCK_API_IMAGES,
    MOCK_API_SPEECH
} mock_api_e;


/* words of a JSON value's text (strings anywhere inside it), at least 1 */

static long
mock_api_words(json_t *v)
{
    long         n;
    size_t       i;
    json_t      *e;
    const char  *k, *s;

    n = 0;

    if (json_is_string(v)) {
        for (s = json_string_value(v); *s; s++) {
            if (*s != ' ' && (s[1] == ' ' || s[1] == '\0')) {
                n++;
            }
        }

    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            n += mock_api_words(e);
        }

    } else if (json_is_object(v)) {
        json_object_foreach(v, k, e) {
            n += mock_api_words(e);
        }
    }

    return n;
}


/* the answer's text: n words of the mock's model */

static char *
mock_api_text(mock_req_t *req, long n)
{
    long    i;
    char   *t;
    size_t  len;

    t = malloc(n * 16 + 1);
    if (t == NULL) {
        return NULL;
    }

    len = 0;

    for (i = 0; i < n; i++) {
        len += snprintf(t + len, 16, "%s", mock_token(req, i));
    }

    t[len] = '\0';

    return t;
}


/* "event: NAME\ndata: JSON\n\n", JSON consumed */

static void
mock_api_event(mock_conn_t *c, const char *name, json_t *data)
{
    char  *s;

    s = json_dumps(data, JSON_COMPACT);
    json_decref(data);

    if (s == NULL) {
        return;
    }

    mock_body_add(c, "event: ", 7);
    mock_body_add(c, name, strlen(name));
    mock_body_add(c, "\ndata: ", 7);
    mock_body_add(c, s, strlen(s));
    mock_body_add(c, "\n\n", 2);
    free(s);
}


static void
mock_api_json(mock_conn_t *c, json_t *answer)
{
    char  *s;

    s = json_dumps(answer, JSON_COMPACT);
    json_decref(answer);

    if (s == NULL) {
        mock_conn_fail(c);
        return;
    }

    mock_respond(c, 200, "application/json", s, NULL);
    free(s);
}


static json_t *
mock_api_message(mock_req_t *req, const char *text, long out, int start)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:[{s:s,s:s}],s:o,s:n,"
                     "s:{s:I,s:I,s:I,s:I}}",
                     "id", req->id, "type", "message", "role", "assistant",
                     "model", req->model,
                     "content", "type", "text", "text", text,
                     "stop_reason", start ? json_null()
                                          : json_string("end_turn"),
                     "stop_sequence",
                     "usage", "input_tokens", (json_int_t) req->prompt_tokens,
                     "cache_creation_input_tokens",
                     (json_int_t) req->cache_write,
                     "cache_read_input_tokens", (json_int_t) req->cache_read,
                     "output_tokens", (json_int_t) out);
}


static void
mock_api_messages(mock_conn_t *c, mock_req_t *req, long n)
{
    long     i;
    char    *text;
    json_t  *m;

    text = mock_api_text(req, n);
    if (text == NULL) {
        mock_conn_fail(c);
        return;
    }

    if (!req->stream) {
        mock_api_json(c, mock_api_message(req, text, n, 0));
        free(text);
        return;
    }

    mock_head(c, 200, "text/event-stream", -1, "Cache-Control: no-cache\r\n");

    m = mock_api_message(req, "", 1, 1);
    json_array_clear(json_object_get(m, "content"));
    mock_api_event(c, "message_start",
                   json_pack("{s:s,s:o}", "type", "message_start",
                             "message", m));
    mock_api_event(c, "content_block_start",
                   json_pack("{s:s,s:i,s:{s:s,s:s}}",
                             "type", "content_block_start", "index", 0,
                             "content_block", "type", "text", "text", ""));
    mock_api_event(c, "ping", json_pack("{s:s}", "type", "ping"));

    for (i = 0; i < n; i++) {
        mock_api_event(c, "content_block_delta",
                       json_pack("{s:s,s:i,s:{s:s,s:s}}",
                                 "type", "content_block_delta", "index", 0,
                                 "delta", "type", "text_delta",
                                 "text", mock_token(req, i)));
    }

    mock_api_event(c, "content_block_stop",
                   json_pack("{s:s,s:i}", "type", "content_block_stop",
                             "index", 0));
    mock_api_event(c, "message_delta",
                   json_pack("{s:s,s:{s:s,s:n},s:{s:I}}",
                             "type", "message_delta",
                             "delta", "stop_reason", "end_turn",
                             "stop_sequence",
                             "usage", "output_tokens", (json_int_t) n));
    mock_api_event(c, "message_stop",
                   json_pack("{s:s}", "type", "message_stop"));
    mock_body_end(c, 1);
    free(text);
}


static json_t *
mock_api_response(mock_req_t *req, const char *text, long n, int done)
{
    json_t  *r, *u;

    r = json_pack("{s:s,s:s,s:I,s:s,s:s,s:[],s:o,s:n,s:n}",
                  "id", req->id, "object", "response",
                  "created_at", (json_int_t) MOCK_CREATED,
                  "status", done ? "completed" : "in_progress",
                  "model", req->model, "output",
                  "usage", json_null(), "error", "incomplete_details");

    if (r == NULL || !done) {
        return r;
    }

    json_array_append_new(json_object_get(r, "output"),
        json_pack("{s:s,s:s,s:s,s:s,s:[{s:s,s:s,s:[]}]}",
                  "type", "message", "id", "msg_mock", "status", "completed",
                  "role", "assistant", "content", "type", "output_text",
                  "text", text, "annotations"));

    u = json_pack("{s:I,s:{s:i},s:I,s:{s:i},s:I}",
                  "input_tokens", (json_int_t) req->prompt_tokens,
                  "input_tokens_details", "cached_tokens", 0,
                  "output_tokens", (json_int_t) n,
                  "output_tokens_details", "reasoning_tokens", 0,
                  "total_tokens", (json_int_t) (req->prompt_tokens + n));

    mock_cached(u, req, "input_tokens", "input_tokens_details");
    json_object_set_new(r, "usage", u);

    return r;
}


static void
mock_api_responses(mock_conn_t *c, mock_req_t *req, long n)
{
    long     i, seq;
    char    *text;

    text = mock_api_text(req, n);
    if (text == NULL) {
        mock_conn_fail(c);
        return;
    }

    if (!req->stream) {
        mock_api_json(c, mock_api_response(req, text, n, 1));
        free(text);
        return;
    }

    mock_head(c, 200, "text/event-stream", -1, "Cache-Control: no-cache\r\n");

    seq = 0;

    mock_api_event(c, "response.created",
                   json_pack("{s:s,s:I,s:o}", "type", "response.created",
                             "sequence_number", (json_int_t) seq++,
                             "response",
                             mock_api_response(req, "", 0, 0)));
    mock_api_event(c, "response.output_item.added",
                   json_pack("{s:s,s:I,s:i,s:{s:s,s:s,s:s,s:s,s:[]}}",
                             "type", "response.output_item.added",
                             "sequence_number", (json_int_t) seq++,
                             "output_index", 0,
                             "item", "type", "message", "id", "msg_mock",
                             "status", "in_progress", "role", "assistant",
                             "content"));
    mock_api_event(c, "response.content_part.added",
                   json_pack("{s:s,s:I,s:s,s:i,s:i,s:{s:s,s:s,s:[]}}",
                             "type", "response.content_part.added",
                             "sequence_number", (json_int_t) seq++,
                             "item_id", "msg_mock", "output_index", 0,
                             "content_index", 0,
                             "part", "type", "output_text", "text", "",
                             "annotations"));

    for (i = 0; i < n; i++) {
        mock_api_event(c, "response.output_text.delta",
                       json_pack("{s:s,s:I,s:s,s:i,s:i,s:s}",
                                 "type", "response.output_text.delta",
                                 "sequence_number", (json_int_t) seq++,
                                 "item_id", "msg_mock", "output_index", 0,
                                 "content_index", 0,
                                 "delta", mock_token(req, i)));
    }

    mock_api_event(c, "response.output_text.done",
                   json_pack("{s:s,s:I,s:s,s:i,s:i,s:s}",
                             "type", "response.output_text.done",
                             "sequence_number", (json_int_t) seq++,
                             "item_id", "msg_mock", "output_index", 0,
                             "content_index", 0, "text", text));
    mock_api_event(c, "response.completed",
                   json_pack("{s:s,s:I,s:o}", "type", "response.completed",
                             "sequence_number", (json_int_t) seq++,
                             "response",
                             mock_api_response(req, text, n, 1)));
    mock_body_end(c, 1);
    free(text);
}


/* rerank and score: one relevance per document, from the hash */

static void
mock_api_rank(mock_conn_t *c, mock_req_t *req, json_t *root, int score)
{
    size_t   i, n;
    json_t  *docs, *list, *answer;
    double   s;

    docs = json_object_get(root, score ? "text_2" : "documents");
    n = json_is_array(docs) ? json_array_size(docs) : 1;
    list = json_array();

    for (i = 0; i < n; i++) {
        s = (double) ((req->hash >> (i % 48)) & 0xffff) / 65536.0;

        json_array_append_new(list, score
            ? json_pack("{s:I,s:s,s:f}", "index", (json_int_t) i,
                        "object", "score", "score", s)
            : json_pack("{s:I,s:f}", "index", (json_int_t) i,
                        "relevance_score", s));
    }

    if (score) {
        answer = json_pack("{s:s,s:s,s:I,s:s,s:o,s:{s:I,s:I,s:i}}",
                           "id", req->id, "object", "list",
                           "created", (json_int_t) MOCK_CREATED,
                           "model", req->model, "data", list, "usage",
                           "prompt_tokens", (json_int_t) req->prompt_tokens,
                           "total_tokens", (json_int_t) req->prompt_tokens,
                           "completion_tokens", 0);
    } else {
        answer = json_pack("{s:s,s:s,s:{s:I},s:o}",
                           "id", req->id, "model", req->model, "usage",
                           "total_tokens", (json_int_t) req->prompt_tokens,
                           "results", list);
    }

    mock_api_json(c, answer);
}


static void
mock_api_images(mock_conn_t *c, json_t *root)
{
    json_int_t   i, n;
    json_t      *list, *fmt;
    const char  *f;

    n = json_is_integer(json_object_get(root, "n"))
        ? json_integer_value(json_object_get(root, "n")) : 1;

    if (n < 1 || n > 10) {
        mock_respond_error(c, 400, "'n' must be 1 to 10.",
                           "invalid_request_error", "n", NULL, NULL);
        return;
    }

    fmt = json_object_get(root, "response_format");
    f = json_is_string(fmt) ? json_string_value(fmt) : "b64_json";
    list = json_array();

    for (i = 0; i < n; i++) {
        json_array_append_new(list, strcmp(f, "url") == 0
            ? json_pack("{s:s}", "url", "https://mock.invalid/image.png")
            : json_pack("{s:s}", "b64_json", MOCK_PNG_B64));
    }

    mock_api_json(c, json_pack("{s:I,s:o}", "created",
                               (json_int_t) MOCK_CREATED, "data", list));
}


/* audio bytes, chunk-framed as they are made: a stream of bytes */

static void
mock_api_speech(mock_conn_t *c, mock_req_t *req, json_t *root)
{
    char         buf[4096];
    size_t       i, len, chunk;
    json_t      *fmt;
    const char  *type, *f;

    len = strlen(json_string_value(json_object_get(root, "input")))
          * MOCK_SPEECH_BYTES_PER_CHAR;
    len = len > MOCK_SPEECH_MAX ? MOCK_SPEECH_MAX : len;

    fmt = json_object_get(root, "response_format");
    f = json_is_string(fmt) ? json_string_value(fmt) : "mp3";
    type = strcmp(f, "wav") == 0 ? "audio/wav"
           : strcmp(f, "pcm") == 0 ? "audio/pcm"
           : strcmp(f, "opus") == 0 ? "audio/opus"
           : strcmp(f, "flac") == 0 ? "audio/flac" : "audio/mpeg";

    mock_head(c, 200, type, -1, NULL);

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (char) ((req->hash >> (i % 56)) + i);
    }

    for (i = 0; i < len; i += chunk) {
        chunk = len - i < sizeof(buf) ? len - i : sizeof(buf);
        mock_body_add(c, buf, chunk);
    }

    mock_body_end(c, 1);
}


/* the request's checks, as the APIs word them; 0: answered with an error */

static int
mock_api_check(mock_conn_t *c, mock_api_e api, json_t *root, mock_req_t *req)
{
    json_t      *m, *need;
    const char  *name;

    static const char  *needs[] = {
        "messages", "input", "query", "text_1", "prompt", "input"
    };

    if (api == MOCK_API_MESSAGES && !c->anthropic_version) {
        /* Anthropic's own refusal, in its shape */
        mock_respond(c, 400, "application/json",
                     "{\"type\":\"error\",\"error\":{\"type\":"
                     "\"invalid_request_error\",\"message\":"
                     "\"anthropic-version: header is required\"}}", NULL);
        return 0;
    }

    m = json_object_get(root, "model");
    name = needs[api];
    need = json_object_get(root, name);

    if (!json_is_string(m) || json_string_length(m) == 0) {
        mock_respond_error(c, 400, "you must provide a model parameter",
                           "invalid_request_error", "model", NULL, NULL);
        return 0;
    }

    if (need == NULL
        || ((api == MOCK_API_SPEECH || api == MOCK_API_IMAGES)
            && !json_is_string(need)))
    {
        mock_respond_error(c, 400, "a required parameter is missing or "
                           "not a string", "invalid_request_error", name,
                           NULL, NULL);
        return 0;
    }

    if (!mock_served(json_string_value(m))) {
        mock_not_found_model(c, json_string_value(m));
        return 0;
    }

    memset(req, 0, sizeof(mock_req_t));
    req->model = json_string_value(m);
    req->stream = json_is_true(json_object_get(root, "stream"));
    req->prompt_tokens = mock_api_words(need)
                         + (api == MOCK_API_RERANK
                            ? mock_api_words(json_object_get(root,
                                                             "documents"))
                            : api == MOCK_API_SCORE
                            ? mock_api_words(json_object_get(root, "text_2"))
                            : 0);
    req->prompt_tokens = req->prompt_tokens ? req->prompt_tokens : 1;
    req->hash = mock_fnv1a(0xcbf29ce484222325ULL, req->model,
                           strlen(req->model));
    req->hash = mock_fnv1a(req->hash, name, strlen(name));

    snprintf(req->id, sizeof(req->id), "%s%016llx",
             api == MOCK_API_MESSAGES ? "msg_" : "resp_",
             (unsigned long long) req->hash);

    req->cache_read = c->cache_read;
    req->cache_write = c->cache_write;

    return 1;
}


/*
 * A multipart upload: its model field read with the gateway's own
 * scanner, so both agree on what the model is.
 */

static void
mock_api_upload(mock_conn_t *c, int image)
{
    char          *s, nbuf[8];
    long           n, i;
    size_t         len;
    json_t        *list;
    const char    *b, *ct;
    mock_req_t     req;
    gpugate_mp_t   mp;

    ct = c->content_type;

    if (gpugate_mp_boundary(ct, strlen(ct), &b, &len) != 0) {
        mock_respond_error(c, 400, "Expected multipart/form-data.",
                           "invalid_request_error", NULL, NULL, NULL);
        return;
    }

    gpugate_mp_init(&mp, b, len);

    if (gpugate_mp_feed(&mp, (const unsigned char *)
                        (c->body.data ? gg_buf_pos(&c->body) : ""),
                        gg_buf_len(&c->body)) != 0
        || gpugate_mp_finish(&mp) != 0)
    {
        mock_respond_error(c, 400, mp.error, "invalid_request_error",
                           mp.param, NULL, NULL);
        return;
    }

    if (!mock_served(mp.model)) {
        mock_not_found_model(c, mp.model);
        return;
    }

    mock_log(0, "POST %s model=%s upload=%zu", c->path, mp.model,
             gg_buf_len(&c->body));

    if (image) {
        /* as many images as its "n" field asks, 1 to 10 */
        n = 1;

        if (mp.n_len && mp.n_len < sizeof(nbuf)) {
            memcpy(nbuf, mp.n_val, mp.n_len);
            nbuf[mp.n_len] = '\0';
            n = strtol(nbuf, NULL, 10);
        }

        list = json_array();

        for (i = 0; i < (n >= 1 && n <= 10 ? n : 1); i++) {
            json_array_append_new(list, json_pack("{s:s}", "b64_json",
                                                  MOCK_PNG_B64));
        }

        mock_api_json(c, json_pack("{s:I,s:o}", "created",
                                   (json_int_t) MOCK_CREATED, "data",
                                   list));
        return;
    }

    memset(&req, 0, sizeof(mock_req_t));
    req.model = mp.model;
    req.hash = mock_fnv1a(0xcbf29ce484222325ULL, mp.model,
                          strlen(mp.model));

    s = mock_api_text(&req, c->tokens);
    if (s == NULL) {
        mock_conn_fail(c);
        return;
    }

    n = (long) (gg_buf_len(&c->body) / 32000) + 1;

    if (mp.stream) {
        mock_ext_transcribe_stream(c, &req, c->tokens, n);
        free(s);
        return;
    }

    mock_api_json(c, json_pack("{s:s,s:{s:s,s:I}}", "text", s, "usage",
                               "type", "duration",
                               "seconds", (json_int_t) n));
    free(s);
}


/* 1: the path is one of these APIs and was answered; 0: not one */

int
mock_api(mock_conn_t *c)
{
    size_t        i;
    json_t       *root;
    mock_req_t    req;
    json_error_t  jerr;

    static const char  *paths[] = {
        "/v1/messages", "/v1/responses", "/v1/rerank", "/v1/score",
        "/v1/images/generations", "/v1/audio/speech"
    };

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (strcmp(c->path, paths[i]) == 0) {
            break;
        }
    }

    if (i == sizeof(paths) / sizeof(paths[0])
        && strcmp(c->path, "/v1/audio/transcriptions") != 0
        && strcmp(c->path, "/v1/audio/translations") != 0
        && strcmp(c->path, "/v1/images/edits") != 0)
    {
        return 0;
    }

    if (strcmp(c->method, "POST") != 0) {
        mock_respond_error(c, 405, "Method not allowed.",
                           "invalid_request_error", NULL,
                           "method_not_allowed", "Allow: POST\r\n");
        return 1;
    }

    if (c->fail_status) {
        mock_respond_error(c, c->fail_status, "Injected failure.",
                           "server_error", NULL, "mock_injected", NULL);
        return 1;
    }

    if (i == sizeof(paths) / sizeof(paths[0])) {
        mock_api_upload(c, c->path[4] == 'i');
        return 1;
    }

    root = json_loadb(c->body.data ? gg_buf_pos(&c->body) : "",
                      gg_buf_len(&c->body), 0, &jerr);

    if (!json_is_object(root)) {
        json_decref(root);
        mock_respond_error(c, 400, "The body must be a JSON object.",
                           "invalid_request_error", NULL, "invalid_json",
                           NULL);
        return 1;
    }

    if (mock_api_check(c, (mock_api_e) i, root, &req)) {

        mock_log(0, "POST %s model=%s%s", c->path, req.model,
                 req.stream ? " stream" : "");

        switch ((mock_api_e) i) {
        case MOCK_API_MESSAGES:
            mock_api_messages(c, &req, c->tokens);
            break;
        case MOCK_API_RESPONSES:
            mock_api_responses(c, &req, c->tokens);
            break;
        case MOCK_API_RERANK:
        case MOCK_API_SCORE:
            mock_api_rank(c, &req, root, i == MOCK_API_SCORE);
            break;
        case MOCK_API_IMAGES:
            mock_api_images(c, root);
            break;
        case MOCK_API_SPEECH:
            mock_api_speech(c, &req, root);
            break;
        }
    }

    json_decref(root);
    return 1;
}
