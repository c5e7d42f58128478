
/*
 * Copyright (C) gpugate authors
 *
 * The request body as the runtime gets it: the model's value replaced
 * (target=), stream_options.include_usage made true (the gateway asks
 * for usage the client did not) and "priority" set to the gateway's
 * (priority= of the model line), every other byte as the client sent it.
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


/* what the splices' new bytes are built in */

typedef struct {
    char          quoted[GPUGATE_OAI_MODEL_MAX + 3]; /* the new model
                                                        value, quoted */
    char          prio[sizeof(",\"priority\":9")];    /* the priority
                                                        member, with a
                                                        comma before */
} gpugate_oai_adds_t;


/*
 * The splices that make the rewritten body, in body order, except the
 * duplicate priority members (gpugate_oai_body_next_priority() finds
 * them as the body is written): the model's value,
 * stream_options.include_usage made true, and the priority member.
 * Their number, or -1 when the model name is too long or the priority
 * out of range.
 */

static int
gpugate_oai_body_edits(gpugate_oai_body_t *b, const char *model,
    int ask_usage, int priority, gpugate_oai_adds_t *adds,
    gpugate_oai_edit_t *edit)
{
    int                   i, j, n;
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
        adds->quoted[0] = '"';
        memcpy(adds->quoted + 1, model, size);
        adds->quoted[size + 1] = '"';

        edit[n].off = b->model_start - b->body;
        edit[n].cut = b->model_end - b->model_start;
        edit[n].add = adds->quoted;
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

    if (priority > GPUGATE_OAI_PRIO_MAX) {
        return -1;
    }

    if (priority >= 0) {
        /* one digit: the member is ",\"priority\":N" */
        memcpy(adds->prio, ",\"priority\":", 12);
        adds->prio[12] = (char) ('0' + priority);

        if (b->prio_start) {
            /* the client's first one, whatever its case, becomes ours */
            edit[n].off = b->prio_start - b->body;
            edit[n].cut = b->prio_end - b->prio_start;
            edit[n].add = adds->prio + 1;
            edit[n].add_len = 12;

        } else {
            edit[n].off = b->members_end - b->body;
            edit[n].cut = 0;
            edit[n].add = adds->prio;
            edit[n].add_len = 13;
        }

        n++;
    }

    /*
     * The splices never overlap (model, stream_options and priority are
     * different members); two additions after the last member may share
     * an offset, in either order.
     */

    for (i = 1; i < n; i++) {
        t = edit[i];

        for (j = i; j > 0 && edit[j - 1].off > t.off; j--) {
            edit[j] = edit[j - 1];
        }

        edit[j] = t;
    }

    return n;
}


size_t
gpugate_oai_body_rewrite_len(gpugate_oai_body_t *b, const char *model,
    int ask_usage, int priority)
{
    int                 i, n;
    size_t              size;
    gpugate_oai_edit_t  edit[3];
    gpugate_oai_adds_t  adds;

    n = gpugate_oai_body_edits(b, model, ask_usage, priority, &adds, edit);
    if (n < 0) {
        return 0;
    }

    size = b->body_len;

    for (i = 0; i < n; i++) {
        size += edit[i].add_len;
        size -= edit[i].cut;
    }

    if (priority >= 0) {
        size -= b->prio_cut;
    }

    return size;
}


size_t
gpugate_oai_body_rewrite(gpugate_oai_body_t *b, const char *model,
    int ask_usage, int priority, char *out)
{
    int                   i, n, dups;
    char                 *p;
    size_t                pos;
    gpugate_oai_edit_t    edit[3], dup, e;
    gpugate_oai_adds_t    adds;
    const unsigned char  *at;

    n = gpugate_oai_body_edits(b, model, ask_usage, priority, &adds, edit);
    if (n < 0) {
        return 0;
    }

    /* the duplicates come after the first priority member, in order */

    dups = 0;
    at = b->prio_end;
    dup.add = NULL;
    dup.add_len = 0;

    if (priority >= 0 && b->prio_count > 1) {
        dups = gpugate_oai_body_next_priority(b, &at, &dup.off, &dup.cut);
    }

    p = out;
    pos = 0;
    i = 0;

    for ( ;; ) {
        if (i < n && (!dups || edit[i].off <= dup.off)) {
            e = edit[i++];

        } else if (dups) {
            e = dup;
            dups = gpugate_oai_body_next_priority(b, &at, &dup.off,
                                                  &dup.cut);

        } else {
            break;
        }

        memcpy(p, b->body + pos, e.off - pos);
        p += e.off - pos;

        if (e.add_len) {
            memcpy(p, e.add, e.add_len);
            p += e.add_len;
        }

        pos = e.off + e.cut;
    }

    memcpy(p, b->body + pos, b->body_len - pos);
    p += b->body_len - pos;

    return p - out;
}


int
gpugate_oai_priority_for(gpugate_oai_prio_e runtime, int prio)
{
    if (prio < 0 || prio > GPUGATE_OAI_PRIO_MAX) {
        return -1;
    }

    switch (runtime) {
    case GPUGATE_OAI_PRIO_VLLM:
        /* vLLM serves the lowest value first; 0 is its default */
        return GPUGATE_OAI_PRIO_MAX - prio;
    case GPUGATE_OAI_PRIO_SGLANG:
        /* SGLang serves the highest first (its default order) */
        return prio;
    default:
        return -1;
    }
}


/*
 * Where each runtime reads a top-level "priority" (their request
 * classes, checked in their sources): vLLM on chat, completions and
 * responses, and on embeddings, score and rerank (its pooling requests'
 * common fields); SGLang on chat, completions, responses and embeddings
 * (its score and rerank requests have no such field).  Neither reads one
 * on Anthropic's messages, audio or images, and a runtime may refuse a
 * member it does not know, so those get none.
 */

int
gpugate_oai_priority_takes(gpugate_oai_prio_e runtime,
    gpugate_oai_kind_e kind)
{
    switch (kind) {
    case GPUGATE_OAI_CHAT:
    case GPUGATE_OAI_COMPLETIONS:
    case GPUGATE_OAI_RESPONSES:
    case GPUGATE_OAI_EMBEDDINGS:
        return runtime == GPUGATE_OAI_PRIO_VLLM
               || runtime == GPUGATE_OAI_PRIO_SGLANG;
    case GPUGATE_OAI_RERANK:
    case GPUGATE_OAI_SCORE:
        return runtime == GPUGATE_OAI_PRIO_VLLM;
    default:
        return 0;
    }
}
