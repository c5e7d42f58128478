
/*
 * Copyright (C) gpugate authors
 *
 * Served models from the runtime's own listing (ga_models.h).  The body
 * is not NUL-terminated and may be anything: jansson reads only "len"
 * bytes of it, and every id is checked by the same code the gateway uses
 * on X-Gpugate-Models before it is written.
 */


#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "gpugate_models.h"
#include "gpugate_tunnel_proto.h"
#include "ga_models.h"


/* how much of a skipped id the note quotes */
#define GA_MODELS_QUOTE  40


typedef struct {
    char        *out;          /* the list being joined */
    size_t       len;          /* its length, without the NUL */
    size_t       max;          /* the longest list allowed */
    int          n;            /* ids written */
    int          skipped;      /* ids left out */
    const char  *why;          /* why the first one was left out */
    char         first[GA_MODELS_QUOTE * 4 + 4]; /* it, escaped for a log */
} ga_models_list_t;


static int ga_models_items(json_t *root, const char *array,
    const char *const *keys, ga_models_list_t *l, char *err,
    size_t errsize);
static void ga_models_add(ga_models_list_t *l, const char *id, size_t len);
static int ga_models_valid(const char *id, size_t len);
static void ga_models_skip(ga_models_list_t *l, const char *id, size_t len,
    const char *why);
