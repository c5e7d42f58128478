
/*
 * Copyright (C) gpugate authors
 *
 * The request body as the runtime gets it: the model's value replaced
 * (target=) and stream_options.include_usage made true (the gateway asks
 * for usage the client did not), every other byte as the client sent it.
 * Written into the caller's buffer: its length first, then the bytes.
 */


#include <string.h>

#include "gpugate_oai_body.h"


/* one splice of the body: "cut" bytes at "off" replaced by "add" */

typedef struct {
    size_t        off;             /* where, from the start of the body */
    size_t        cut;             /* original bytes left out there */
    const char   *add;             /* bytes put in their place */
    size_t        add_len;         /* their number */
} gpugate_oai_edit_t;


/*
 * The splices that make the rewritten body, in body order: the model's
 * value, and stream_options.include_usage made true.  Their number, or -1
 * when the model name is too long.  "quoted" holds the new model value.
 */

static int
gpugate_oai_body_edits(gpugate_oai_body_t *b, const char *model,
    int ask_usage, char *quoted, gpugate_oai_edit_t *edit)
{
    int                   n;
    size_t                size;
    gpugate_oai_edit_t    t;
    const unsigned char  *q, *end;

    static const char  include_true[] = "true";
    static const char  options_null[] = "{\"include_usage\":true}";
    static const char  options_new[] = ",\"stream_options\":"
                                       "{\"include_usage\":true}";
    static const char  member_first[] = "\"include_usage\":true,";

    n = 0;

    if (model) {
        size = strlen(model);

        if (size > GPUGATE_OAI_MODEL_MAX) {
            return -1;
        }

        /* model names need no escaping */
        quoted[0] = '"';
        memcpy(quoted + 1, model, size);
        quoted[size + 1] = '"';

        edit[n].off = b->model_start - b->body;
        edit[n].cut = b->model_end - b->model_start;
        edit[n].add = quoted;
        edit[n].add_len = size + 2;
        n++;
    }

    if (ask_usage && !b->include_usage) {

        if (b->usage_start) {
            /* "include_usage": false or null */
            edit[n].off = b->usage_start - b->body;
            edit[n].cut = b->usage_end - b->usage_start;
            edit[n].add = include_true;
            edit[n].add_len = sizeof(include_true) - 1;

        } else if (b->opts_start && *b->opts_start == '{') {
            /* first member of stream_options, the others kept after it */
            edit[n].off = b->opts_start + 1 - b->body;
            edit[n].cut = 0;
            edit[n].add = member_first;
            edit[n].add_len = sizeof(member_first) - 1;

            end = b->body + b->body_len;

            for (q = b->opts_start + 1;
                 q < end && (*q == ' ' || *q == '\t' || *q == '\n'
                             || *q == '\r');
                 q++)
            {
                /* void */
            }

            if (q < end && *q == '}') {
                /* an empty object: no comma after the new member */
                edit[n].add_len--;
            }

        } else if (b->opts_start) {
            /* "stream_options": null */
            edit[n].off = b->opts_start - b->body;
            edit[n].cut = b->opts_end - b->opts_start;
            edit[n].add = options_null;
            edit[n].add_len = sizeof(options_null) - 1;

        } else {
            /* a new last member (the object has one at least: model) */
            edit[n].off = b->members_end - b->body;
            edit[n].cut = 0;
            edit[n].add = options_new;
            edit[n].add_len = sizeof(options_new) - 1;
        }

        n++;
    }

    /* the two splices never overlap: model is not in stream_options */

    if (n == 2 && edit[1].off < edit[0].off) {
        t = edit[0];
        edit[0] = edit[1];
        edit[1] = t;
    }

    return n;
}


size_t
gpugate_oai_body_rewrite_len(gpugate_oai_body_t *b, const char *model,
    int ask_usage)
{
    int                 i, n;
    size_t              size;
    gpugate_oai_edit_t  edit[2];
    char                quoted[GPUGATE_OAI_MODEL_MAX + 3];

    n = gpugate_oai_body_edits(b, model, ask_usage, quoted, edit);
    if (n < 0) {
        return 0;
    }

    size = b->body_len;

    for (i = 0; i < n; i++) {
        size += edit[i].add_len;
        size -= edit[i].cut;
    }

    return size;
}


size_t
gpugate_oai_body_rewrite(gpugate_oai_body_t *b, const char *model,
    int ask_usage, char *out)
{
    int                 i, n;
    char               *p;
    size_t              pos;
    gpugate_oai_edit_t  edit[2];
    char                quoted[GPUGATE_OAI_MODEL_MAX + 3];

    n = gpugate_oai_body_edits(b, model, ask_usage, quoted, edit);
    if (n < 0) {
        return 0;
    }

    p = out;
    pos = 0;

    for (i = 0; i < n; i++) {
        memcpy(p, b->body + pos, edit[i].off - pos);
        p += edit[i].off - pos;
        memcpy(p, edit[i].add, edit[i].add_len);
        p += edit[i].add_len;
        pos = edit[i].off + edit[i].cut;
    }

    memcpy(p, b->body + pos, b->body_len - pos);
    p += b->body_len - pos;

    return p - out;
}
