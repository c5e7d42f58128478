
/*
 * Copyright (C) gpugate authors
 *
 * The reasoning split, independent of nginx: a model that thinks aloud
 * starts its answer with "<think>...</think>" (tags configurable); the
 * split moves that part to "reasoning_content" and leaves the final
 * answer in "content".
 *
 * The state machine takes the content as it arrives: the bytes of a JSON
 * string as they are on the wire (still escaped), in fragments cut
 * anywhere, even inside an escape.  It matches the tags on the decoded
 * characters, so "\u003cthink\u003e" or "<\/think>" are tags too, and
 * gives back the raw bytes it was given, split into the reasoning and the
 * content: nothing is decoded or encoded again, so what passes is
 * byte-identical to what came.  The output for a whole answer is the same
 * however it was cut (the fuzz target checks it).
 *
 * Rules: only whitespace may come before the opening tag (up to
 * GPUGATE_THINK_LEAD_MAX bytes); anything else first means there is no
 * reasoning and everything is content.  Whitespace after the closing tag
 * is dropped.  An answer that ends before the closing tag was all
 * reasoning.
 */


#ifndef _GPUGATE_THINK_H_INCLUDED_
#define _GPUGATE_THINK_H_INCLUDED_


#include <stddef.h>


/* a tag's characters; an escape is at most 6 bytes ("\u003c") */
#define GPUGATE_THINK_TAG_MAX   32

/* leading whitespace held while waiting for the opening tag */
#define GPUGATE_THINK_LEAD_MAX  512

#define GPUGATE_THINK_HOLD      (GPUGATE_THINK_LEAD_MAX                   \
                                 + 6 * GPUGATE_THINK_TAG_MAX)


typedef enum {
    GPUGATE_THINK_LEAD = 0,        /* whitespace so far */
    GPUGATE_THINK_OPEN,            /* a part of the opening tag */
    GPUGATE_THINK_REASON,          /* in the reasoning */
    GPUGATE_THINK_AFTER,           /* past the closing tag, whitespace */
    GPUGATE_THINK_CONTENT,         /* the final answer */
    GPUGATE_THINK_PASS             /* no reasoning: all content */
} gpugate_think_state_e;


typedef struct {
    const char     *open;          /* opening tag, decoded characters */
    size_t          open_len;      /* its length */
    const char     *close;         /* closing tag */
    size_t          close_len;     /* its length */
    unsigned char   held[GPUGATE_THINK_HOLD]; /* raw bytes whose side is
                                      not known yet: leading whitespace
                                      and a tag's beginning */
    size_t          held_len;      /* bytes in "held" */
    unsigned char   esc[6];        /* an escape cut by the fragment's end */
    size_t          esc_len;       /* its bytes so far */
    size_t          match;         /* characters of a tag matched */
    gpugate_think_state_e  state;  /* where in the answer */
} gpugate_think_t;


/* where one choice's content string is in a JSON chunk or answer */

typedef struct {
    size_t          name;          /* offset of the member's name, its
                                      opening quote */
    size_t          value;         /* offset of the string's first byte,
                                      past its opening quote */
    size_t          value_len;     /* raw bytes of the string */
    size_t          end;           /* offset past its closing quote */
    long            index;         /* the choice's "index", else its
                                      position */
} gpugate_think_loc_t;


/* Tags must be 1..GPUGATE_THINK_TAG_MAX characters; they are not copied. */
void gpugate_think_init(gpugate_think_t *t, const char *open,
    size_t open_len, const char *close, size_t close_len);

/* the room each output needs for a fragment of "len" bytes */
#define gpugate_think_out_max(t, len)  ((t)->held_len + (t)->esc_len + (len))

/*
 * Takes a fragment of the content (raw JSON string bytes) and appends to
 * reason (at *rlen) and content (at *clen) what is known to be either.
 */
void gpugate_think_feed(gpugate_think_t *t, const unsigned char *p,
    size_t len, unsigned char *reason, size_t *rlen, unsigned char *content,
    size_t *clen);

/* The answer ended: whatever is held goes to its side. */
void gpugate_think_end(gpugate_think_t *t, unsigned char *reason,
    size_t *rlen, unsigned char *content, size_t *clen);

/*
 * Gives up waiting for the opening tag (the caller cannot hold more): the
 * held bytes are content, as is the rest.
 */
void gpugate_think_give_up(gpugate_think_t *t, unsigned char *content,
    size_t *clen);

/* whether bytes are held waiting for the opening tag */
#define gpugate_think_undecided(t)                                          \
    (((t)->state == GPUGATE_THINK_LEAD || (t)->state == GPUGATE_THINK_OPEN) \
     && (t)->held_len + (t)->esc_len > 0)

/* whether the opening tag was found */
#define gpugate_think_opened(t)                                             \
    ((t)->state >= GPUGATE_THINK_REASON && (t)->state != GPUGATE_THINK_PASS)

/*
 * Finds the string content members of the choices of a JSON object:
 * choices[].<holder>.content, where holder is "delta" (a stream's chunk)
 * or "message" (a chat answer).  Returns how many (at most "max"), or -1
 * when the object is not well formed.  Offsets are from "json".
 */
int gpugate_think_locate(const unsigned char *json, size_t len,
    const char *holder, gpugate_think_loc_t *locs, int max);

/*
 * The member that replaces json[loc->name, loc->end): "reasoning_content"
 * and "content" with the given raw strings; a NULL one is left out.
 * Returns the bytes written; out needs rlen + clen + 40.
 */
size_t gpugate_think_member(unsigned char *out, const unsigned char *reason,
    size_t rlen, const unsigned char *content, size_t clen);

/*
 * usage.completion_tokens_details.reasoning_tokens of a chunk or answer;
 * -1 when it has none.
 */
long long gpugate_think_reported(const unsigned char *json, size_t len);


#endif /* _GPUGATE_THINK_H_INCLUDED_ */
