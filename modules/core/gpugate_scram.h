
/*
 * Copyright (C) gpugate authors
 *
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) for the tunnel handshake, both
 * sides, independent of nginx: the agent proves that it holds its token
 * without sending it, the gateway proves that it holds the verifier, and
 * the database keeps only salt, iteration count, StoredKey and ServerKey,
 * none of which logs in by itself.
 *
 * No channel binding (gs2 header "n,,"): the agent already verifies the
 * gateway's TLS certificate.  Token and user name are used as raw bytes,
 * without SASLprep: tokens are ASCII, where SASLprep changes nothing.
 *
 * Plain C11 and libcrypto only: no global state, no allocation, no I/O
 * except RAND_bytes() for nonces.  Messages are written into buffers the
 * caller passes, NUL-terminated, with the length in *out_len; the *_SIZE
 * macros below always suffice, and an output buffer must not overlap an
 * input.  Messages read need no NUL and may contain none.
 *
 * Each side calls its steps in order, each once; any failure ends the
 * exchange (later steps answer GPUGATE_SCRAM_ERR_STATE), so a refused
 * proof cannot be retried on the same nonce.
 */


#ifndef _GPUGATE_SCRAM_H_INCLUDED_
#define _GPUGATE_SCRAM_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "gpugate_base64.h"


/* SHA-256 output: StoredKey, ServerKey, proofs, signatures */
#define GPUGATE_SCRAM_KEY_LEN          32

/* iteration counts either side accepts */
#define GPUGATE_SCRAM_MIN_ITER         4096
#define GPUGATE_SCRAM_MAX_ITER         1000000

/* salt lengths in bytes; the schema keeps at least 16 */
#define GPUGATE_SCRAM_SALT_MIN         16
#define GPUGATE_SCRAM_SALT_MAX         64

/* longest token, in bytes */
#define GPUGATE_SCRAM_TOKEN_MAX        1024

/* longest user name, in bytes, before "=2C"/"=3D" escaping */
#define GPUGATE_SCRAM_USER_MAX         64

/* random bytes in the client's nonce and in the server's extension */
#define GPUGATE_SCRAM_CNONCE_RAND      24
#define GPUGATE_SCRAM_SNONCE_RAND      18

/* nonce lengths in characters: client part, server part, combined */
#define GPUGATE_SCRAM_CNONCE_MIN       16
#define GPUGATE_SCRAM_CNONCE_MAX       64
#define GPUGATE_SCRAM_SNONCE_MAX       32
#define GPUGATE_SCRAM_NONCE_MAX                                              \
    (GPUGATE_SCRAM_CNONCE_MAX + GPUGATE_SCRAM_SNONCE_MAX)

/* characters base64 needs for n bytes, padding included */
#define GPUGATE_SCRAM_B64_LEN(n)       GPUGATE_BASE64_LEN(n)

/* longest client-first-message-bare the server keeps, extensions included */
#define GPUGATE_SCRAM_FIRST_BARE_MAX   320

/* longest message either side reads */
#define GPUGATE_SCRAM_MSG_MAX          1024

/* output buffer sizes, terminating NUL included */

#define GPUGATE_SCRAM_CLIENT_FIRST_SIZE                                      \
    (sizeof("n,,n=,r=") + 3 * GPUGATE_SCRAM_USER_MAX                         \
     + GPUGATE_SCRAM_CNONCE_MAX)

#define GPUGATE_SCRAM_SERVER_FIRST_SIZE                                      \
    (sizeof("r=,s=,i=1000000") + GPUGATE_SCRAM_NONCE_MAX                     \
     + GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_SALT_MAX))

#define GPUGATE_SCRAM_CLIENT_FINAL_SIZE                                      \
    (sizeof("c=biws,r=,p=") + GPUGATE_SCRAM_NONCE_MAX                        \
     + GPUGATE_SCRAM_B64_LEN(GPUGATE_SCRAM_KEY_LEN))

#define GPUGATE_SCRAM_SERVER_FINAL_SIZE  64

/* user name as the server hands it out: unescaped, NUL-terminated */
#define GPUGATE_SCRAM_USER_SIZE        (GPUGATE_SCRAM_USER_MAX + 1)

/* fake salts are HMAC-SHA-256 output, so at most 32 bytes */
#define GPUGATE_SCRAM_FAKE_SALT_LEN    16


