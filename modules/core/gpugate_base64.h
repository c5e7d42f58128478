
/*
 * Copyright (C) gpugate authors
 *
 * Base64 (RFC 4648, the standard alphabet, padded) for the core and the
 * agent: SCRAM's attributes and the tunnel's Authorization and
 * WWW-Authenticate data.  Decoding is strict, so that each value has
 * exactly one spelling.
 */


#ifndef _GPUGATE_BASE64_H_INCLUDED_
#define _GPUGATE_BASE64_H_INCLUDED_


#include <stddef.h>
#include <sys/types.h>


/* characters that n bytes encode to, without a NUL */
#define GPUGATE_BASE64_LEN(n)  (((n) + 2) / 3 * 4)


/*
 * Writes GPUGATE_BASE64_LEN(len) characters to out, no NUL; returns
 * their count.
 */
size_t gpugate_base64_encode(const unsigned char *in, size_t len,
    char *out);

/*
 * Decodes padded base64 without white space whose unused low bits are
 * zero into at most size bytes.  Returns the decoded length, or -1 for
 * anything else (also an empty input, or one that does not fit).
 */
ssize_t gpugate_base64_decode(const char *in, size_t len,
    unsigned char *out, size_t size);


#endif /* _GPUGATE_BASE64_H_INCLUDED_ */
