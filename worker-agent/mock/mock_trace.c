
/*
 * Copyright (C) gpugate authors
 *
 * The mock runtime and W3C trace context: each request's traceparent
 * and tracestate, as received, go to the log ("trace METHOD PATH
 * traceparent=... tracestate=..."), so tests see what a runtime behind
 * the gateway and the agent is given.  Nothing is answered differently.
 */


#include <string.h>
#include <strings.h>

#include "mock_state.h"
#include "mock_trace.h"


void
mock_trace_headers(const gg_http_head_t *head, const char *buf,
    const char *method, const char *path)
{
    int                      found;
    size_t                   i, n;
    const gg_http_header_t  *hd;
    char                     parent[128], state[600];

    found = 0;
    parent[0] = '\0';
    state[0] = '\0';

    for (i = 0; i < head->nheaders; i++) {
        hd = &head->headers[i];

        if (gg_http_header_is(hd, buf, "traceparent")) {
            n = hd->value_len < sizeof(parent) - 1 ? hd->value_len
                                                   : sizeof(parent) - 1;
            memcpy(parent, buf + hd->value, n);
            parent[n] = '\0';
            found = 1;

        } else if (gg_http_header_is(hd, buf, "tracestate")) {
            n = hd->value_len < sizeof(state) - 1 ? hd->value_len
                                                  : sizeof(state) - 1;
            memcpy(state, buf + hd->value, n);
            state[n] = '\0';
            found = 1;
        }
    }

    if (found) {
        mock_log(0, "trace %s %s traceparent=%s tracestate=%s", method,
                 path, parent[0] ? parent : "-", state[0] ? state : "-");
    }
}
