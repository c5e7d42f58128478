
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
static int gpugate_tunnel_key(const char *const *keys, const char *k,
    size_t klen);


/* a key's index is its bit in the section's "seen" */

static const char *const  gpugate_tunnel_host_keys[] = {
    "cpu_pct", "cpus", "mem_used_mb", "mem_total_mb", "gpus", NULL
};

static const char *const  gpugate_tunnel_gpu_keys[] = {
    "gpu", "name", "util_pct", "mem_used_mb", "mem_total_mb", "temp_c",
    "power_w", NULL
};

#define GPUGATE_TUNNEL_HOST_SEEN  0x1f    /* all five host keys */
#define GPUGATE_TUNNEL_GPU_SEEN   0x03    /* gpu= and name= */


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

        } else if (klen == 9 && memcmp(k, "heartbeat", 9) == 0) {
            /* optional: gateways before it did not drop heartbeats */
            if ((seen & 16)
                || gpugate_tunnel_uint(v, vlen, 3600000, &n) != 0)
            {
                return -1;
            }

            out->heartbeat = n;
            seen |= 16;
        }

        p = gpugate_tunnel_skip_sep(p, end, &sep);

        if (p == NULL || (p == end && sep) || (p < end && !sep)) {
            return -1;
        }
    }

    if ((seen & 15) != 15 || out->slot >= out->workers) {
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


int
gpugate_tunnel_parse_telemetry(const char *p, size_t len,
    gpugate_tunnel_telemetry_t *out)
{
    int                    key, host, quoted;
    size_t                 klen, vlen;
    uint64_t               n;
    unsigned               seen, sections;
    const char            *end, *k, *v;
    gpugate_tunnel_gpu_t   gpu;

    memset(out, 0, sizeof(*out));
    memset(&gpu, 0, sizeof(gpu));

    if (len > GPUGATE_TUNNEL_TELEMETRY_MAX) {
        return -1;
    }

    end = p + len;
    host = 1;
    seen = 0;
    sections = 0;

    while (p < end && *p == ' ') {
        p++;
    }

    for ( ;; ) {
        k = p;

        while (p < end && *p != '=' && *p != ',' && *p != ';' && *p != ' '
               && *p != '"')
        {
            p++;
        }

        klen = p - k;

        if (klen == 0 || p == end || *p != '=') {
            return -1;
        }

        v = ++p;
        quoted = 0;

        if (p < end && *p == '"') {

            /* no escapes: a name never needs them, and none are sent */

            quoted = 1;
            v = ++p;

            while (p < end && *p != '"') {
                if (*p < 0x20 || *p > 0x7e || *p == '\\') {
                    return -1;
                }

                p++;
            }

            if (p == end) {
                return -1;
            }

            vlen = p++ - v;

        } else {
            while (p < end && *p != ',' && *p != ';' && *p != ' '
                   && *p != '"')
            {
                p++;
            }

            vlen = p - v;
        }

        key = gpugate_tunnel_key(host ? gpugate_tunnel_host_keys
                                      : gpugate_tunnel_gpu_keys, k, klen);

        if (key < 0) {
            if (vlen == 0 && !quoted) {
                return -1;
            }

        } else if (seen & (1u << key)) {
            return -1;

        } else if (!host && key == 1) {
            if (!quoted || vlen == 0 || vlen > GPUGATE_TUNNEL_GPU_NAME_MAX) {
                return -1;
            }

            memcpy(gpu.name, v, vlen);
            gpu.name[vlen] = '\0';
            gpu.name_len = vlen;

        } else if (quoted
                   || gpugate_tunnel_uint(v, vlen,
                                          host && key == 0 ? 100 : UINT32_MAX,
                                          &n)
                      != 0)
        {
            return -1;

        } else if (host) {
            switch (key) {
            case 0:
                out->cpu_pct = (uint32_t) n;
                break;
            case 1:
                out->cpus = (uint32_t) n;
                break;
            case 2:
                out->mem_used_mb = (uint32_t) n;
                break;
            case 3:
                out->mem_total_mb = (uint32_t) n;
                break;
            default:
                out->gpus = (uint32_t) n;
            }

        } else {
            switch (key) {
            case 0:
                gpu.index = (uint32_t) n;
                break;
            case 2:
                gpu.util_pct = (uint32_t) n;
                gpu.has_util = 1;
                break;
            case 3:
                gpu.mem_used_mb = (uint32_t) n;
                gpu.has_mem_used = 1;
                break;
            case 4:
                gpu.mem_total_mb = (uint32_t) n;
                gpu.has_mem_total = 1;
                break;
            case 5:
                gpu.temp_c = (uint32_t) n;
                gpu.has_temp = 1;
                break;
            default:
                gpu.power_w = (uint32_t) n;
                gpu.has_power = 1;
            }
        }

        if (key >= 0) {
            seen |= 1u << key;
        }

        while (p < end && *p == ' ') {
            p++;
        }

        if (p < end && *p == ',') {
            p++;

            while (p < end && *p == ' ') {
                p++;
            }

            if (p == end || *p == ';') {
                return -1;
            }

            continue;
        }

        if (p < end && *p != ';') {
            return -1;
        }

        /* the end of a section */

        if (host) {
            if (seen != GPUGATE_TUNNEL_HOST_SEEN) {
                return -1;
            }

            host = 0;

        } else {
            if ((seen & GPUGATE_TUNNEL_GPU_SEEN) != GPUGATE_TUNNEL_GPU_SEEN) {
                return -1;
            }

            if (out->ngpus < GPUGATE_TUNNEL_GPUS_MAX) {
                out->gpu[out->ngpus++] = gpu;
            }

            sections++;
        }

        if (p == end) {
            break;
        }

        p++;

        while (p < end && *p == ' ') {
            p++;
        }

        if (p == end) {
            return -1;
        }

        seen = 0;
        memset(&gpu, 0, sizeof(gpu));
    }

    return sections == out->gpus ? 0 : -1;
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


/* the index of k in a NULL-terminated list, or -1 */

static int
gpugate_tunnel_key(const char *const *keys, const char *k, size_t klen)
{
    int  i;

    for (i = 0; keys[i] != NULL; i++) {
        if (strlen(keys[i]) == klen && memcmp(keys[i], k, klen) == 0) {
            return i;
        }
    }

    return -1;
}
