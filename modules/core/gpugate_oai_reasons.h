
/*
 * Copyright (C) gpugate authors
 *
 * The finish reasons of an answer (gen_ai.response.finish_reasons), as
 * the classifier finds them and a request keeps them.
 */


#ifndef _GPUGATE_OAI_REASONS_H_INCLUDED_
#define _GPUGATE_OAI_REASONS_H_INCLUDED_


#include <stddef.h>


/* finish reasons a request keeps, and the bytes kept of each */
#define GPUGATE_OAI_REASONS      4
#define GPUGATE_OAI_REASON_MAX   32


/*
 * The distinct finish reasons of an answer, a small bounded set since a
 * runtime chooses the strings.  Kept decoded from JSON (escapes
 * resolved), a comma turned into '_' so that the comma-separated list
 * reads back as the same reasons.
 */
typedef struct {
    unsigned    n;                 /* reasons in "s" */
    unsigned    len[GPUGATE_OAI_REASONS];   /* bytes of each */
    char        s[GPUGATE_OAI_REASONS][GPUGATE_OAI_REASON_MAX];
                                   /* the reasons, not NUL-terminated */
} gpugate_oai_reasons_t;


/*
 * Adds the reason in the JSON string body s[0..len) (between its quotes,
 * escapes as sent) to the set unless it is there or the set is full;
 * truncated to GPUGATE_OAI_REASON_MAX bytes.
 */
void gpugate_oai_reasons_add(gpugate_oai_reasons_t *set,
    const unsigned char *s, size_t len);

/* adds the reasons of "from" to "to", same bounds */
void gpugate_oai_reasons_merge(gpugate_oai_reasons_t *to,
    const gpugate_oai_reasons_t *from);

/*
 * The set as a comma-separated list into out[0..size) (no NUL); returns
 * its length, at most GPUGATE_OAI_REASONS * (GPUGATE_OAI_REASON_MAX + 1).
 */
size_t gpugate_oai_reasons_join(const gpugate_oai_reasons_t *set, char *out,
    size_t size);


#endif /* _GPUGATE_OAI_REASONS_H_INCLUDED_ */
