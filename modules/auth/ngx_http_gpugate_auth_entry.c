
/*
 * Copyright (C) gpugate authors
 *
 * A key's cache entry from PostgreSQL's row, and as JSON: what Redis
 * keeps (signed by the caller when a secret is set) and reads back, with
 * when it was written.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_gpugate_auth.h"
#include "gpugate_apikey.h"
#include "gpugate_tunnel_proto.h"


/*
 * Version 3 added the limits beyond rpm/tpm and the tenant's limits.  An
 * older copy (written by a gateway not yet upgraded) lacks them, and
 * reading it as "no limit" would lift a tenant's limits for up to a ttl:
 * it is not used, the lookup goes to PostgreSQL (NGX_DECLINED).  Within
 * version 3 a missing number reads as 0.
 *
 * Version 4 added the priorities and the region pin of the key and the
 * tenant ("prio", "prio_max", "region", "t_" the same).  A version 3
 * copy is still read, as "none set" for them: the key then waits at the
 * default priority and is not pinned until the copy expires (at most a
 * ttl), which lifts no limit.
 */

#define NGX_HTTP_GPUGATE_ENTRY_VERSION  4
#define NGX_HTTP_GPUGATE_ENTRY_OLDEST   3


/* the numbers of an entry, by their JSON names */
static const char  *ngx_http_gpugate_auth_ints[] = {
    "id", "tenant_id", "expires", "t",
    "rpm", "tpm", "parallel", "tpd", "budget", "period",
    "t_rpm", "t_tpm", "t_parallel", "t_tpd", "t_budget", "t_period"
};

#define NGX_HTTP_GPUGATE_ENTRY_INTS                                           \
    (sizeof(ngx_http_gpugate_auth_ints) / sizeof(char *))


static ngx_int_t ngx_http_gpugate_auth_pg_str(ngx_pool_t *pool,
    PGresult *res, int col, ngx_str_t *s);
static ngx_int_t ngx_http_gpugate_auth_row_limits(PGresult *res, int col,
    ngx_http_gpugate_limit_set_t *set);
static ngx_int_t ngx_http_gpugate_auth_row_prio(PGresult *res, int col,
    ngx_http_gpugate_limit_set_t *set);
static ngx_int_t ngx_http_gpugate_auth_prio_set(int64_t prio,
    int64_t prio_max, const char *region, size_t len,
    ngx_http_gpugate_limit_set_t *set);
static ngx_int_t ngx_http_gpugate_auth_json_prio(json_t *root,
    const char *prefix, ngx_http_gpugate_limit_set_t *set);
static ngx_int_t ngx_http_gpugate_auth_json_str(ngx_pool_t *pool,
    json_t *obj, const char *name, ngx_str_t *s);
static void ngx_http_gpugate_auth_json_limits(json_int_t *n,
    ngx_http_gpugate_limit_set_t *set);
static ngx_int_t ngx_http_gpugate_auth_json_set(json_t *root,
    const char *prefix, ngx_http_gpugate_limit_set_t *set);


static ngx_int_t
ngx_http_gpugate_auth_pg_str(ngx_pool_t *pool, PGresult *res, int col,
    ngx_str_t *s)
{
    s->len = PQgetlength(res, 0, col);
    s->data = ngx_pnalloc(pool, s->len + 1);

    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, PQgetvalue(res, 0, col), s->len);
    s->data[s->len] = '\0';

    return NGX_OK;
}


/*
 * Six limit columns from "col" on: rpm, tpm, parallel, tpd, budget (all
 * 0 for none) and the budget's period ('' for none).
 */

