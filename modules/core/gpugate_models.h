
/*
 * Copyright (C) gpugate authors
 *
 * Model-id lists as the gateway passes them around: a key's
 * $gpugate_allowed_models ("a,b", from PostgreSQL; an id may hold
 * spaces), an agent's X-Gpugate-Models and allowed_models ("a, b").  One
 * matcher for all of them; what "all models" is spelled as ("*", an empty
 * list) is the caller's business.
 */


#ifndef _GPUGATE_MODELS_H_INCLUDED_
#define _GPUGATE_MODELS_H_INCLUDED_


#include <stddef.h>


/* separators: a key's list, and the tunnel's and agent's lists */
#define GPUGATE_MODELS_SEP_KEY   ","
#define GPUGATE_MODELS_SEP_WIRE  ", "


/*
 * 1 if "model" (not empty) is one of the ids in "list", ids being the
 * runs of bytes that are not in "seps"; else 0.
 */
int gpugate_models_list_has(const char *list, size_t list_len,
    const char *model, size_t model_len, const char *seps);


#endif /* _GPUGATE_MODELS_H_INCLUDED_ */
