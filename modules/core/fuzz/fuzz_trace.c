
/*
 * Copyright (C) gpugate authors
 *
 * libFuzzer target: the input as a traceparent (what parses formats
 * back to the input's first 55 bytes with version 00, ids never zero),
 * as a tracestate (never past the bound when taken), and as a span's
 * name and attribute: the JSON written must fit the length measured and
 * hold no raw control byte or quote inside a string.  Seeds in
 * modules/core/fuzz/seeds/trace.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_trace.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc, in_string;
    char                 *json, tp[GPUGATE_TRACEPARENT_LEN];
    size_t                n, i;
    uint8_t               ids[24];
    gpugate_otlp_attr_t   attr;
    gpugate_otlp_span_t   sp;
    gpugate_trace_ctx_t   tc;

    rc = gpugate_traceparent_parse((const char *) data, size, &tc);

    if (rc == GPUGATE_TRACE_OK) {
        gpugate_traceparent_format(tp, tc.trace_id, tc.span_id, tc.flags);

        if (memcmp(tp + 2, data + 2, GPUGATE_TRACEPARENT_LEN - 2) != 0
            || (data[0] == '0' && data[1] == '0'
                && size != GPUGATE_TRACEPARENT_LEN))
        {
            __builtin_trap();
        }
    }

    if (gpugate_tracestate_valid((const char *) data, size)
        && size > GPUGATE_TRACESTATE_MAX)
    {
        __builtin_trap();
    }

    memset(ids, 0x5a, sizeof(ids));
    memset(&sp, 0, sizeof(sp));

    attr.key = "k";
    attr.type = size ? data[0] % 5 : 0;
    attr.s = (const char *) data;
    attr.len = size;
    attr.i = (int64_t) size;
    attr.d = (double) size / 7;

    sp.trace_id = ids;
    sp.span_id = ids + 16;
    sp.parent_id = (size & 1) ? ids + 16 : NULL;
    sp.name = (const char *) data;
    sp.name_len = size;
    sp.kind = 2;
    sp.attrs = &attr;
    sp.nattrs = 1;

    n = gpugate_otlp_span_json(NULL, 0, &sp);

    json = malloc(n + 1);
    if (json == NULL) {
        __builtin_trap();
    }

    json[n] = '\xee';

    if (gpugate_otlp_span_json(json, n, &sp) != n || json[n] != '\xee') {
        __builtin_trap();
    }

    /* outside escapes, no control byte; quotes pair up */

    in_string = 0;

    for (i = 0; i < n; i++) {
        if ((unsigned char) json[i] < 0x20) {
            __builtin_trap();
        }

        if (json[i] == '\\') {
            if (!in_string) {
                __builtin_trap();
            }

            i++;
            continue;
        }

        if (json[i] == '"') {
            in_string = !in_string;
        }
    }

    if (in_string) {
        __builtin_trap();
    }

    free(json);

    return 0;
}
