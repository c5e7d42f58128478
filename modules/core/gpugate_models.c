
/*
 * Copyright (C) gpugate authors
 */


#include <string.h>

#include "gpugate_models.h"


static int
gpugate_models_sep(const char *seps, char c)
{
    return c != '\0' && strchr(seps, c) != NULL;
}


int
gpugate_models_list_has(const char *list, size_t list_len,
    const char *model, size_t model_len, const char *seps)
{
    const char  *p, *end, *id;

    p = list;
    end = list + list_len;

    while (p < end) {

        while (p < end && gpugate_models_sep(seps, *p)) {
            p++;
        }

        id = p;

        while (p < end && !gpugate_models_sep(seps, *p)) {
            p++;
        }

        if (p > id && (size_t) (p - id) == model_len
            && memcmp(id, model, model_len) == 0)
        {
            return 1;
        }
    }

    return 0;
}
