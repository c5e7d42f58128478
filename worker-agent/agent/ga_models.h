
/*
 * Copyright (C) gpugate authors
 *
 * The models a runtime serves, read from its own listing in its own
 * dialect (ga_runtime_models_path(): OpenAI's /v1/models, Ollama's
 * /api/tags, TGI's /info) and turned into the X-Gpugate-Models value the
 * agent advertises.  Pure parsing, no I/O, so that every dialect has unit
 * tests and a fuzz target; the gateway refuses a handshake whose list
 * breaks the wire rules, so nothing that breaks them gets out of here.
 */


#ifndef _GA_MODELS_H_INCLUDED_
#define _GA_MODELS_H_INCLUDED_


#include <stddef.h>

#include "ga_load.h"


/*
 * Reads the model ids from "body" ("len" bytes, not NUL-terminated) in
 * the dialect of "type":
 *
 *   openai, vllm, llamacpp, sglang  {"data": [{"id": "..."}, ...]}
 *   ollama                          {"models": [{"name": "..."}, ...]},
 *                                   "model" when "name" is absent
 *   tgi                             {"model_id": "..."}
 *
 * and writes them to "out" joined by ", " (the X-Gpugate-Models form),
 * NUL-terminated, in their order, each once.  An id that breaks the wire
 * rules (gpugate_tunnel_check_models(): 1..GPUGATE_TUNNEL_MODEL_MAX
 * printable ASCII bytes, no "," or space) is skipped, and so is one that
 * would make the list longer than size - 1 or GPUGATE_TUNNEL_MODELS_MAX
 * bytes; a shorter one after it may still fit.
 *
 * Returns the number of ids written (0 is an answer: a runtime that has
 * loaded nothing yet), with a one-line note in "err" when some were
 * skipped ("skipped 2 ids (first: "a b": not a valid model id)") and ""
 * when none were.  Returns -1, with "out" empty and the reason in "err",
 * when the body is not the dialect's JSON shape: invalid JSON, a missing
 * or mistyped member, an item that is not an object, an id that is not a
 * string (an answer that wrong is from something else, and half of it
 * would mislead), an unknown type, or size 0.
 *
 * "err" may be NULL when errsize is 0; a note or reason longer than
 * errsize is cut.
 */
int ga_models_parse(ga_runtime_e type, const char *body, size_t len,
    char *out, size_t size, char *err, size_t errsize);


#endif /* _GA_MODELS_H_INCLUDED_ */
