
/*
 * Copyright (C) gpugate authors
 *
 * What the SCRAM client and server share inside the core (not an API for
 * the callers of gpugate_scram.h): the exchange's steps, HMAC over pieces
 * of messages, and a cursor over "x=value" attributes.
 */


#ifndef _GPUGATE_SCRAM_COMMON_H_INCLUDED_
#define _GPUGATE_SCRAM_COMMON_H_INCLUDED_


#include <stddef.h>

#include "gpugate_scram.h"


/* where an exchange stands; 0 is "not started", anything else is over */
#define GPUGATE_SCRAM_STEP_FIRST  1
#define GPUGATE_SCRAM_STEP_FINAL  2
#define GPUGATE_SCRAM_STEP_DONE   3


/* a piece of a message that is fed to HMAC */
typedef struct {
    const void  *data;                 /* its bytes */
    size_t       len;                  /* their count */
} gpugate_scram_part_t;


/* reads "x=value" attributes one after the other */
typedef struct {
    const char  *pos;                  /* next unread character */
    const char  *end;                  /* end of the message */
} gpugate_scram_cursor_t;


/* HMAC-SHA-256 over the parts one after the other: 0 or -1 */
int gpugate_scram_hmac(const unsigned char *key, size_t key_len,
    const gpugate_scram_part_t *parts, size_t nparts, unsigned char *out);
int gpugate_scram_hmac1(const unsigned char *key, size_t key_len,
    const void *data, size_t len, unsigned char *out);
int gpugate_scram_sha256(const unsigned char *in, size_t len,
    unsigned char *out);

/* HMAC over AuthMessage = client-first-bare "," server-first "," final */
int gpugate_scram_sign(const unsigned char *key, const char *first_bare,
    size_t first_bare_len, const char *server_first, size_t server_first_len,
    const char *final, size_t final_len, unsigned char *out);

/* RFC 5802 printable less ',', and UTF-8 without controls: 1 or 0 */
int gpugate_scram_printable(const char *p, size_t len);
int gpugate_scram_utf8(const char *s, size_t len);

/* one "x=value" attribute at the cursor, and the ',' after it */
int gpugate_scram_attr(gpugate_scram_cursor_t *c, char *name,
    const char **val, size_t *len);
int gpugate_scram_next(gpugate_scram_cursor_t *c);
gpugate_scram_rc_t gpugate_scram_extensions(gpugate_scram_cursor_t *c);

/* length and NUL checks on any message read */
gpugate_scram_rc_t gpugate_scram_check_msg(const char *msg, size_t len);


#endif /* _GPUGATE_SCRAM_COMMON_H_INCLUDED_ */
