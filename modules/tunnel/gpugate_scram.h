
/*
 * Copyright (C) gpugate authors
 *
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) for the tunnel handshake, both
 * sides, independent of nginx: the agent proves it holds its token without
 * sending it, the gateway proves it holds the verifier, and the database
 * keeps only salt, iteration count, StoredKey and ServerKey, none of which
 * logs in by itself.  No channel binding (gs2 header "n,,"): TLS is
 * already verified by the agent against the gateway's certificate.
 */


#ifndef _GPUGATE_SCRAM_H_INCLUDED_
#define _GPUGATE_SCRAM_H_INCLUDED_


#include <stddef.h>


#define GPUGATE_SCRAM_KEY_LEN     32
#define GPUGATE_SCRAM_MSG_MAX     512
#define GPUGATE_SCRAM_USER_MAX    64
#define GPUGATE_SCRAM_MIN_ITER    4096
#define GPUGATE_SCRAM_MAX_ITER    1000000


/* one exchange, either side; flat so that it can be copied and parked */
typedef struct {
    char           first_bare[GPUGATE_SCRAM_MSG_MAX];
                                      /* client-first-message-bare */
    size_t         first_bare_len;    /* its length */
    char           server_first[GPUGATE_SCRAM_MSG_MAX];
                                      /* server-first-message */
    size_t         server_first_len;  /* its length */
    char           nonce[160];        /* client nonce, then combined */
    size_t         nonce_len;         /* its length */
    unsigned char  server_signature[GPUGATE_SCRAM_KEY_LEN];
                                      /* what the server must show */
} gpugate_scram_t;


/* StoredKey and ServerKey for a token; 0 on success. */
int gpugate_scram_verifier(const unsigned char *token, size_t token_len,
    const unsigned char *salt, size_t salt_len, unsigned iterations,
    unsigned char *stored_key, unsigned char *server_key);

/*
 * Client: writes client-first-message to out; "nonce" NULL draws 24
 * random bytes (tests pass the RFC's).  Returns its length or -1.
 */
int gpugate_scram_client_first(gpugate_scram_t *st, const char *user,
    const char *nonce, char *out, size_t size);

/* Client: server-first in, client-final out; length or -1. */
int gpugate_scram_client_final(gpugate_scram_t *st, const char *sf,
    size_t sf_len, const unsigned char *token, size_t token_len, char *out,
    size_t size);

/* Client: 0 if server-final carries the right signature. */
int gpugate_scram_client_verify(gpugate_scram_t *st, const char *msg,
    size_t len);

/*
 * Server: checks client-first and copies the user name out (the caller
 * then looks its verifier up).  0 or -1.
 */
int gpugate_scram_server_parse_first(gpugate_scram_t *st, const char *msg,
    size_t len, char *user, size_t user_size);

/*
 * Server: writes server-first for the salt and iterations; "snonce" NULL
 * draws 18 random bytes.  Returns its length or -1.
 */
int gpugate_scram_server_first(gpugate_scram_t *st,
    const unsigned char *salt, size_t salt_len, unsigned iterations,
    const char *snonce, char *out, size_t size);

/*
 * Server: checks client-final against the verifier.  0: proven, "out"
 * holds server-final ("v=...").  -1: refused, "out" holds "e=...".
 */
int gpugate_scram_server_final(gpugate_scram_t *st, const char *msg,
    size_t len, const unsigned char *stored_key,
    const unsigned char *server_key, char *out, size_t size);


#endif /* _GPUGATE_SCRAM_H_INCLUDED_ */
