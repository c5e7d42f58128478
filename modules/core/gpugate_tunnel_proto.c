
/*
 * Copyright (C) gpugate authors
 */


#include <stdio.h>
#include <string.h>

#include "gpugate_models.h"
#include "gpugate_tunnel_proto.h"


/*
 * Reads the "key=value, key=value" lists of the tunnel's headers
 * (Authorization's parameters, X-Gpugate-Worker, X-Gpugate-Load,
 * X-Gpugate-Telemetry): a key runs to "=", a value to "," or " ", spaces
 * may surround the ",".  With "sections", ";" also ends a value and
 * starts a new section, and a value may be quoted ("..." without escapes).
 */

typedef struct {
    const char  *pos;            /* next unread byte */
    const char  *end;            /* end of the header value */
    const char  *key;            /* the pair just read: its key */
    size_t       key_len;        /* the key's length */
    const char  *val;            /* its value, without quotes */
    size_t       val_len;        /* the value's length */
    unsigned     sections:1;     /* ";" separates sections, quotes allowed */
    unsigned     quoted:1;       /* the value just read was quoted */
} gpugate_tunnel_kv_t;

/* what follows a pair: gpugate_tunnel_kv_sep() */
#define GPUGATE_TUNNEL_KV_END      0    /* the end of the value */
#define GPUGATE_TUNNEL_KV_NEXT     1    /* "," and another pair */
#define GPUGATE_TUNNEL_KV_SECTION  2    /* ";" and another section */


static int gpugate_tunnel_is_hex(const char *p, size_t len, int lower);
static int gpugate_tunnel_is_b64(const char *p, size_t len);
static int gpugate_tunnel_uint(const char *p, size_t len, uint64_t max,
    uint64_t *v);
static void gpugate_tunnel_kv_init(gpugate_tunnel_kv_t *kv, const char *p,
    size_t len, unsigned sections);
static int gpugate_tunnel_kv_stop(gpugate_tunnel_kv_t *kv, char c);
static int gpugate_tunnel_kv_pair(gpugate_tunnel_kv_t *kv);
static int gpugate_tunnel_kv_sep(gpugate_tunnel_kv_t *kv);
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
    int                  rc;
    gpugate_tunnel_kv_t  kv;

    static const char  name[] = "SCRAM-SHA-256";

    memset(out, 0, sizeof(*out));

    if (scheme) {
        if (len < sizeof(name) || strncasecmp(p, name, sizeof(name) - 1) != 0
            || p[sizeof(name) - 1] != ' ')
        {
            return -1;
        }

        p += sizeof(name);
        len -= sizeof(name);
    }

    gpugate_tunnel_kv_init(&kv, p, len, 0);

    if (kv.pos == kv.end) {
        return -1;
    }

    do {
        if (gpugate_tunnel_kv_pair(&kv) != 0) {
            return -1;
        }

        /* base64 ends in "=" padding, which the scan keeps */

        if (kv.key_len == 3 && memcmp(kv.key, "sid", 3) == 0) {
            if (out->sid != NULL || kv.val_len != GPUGATE_TUNNEL_SID_LEN
                || !gpugate_tunnel_is_hex(kv.val, kv.val_len, 1))
            {
                return -1;
            }

            out->sid = kv.val;
            out->sid_len = kv.val_len;

        } else if (kv.key_len == 4 && memcmp(kv.key, "data", 4) == 0) {
            if (out->data != NULL || kv.val_len == 0
                || !gpugate_tunnel_is_b64(kv.val, kv.val_len))
            {
                return -1;
            }

            out->data = kv.val;
            out->data_len = kv.val_len;
        }

        rc = gpugate_tunnel_kv_sep(&kv);

    } while (rc == GPUGATE_TUNNEL_KV_NEXT);

    return rc == GPUGATE_TUNNEL_KV_END ? 0 : -1;
}


