
/*
 * Copyright (C) gpugate authors
 *
 * A key's cache entry as JSON: what Redis keeps (signed by the caller
 * when a secret is set) and reads back, with when it was written.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_gpugate_auth.h"


static ngx_int_t ngx_http_gpugate_auth_json_str(ngx_pool_t *pool,
    json_t *obj, const char *name, ngx_str_t *s);


static ngx_int_t
ngx_http_gpugate_auth_json_str(ngx_pool_t *pool, json_t *obj,
    const char *name, ngx_str_t *s)
{
    json_t  *v;

    v = json_object_get(obj, name);

    if (v == NULL || json_is_null(v)) {
        ngx_str_null(s);
        return NGX_OK;
    }

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    s->len = json_string_length(v);
    s->data = ngx_pnalloc(pool, s->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, json_string_value(v), s->len + 1);

    return NGX_OK;
}


ngx_int_t
ngx_http_gpugate_auth_from_json(ngx_pool_t *pool, const char *s, size_t len,
    ngx_http_gpugate_key_info_t *info, time_t *written)
{
    json_t      *root, *v;
    ngx_int_t    rc;
    json_int_t   n[6];
    ngx_uint_t   i;

    static const char  *ints[] = { "id", "tenant_id", "rpm", "tpm",
                                   "expires", "t" };

    root = json_loadb(s, len, 0, NULL);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    /* version 2 has "t", when it was written; older copies are not used */

    v = json_object_get(root, "v");
    if (!json_is_integer(v) || json_integer_value(v) != 2) {
        goto done;
    }

    for (i = 0; i < 6; i++) {
        v = json_object_get(root, ints[i]);
        n[i] = json_is_integer(v) ? json_integer_value(v) : 0;

        if (n[i] < 0) {
            goto done;
        }
    }

    v = json_object_get(root, "refusal");
    if (!json_is_integer(v) || json_integer_value(v) < 0
        || json_integer_value(v) > NGX_HTTP_GPUGATE_KEY_DISABLED)
    {
        goto done;
    }

    info->refusal = (ngx_uint_t) json_integer_value(v);
    info->key_id = n[0];
    info->tenant_id = n[1];
    info->rpm = n[2];
    info->tpm = n[3];
    info->expires = (time_t) n[4];
    *written = (time_t) n[5];

    if (*written == 0) {
        goto done;
    }

    if (ngx_http_gpugate_auth_json_str(pool, root, "name", &info->name)
        != NGX_OK
        || ngx_http_gpugate_auth_json_str(pool, root, "prefix", &info->prefix)
           != NGX_OK
        || ngx_http_gpugate_auth_json_str(pool, root, "tenant", &info->tenant)
           != NGX_OK
        || ngx_http_gpugate_auth_json_str(pool, root, "models", &info->models)
           != NGX_OK)
    {
        goto done;
    }

    rc = NGX_OK;

done:

    json_decref(root);

    return rc;
}


/* the Redis copy of an entry; malloc()ed, the caller frees it */

char *
ngx_http_gpugate_auth_to_json(ngx_http_gpugate_key_info_t *info)
{
    char    *s;
    json_t  *root;

    root = json_pack("{s:i, s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:s%, s:s%,"
                     " s:s%, s:s%}",
                     "v", 2, "t", (json_int_t) ngx_time(),
                     "refusal", (int) info->refusal,
                     "id", (json_int_t) info->key_id,
                     "tenant_id", (json_int_t) info->tenant_id,
                     "rpm", (json_int_t) info->rpm,
                     "tpm", (json_int_t) info->tpm,
                     "expires", (json_int_t) info->expires,
                     "name", info->name.data ? (char *) info->name.data : "",
                     info->name.len,
                     "prefix", info->prefix.data ? (char *) info->prefix.data
                                                 : "",
                     info->prefix.len,
                     "tenant", info->tenant.data ? (char *) info->tenant.data
                                                 : "",
                     info->tenant.len,
                     "models", info->models.data ? (char *) info->models.data
                                                 : "",
                     info->models.len);
    if (root == NULL) {
        return NULL;
    }

    s = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    return s;
}
