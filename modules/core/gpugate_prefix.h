
/*
 * Copyright (C) gpugate authors
 *
 * Prompt prefixes for cache-aware routing, independent of nginx (unit-
 * tested and fuzzed on their own).  A runtime's prefix cache holds the
 * KV blocks of prompts it has seen; a request whose leading blocks match
 * one an agent served recently is cheaper there.  The gateway cannot see
 * tokens, so it cuts the prompt's text into blocks of "block" bytes and
 * gives each full block a hash that covers every block before it (block
 * k's hash names the whole prefix of k + 1 blocks, as a radix tree's path
 * would).
 *
 * The text is the chat template's input, not its output: for chat, each
 * message's role and content in order (content parts' "text", other parts
 * as their JSON), whatever the JSON's spacing or member order; for
 * completions, the prompt (strings, or token arrays as written).  Escapes
 * in strings are decoded, so "\u00e9" and "é" are the same prefix.
 */


#ifndef _GPUGATE_PREFIX_H_INCLUDED_
#define _GPUGATE_PREFIX_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* most blocks hashed per request ("depth=") */
#define GPUGATE_PREFIX_DEPTH_MAX  32

/* bounds of "block=", in bytes of prompt text */
#define GPUGATE_PREFIX_BLOCK_MIN  16
#define GPUGATE_PREFIX_BLOCK_MAX  65536


typedef enum {
    GPUGATE_PREFIX_CHAT = 0,     /* "messages": array of role + content */
    GPUGATE_PREFIX_COMPLETIONS   /* "prompt": string or array */
} gpugate_prefix_kind_e;


/*
 * The cumulative hashes of the first full blocks of the prompt in the
 * JSON body "json": at most "depth" (<= GPUGATE_PREFIX_DEPTH_MAX) into
 * "out", "seed" (the model's hash, so that two models never share a
 * prefix) mixed into the first.  Returns how many were written: 0 when
 * the prompt is shorter than a block, the body has no such member, or it
 * is not the JSON expected (never an error: the request is routed by load
 * then).
 */
size_t gpugate_prefix_hashes(gpugate_prefix_kind_e kind, const char *json,
    size_t len, size_t block, size_t depth, uint64_t seed, uint64_t *out);

/*
 * The body's top-level "user" string, as a hash of its decoded bytes
 * mixed with "seed": 0 and *hash set, or -1 when there is none (absent,
 * not a string, empty, or the body is not a JSON object).
 */
int gpugate_prefix_user(const char *json, size_t len, uint64_t seed,
    uint64_t *hash);

/* a 64-bit hash of "len" bytes, for seeds and session ids */
uint64_t gpugate_prefix_bytes(const void *p, size_t len, uint64_t seed);


#endif /* _GPUGATE_PREFIX_H_INCLUDED_ */
