
/*
 * Copyright (C) gpugate authors
 *
 * API-key format, independent of nginx so that it is unit-tested and
 * fuzzed on its own.  A key is "sk-gg-" followed by 32..64 base62
 * characters; the key tool makes 40 (about 238 random bits).  Checking the
 * format first means garbage never costs a hash, a lock or a lookup.
 */


#ifndef _GPUGATE_APIKEY_H_INCLUDED_
#define _GPUGATE_APIKEY_H_INCLUDED_


#include <stddef.h>


#define GPUGATE_APIKEY_TAG         "sk-gg-"
#define GPUGATE_APIKEY_TAG_LEN     6
#define GPUGATE_APIKEY_MIN_BODY    32
#define GPUGATE_APIKEY_MAX_BODY    64
#define GPUGATE_APIKEY_MAX_LEN     (GPUGATE_APIKEY_TAG_LEN                   \
                                    + GPUGATE_APIKEY_MAX_BODY)

/* what listings and logs show of a key: the tag and 6 characters */
#define GPUGATE_APIKEY_PREFIX_LEN  12


/* 1 if p[0..len) is a well-formed key, 0 otherwise */
int gpugate_apikey_valid(const unsigned char *p, size_t len);

/*
 * Decodes 64 hex characters into a 32-byte digest; 1 on success.
 * Used for invalidation messages, which name keys by their digest.
 */
int gpugate_hex_digest(const unsigned char *hex, size_t len,
    unsigned char *digest);

/* Writes the 64 lowercase hex characters of a 32-byte digest. */
void gpugate_digest_hex(const unsigned char *digest, unsigned char *hex);


#endif /* _GPUGATE_APIKEY_H_INCLUDED_ */
