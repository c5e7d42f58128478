
/*
 * Copyright (C) gpugate authors
 *
 * What one OpenAI response chunk (the data of one SSE event) or one whole
 * non-streaming answer says, independent of nginx: whether it carries a
 * token (time to first token), whether it is the usage-only chunk that
 * stream_options.include_usage adds, and the token counts.  Reads bytes,
 * builds no JSON tree (see gpugate_oai_chunk.c for why that is exact
 * enough).
 *
 * Also the stripper for a stream whose usage the gateway asked for and
 * the client did not: it takes the stream as it comes, in buffers split
 * anywhere, and gives back what the client would have received without
 * asking (no usage-only chunk, no "usage": null member), holding back at
 * most the incomplete tail of the current event.
 */


#ifndef _GPUGATE_OAI_CHUNK_H_INCLUDED_
#define _GPUGATE_OAI_CHUNK_H_INCLUDED_


#include <stddef.h>

#include "gpugate_sse.h"
#include "gpugate_oai_reasons.h"


typedef struct {
    int         done;              /* the "[DONE]" sentinel */
    int         parsed;            /* a JSON object */
    int         content;           /* carries output: text, content,
                                      reasoning or tool calls */
    int         usage_only;        /* "choices": [] with a usage object */
    int         usage;             /* has a usage object with counts */
    int         usage_out;         /* has a usage object with only the
                                      output count (Anthropic's
                                      message_delta): completion_tokens
                                      is set, prompt_tokens is not */
    int         final;             /* the last event of a typed stream:
                                      Anthropic's message_stop, the
                                      responses API's response.completed,
                                      .incomplete or .failed */
    int         error;             /* an "error" object mid-stream */
    long long   prompt_tokens;     /* usage.prompt_tokens, or
                                      input_tokens plus Anthropic's cache
                                      creation and read tokens, or
                                      total_tokens of an input-only
                                      answer (rerank, score), or the
                                      seconds of a transcription */
    long long   completion_tokens; /* usage.completion_tokens or
                                      output_tokens */
    long long   cache_read_tokens; /* of prompt_tokens, those read from
                                      the prompt cache: OpenAI's
                                      *_tokens_details.cached_tokens,
                                      Anthropic's cache_read_input_tokens;
                                      -1: not reported */
    long long   cache_write_tokens; /* Anthropic's
                                       cache_creation_input_tokens; -1 */
    gpugate_oai_reasons_t  reasons; /* last, see classify: each
                                       choice's finish_reason,
                                       Anthropic's stop_reason, the
                                       responses API's final status or
                                       incomplete_details.reason */
} gpugate_oai_chunk_t;


typedef struct {
    gpugate_sse_t   sse;           /* framer of the stream */
    unsigned char  *hold;          /* bytes of the current event so far */
    size_t          hold_cap;      /* size of "hold" */
    size_t          held;          /* bytes in "hold" */
    unsigned        passing:1;     /* the current event outgrew "hold":
                                      its bytes pass unchanged as they
                                      come */
    unsigned        cr_end:1;      /* the last event ended with a CR */
    unsigned        cr_drop:1;     /* ...and was dropped: the LF of its
                                      CRLF is dropped too */
} gpugate_oai_strip_t;


/* what gpugate_oai_strip_feed() stopped at */

#define GPUGATE_OAI_STRIP_MORE   0 /* all bytes taken, event incomplete */
#define GPUGATE_OAI_STRIP_EVENT  1 /* an event ended */
#define GPUGATE_OAI_STRIP_FULL   2 /* "hold" is full */


/*
 * Classifies the data of one stream event or one whole answer: OpenAI's
 * chat, completions and embeddings chunks, the responses API's typed
 * events (usage in response.completed's "response"), Anthropic's events
 * (input usage in message_start's "message", output in message_delta)
 * and rerank/score answers.
 */
void gpugate_oai_chunk_classify(const unsigned char *data, size_t len,
    gpugate_oai_chunk_t *c);

/*
 * The images of an images/generations answer: the elements of its "data"
 * array; -1 when there is no such array.  What the ledger counts for an
 * image model that reports no usage.
 */
long long gpugate_oai_images_count(const unsigned char *data, size_t len);

/*
 * What an images request asks for, from its JSON body: *n, the images
 * ("n", 1 when absent or not an integer from 1 to 1000) and *size, its
 * "size" if gpugate_oai_image_size() knows it, else NULL.
 */
void gpugate_oai_images_asked(const unsigned char *body, size_t len,
    long long *n, const char **size);

/*
 * The image size "v" (len bytes, as sent) if it is one of a fixed set
 * ("auto", "256x256", "1024x1024", ...): a static string, so that a
 * client's string never reaches the ledger; NULL for any other.
 */
const char *gpugate_oai_image_size(const char *v, size_t len);

/*
 * One complete event, as its bytes came ("data: {...}" and the line ends
 * that end it), of a stream whose usage the client did not ask for:
 * rewrites it in place into what the client gets and returns its new
 * length.  0: the usage-only chunk, dropped.  Less: the "usage": null
 * member removed.  "len": anything else, left as it is (another shape of
 * event, JSON not as expected).
 */
size_t gpugate_oai_event_strip(unsigned char *ev, size_t len);

/*
 * What gpugate_oai_chunk_classify(data, data_len, c) and
 * gpugate_oai_event_strip(ev, len) give, "data" being the event's data as
 * the SSE framer assembled it, in one walk of the event's JSON when the
 * event is one "data" line (the stripper's own walk classifies as it
 * goes), in two for any other event.
 */
size_t gpugate_oai_event_classify_strip(unsigned char *ev, size_t len,
    const unsigned char *data, size_t data_len, gpugate_oai_chunk_t *c);

/*
 * Starts a stream: "data" receives each event's data for the classifier
 * (up to "data_cap" bytes), "hold" the bytes of an incomplete event.
 */
void gpugate_oai_strip_init(gpugate_oai_strip_t *st, unsigned char *data,
    size_t data_cap, unsigned char *hold, size_t hold_cap);

/*
 * Consumes bytes of p[0..len) and appends to out (at *out_len) what the
 * client gets of them; out needs room for st->held + len bytes at the
 * first call for a buffer.  Returns the bytes consumed.  *what: EVENT, an
 * event ended and was written (rewritten, or dropped), *c classifies it;
 * FULL, "hold" is full (call gpugate_oai_strip_grow() or
 * gpugate_oai_strip_pass(), then feed the rest); MORE, all of p was
 * consumed, and the incomplete event's bytes are held.
 */
size_t gpugate_oai_strip_feed(gpugate_oai_strip_t *st,
    const unsigned char *p, size_t len, unsigned char *out, size_t *out_len,
    gpugate_oai_chunk_t *c, int *what);

/* Moves the held bytes to a larger "hold". */
void gpugate_oai_strip_grow(gpugate_oai_strip_t *st, unsigned char *hold,
    size_t hold_cap);

/*
 * Appends the held bytes to out unchanged; the rest of the current event
 * then passes as it comes.  For an event too long to hold, and at the end
 * of the stream.
 */
void gpugate_oai_strip_pass(gpugate_oai_strip_t *st, unsigned char *out,
    size_t *out_len);


#endif /* _GPUGATE_OAI_CHUNK_H_INCLUDED_ */