typedef enum {
    GPUGATE_SCRAM_OK = 0,
    GPUGATE_SCRAM_ERR_INTERNAL,        /* libcrypto or RAND_bytes() failed */
    GPUGATE_SCRAM_ERR_ARG,             /* bad argument, buffer too small */
    GPUGATE_SCRAM_ERR_STATE,           /* step called out of order */
    GPUGATE_SCRAM_ERR_TOO_LONG,        /* message over the limits above */
    GPUGATE_SCRAM_ERR_SYNTAX,          /* malformed message */
    GPUGATE_SCRAM_ERR_CHANNEL_BINDING, /* gs2 flag "y" or "p=" */
    GPUGATE_SCRAM_ERR_AUTHZID,         /* "a=" differs from "n=" */
    GPUGATE_SCRAM_ERR_EXTENSION,       /* mandatory extension "m=" */
    GPUGATE_SCRAM_ERR_USERNAME,        /* bad escape, length or UTF-8 */
    GPUGATE_SCRAM_ERR_NONCE,           /* bad nonce characters or length */
    GPUGATE_SCRAM_ERR_NONCE_MISMATCH,  /* nonce is not the one expected */
    GPUGATE_SCRAM_ERR_SALT,            /* salt is not base64 or bad length */
    GPUGATE_SCRAM_ERR_ITERATIONS,      /* iteration count out of bounds */
    GPUGATE_SCRAM_ERR_CBIND_DATA,      /* "c=" is not the gs2 header */
    GPUGATE_SCRAM_ERR_PROOF_FORMAT,    /* "p=" is not 32 bytes base64 */
    GPUGATE_SCRAM_ERR_INVALID_PROOF,   /* wrong token: not authenticated */
    GPUGATE_SCRAM_ERR_UNKNOWN_USER,    /* server ran the fake exchange */
    GPUGATE_SCRAM_ERR_SERVER_ERROR,    /* client got "e=...": refused */
    GPUGATE_SCRAM_ERR_SERVER_SIGNATURE /* "v=" wrong: server is not ours */
} gpugate_scram_rc_t;


/*
 * Client (agent) side.  One exchange; none of it is secret once the
 * exchange is over, but the token itself never enters the struct.
 */
typedef struct {
    char           first_bare[GPUGATE_SCRAM_CLIENT_FIRST_SIZE];
                                       /* client-first-message-bare,
                                          part of the AuthMessage */
    uint16_t       first_bare_len;     /* its length */
    uint16_t       nonce_len;          /* client nonce, at the end of
                                          first_bare */
    uint8_t        step;               /* catches calls out of order */
    unsigned char  server_signature[GPUGATE_SCRAM_KEY_LEN];
                                       /* what server-final must show */
} gpugate_scram_client_t;


/*
 * Client side: what PBKDF2 gave for one salt and iteration count, so
 * that an agent dialing many connections to one gateway pays for it once.
 * Valid for one token only.  ClientKey logs in by itself: keep this only
 * where the token is kept, and zero it with the token.
 */
typedef struct {
    unsigned char  salt[GPUGATE_SCRAM_SALT_MAX];
                                       /* the salt the keys are for */
    size_t         salt_len;           /* its length; 0: empty */
    unsigned       iterations;         /* the count the keys are for */
    unsigned char  client_key[GPUGATE_SCRAM_KEY_LEN]; /* ClientKey */
    unsigned char  server_key[GPUGATE_SCRAM_KEY_LEN]; /* ServerKey */
} gpugate_scram_keys_t;


/*
 * Server (gateway) side.  Flat, no pointers, nothing secret: nginx copies
 * it into a per-worker table between the two HTTP requests.
 */
typedef struct {
    char      first_bare[GPUGATE_SCRAM_FIRST_BARE_MAX];
                                       /* client-first-message-bare,
                                          part of the AuthMessage */
    char      server_first[GPUGATE_SCRAM_SERVER_FIRST_SIZE];
                                       /* server-first-message, likewise;
                                          the combined nonce starts at 2 */
    uint16_t  first_bare_len;          /* length of first_bare */
    uint16_t  server_first_len;        /* length of server_first */
    uint16_t  user_len;                /* escaped user name, at 2 in
                                          first_bare, for the gs2 header */
    uint16_t  cnonce_off;              /* client nonce in first_bare */
    uint8_t   cnonce_len;              /* its length */
    uint8_t   nonce_len;               /* combined nonce length */
    uint8_t   authzid;                 /* client sent "n,a=<user>," */
    uint8_t   step;                    /* catches calls out of order */
} gpugate_scram_server_t;


