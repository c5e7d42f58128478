
/*
 * Copyright (C) gpugate authors
 */


#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_gen.h"
#include "mock_think.h"


#define MOCK_FNV_BASIS  0xcbf29ce484222325ULL
#define MOCK_FNV_PRIME  0x100000001b3ULL


static const char  *mock_words[] = {
    " the", " gateway", " streams", " tokens", " from", " a", " mock",
    " runtime", " that", " never", " loads", " weights", " but", " always",
    " answers", " in", " the", " same", " words", " for", " the", " same",
    " prompt", " so", " tests", " can", " compare", " bytes", " and",
    " benchmarks", " can", " count", " events", " while", " nginx",
    " forwards", " each", " one", " as", " soon", " as", " it", " arrives",
    " over", " loopback", " with", " no", " buffering", " at", " all",
    " quick", " brown", " fox", " jumps", " lazy", " dog", " alpha", " beta",
    " gamma", " delta", " epsilon", " zeta", " eta", " theta"
};

#define MOCK_NWORDS  (sizeof(mock_words) / sizeof(mock_words[0]))


uint64_t
mock_fnv1a(uint64_t h, const void *p, size_t len)
{
    size_t                i;
    const unsigned char  *s = p;

    for (i = 0; i < len; i++) {
        h ^= s[i];
        h *= MOCK_FNV_PRIME;
    }

    return h;
}


/* counts words and folds the text into the hash */

static void
mock_absorb(mock_req_t *req, const char *text)
{
    int          in_word;
    const char  *p;

    req->hash = mock_fnv1a(req->hash, text, strlen(text));
    req->hash = mock_fnv1a(req->hash, "\n", 1);

    in_word = 0;

    for (p = text; *p; p++) {
        if (isspace((unsigned char) *p)) {
            in_word = 0;

        } else if (!in_word) {
            in_word = 1;
            req->prompt_tokens++;
        }
    }
}


static int
mock_absorb_content(mock_req_t *req, json_t *content)
{
    size_t   i;
    json_t  *part, *text;

    if (json_is_string(content)) {
        mock_absorb(req, json_string_value(content));
        return 0;
    }

    if (json_is_null(content)) {
        return 0;
    }

    if (!json_is_array(content)) {
        return -1;
    }

    json_array_foreach(content, i, part) {
        text = json_object_get(part, "text");

        if (json_is_string(text)) {
            mock_absorb(req, json_string_value(text));
        }
    }

    return 0;
}


int
mock_parse_request(json_t *body, mock_kind_e kind, mock_req_t *req,
    const char **msg, const char **param)
{
    size_t   i;
    json_t  *v, *m, *opts;

    memset(req, 0, sizeof(mock_req_t));
    req->kind = kind;
    req->max_tokens = -1;

    if (!json_is_object(body)) {
        *msg = "The request body must be a JSON object.";
        *param = NULL;
        return 400;
    }

    v = json_object_get(body, "model");
    if (!json_is_string(v) || json_string_length(v) == 0) {
        *msg = "you must provide a model parameter";
        *param = "model";
        return 400;
    }

    req->model = json_string_value(v);
    req->hash = mock_fnv1a(MOCK_FNV_BASIS, req->model, strlen(req->model));
    req->hash = mock_fnv1a(req->hash, "\n", 1);

    v = json_object_get(body, "stream");
    if (v && !json_is_boolean(v) && !json_is_null(v)) {
        *msg = "'stream' must be a boolean";
        *param = "stream";
        return 400;
    }

    req->stream = json_is_true(v);

    opts = json_object_get(body, "stream_options");
    if (json_is_object(opts)) {
        req->include_usage = json_is_true(json_object_get(opts,
                                                          "include_usage"));
    }

    v = json_object_get(body, "max_completion_tokens");
    if (v == NULL || json_is_null(v)) {
        v = json_object_get(body, "max_tokens");
    }

    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            *msg = "'max_tokens' must be a non-negative integer";
            *param = "max_tokens";
            return 400;
        }

        req->max_tokens = (long) json_integer_value(v);
    }

    if (kind == MOCK_CHAT) {
        v = json_object_get(body, "messages");
        if (!json_is_array(v) || json_array_size(v) == 0) {
            *msg = "'messages' must be a non-empty array";
            *param = "messages";
            return 400;
        }

        json_array_foreach(v, i, m) {
            if (!json_is_object(m)
                || mock_absorb_content(req, json_object_get(m, "content"))
                   != 0)
            {
                *msg = "each message must be an object with a content";
                *param = "messages";
                return 400;
            }
        }

    } else if (kind == MOCK_COMPLETION) {
        v = json_object_get(body, "prompt");

        if (json_is_string(v)) {
            mock_absorb(req, json_string_value(v));

        } else if (json_is_array(v)) {
            json_array_foreach(v, i, m) {
                if (!json_is_string(m)) {
                    *msg = "'prompt' must be a string or an array of strings";
                    *param = "prompt";
                    return 400;
                }
                mock_absorb(req, json_string_value(m));
            }

        } else {
            *msg = "'prompt' must be a string or an array of strings";
            *param = "prompt";
            return 400;
        }
    }

    if (req->prompt_tokens == 0) {
        req->prompt_tokens = 1;
    }

    snprintf(req->id, sizeof(req->id), "%s-mock-%016llx",
             kind == MOCK_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long) req->hash);

    return 0;
}


