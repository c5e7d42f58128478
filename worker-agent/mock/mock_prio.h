
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime and a request's "priority" (mock_prio.c): the
 * body's top-level priority members, logged as received.
 */


#ifndef _MOCK_PRIO_H_INCLUDED_
#define _MOCK_PRIO_H_INCLUDED_


#include <stddef.h>


/* logs "priority METHOD PATH NAME=VALUE ..." if the body has any */
void mock_prio_log(const char *body, size_t len, const char *method,
    const char *path);


#endif /* _MOCK_PRIO_H_INCLUDED_ */
