
/*
 * Copyright (C) gpugate authors
 *
 * OpenAI request bodies, independent of nginx (unit-tested and fuzzed on
 * their own): what the router needs from a body (model, stream flags), the
 * precise error OpenAI clients expect when it is wrong, and the rewritten
 * body when the runtime must see another model name.
 */


#ifndef _GPUGATE_OAI_BODY_H_INCLUDED_
#define _GPUGATE_OAI_BODY_H_INCLUDED_


#include <stddef.h>


#define GPUGATE_OAI_MODEL_MAX  256


/* the JSON endpoints routed by model; the order is the path enum's */

typedef enum {
    GPUGATE_OAI_CHAT = 0,
    GPUGATE_OAI_COMPLETIONS,
    GPUGATE_OAI_EMBEDDINGS,
    GPUGATE_OAI_MESSAGES,           /* Anthropic's messages API */
    GPUGATE_OAI_RESPONSES,          /* OpenAI's responses API */
    GPUGATE_OAI_RERANK,             /* vLLM / TEI / Cohere rerank */
    GPUGATE_OAI_SCORE,              /* vLLM score */
    GPUGATE_OAI_IMAGES,             /* images/generations */
    GPUGATE_OAI_SPEECH,             /* audio/speech: binary answer */
    GPUGATE_OAI_TRANSCRIPTIONS,     /* multipart uploads from here on */
    GPUGATE_OAI_TRANSLATIONS,
    GPUGATE_OAI_IMAGE_EDITS
} gpugate_oai_kind_e;


/* the kinds whose body is multipart/form-data, not JSON */
#define gpugate_oai_multipart(kind)  ((kind) >= GPUGATE_OAI_TRANSCRIPTIONS)


/* what a request path asks for, as far as the router knows it */

typedef enum {
    GPUGATE_OAI_PATH_OTHER = 0,     /* not an endpoint the router knows */
    GPUGATE_OAI_PATH_CHAT,          /* .../v1/chat/completions */
    GPUGATE_OAI_PATH_COMPLETIONS,   /* .../v1/completions */
    GPUGATE_OAI_PATH_EMBEDDINGS,    /* .../v1/embeddings */
    GPUGATE_OAI_PATH_MESSAGES,      /* .../v1/messages */
    GPUGATE_OAI_PATH_RESPONSES,     /* .../v1/responses */
    GPUGATE_OAI_PATH_RERANK,        /* .../v1/rerank */
    GPUGATE_OAI_PATH_SCORE,         /* .../v1/score */
    GPUGATE_OAI_PATH_IMAGES,        /* .../v1/images/generations */
    GPUGATE_OAI_PATH_SPEECH,        /* .../v1/audio/speech */
    GPUGATE_OAI_PATH_TRANSCRIPTIONS, /* .../v1/audio/transcriptions */
    GPUGATE_OAI_PATH_TRANSLATIONS,  /* .../v1/audio/translations */
    GPUGATE_OAI_PATH_IMAGE_EDITS,   /* .../v1/images/edits */
    GPUGATE_OAI_PATH_MODELS,        /* .../v1/models, .../v1/models/ */
    GPUGATE_OAI_PATH_MODEL          /* .../v1/models/ID */
} gpugate_oai_path_e;


typedef struct {
    const unsigned char  *body;        /* the body checked (not copied) */
    size_t                body_len;    /* its length */
    const unsigned char  *model_start; /* the model value's opening quote */
    const unsigned char  *model_end;   /* just after its closing quote */
    const unsigned char  *opts_start;  /* stream_options' value, NULL:
                                          no such member */
    const unsigned char  *opts_end;    /* just after that value */
    const unsigned char  *usage_start; /* stream_options.include_usage's
                                          value, NULL: no such member */
    const unsigned char  *usage_end;   /* just after that value */
    const unsigned char  *need_start;  /* the endpoint's own member's
                                          value (messages, input...),
                                          NULL: none */
    const unsigned char  *need_end;    /* just after that value */
    const unsigned char  *members_end; /* just after the value of the
                                          last top-level member */
    const unsigned char  *prio_start;  /* the first top-level member named
                                          "priority" in any case: its
                                          name's opening quote; NULL:
                                          none */
    const unsigned char  *prio_end;    /* just after that member's value */
    size_t        prio_count;    /* such members, duplicates included */
    size_t        prio_cut;      /* bytes a rewrite takes out for the
                                    duplicates, each with the separator
                                    before it */
    char          model_buf[GPUGATE_OAI_MODEL_MAX + 1];
                                 /* the model name, NUL-terminated */
    const char   *model;         /* model_buf once set */
    size_t        model_len;     /* its length */
    int           stream;        /* "stream": true */
    int           include_usage; /* stream_options.include_usage: true */
    const char   *error;         /* on failure: message for the client */
    const char   *param;         /* on failure: offending field or NULL */
    const char   *code;          /* on failure: OpenAI error code or NULL */
    char          msg[256];      /* storage for a formatted "error" */
} gpugate_oai_body_t;