int
gpugate_tunnel_parse_worker(const char *p, size_t len,
    gpugate_tunnel_worker_t *out)
{
    size_t               klen, vlen;
    uint64_t             n;
    unsigned             seen;
    const char          *k, *v;
    gpugate_tunnel_kv_t  kv;

    memset(out, 0, sizeof(*out));
    seen = 0;

    gpugate_tunnel_kv_init(&kv, p, len, 0);

    while (kv.pos < kv.end) {

        if (gpugate_tunnel_kv_pair(&kv) != 0) {
            return -1;
        }

        k = kv.key;
        klen = kv.key_len;
        v = kv.val;
        vlen = kv.val_len;

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

        if (gpugate_tunnel_kv_sep(&kv) < 0) {
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
gpugate_tunnel_check_region(const char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > GPUGATE_TUNNEL_REGION_MAX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9')
              || p[i] == '.' || p[i] == '_' || p[i] == '-'))
        {
            return -1;
        }
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
    int                  n;
    const char          *id;
    gpugate_tunnel_kv_t  kv;

    if (len > GPUGATE_TUNNEL_MODELS_MAX) {
        return -1;
    }

    n = 0;

    /* the ids are read like values: the same "," and spaces between */

    gpugate_tunnel_kv_init(&kv, p, len, 0);

    while (kv.pos < kv.end) {
        id = kv.pos;
        p = id;

        while (p < kv.end && *p > 0x20 && *p < 0x7f && *p != ',') {
            p++;
        }

        if (p == id || p - id > GPUGATE_TUNNEL_MODEL_MAX) {
            return -1;
        }

        n++;
        kv.pos = p;

        if (gpugate_tunnel_kv_sep(&kv) < 0) {
            return -1;
        }
    }

    return n;
}


int
gpugate_tunnel_models_has(const char *list, size_t list_len,
    const char *model, size_t model_len)
{
    const char  *p, *end;

    p = list;
    end = list + list_len;

    while (p < end && (*p == ' ' || *p == ',')) {
        p++;
    }

    if (p == end) {
        return 1;
    }

    return gpugate_models_list_has(p, end - p, model, model_len,
                                   GPUGATE_MODELS_SEP_WIRE);
}


/*
 * The router's endpoints in the order of gpugate_oai_kind_e; the names
 * are gpugate_oai_kind_name()'s (a unit test holds them equal), repeated
 * here because the agent links no router code.
 */

static const char  *gpugate_tunnel_endpoints[] = {
    "chat", "completions", "embeddings", "messages", "responses",
    "rerank", "score", "images", "speech", "transcriptions",
    "translations", "image_edits"
};

#define GPUGATE_TUNNEL_NENDPOINTS                                           \
    (int) (sizeof(gpugate_tunnel_endpoints)                                 \
           / sizeof(gpugate_tunnel_endpoints[0]))


int
gpugate_tunnel_parse_endpoints(const char *p, size_t len, uint32_t *mask)
{
    int                  k;
    size_t               n;
    const char          *name;
    gpugate_tunnel_kv_t  kv;

    *mask = GPUGATE_TUNNEL_ENDPOINTS_TOLD;

    if (len > GPUGATE_TUNNEL_ENDPOINTS_MAX) {
        return -1;
    }

    gpugate_tunnel_kv_init(&kv, p, len, 0);

    if (kv.pos == kv.end) {
        return -1;
    }

    while (kv.pos < kv.end) {
        name = kv.pos;
        p = name;

        while (p < kv.end
               && ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                   || *p == '_' || *p == '.'))
        {
            p++;
        }

        n = (size_t) (p - name);

        if (n == 0 || n > GPUGATE_TUNNEL_ENDPOINT_MAX) {
            return -1;
        }

        for (k = 0; k < GPUGATE_TUNNEL_NENDPOINTS; k++) {
            if (strlen(gpugate_tunnel_endpoints[k]) == n
                && memcmp(gpugate_tunnel_endpoints[k], name, n) == 0)
            {
                *mask |= 1u << k;
                break;
            }
        }

        kv.pos = p;

        if (gpugate_tunnel_kv_sep(&kv) < 0) {
            return -1;
        }
    }

    return 0;
}


int
gpugate_tunnel_endpoint_served(uint32_t mask, int kind)
{
    if (mask == GPUGATE_TUNNEL_ENDPOINTS_ANY || kind < 0) {
        return 1;
    }

    return kind < GPUGATE_TUNNEL_NENDPOINTS && (mask & (1u << kind)) != 0;
}


const char *
gpugate_tunnel_endpoint_name(int kind)
{
    if (kind < 0 || kind >= GPUGATE_TUNNEL_NENDPOINTS) {
        return NULL;
    }

    return gpugate_tunnel_endpoints[kind];
}


