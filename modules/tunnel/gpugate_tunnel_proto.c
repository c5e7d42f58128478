
/*
 * Copyright (C) gpugate authors
 */


#include <string.h>

#include "gpugate_tunnel_proto.h"


static int gpugate_tunnel_is_hex(const char *p, size_t len, int lower);
static int gpugate_tunnel_is_b64(const char *p, size_t len);
static int gpugate_tunnel_uint(const char *p, size_t len, uint64_t max,
    uint64_t *v);
static const char *gpugate_tunnel_skip_sep(const char *p, const char *end,
    int *sep);


int
gpugate_tunnel_parse_auth(const char *p, size_t len, int scheme,
    gpugate_tunnel_auth_t *out)
{
    int          sep;
    size_t       klen, vlen;
    const char  *end, *k, *v;

    static const char  name[] = "SCRAM-SHA-256";

    memset(out, 0, sizeof(*out));
    end = p + len;

    if (scheme) {
        if (len < sizeof(name) || strncasecmp(p, name, sizeof(name) - 1) != 0
            || p[sizeof(name) - 1] != ' ')
        {
            return -1;
        }

        p += sizeof(name);
    }

    while (p < end && *p == ' ') {
        p++;
    }

    if (p == end) {
        return -1;
    }

    for ( ;; ) {
        k = p;

        while (p < end && *p != '=' && *p != ',' && *p != ' ') {
            p++;
        }

        klen = p - k;

        if (klen == 0 || p == end || *p != '=') {
            return -1;
        }

        v = ++p;

        while (p < end && *p != ',' && *p != ' ') {
            p++;
        }

        vlen = p - v;

        /* base64 ends in "=" padding, which the scan above keeps */

        if (klen == 3 && memcmp(k, "sid", 3) == 0) {
            if (out->sid != NULL || vlen != GPUGATE_TUNNEL_SID_LEN
                || !gpugate_tunnel_is_hex(v, vlen, 1))
            {
                return -1;
            }

            out->sid = v;
            out->sid_len = vlen;

        } else if (klen == 4 && memcmp(k, "data", 4) == 0) {
            if (out->data != NULL || vlen == 0
                || !gpugate_tunnel_is_b64(v, vlen))
            {
                return -1;
            }

            out->data = v;
            out->data_len = vlen;
        }

        p = gpugate_tunnel_skip_sep(p, end, &sep);

        if (p == NULL) {
            return -1;
        }

        if (p == end) {
            return sep ? -1 : 0;
        }

        if (!sep) {
            return -1;
        }
    }
}


int
gpugate_tunnel_parse_worker(const char *p, size_t len,
    gpugate_tunnel_worker_t *out)
{
    int          sep;
    size_t       klen, vlen;
    uint64_t     n;
    unsigned     seen;
    const char  *end, *k, *v;

    memset(out, 0, sizeof(*out));
    end = p + len;
    seen = 0;

    while (p < end && *p == ' ') {
        p++;
    }

    while (p < end) {
        k = p;

        while (p < end && *p != '=' && *p != ',' && *p != ' ') {
            p++;
        }

        klen = p - k;

        if (klen == 0 || p == end || *p != '=') {
            return -1;
        }

        v = ++p;

        while (p < end && *p != ',' && *p != ' ') {
            p++;
        }

        vlen = p - v;

        if (klen == 4 && memcmp(k, "slot", 4) == 0) {
            if ((seen & 1) || gpugate_tunnel_uint(v, vlen, 1023, &n) != 0) {
                return -1;
            }

            out->slot = (unsigned) n;
            seen |= 1;

        } else if (klen == 3 && memcmp(k, "pid", 3) == 0) {
            if ((seen & 2) || gpugate_tunnel_uint(v, vlen, UINT32_MAX, &n)
                              != 0)
            {
                return -1;
            }

            out->pid = n;
            seen |= 2;

        } else if (klen == 7 && memcmp(k, "workers", 7) == 0) {
            if ((seen & 4) || gpugate_tunnel_uint(v, vlen, 1024, &n) != 0
                || n == 0)
            {
                return -1;
            }

            out->workers = (unsigned) n;
            seen |= 4;

        } else if (klen == 10 && memcmp(k, "generation", 10) == 0) {
            if ((seen & 8)
                || gpugate_tunnel_uint(v, vlen, UINT64_MAX, &n) != 0)
            {
                return -1;
            }

            out->generation = n;
            seen |= 8;
        }

        p = gpugate_tunnel_skip_sep(p, end, &sep);

        if (p == NULL || (p == end && sep) || (p < end && !sep)) {
            return -1;
        }
    }

    if (seen != 15 || out->slot >= out->workers) {
        return -1;
    }

    return 0;
}


int
gpugate_tunnel_check_instance(const char *p, size_t len)
{
    if (len < GPUGATE_TUNNEL_INSTANCE_MIN
        || len > GPUGATE_TUNNEL_INSTANCE_MAX
        || !gpugate_tunnel_is_hex(p, len, 0))
    {
        return -1;
    }

    return 0;
}


