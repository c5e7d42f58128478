
/*
 * Copyright (C) gpugate authors
 *
 * The mock's streamed transcriptions and its route list.
 *
 * A transcription upload with the form field stream=true is answered as
 * OpenAI streams one: "data:" events without "event:" lines, one
 * {"type":"transcript.text.delta","delta":WORD} per token, then
 * {"type":"transcript.text.done","text":...,"usage":{"type":"tokens",
 * "input_tokens":N,...}} with N the audio's tokens (one per 32,000 bytes
 * of upload, as the seconds of the JSON answer), and no [DONE].
 *
 * With --openapi PATHS (comma-separated), GET /openapi.json answers an
 * OpenAPI document whose "paths" are those, as vLLM and SGLang (FastAPI)
 * serve theirs, so the agent's probe of it can be tested; without it the
 * path is unknown (404), as before.
 */


#include <stdlib.h>
#include <string.h>

#include "mock_ext.h"
#include "mock_gen.h"


/* --openapi: the paths GET /openapi.json lists; NULL: no such route */
const char  *mock_openapi_paths;


static void
mock_ext_event(mock_conn_t *c, json_t *data)
{
    char  *s;

    s = json_dumps(data, JSON_COMPACT);
    json_decref(data);

    if (s == NULL) {
        return;
    }

    mock_body_add(c, "data: ", 6);
    mock_body_add(c, s, strlen(s));
    mock_body_add(c, "\n\n", 2);
    free(s);
}


/* the whole stream at once: the upload was read whole before */

int
mock_ext_transcribe_stream(mock_conn_t *c, mock_req_t *req, long n,
    long input)
{
    long     i;
    char    *text, *t;
    size_t   len;

    /* the done event's text: the words of the deltas, joined */

    for (len = 1, i = 0; i < n; i++) {
        len += strlen(mock_token(req, i));
    }

    text = malloc(len);
    if (text == NULL) {
        mock_conn_fail(c);
        return 1;
    }

    for (t = text, i = 0; i < n; i++) {
        t = stpcpy(t, mock_token(req, i));
    }

    *t = '\0';

    mock_head(c, 200, "text/event-stream", -1, "Cache-Control: no-cache\r\n");

    for (i = 0; i < n; i++) {
        mock_ext_event(c, json_pack("{s:s,s:s}", "type",
                                    "transcript.text.delta", "delta",
                                    mock_token(req, i)));
    }

    mock_ext_event(c, json_pack("{s:s,s:s,s:{s:s,s:I,s:{s:i,s:I},s:I,s:I}}",
                                "type", "transcript.text.done",
                                "text", text,
                                "usage", "type", "tokens",
                                "input_tokens", (json_int_t) input,
                                "input_token_details", "text_tokens", 0,
                                "audio_tokens", (json_int_t) input,
                                "output_tokens", (json_int_t) n,
                                "total_tokens", (json_int_t) (input + n)));
    free(text);
    mock_body_end(c, 1);

    return 1;
}


/* GET /openapi.json with --openapi; 0: not this route */

int
mock_ext_dispatch(mock_conn_t *c)
{
    char        *s, name[256];
    json_t      *doc, *paths;
    const char  *p, *q;

    if (mock_openapi_paths == NULL || strcmp(c->path, "/openapi.json") != 0)
    {
        return 0;
    }

    if (strcmp(c->method, "GET") != 0) {
        mock_respond_error(c, 405, "Method not allowed.",
                           "invalid_request_error", NULL,
                           "method_not_allowed", "Allow: GET\r\n");
        return 1;
    }

    paths = json_object();

    for (p = mock_openapi_paths; *p; p = *q ? q + 1 : q) {
        q = strchr(p, ',');
        q = q ? q : p + strlen(p);

        if (q > p) {
            snprintf(name, sizeof(name), "%.*s", (int) (q - p), p);
            json_object_set_new(paths, name,
                json_pack("{s:{s:s,s:{s:{s:s}}}}", "post", "summary",
                          "mock route", "responses", "200", "description",
                          "Successful Response"));
        }
    }

    doc = json_pack("{s:s,s:{s:s,s:s},s:o}", "openapi", "3.1.0", "info",
                    "title", "gpugate mock runtime", "version", "0.1.0",
                    "paths", paths);
    s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);

    if (s == NULL) {
        mock_conn_fail(c);
        return 1;
    }

    mock_respond(c, 200, "application/json", s, NULL);
    free(s);

    return 1;
}
