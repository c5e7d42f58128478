
/*
 * Copyright (C) gpugate authors
 *
 * The mock runtime and a request's "priority": every top-level member
 * whose name is "priority" in any case goes to the log as received
 * ("priority METHOD PATH NAME=VALUE ..."; "dup" when the body repeats a
 * member name), so tests see what a runtime that schedules by priority
 * (vLLM, SGLang) is given.  Bodies without one log nothing; nothing is
 * answered differently.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "mock_prio.h"
#include "mock_state.h"


/* the word anywhere in the body: most bodies are not parsed twice */

static int
mock_prio_mentioned(const char *p, size_t len)
{
    size_t  i;

    for (i = 0; i + 8 <= len; i++) {
        if ((p[i] | 0x20) == 'p' && strncasecmp(p + i, "priority", 8) == 0) {
            return 1;
        }
    }

    return 0;
}


void
mock_prio_log(const char *body, size_t len, const char *method,
    const char *path)
{
    int           dup;
    char         *v;
    size_t        n;
    json_t       *root, *value;
    const char   *key;
    char          line[512];
    json_error_t  err;

    if (!mock_prio_mentioned(body, len)) {
        return;
    }

    /* a repeated name: jansson keeps one, the log says there were more */

    dup = 0;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);

    if (root == NULL) {
        root = json_loadb(body, len, 0, &err);
        dup = (root != NULL);
    }

    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return;
    }

    n = 0;
    line[0] = '\0';

    json_object_foreach(root, key, value) {
        if (strcasecmp(key, "priority") != 0) {
            continue;
        }

        v = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);

        if (v && n < sizeof(line)) {
            n += snprintf(line + n, sizeof(line) - n, " %.64s=%.64s", key,
                          v);
        }

        free(v);
    }

    if (n) {
        mock_log(0, "priority %s %s%s%s", method, path, line,
                 dup ? " dup" : "");
    }

    json_decref(root);
}
