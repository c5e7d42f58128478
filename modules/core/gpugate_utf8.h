
/*
 * Copyright (C) gpugate authors
 *
 * Strings that leave the gateway for PostgreSQL's text columns and
 * Prometheus labels must be valid UTF-8, and cutting one to a fixed
 * size must not split a character: PostgreSQL refuses a whole batch for
 * one bad byte, Prometheus a whole page.  Nginx-free, so the unit tests
 * and the fuzz target build without nginx.
 */


#ifndef _GPUGATE_UTF8_H_INCLUDED_
#define _GPUGATE_UTF8_H_INCLUDED_


#include <stddef.h>


/* U+FFFD, what an invalid byte becomes */
#define GPUGATE_UTF8_REPLACEMENT      "\xef\xbf\xbd"
#define GPUGATE_UTF8_REPLACEMENT_LEN  3


size_t gpugate_utf8_cut(unsigned char *dst, size_t size,
    const unsigned char *src, size_t len);
int gpugate_utf8_valid(const unsigned char *s, size_t len);


#endif /* _GPUGATE_UTF8_H_INCLUDED_ */