/* what a step is refused with, for logs; never NULL */
const char *gpugate_scram_strerror(gpugate_scram_rc_t rc);

/* RFC 5802 server-error-value ("invalid-proof", ...) for a refusal */
const char *gpugate_scram_error_value(gpugate_scram_rc_t rc);

/* StoredKey and ServerKey for a token, for the key tool and tests */
gpugate_scram_rc_t gpugate_scram_make_verifier(const unsigned char *token,
    size_t token_len, const unsigned char *salt, size_t salt_len,
    unsigned iterations, unsigned char stored_key[GPUGATE_SCRAM_KEY_LEN],
    unsigned char server_key[GPUGATE_SCRAM_KEY_LEN]);

/*
 * A stable salt for a user name that has no verifier, so that probing
 * names learns nothing: HMAC-SHA-256(secret, name), "salt_len" bytes
 * (16..32).  The secret must be the same in every worker and survive
 * reloads, or the salt would change and give the absence away.
 */
gpugate_scram_rc_t gpugate_scram_fake_salt(const unsigned char *secret,
    size_t secret_len, const char *user, size_t user_len,
    unsigned char *salt, size_t salt_len);


/* client-first-message "n,,n=<user>,r=<nonce>" */
gpugate_scram_rc_t gpugate_scram_client_first(gpugate_scram_client_t *st,
    const char *user, char *out, size_t size, size_t *out_len);

/* server-first in, client-final-message out; remembers ServerSignature */
gpugate_scram_rc_t gpugate_scram_client_final(gpugate_scram_client_t *st,
    const char *server_first, size_t server_first_len,
    const unsigned char *token, size_t token_len, char *out, size_t size,
    size_t *out_len);

/* the same, reusing and filling "keys" (may be NULL) */
gpugate_scram_rc_t gpugate_scram_client_final_keys(
    gpugate_scram_client_t *st, const char *server_first,
    size_t server_first_len, const unsigned char *token, size_t token_len,
    gpugate_scram_keys_t *keys, char *out, size_t size, size_t *out_len);

/*
 * server-final: GPUGATE_SCRAM_OK when "v=" is right, _SERVER_ERROR when
 * the server refused ("e=..." in the message), _SERVER_SIGNATURE when the
 * peer does not hold our verifier.
 */
gpugate_scram_rc_t gpugate_scram_client_verify(gpugate_scram_client_t *st,
    const char *server_final, size_t len);


/*
 * client-first in; copies the unescaped user name out ("user" holds
 * GPUGATE_SCRAM_USER_SIZE bytes) for the verifier lookup.  On refusal the
 * name is "", so that nothing from a bad message reaches a log or query.
 */
gpugate_scram_rc_t gpugate_scram_server_parse_first(
    gpugate_scram_server_t *st, const char *msg, size_t len, char *user,
    size_t *user_len);

/*
 * server-first-message out for the user's salt and iteration count (or a
 * fake salt and the usual count when the user is unknown).
 */
gpugate_scram_rc_t gpugate_scram_server_first(gpugate_scram_server_t *st,
    const unsigned char *salt, size_t salt_len, unsigned iterations,
    char *out, size_t size, size_t *out_len);

/*
 * client-final in, server-final-message out.  GPUGATE_SCRAM_OK: proven,
 * "out" holds "v=...".  Otherwise "out" holds "e=...".  NULL keys mean
 * the user is unknown: the same work is done, and the answer is the same
 * "e=invalid-proof" as for a wrong token (the return code tells the log).
 */
gpugate_scram_rc_t gpugate_scram_server_final(gpugate_scram_server_t *st,
    const char *msg, size_t len,
    const unsigned char stored_key[GPUGATE_SCRAM_KEY_LEN],
    const unsigned char server_key[GPUGATE_SCRAM_KEY_LEN], char *out,
    size_t size, size_t *out_len);


/*
 * Tests only: fixed nonces make RFC 7677's example reproducible.  Never
 * use them in production: the nonces must be fresh and random.
 */
gpugate_scram_rc_t gpugate_scram_client_first_nonce(
    gpugate_scram_client_t *st, const char *user, const char *nonce,
    size_t nonce_len, char *out, size_t size, size_t *out_len);

gpugate_scram_rc_t gpugate_scram_server_first_nonce(
    gpugate_scram_server_t *st, const unsigned char *salt, size_t salt_len,
    unsigned iterations, const char *snonce, size_t snonce_len, char *out,
    size_t size, size_t *out_len);


#endif /* _GPUGATE_SCRAM_H_INCLUDED_ */