const char *
mock_token(const mock_req_t *req, long i)
{
    if (req->think > 0) {
        if (mock_think_token(req, i)) {
            return mock_think_token(req, i);
        }

        i -= mock_think_tokens(req);
    }

    return mock_words[(req->hash + (uint64_t) i) % MOCK_NWORDS];
}


void
mock_cached(json_t *usage, const mock_req_t *req, const char *count,
    const char *details)
{
    json_t  *v;

    if (usage == NULL || req->cache_read <= 0) {
        return;
    }

    v = json_object_get(usage, count);
    json_object_set_new(usage, count,
                        json_integer(json_integer_value(v)
                                     + req->cache_read));

    v = json_object_get(usage, "total_tokens");
    json_object_set_new(usage, "total_tokens",
                        json_integer(json_integer_value(v)
                                     + req->cache_read));

    json_object_set_new(usage, details,
                        json_pack("{s:I}", "cached_tokens",
                                  (json_int_t) req->cache_read));
}


static json_t *
mock_usage(const mock_req_t *req, long n)
{
    json_t  *u;

    u = json_pack("{s:I, s:I, s:I}",
                  "prompt_tokens", (json_int_t) req->prompt_tokens,
                  "completion_tokens", (json_int_t) n,
                  "total_tokens", (json_int_t) (req->prompt_tokens + n));

    mock_cached(u, req, "prompt_tokens", "prompt_tokens_details");

    if (req->think > 0 && req->think_report) {
        json_object_set_new(u, "completion_tokens_details",
                            json_pack("{s:I}", "reasoning_tokens",
                                      (json_int_t) req->think));
    }

    return u;
}


static char *
mock_dump(json_t *j)
{
    char  *s;

    s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER
                      | JSON_REAL_PRECISION(6));
    json_decref(j);

    return s;
}


char *
mock_chunk(const mock_req_t *req, long i, long n, const char *finish)
{
    json_t  *root, *choice, *choices, *delta;

    root = json_pack("{s:s, s:s, s:i, s:s}",
                     "id", req->id,
                     "object", req->kind == MOCK_CHAT
                               ? "chat.completion.chunk" : "text_completion",
                     "created", MOCK_CREATED,
                     "model", req->model);

    choices = json_array();

    if (i != -3) {
        if (req->kind == MOCK_CHAT) {
            if (i == -1) {
                delta = json_pack("{s:s, s:s}", "role", "assistant",
                                  "content", "");

            } else if (i == -2) {
                delta = json_object();

            } else {
                delta = json_pack("{s:s}", "content", mock_token(req, i));
            }

            choice = json_pack("{s:i, s:o}", "index", 0, "delta", delta);

        } else {
            choice = json_pack("{s:i, s:s}", "index", 0, "text",
                               i >= 0 ? mock_token(req, i) : "");
        }

        json_object_set_new(choice, "finish_reason",
                            i == -2 ? json_string(finish) : json_null());
        json_array_append_new(choices, choice);
    }

    json_object_set_new(root, "choices", choices);

    if (i == -3) {
        json_object_set_new(root, "usage", mock_usage(req, n));

    } else if (req->include_usage) {
        /* OpenAI sends "usage": null on every chunk when usage was asked */
        json_object_set_new(root, "usage", json_null());
    }

    return mock_dump(root);
}