int
gpugate_tunnel_parse_capacity(const char *p, size_t len, unsigned *capacity)
{
    uint64_t  n;

    if (gpugate_tunnel_uint(p, len, GPUGATE_TUNNEL_CAPACITY_MAX, &n) != 0
        || n == 0)
    {
        return -1;
    }

    *capacity = (unsigned) n;

    return 0;
}


int
gpugate_tunnel_check_models(const char *p, size_t len)
{
    int          n, sep;
    const char  *end, *id;

    if (len > GPUGATE_TUNNEL_MODELS_MAX) {
        return -1;
    }

    end = p + len;
    n = 0;

    while (p < end && *p == ' ') {
        p++;
    }

    while (p < end) {
        id = p;

        while (p < end && *p > 0x20 && *p < 0x7f && *p != ',') {
            p++;
        }

        if (p == id || p - id > GPUGATE_TUNNEL_MODEL_MAX) {
            return -1;
        }

        n++;

        p = gpugate_tunnel_skip_sep(p, end, &sep);

        if (p == NULL || (p == end && sep) || (p < end && !sep)) {
            return -1;
        }
    }

    return n;
}


int
gpugate_tunnel_models_has(const char *list, size_t list_len,
    const char *model, size_t model_len)
{
    const char  *p, *end, *id;

    p = list;
    end = list + list_len;

    while (p < end && (*p == ' ' || *p == ',')) {
        p++;
    }

    if (p == end) {
        return 1;
    }

    while (p < end) {
        id = p;

        while (p < end && *p != ',' && *p != ' ') {
            p++;
        }

        if ((size_t) (p - id) == model_len
            && memcmp(id, model, model_len) == 0)
        {
            return 1;
        }

        while (p < end && (*p == ' ' || *p == ',')) {
            p++;
        }
    }

    return 0;
}


int
gpugate_tunnel_parse_load(const char *p, size_t len,
    gpugate_tunnel_load_t *out)
{
    int          sep;
    size_t       klen, vlen;
    uint64_t     n;
    const char  *end, *k, *v;

    memset(out, 0, sizeof(*out));
    end = p + len;

    while (p < end && *p == ' ') {
        p++;
    }

    while (p < end) {
        k = p;

        while (p < end && *p != '=' && *p != ',' && *p != ' ') {
            p++;
        }

        klen = p - k;

        if (klen == 0 || p == end || *p != '=') {
            return -1;
        }

        v = ++p;

        while (p < end && *p != ',' && *p != ' ') {
            p++;
        }

        vlen = p - v;

        if (klen == 5 && memcmp(k, "queue", 5) == 0) {
            if (out->has_queue
                || gpugate_tunnel_uint(v, vlen, UINT32_MAX, &n) != 0)
            {
                return -1;
            }

            out->queue = n;
            out->has_queue = 1;

        } else if (klen == 11 && memcmp(k, "gpu_free_mb", 11) == 0) {
            if (out->has_gpu
                || gpugate_tunnel_uint(v, vlen, UINT32_MAX, &n) != 0)
            {
                return -1;
            }

            out->gpu_free_mb = n;
            out->has_gpu = 1;

        } else if (vlen == 0) {
            return -1;
        }

        p = gpugate_tunnel_skip_sep(p, end, &sep);

        if (p == NULL || (p == end && sep) || (p < end && !sep)) {
            return -1;
        }
    }

    return 0;
}


static int
gpugate_tunnel_is_hex(const char *p, size_t len, int lower)
{
    size_t  i;
    char    ch;

    for (i = 0; i < len; i++) {
        ch = p[i];

        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')
            || (!lower && ch >= 'A' && ch <= 'F'))
        {
            continue;
        }

        return 0;
    }

    return 1;
}


static int
gpugate_tunnel_is_b64(const char *p, size_t len)
{
    size_t  i;
    char    ch;

    for (i = 0; i < len; i++) {
        ch = p[i];

        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')
            || (ch >= '0' && ch <= '9') || ch == '+' || ch == '/')
        {
            continue;
        }

        /* padding only at the end */

        if (ch == '=' && i + 2 >= len) {
            if (i + 1 < len && p[i + 1] != '=') {
                return 0;
            }

            continue;
        }

        return 0;
    }

    return 1;
}


static int
gpugate_tunnel_uint(const char *p, size_t len, uint64_t max, uint64_t *v)
{
    size_t    i;
    uint64_t  n;

    if (len == 0 || len > 20 || (len > 1 && p[0] == '0')) {
        return -1;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        if (n > (max - (uint64_t) (p[i] - '0')) / 10) {
            return -1;
        }

        n = n * 10 + (uint64_t) (p[i] - '0');
    }

    *v = n;

    return 0;
}


/*
 * Skips optional spaces, at most one ",", and optional spaces; *sep tells
 * whether a "," was seen.  NULL on anything else.
 */

static const char *
gpugate_tunnel_skip_sep(const char *p, const char *end, int *sep)
{
    *sep = 0;

    while (p < end && *p == ' ') {
        p++;
    }

    if (p < end && *p == ',') {
        *sep = 1;
        p++;

        while (p < end && *p == ' ') {
            p++;
        }
    }

    if (p < end && !*sep) {
        return NULL;
    }

    return p;
}