static ngx_int_t
ngx_http_gpugate_auth_row_limits(PGresult *res, int col,
    ngx_http_gpugate_limit_set_t *set)
{
    u_char     *p;
    int64_t    *n[5];
    ngx_int_t   i, len;

    n[0] = &set->rpm;
    n[1] = &set->tpm;
    n[2] = &set->parallel;
    n[3] = &set->tpd;
    n[4] = &set->budget;

    for (i = 0; i < 5; i++) {
        *n[i] = ngx_atoof((u_char *) PQgetvalue(res, 0, col + i),
                          PQgetlength(res, 0, col + i));
        if (*n[i] == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    p = (u_char *) PQgetvalue(res, 0, col + 5);
    len = PQgetlength(res, 0, col + 5);

    if (len == 0) {
        set->budget_period = NGX_HTTP_GPUGATE_PERIOD_NONE;

    } else if (len == 3 && ngx_strncmp(p, "day", 3) == 0) {
        set->budget_period = NGX_HTTP_GPUGATE_PERIOD_DAY;

    } else if (len == 5 && ngx_strncmp(p, "month", 5) == 0) {
        set->budget_period = NGX_HTTP_GPUGATE_PERIOD_MONTH;

    } else {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* priority (-1: none), max_priority (-1), region ('') from "col" on */

static ngx_int_t
ngx_http_gpugate_auth_row_prio(PGresult *res, int col,
    ngx_http_gpugate_limit_set_t *set)
{
    int64_t   n[2];
    ngx_int_t  i;
    u_char    *p;
    size_t     len;

    for (i = 0; i < 2; i++) {
        p = (u_char *) PQgetvalue(res, 0, col + i);
        len = PQgetlength(res, 0, col + i);

        if (len == 2 && p[0] == '-' && p[1] == '1') {
            n[i] = -1;

        } else {
            n[i] = ngx_atoof(p, len);
        }
    }

    return ngx_http_gpugate_auth_prio_set(n[0], n[1],
                                          PQgetvalue(res, 0, col + 2),
                                          PQgetlength(res, 0, col + 2),
                                          set);
}


/* checks and stores a set's priorities and pin; NGX_ERROR: out of range */

static ngx_int_t
ngx_http_gpugate_auth_prio_set(int64_t prio, int64_t prio_max,
    const char *region, size_t len, ngx_http_gpugate_limit_set_t *set)
{
    if (prio < -1 || prio > 9 || prio_max < -1 || prio_max > 9
        || len > NGX_HTTP_GPUGATE_KEY_REGION_MAX
        || (len && gpugate_tunnel_check_region(region, len) != 0))
    {
        return NGX_ERROR;
    }

    set->priority = prio;
    set->priority_max = prio_max;
    set->region_len = len;
    ngx_memcpy(set->region, region, len);

    return NGX_OK;
}


ngx_int_t
ngx_http_gpugate_auth_from_row(ngx_pool_t *pool, PGresult *res,
    u_char *prefix, ngx_http_gpugate_key_info_t *info)
{
    if (PQntuples(res) == 0) {
        info->refusal = NGX_HTTP_GPUGATE_KEY_UNKNOWN;
        info->prefix.data = prefix;
        info->prefix.len = GPUGATE_APIKEY_PREFIX_LEN;
        return NGX_OK;
    }

    /* columns: see the statement in ngx_http_gpugate_auth_module.c */

    if (PQnfields(res) != 27) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "gpugate auth: %d columns for key %*s, expected 27",
                      PQnfields(res), (size_t) GPUGATE_APIKEY_PREFIX_LEN,
                      prefix);
        return NGX_ERROR;
    }

    info->key_id = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                             PQgetlength(res, 0, 0));
    info->tenant_id = ngx_atoof((u_char *) PQgetvalue(res, 0, 3),
                                PQgetlength(res, 0, 3));
    info->expires = ngx_atotm((u_char *) PQgetvalue(res, 0, 12),
                              PQgetlength(res, 0, 12));

    if (ngx_http_gpugate_auth_pg_str(pool, res, 1, &info->name)
        != NGX_OK
        || ngx_http_gpugate_auth_pg_str(pool, res, 2, &info->prefix)
           != NGX_OK
        || ngx_http_gpugate_auth_pg_str(pool, res, 4, &info->tenant)
           != NGX_OK
        || ngx_http_gpugate_auth_pg_str(pool, res, 5, &info->models)
           != NGX_OK
        || info->key_id == NGX_ERROR || info->tenant_id == NGX_ERROR
        || info->expires == NGX_ERROR
        || ngx_http_gpugate_auth_row_limits(res, 6, &info->key_limits)
           != NGX_OK
        || ngx_http_gpugate_auth_row_limits(res, 15, &info->tenant_limits)
           != NGX_OK
        || ngx_http_gpugate_auth_row_prio(res, 21, &info->key_limits)
           != NGX_OK
        || ngx_http_gpugate_auth_row_prio(res, 24, &info->tenant_limits)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "gpugate auth: unexpected row for key %*s",
                      (size_t) GPUGATE_APIKEY_PREFIX_LEN, prefix);
        return NGX_ERROR;
    }

    if (*PQgetvalue(res, 0, 13) == 't') {
        info->refusal = NGX_HTTP_GPUGATE_KEY_REVOKED;

    } else if (*PQgetvalue(res, 0, 14) == 't') {
        info->refusal = NGX_HTTP_GPUGATE_KEY_DISABLED;

    } else if (info->expires && info->expires <= ngx_time()) {
        info->refusal = NGX_HTTP_GPUGATE_KEY_EXPIRED;
    }

    return NGX_OK;
}


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


static void
ngx_http_gpugate_auth_json_limits(json_int_t *n,
    ngx_http_gpugate_limit_set_t *set)
{
    set->rpm = n[0];
    set->tpm = n[1];
    set->parallel = n[2];
    set->tpd = n[3];
    set->budget = n[4];
    set->budget_period = (ngx_uint_t) n[5];
}


