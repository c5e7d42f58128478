
/*
 * Copyright (C) gpugate authors
 *
 * The endpoints a runtime serves, read from its own route list: the
 * OpenAPI document FastAPI runtimes (vLLM, SGLang) serve at
 * /openapi.json.  Its "paths" that are endpoints of the gateway's router
 * become the X-Gpugate-Endpoints value the agent advertises, instead of
 * the dialect's default set (a vLLM without a transcription model serves
 * no /v1/audio/transcriptions).  Pure parsing, no I/O: unit-tested on
 * fixtures.
 */


#ifndef _GA_OPENAPI_H_INCLUDED_
#define _GA_OPENAPI_H_INCLUDED_


#include <stddef.h>

#include "ga_load.h"


/* the path of the route list in "type"'s dialect; NULL: none to read */
const char *ga_openapi_path(ga_runtime_e type);

/*
 * Reads the keys of the top-level "paths" object of the OpenAPI document
 * "body" ("len" bytes, not NUL-terminated) and writes the router's
 * endpoints among them to "out" in X-Gpugate-Endpoints form ("chat,
 * completions, ..."), NUL-terminated.  A path counts when it is the
 * endpoint's path under /v1/ (and /rerank, /v2/rerank, /score, which vLLM
 * serves beside /v1/rerank and /v1/score); others (/health, /tokenize,
 * /v1/models...) are not endpoints and are skipped.
 *
 * Returns the number of endpoints written, at least 1; -1, with "out"
 * empty and the reason in "err", when the body is not an OpenAPI document
 * with a "paths" object, or lists none of the router's endpoints (then
 * the dialect's default set is the better guess).
 */
int ga_openapi_parse(const char *body, size_t len, char *out, size_t size,
    char *err, size_t errsize);


#endif /* _GA_OPENAPI_H_INCLUDED_ */
