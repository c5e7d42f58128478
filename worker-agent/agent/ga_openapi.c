
/*
 * Copyright (C) gpugate authors
 *
 * A runtime's route list (ga_openapi.h).  The document is parsed with
 * jansson like the model lists (ga_models.c); it is at most the probe's
 * 1 MiB.  Only the names of the "paths" members are read: what a route
 * takes or answers is the runtime's business.
 */


#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "ga_openapi.h"
#include "gpugate_tunnel_proto.h"


const char *
ga_openapi_path(ga_runtime_e type)
{
    /* FastAPI's default route, served by both */

    if (type == GA_RUNTIME_VLLM || type == GA_RUNTIME_SGLANG) {
        return "/openapi.json";
    }

    return NULL;
}


/* the router's endpoint name of an OpenAPI path, or NULL */

static const char *
ga_openapi_endpoint(const char *path)
{
    size_t  i;

    static const struct {
        const char  *path;
        const char  *endpoint;
    } routes[] = {
        { "/v1/chat/completions", "chat" },
        { "/v1/completions", "completions" },
        { "/v1/embeddings", "embeddings" },
        { "/v1/messages", "messages" },
        { "/v1/responses", "responses" },
        { "/v1/rerank", "rerank" },
        { "/rerank", "rerank" },
        { "/v2/rerank", "rerank" },
        { "/v1/score", "score" },
        { "/score", "score" },
        { "/v1/images/generations", "images" },
        { "/v1/audio/speech", "speech" },
        { "/v1/audio/transcriptions", "transcriptions" },
        { "/v1/audio/translations", "translations" },
        { "/v1/images/edits", "image_edits" }
    };

    for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) == 0) {
            return routes[i].endpoint;
        }
    }

    return NULL;
}


int
ga_openapi_parse(const char *body, size_t len, char *out, size_t size,
    char *err, size_t errsize)
{
    int            n;
    size_t         elen;
    json_t        *root, *paths, *v;
    uint32_t       mask, one;
    const char    *path, *ep;
    json_error_t   jerr;

    if (size) {
        out[0] = '\0';
    }

    if (errsize) {
        err[0] = '\0';
    }

    root = json_loadb(body, len, 0, &jerr);

    if (root == NULL) {
        snprintf(err, errsize, "not JSON: %s", jerr.text);
        return -1;
    }

    paths = json_object_get(root, "paths");

    if (!json_is_object(root) || !json_is_object(paths)) {
        snprintf(err, errsize, "no \"paths\" object: not an OpenAPI "
                 "document");
        json_decref(root);
        return -1;
    }

    mask = 0;

    json_object_foreach(paths, path, v) {
        ep = ga_openapi_endpoint(path);

        if (ep != NULL
            && gpugate_tunnel_parse_endpoints(ep, strlen(ep), &one) == 0)
        {
            mask |= one & ~GPUGATE_TUNNEL_ENDPOINTS_TOLD;
        }
    }

    json_decref(root);

    if (mask == 0) {
        snprintf(err, errsize, "lists none of the router's endpoints");
        return -1;
    }

    elen = gpugate_tunnel_endpoints_print(mask | GPUGATE_TUNNEL_ENDPOINTS_TOLD,
                                          out, size);

    if (elen == 0) {
        if (size) {
            out[0] = '\0';
        }
        snprintf(err, errsize, "no room for the endpoint list");
        return -1;
    }

    for (n = 0; mask; mask &= mask - 1) {
        n++;
    }

    return n;
}
