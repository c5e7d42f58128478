
/*
 * Copyright (C) gpugate authors
 *
 * Request paths and endpoint names of the OpenAI router (declared in
 * gpugate_oai_body.h): which endpoint a path asks for, its metrics name,
 * and whether a key may use a model.  Kept apart from the body scanner.
 */


#include <string.h>

#include "gpugate_models.h"
#include "gpugate_oai_body.h"


gpugate_oai_path_e
gpugate_oai_path(const char *path, size_t len, const char **id,
    size_t *id_len)
{
    size_t       i, n;
    const char  *p;

    static const struct {
        const char          *tail;
        gpugate_oai_path_e   path;
    } ends[] = {
        { "/v1/chat/completions", GPUGATE_OAI_PATH_CHAT },
        { "/v1/completions", GPUGATE_OAI_PATH_COMPLETIONS },
        { "/v1/embeddings", GPUGATE_OAI_PATH_EMBEDDINGS },
        { "/v1/messages", GPUGATE_OAI_PATH_MESSAGES },
        { "/v1/responses", GPUGATE_OAI_PATH_RESPONSES },
        { "/v1/rerank", GPUGATE_OAI_PATH_RERANK },
        { "/v1/score", GPUGATE_OAI_PATH_SCORE },
        { "/v1/images/generations", GPUGATE_OAI_PATH_IMAGES },
        { "/v1/audio/speech", GPUGATE_OAI_PATH_SPEECH },
        { "/v1/audio/transcriptions", GPUGATE_OAI_PATH_TRANSCRIPTIONS },
        { "/v1/audio/translations", GPUGATE_OAI_PATH_TRANSLATIONS },
        { "/v1/images/edits", GPUGATE_OAI_PATH_IMAGE_EDITS },
        { "/v1/models", GPUGATE_OAI_PATH_MODELS },
        { "/v1/models/", GPUGATE_OAI_PATH_MODELS }
    };

    static const char  models[] = "/v1/models/";

    for (i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        n = strlen(ends[i].tail);

        if (len >= n && memcmp(path + len - n, ends[i].tail, n) == 0) {
            return ends[i].path;
        }
    }

    n = sizeof(models) - 1;

    for (p = path; (size_t) (path + len - p) > n; p++) {
        if (memcmp(p, models, n) == 0) {
            *id = p + n;
            *id_len = path + len - *id;
            return GPUGATE_OAI_PATH_MODEL;
        }
    }

    return GPUGATE_OAI_PATH_OTHER;
}


int
gpugate_oai_path_kind(gpugate_oai_path_e path)
{
    if (path >= GPUGATE_OAI_PATH_CHAT && path <= GPUGATE_OAI_PATH_IMAGE_EDITS)
    {
        return (int) path - GPUGATE_OAI_PATH_CHAT;
    }

    return -1;
}


const char *
gpugate_oai_kind_name(int kind)
{
    static const char  *names[] = {
        "chat", "completions", "embeddings", "messages", "responses",
        "rerank", "score", "images", "speech", "transcriptions",
        "translations", "image_edits"
    };

    if (kind < 0 || (size_t) kind >= sizeof(names) / sizeof(names[0])) {
        return "other";
    }

    return names[kind];
}


int
gpugate_oai_model_allowed(const char *list, size_t list_len,
    const char *model, size_t model_len)
{
    if (list_len == 1 && list[0] == '*') {
        return 1;
    }

    return gpugate_models_list_has(list, list_len, model, model_len,
                                   GPUGATE_MODELS_SEP_KEY);
}