ngx_int_t
ngx_http_gpugate_auth_from_json(ngx_pool_t *pool, const char *s, size_t len,
    ngx_http_gpugate_key_info_t *info, time_t *written)
{
    json_t      *root, *v;
    ngx_int_t    rc;
    json_int_t   n[NGX_HTTP_GPUGATE_ENTRY_INTS];
    ngx_uint_t   i;

    root = json_loadb(s, len, 0, NULL);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    v = json_object_get(root, "v");
    if (!json_is_integer(v)) {
        goto done;
    }

    if (json_integer_value(v) < NGX_HTTP_GPUGATE_ENTRY_OLDEST
        || json_integer_value(v) > NGX_HTTP_GPUGATE_ENTRY_VERSION)
    {
        rc = NGX_DECLINED;
        goto done;
    }

    for (i = 0; i < NGX_HTTP_GPUGATE_ENTRY_INTS; i++) {
        v = json_object_get(root, ngx_http_gpugate_auth_ints[i]);
        n[i] = json_is_integer(v) ? json_integer_value(v) : 0;

        if (n[i] < 0) {
            goto done;
        }
    }

    if (n[9] > NGX_HTTP_GPUGATE_PERIOD_MONTH
        || n[15] > NGX_HTTP_GPUGATE_PERIOD_MONTH)
    {
        goto done;
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
    info->expires = (time_t) n[2];
    *written = (time_t) n[3];
    ngx_http_gpugate_auth_json_limits(&n[4], &info->key_limits);
    ngx_http_gpugate_auth_json_limits(&n[10], &info->tenant_limits);

    /* a version 3 copy has none: "none set" */

    if (ngx_http_gpugate_auth_json_prio(root, "", &info->key_limits)
        != NGX_OK
        || ngx_http_gpugate_auth_json_prio(root, "t_", &info->tenant_limits)
           != NGX_OK)
    {
        goto done;
    }

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

    /* the lookup goes on to PostgreSQL: nothing half-read may remain */

    if (rc != NGX_OK) {
        ngx_memzero(info, sizeof(ngx_http_gpugate_key_info_t));
    }

    json_decref(root);

    return rc;
}


/* "prio", "prio_max", "region" (with "prefix") into "set" */

static ngx_int_t
ngx_http_gpugate_auth_json_prio(json_t *root, const char *prefix,
    ngx_http_gpugate_limit_set_t *set)
{
    u_char       name[16];
    int64_t      n[2];
    json_t      *v;
    ngx_uint_t   i;
    const char  *region;
    size_t       len;

    static const char  *names[] = { "prio", "prio_max" };

    for (i = 0; i < 2; i++) {
        (void) ngx_sprintf(name, "%s%s%Z", prefix, names[i]);
        v = json_object_get(root, (char *) name);

        if (v == NULL) {
            n[i] = -1;

        } else if (json_is_integer(v)) {
            n[i] = json_integer_value(v);

        } else {
            return NGX_ERROR;
        }
    }

    (void) ngx_sprintf(name, "%sregion%Z", prefix);
    v = json_object_get(root, (char *) name);

    region = "";
    len = 0;

    if (v) {
        if (!json_is_string(v)) {
            return NGX_ERROR;
        }

        region = json_string_value(v);
        len = json_string_length(v);
    }

    return ngx_http_gpugate_auth_prio_set(n[0], n[1], region, len, set);
}


static ngx_int_t
ngx_http_gpugate_auth_json_set(json_t *root, const char *prefix,
    ngx_http_gpugate_limit_set_t *set)
{
    u_char      name[16];
    ngx_uint_t  i;
    json_int_t  n[6];

    static const char  *names[] = { "rpm", "tpm", "parallel", "tpd",
                                    "budget", "period" };

    n[0] = set->rpm;
    n[1] = set->tpm;
    n[2] = set->parallel;
    n[3] = set->tpd;
    n[4] = set->budget;
    n[5] = (json_int_t) set->budget_period;

    for (i = 0; i < 6; i++) {
        (void) ngx_sprintf(name, "%s%s%Z", prefix, names[i]);

        if (json_object_set_new(root, (char *) name, json_integer(n[i]))
            != 0)
        {
            return NGX_ERROR;
        }
    }

    (void) ngx_sprintf(name, "%sprio%Z", prefix);

    if (json_object_set_new(root, (char *) name,
                            json_integer(set->priority))
        != 0)
    {
        return NGX_ERROR;
    }

    (void) ngx_sprintf(name, "%sprio_max%Z", prefix);

    if (json_object_set_new(root, (char *) name,
                            json_integer(set->priority_max))
        != 0)
    {
        return NGX_ERROR;
    }

    (void) ngx_sprintf(name, "%sregion%Z", prefix);

    if (json_object_set_new(root, (char *) name,
                            json_stringn((char *) set->region,
                                         set->region_len))
        != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the Redis copy of an entry; malloc()ed, the caller frees it */

char *
ngx_http_gpugate_auth_to_json(ngx_http_gpugate_key_info_t *info)
{
    char    *s;
    json_t  *root;

    root = json_pack("{s:i, s:I, s:i, s:I, s:I, s:I, s:s%, s:s%, s:s%,"
                     " s:s%}",
                     "v", NGX_HTTP_GPUGATE_ENTRY_VERSION,
                     "t", (json_int_t) ngx_time(),
                     "refusal", (int) info->refusal,
                     "id", (json_int_t) info->key_id,
                     "tenant_id", (json_int_t) info->tenant_id,
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

    if (ngx_http_gpugate_auth_json_set(root, "", &info->key_limits) != NGX_OK
        || ngx_http_gpugate_auth_json_set(root, "t_", &info->tenant_limits)
           != NGX_OK)
    {
        json_decref(root);
        return NULL;
    }

    s = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    return s;
}