char *
mock_full(const mock_req_t *req, long n, const char *finish)
{
    long     i;
    char    *text;
    size_t   len, off;
    json_t  *root, *choice;

    len = 1;
    for (i = 0; i < n; i++) {
        len += strlen(mock_token(req, i));
    }

    text = malloc(len);
    if (text == NULL) {
        return NULL;
    }

    off = 0;
    for (i = 0; i < n; i++) {
        len = strlen(mock_token(req, i));
        memcpy(text + off, mock_token(req, i), len);
        off += len;
    }
    text[off] = '\0';

    if (req->kind == MOCK_CHAT) {
        choice = json_pack("{s:i, s:{s:s, s:s}, s:s}", "index", 0,
                           "message", "role", "assistant", "content", text,
                           "finish_reason", finish);
    } else {
        choice = json_pack("{s:i, s:s, s:s}", "index", 0, "text", text,
                           "finish_reason", finish);
    }

    free(text);

    root = json_pack("{s:s, s:s, s:i, s:s, s:[o], s:o}",
                     "id", req->id,
                     "object", req->kind == MOCK_CHAT
                               ? "chat.completion" : "text_completion",
                     "created", MOCK_CREATED,
                     "model", req->model,
                     "choices", choice,
                     "usage", mock_usage(req, n));

    return mock_dump(root);
}


char *
mock_embeddings(json_t *body, const char *model, int dim, const char **msg)
{
    int          d;
    long         tokens;
    char        *s;
    size_t       i, n;
    json_t      *input, *in, *data, *vec;
    uint64_t     h, x;
    mock_req_t   words;
    const char  *text;

    input = json_object_get(body, "input");

    if (json_is_string(input)) {
        n = 1;

    } else if (json_is_array(input) && json_array_size(input) > 0) {
        n = json_array_size(input);

    } else {
        *msg = "'input' must be a string or a non-empty array of strings";
        return NULL;
    }

    data = json_array();
    tokens = 0;

    for (i = 0; i < n; i++) {
        in = json_is_string(input) ? input : json_array_get(input, i);

        if (!json_is_string(in)) {
            json_decref(data);
            *msg = "'input' must be a string or a non-empty array of strings";
            return NULL;
        }

        text = json_string_value(in);

        memset(&words, 0, sizeof(words));
        mock_absorb(&words, text);
        tokens += words.prompt_tokens ? words.prompt_tokens : 1;

        h = mock_fnv1a(MOCK_FNV_BASIS, text, strlen(text));
        vec = json_array();

        for (d = 0; d < dim; d++) {
            /* xorshift: a fixed pseudo-random walk from the text's hash */
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            x = h % 2000001;
            json_array_append_new(vec,
                json_real(((double) x - 1000000.0) / 1000000.0));
        }

        json_array_append_new(data, json_pack("{s:s, s:I, s:o}",
                                              "object", "embedding",
                                              "index", (json_int_t) i,
                                              "embedding", vec));
    }

    s = mock_dump(json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}",
                            "object", "list", "data", data, "model", model,
                            "usage", "prompt_tokens", (json_int_t) tokens,
                            "total_tokens", (json_int_t) tokens));
    return s;
}


char *
mock_error(const char *message, const char *type, const char *param,
    const char *code)
{
    return mock_dump(json_pack("{s:{s:s, s:s, s:o, s:o}}", "error",
                               "message", message, "type", type,
                               "param", param ? json_string(param)
                                              : json_null(),
                               "code", code ? json_string(code)
                                            : json_null()));
}
