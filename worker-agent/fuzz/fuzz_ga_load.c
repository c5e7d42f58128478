
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: ga_load_parse() in every dialect on arbitrary bytes,
 * copied into a buffer of exactly their size (ASan catches a read past
 * "len"); a result must be consistent with what was found.  Ollama's
 * JSON dialect answers 0 without a queue: it must have read "loaded".
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ga_load.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int        rc, t;
    char      *copy;
    ga_load_t  load;

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    for (t = GA_RUNTIME_OPENAI; t <= GA_RUNTIME_OLLAMA; t++) {
        rc = ga_load_parse((ga_runtime_e) t, copy, size, &load);

        if (t == GA_RUNTIME_OLLAMA) {
            if ((rc == 0) != (load.has_loaded != 0)
                || load.has_waiting || load.has_running
                || (!load.has_vram && load.vram_mb != 0))
            {
                abort();
            }

            continue;
        }

        if ((rc == 0) != (load.has_waiting != 0)
            || load.has_loaded || load.has_vram
            || (!load.has_waiting && load.waiting != 0)
            || (!load.has_running && load.running != 0))
        {
            abort();
        }
    }

    free(copy);

    return 0;
}