size_t
gpugate_tunnel_endpoints_print(uint32_t mask, char *buf, size_t size)
{
    int     k;
    size_t  len, n;

    if (size == 0) {
        return 0;
    }

    buf[0] = '\0';

    if (mask == GPUGATE_TUNNEL_ENDPOINTS_ANY) {
        if (size < 2) {
            return 0;
        }

        buf[0] = '*';
        buf[1] = '\0';
        return 1;
    }

    len = 0;

    for (k = 0; k < GPUGATE_TUNNEL_NENDPOINTS; k++) {
        if (!(mask & (1u << k))) {
            continue;
        }

        n = (size_t) snprintf(buf + len, size - len, "%s%s",
                              len ? ", " : "", gpugate_tunnel_endpoints[k]);

        if (n >= size - len) {
            buf[len] = '\0';
            return len;
        }

        len += n;
    }

    return len;
}


int
gpugate_tunnel_parse_load(const char *p, size_t len,
    gpugate_tunnel_load_t *out)
{
    uint64_t             n;
    gpugate_tunnel_kv_t  kv;

    memset(out, 0, sizeof(*out));

    gpugate_tunnel_kv_init(&kv, p, len, 0);

    while (kv.pos < kv.end) {

        if (gpugate_tunnel_kv_pair(&kv) != 0) {
            return -1;
        }

        if (kv.key_len == 5 && memcmp(kv.key, "queue", 5) == 0) {
            if (out->has_queue
                || gpugate_tunnel_uint(kv.val, kv.val_len, UINT32_MAX, &n)
                   != 0)
            {
                return -1;
            }

            out->queue = n;
            out->has_queue = 1;

        } else if (kv.key_len == 11
                   && memcmp(kv.key, "gpu_free_mb", 11) == 0)
        {
            if (out->has_gpu
                || gpugate_tunnel_uint(kv.val, kv.val_len, UINT32_MAX, &n)
                   != 0)
            {
                return -1;
            }

            out->gpu_free_mb = n;
            out->has_gpu = 1;

        } else if (kv.key_len == 8 && memcmp(kv.key, "capacity", 8) == 0) {
            if (out->has_capacity
                || gpugate_tunnel_uint(kv.val, kv.val_len,
                                       GPUGATE_TUNNEL_CAPACITY_MAX, &n)
                   != 0)
            {
                return -1;
            }

            out->capacity = n;
            out->has_capacity = 1;

        } else if (kv.key_len == 6 && memcmp(kv.key, "kv_pct", 6) == 0) {
            if (out->has_kv
                || gpugate_tunnel_uint(kv.val, kv.val_len, 100, &n) != 0)
            {
                return -1;
            }

            out->kv_pct = n;
            out->has_kv = 1;

        } else if (kv.key_len == 7 && memcmp(kv.key, "hit_pct", 7) == 0) {
            if (out->has_hit
                || gpugate_tunnel_uint(kv.val, kv.val_len, 100, &n) != 0)
            {
                return -1;
            }

            out->hit_pct = n;
            out->has_hit = 1;

        } else if (kv.val_len == 0) {
            return -1;
        }

        if (gpugate_tunnel_kv_sep(&kv) < 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Checks one pair of X-Gpugate-Telemetry and stores it in the host part
 * or in the GPU section being read; *seen holds the section's keys so far.
 */

static int
gpugate_tunnel_telemetry_pair(gpugate_tunnel_kv_t *kv, int host,
    unsigned *seen, gpugate_tunnel_telemetry_t *out, gpugate_tunnel_gpu_t *gpu)
{
    int       key;
    uint64_t  n;

    key = gpugate_tunnel_key(host ? gpugate_tunnel_host_keys
                                  : gpugate_tunnel_gpu_keys,
                             kv->key, kv->key_len);

    if (key < 0) {
        /* a key this version does not know: skipped */
        return (kv->val_len == 0 && !kv->quoted) ? -1 : 0;
    }

    if (*seen & (1u << key)) {
        return -1;
    }

    *seen |= 1u << key;

    if (!host && key == 1) {
        if (!kv->quoted || kv->val_len == 0
            || kv->val_len > GPUGATE_TUNNEL_GPU_NAME_MAX)
        {
            return -1;
        }

        memcpy(gpu->name, kv->val, kv->val_len);
        gpu->name[kv->val_len] = '\0';
        gpu->name_len = kv->val_len;

        return 0;
    }

    if (kv->quoted
        || gpugate_tunnel_uint(kv->val, kv->val_len,
                               host && key == 0 ? 100 : UINT32_MAX, &n)
           != 0)
    {
        return -1;
    }

    if (host) {
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

        return 0;
    }

    switch (key) {
    case 0:
        gpu->index = (uint32_t) n;
        break;
    case 2:
        gpu->util_pct = (uint32_t) n;
        gpu->has_util = 1;
        break;
    case 3:
        gpu->mem_used_mb = (uint32_t) n;
        gpu->has_mem_used = 1;
        break;
    case 4:
        gpu->mem_total_mb = (uint32_t) n;
        gpu->has_mem_total = 1;
        break;
    case 5:
        gpu->temp_c = (uint32_t) n;
        gpu->has_temp = 1;
        break;
    default:
        gpu->power_w = (uint32_t) n;
        gpu->has_power = 1;
    }

    return 0;
}


int
gpugate_tunnel_parse_telemetry(const char *p, size_t len,
    gpugate_tunnel_telemetry_t *out)
{
    int                    host, sep;
    unsigned               seen, sections;
    gpugate_tunnel_kv_t    kv;
    gpugate_tunnel_gpu_t   gpu;

    memset(out, 0, sizeof(*out));
    memset(&gpu, 0, sizeof(gpu));

    if (len > GPUGATE_TUNNEL_TELEMETRY_MAX) {
        return -1;
    }

    host = 1;
    seen = 0;
    sections = 0;

    gpugate_tunnel_kv_init(&kv, p, len, 1);

    for ( ;; ) {

        if (gpugate_tunnel_kv_pair(&kv) != 0
            || gpugate_tunnel_telemetry_pair(&kv, host, &seen, out, &gpu)
               != 0)
        {
            return -1;
        }

        sep = gpugate_tunnel_kv_sep(&kv);

        if (sep < 0) {
            return -1;
        }

        if (sep == GPUGATE_TUNNEL_KV_NEXT) {
            continue;
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

        if (sep == GPUGATE_TUNNEL_KV_END) {
            break;
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


static void
gpugate_tunnel_kv_init(gpugate_tunnel_kv_t *kv, const char *p, size_t len,
    unsigned sections)
{
    memset(kv, 0, sizeof(*kv));

    kv->pos = p;
    kv->end = p + len;
    kv->sections = sections;

    while (kv->pos < kv->end && *kv->pos == ' ') {
        kv->pos++;
    }
}


/* whether c ends a key or an unquoted value */

static int
gpugate_tunnel_kv_stop(gpugate_tunnel_kv_t *kv, char c)
{
    return c == ',' || c == ' '
           || (kv->sections && (c == ';' || c == '"'));
}


/* reads "key=value" at the cursor: 0, or -1 when there is none */

static int
gpugate_tunnel_kv_pair(gpugate_tunnel_kv_t *kv)
{
    const char  *p, *end;

    p = kv->pos;
    end = kv->end;

    kv->key = p;

    while (p < end && *p != '=' && !gpugate_tunnel_kv_stop(kv, *p)) {
        p++;
    }

    kv->key_len = p - kv->key;

    if (kv->key_len == 0 || p == end || *p != '=') {
        return -1;
    }

    kv->val = ++p;
    kv->quoted = 0;

    if (kv->sections && p < end && *p == '"') {

        /* no escapes: a name never needs them, and none are sent */

        kv->quoted = 1;
        kv->val = ++p;

        while (p < end && *p != '"') {
            if (*p < 0x20 || *p > 0x7e || *p == '\\') {
                return -1;
            }

            p++;
        }

        if (p == end) {
            return -1;
        }

        kv->val_len = p++ - kv->val;

    } else {
        while (p < end && !gpugate_tunnel_kv_stop(kv, *p)) {
            p++;
        }

        kv->val_len = p - kv->val;
    }

    kv->pos = p;

    return 0;
}


/*
 * What follows a pair, spaces around it skipped: the end, a "," before
 * another pair, or (with sections) a ";" before another section.  -1 on
 * anything else, also a "," or ";" with nothing after it.
 */

static int
gpugate_tunnel_kv_sep(gpugate_tunnel_kv_t *kv)
{
    const char  *p, *end;

    p = kv->pos;
    end = kv->end;

    while (p < end && *p == ' ') {
        p++;
    }

    if (p < end && *p == ',') {
        p++;

        while (p < end && *p == ' ') {
            p++;
        }

        kv->pos = p;

        if (p == end || (kv->sections && *p == ';')) {
            return -1;
        }

        return GPUGATE_TUNNEL_KV_NEXT;
    }

    kv->pos = p;

    if (p == end) {
        return GPUGATE_TUNNEL_KV_END;
    }

    if (!kv->sections || *p != ';') {
        return -1;
    }

    p++;

    while (p < end && *p == ' ') {
        p++;
    }

    kv->pos = p;

    return (p == end) ? -1 : GPUGATE_TUNNEL_KV_SECTION;
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