/*
 * Checks a body for the endpoint.  0 on success; -1 with error/param/code
 * set.  The body must stay in place while "b" is used.
 */
int gpugate_oai_body_parse(gpugate_oai_body_t *b, const char *data,
    size_t len, gpugate_oai_kind_e kind);

/*
 * The body with the model's value replaced ("model" NULL: kept; else a
 * valid model name: printable ASCII, no quotes or backslashes); if
 * "ask_usage", stream_options.include_usage made true: set in the
 * stream_options object (other members kept), replacing a false or null
 * value, or a new stream_options member after the last one; and if
 * "priority" is 0 or more, a top-level "priority" member of that value:
 * the first member whose name is "priority" in any case becomes it, the
 * other such members are taken out, or it is added after the last one
 * (-1: priority members are left as they are).  Every other byte is as
 * it was.  The caller asks for the length first, then has the body
 * written into a buffer of that many bytes (no NUL is added), so it
 * lands in the caller's own memory.  Both return 0 for a model name that
 * is too long or a priority over GPUGATE_OAI_PRIO_MAX.
 */
size_t gpugate_oai_body_rewrite_len(gpugate_oai_body_t *b,
    const char *model, int ask_usage, int priority);
size_t gpugate_oai_body_rewrite(gpugate_oai_body_t *b, const char *model,
    int ask_usage, int priority, char *out);


/* how a runtime reads a request's "priority" member */

typedef enum {
    GPUGATE_OAI_PRIO_OFF = 0,       /* not sent: the body keeps its own */
    GPUGATE_OAI_PRIO_VLLM,          /* lower is served earlier */
    GPUGATE_OAI_PRIO_SGLANG         /* higher is served earlier */
} gpugate_oai_prio_e;

/* the largest value a rewrite writes; gateway priorities are 0..9 */
#define GPUGATE_OAI_PRIO_MAX  9

/*
 * The value of "priority" that tells "runtime" the gateway's priority
 * "prio" (0 lowest .. 9 highest): vLLM 9..0, SGLang 0..9; -1 for
 * GPUGATE_OAI_PRIO_OFF or a priority out of range.
 */
int gpugate_oai_priority_for(gpugate_oai_prio_e runtime, int prio);

/*
 * 1 if "runtime" reads a top-level "priority" member in a request to
 * endpoint "kind", so a rewrite may add one there; 0 for
 * GPUGATE_OAI_PRIO_OFF and for endpoints whose requests have no such
 * field in that runtime.
 */
int gpugate_oai_priority_takes(gpugate_oai_prio_e runtime,
    gpugate_oai_kind_e kind);

void gpugate_oai_body_free(gpugate_oai_body_t *b);

/* for the rewrite (gpugate_oai_rewrite.c): the duplicates of "priority" */
int gpugate_oai_body_next_priority(gpugate_oai_body_t *b,
    const unsigned char **at, size_t *off, size_t *cut);

/*
 * The endpoint of a (decoded, normalised) request path: it ends in
 * "/v1/" and an endpoint name, compared byte for byte (no case folding,
 * no trailing slash except on the model list); whatever comes before
 * "/v1/" is the operator's mount point.  For GPUGATE_OAI_PATH_MODEL the
 * model id (everything after the first "/v1/models/") is returned in
 * *id and *id_len.
 */
gpugate_oai_path_e gpugate_oai_path(const char *path, size_t len,
    const char **id, size_t *id_len);

/*
 * The characters of the JSON string value at p (its opening quote), as
 * decoded: an escape or a UTF-8 sequence is one, a surrogate pair too;
 * 0 for a value that is not a string.  Speech is counted in these.
 */
size_t gpugate_oai_string_chars(const unsigned char *p,
    const unsigned char *end);

/*
 * The kind of a routed path (CHAT .. IMAGE_EDITS), -1 for any other; and the
 * endpoint's short name for the metrics' "endpoint" label ("chat",
 * "messages", ...; "other" for -1).
 */
int gpugate_oai_path_kind(gpugate_oai_path_e path);
const char *gpugate_oai_kind_name(int kind);

/*
 * 1 if "model" is in the comma-separated "list" ("*" allows all), as
 * $gpugate_allowed_models gives it.
 */
int gpugate_oai_model_allowed(const char *list, size_t list_len,
    const char *model, size_t model_len);


#endif /* _GPUGATE_OAI_BODY_H_INCLUDED_ */