static void ga_models_err(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


/* "name" first: Ollama's "model" is the same id, missing in old ones */
static const char *const  ga_models_openai_keys[] = { "id", NULL };
static const char *const  ga_models_ollama_keys[] = { "name", "model", NULL };


int
ga_models_parse(ga_runtime_e type, const char *body, size_t len, char *out,
    size_t size, char *err, size_t errsize)
{
    int                rc;
    json_t            *root, *id;
    json_error_t       jerr;
    ga_models_list_t   l;

    ga_models_err(err, errsize, "%s", "");

    if (size == 0) {
        ga_models_err(err, errsize, "no room for the list");
        return -1;
    }

    out[0] = '\0';

    if ((size_t) type > GA_RUNTIME_OLLAMA) {
        ga_models_err(err, errsize, "unknown runtime type %d", (int) type);
        return -1;
    }

    memset(&l, 0, sizeof(l));
    l.out = out;
    l.max = size - 1 < GPUGATE_TUNNEL_MODELS_MAX ? size - 1
                                                  : GPUGATE_TUNNEL_MODELS_MAX;

    root = json_loadb(body, len, 0, &jerr);

    if (root == NULL) {
        ga_models_err(err, errsize, "invalid JSON at line %d column %d: %s",
                      jerr.line, jerr.column, jerr.text);
        return -1;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        ga_models_err(err, errsize, "the answer is not a JSON object");
        return -1;
    }

    switch (type) {

    case GA_RUNTIME_TGI:
        id = json_object_get(root, "model_id");

        if (id == NULL) {
            ga_models_err(err, errsize, "no \"model_id\"");
            rc = -1;

        } else if (!json_is_string(id)) {
            ga_models_err(err, errsize, "\"model_id\" is not a string");
            rc = -1;

        } else {
            ga_models_add(&l, json_string_value(id), json_string_length(id));
            rc = 0;
        }

        break;

    case GA_RUNTIME_OLLAMA:
        rc = ga_models_items(root, "models", ga_models_ollama_keys, &l, err,
                             errsize);
        break;

    default:
        rc = ga_models_items(root, "data", ga_models_openai_keys, &l, err,
                             errsize);
        break;
    }

    json_decref(root);

    if (rc != 0) {
        out[0] = '\0';
        return -1;
    }

    out[l.len] = '\0';

    if (l.skipped) {
        ga_models_err(err, errsize, "skipped %d id%s (first: \"%s\": %s)",
                      l.skipped, l.skipped == 1 ? "" : "s", l.first, l.why);
    }

    return l.n;
}


/*
 * The ids of the objects in root's "array", each the first of "keys" an
 * item has.  0, or -1 with the reason in "err".
 */

static int
ga_models_items(json_t *root, const char *array, const char *const *keys,
    ga_models_list_t *l, char *err, size_t errsize)
{
    size_t               i, n;
    json_t              *a, *item, *id;
    const char *const   *k;

    a = json_object_get(root, array);

    if (a == NULL) {
        ga_models_err(err, errsize, "no \"%s\" array", array);
        return -1;
    }

    if (!json_is_array(a)) {
        ga_models_err(err, errsize, "\"%s\" is not an array", array);
        return -1;
    }

    n = json_array_size(a);

    for (i = 0; i < n; i++) {
        item = json_array_get(a, i);

        if (!json_is_object(item)) {
            ga_models_err(err, errsize, "\"%s\"[%zu] is not an object",
                          array, i);
            return -1;
        }

        id = NULL;

        for (k = keys; *k; k++) {
            id = json_object_get(item, *k);

            if (id != NULL) {
                break;
            }
        }

        if (id == NULL) {
            ga_models_err(err, errsize, "\"%s\"[%zu] has no \"%s\"%s%s%s",
                          array, i, keys[0], keys[1] ? " or \"" : "",
                          keys[1] ? keys[1] : "", keys[1] ? "\"" : "");
            return -1;
        }

        if (!json_is_string(id)) {
            ga_models_err(err, errsize, "\"%s\"[%zu]: \"%s\" is not a string",
                          array, i, *k);
            return -1;
        }

        ga_models_add(l, json_string_value(id), json_string_length(id));
    }

    return 0;
}


static void
ga_models_add(ga_models_list_t *l, const char *id, size_t len)
{
    size_t  need;

    if (len == 0) {
        ga_models_skip(l, id, len, "empty");
        return;
    }

    if (len > GPUGATE_TUNNEL_MODEL_MAX) {
        ga_models_skip(l, id, len, "longer than 256 bytes");
        return;
    }

    if (!ga_models_valid(id, len)) {
        ga_models_skip(l, id, len, "not a valid model id");
        return;
    }

    if (gpugate_models_list_has(l->out, l->len, id, len,
                                GPUGATE_MODELS_SEP_WIRE))
    {
        /* the runtime's own business (aliases): one entry is enough */
        return;
    }

    need = len + (l->len ? 2 : 0);

    if (need > l->max - l->len) {
        ga_models_skip(l, id, len, "the list is full");
        return;
    }

    if (l->len) {
        memcpy(l->out + l->len, ", ", 2);
        l->len += 2;
    }

    memcpy(l->out + l->len, id, len);
    l->len += len;
    l->n++;
}


/*
 * The gateway's own check, and the bytes besides: it skips spaces before
 * the first id, so " a" would pass it alone and break the joined list.
 */

static int
ga_models_valid(const char *id, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (id[i] <= 0x20 || id[i] >= 0x7f || id[i] == ',') {
            return 0;
        }
    }

    return gpugate_tunnel_check_models(id, len) == 1;
}


/* the first skipped id is quoted, made safe for a log line */

static void
ga_models_skip(ga_models_list_t *l, const char *id, size_t len,
    const char *why)
{
    size_t         i, n;
    unsigned char  ch;

    if (l->skipped++) {
        return;
    }

    l->why = why;
    n = 0;

    for (i = 0; i < len && i < GA_MODELS_QUOTE; i++) {
        ch = (unsigned char) id[i];

        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            l->first[n++] = (char) ch;

        } else {
            n += snprintf(l->first + n, sizeof(l->first) - n, "\\x%02x", ch);
        }
    }

    if (i < len) {
        memcpy(l->first + n, "...", 3);
        n += 3;
    }

    l->first[n] = '\0';
}


static void
ga_models_err(char *err, size_t errsize, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errsize == 0) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}
