
/*
 * Copyright (C) gpugate authors
 *
 * API-key auth: directives and per-worker start-up.  The phase logic is
 * in ngx_http_gpugate_auth_handler.c, the shared-memory cache in
 * ngx_http_gpugate_auth_cache.c, the variables and the granted record's
 * limits in ngx_http_gpugate_auth_vars.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_auth.h"


/*
 * The one statement the gateway runs for a cache miss.  Model names never
 * contain commas (the key tool refuses them), so a comma-joined list is
 * unambiguous; NULL (every model) becomes "*".  The key's and its
 * tenant's limits (sql/003_limits.sql) come with it, NULL as 0 and no
 * period as '': they are cached with the key, never looked up per request.
 */

#define NGX_HTTP_GPUGATE_LIMIT_COLS(t)                                        \
    " coalesce(" t ".rpm_limit, 0), coalesce(" t ".tpm_limit, 0),"            \
    " coalesce(" t ".parallel_limit, 0), coalesce(" t ".tpd_limit, 0),"       \
    " coalesce(" t ".budget_micros, 0), coalesce(" t ".budget_period, '')"

/* sql/007_priority.sql: default and most priority, region pin */
#define NGX_HTTP_GPUGATE_PRIO_COLS(t)                                         \
    " coalesce(" t ".priority, -1), coalesce(" t ".max_priority, -1),"        \
    " coalesce(" t ".region, '')"

static ngx_http_gpugate_pg_stmt_t  ngx_http_gpugate_auth_stmt = {
    "gpugate_auth_key",
    "SELECT k.id, k.name, k.prefix, t.id, t.name,"
    " coalesce(array_to_string(k.allowed_models, ','), '*'),"
    NGX_HTTP_GPUGATE_LIMIT_COLS("k") ","
    " coalesce(extract(epoch FROM k.expires_at)::bigint, 0),"
    " k.revoked_at IS NOT NULL, t.disabled,"
    NGX_HTTP_GPUGATE_LIMIT_COLS("t") ","
    NGX_HTTP_GPUGATE_PRIO_COLS("k") ","
    NGX_HTTP_GPUGATE_PRIO_COLS("t")
    " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
    " WHERE k.digest = $1",
    1
};


static void *ngx_http_gpugate_auth_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_auth_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_gpugate_auth_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_auth_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_gpugate_auth_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gpugate_auth_postgres(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_gpugate_auth_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gpugate_auth_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gpugate_auth_enable(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gpugate_auth_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_gpugate_auth_init_process(ngx_cycle_t *cycle);
static void ngx_http_gpugate_auth_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_gpugate_auth_commands[] = {

    { ngx_string("gpugate_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_gpugate_auth_enable,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_gpugate_auth_loc_conf_t, enable),
      NULL },

    { ngx_string("gpugate_auth_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_auth_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_auth_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_auth_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_auth_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_auth_postgres,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("gpugate_auth_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_auth_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gpugate_auth_module_ctx = {
    ngx_http_gpugate_auth_add_variables,   /* preconfiguration */
    ngx_http_gpugate_auth_init,            /* postconfiguration */

    ngx_http_gpugate_auth_create_main_conf, /* create main configuration */
    ngx_http_gpugate_auth_init_main_conf,  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_gpugate_auth_create_loc_conf, /* create location configuration */
    ngx_http_gpugate_auth_merge_loc_conf   /* merge location configuration */
};


ngx_module_t  ngx_http_gpugate_auth_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_auth_module_ctx,     /* module context */
    ngx_http_gpugate_auth_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_gpugate_auth_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_gpugate_auth_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_gpugate_auth_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_auth_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->zone = NULL;
     *     amcf->pg.conninfo = { 0, NULL };
     *     amcf->redis.addr = NULL;
     *     amcf->used = 0;
     */

    amcf->ttl = 60;
    amcf->negative_ttl = 10;
    amcf->stale = 300;
    amcf->redis_ttl = 300;

    if (ngx_array_init(&amcf->pg.statements, cf->pool, 1,
                       sizeof(ngx_http_gpugate_pg_stmt_t))
        != NGX_OK)
    {
        return NULL;
    }

    return amcf;
}


static char *
ngx_http_gpugate_auth_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_gpugate_auth_main_conf_t *amcf = conf;

    ngx_http_gpugate_pg_stmt_t  *stmt;

    if (amcf->pg.conninfo.len) {
        stmt = ngx_array_push(&amcf->pg.statements);
        if (stmt == NULL) {
            return NGX_CONF_ERROR;
        }

        *stmt = ngx_http_gpugate_auth_stmt;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_gpugate_auth_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_auth_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_auth_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->enable = NGX_CONF_UNSET;
    conf->headers = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_gpugate_auth_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_gpugate_auth_loc_conf_t *prev = parent;
    ngx_http_gpugate_auth_loc_conf_t *conf = child;

    ngx_str_t  *h;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_ptr_value(conf->headers, prev->headers, NULL);

    if (conf->headers == NULL) {
        conf->headers = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (conf->headers == NULL) {
            return NGX_CONF_ERROR;
        }

        h = ngx_array_push_n(conf->headers, 2);
        if (h == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(&h[0], "authorization");
        ngx_str_set(&h[1], "x-api-key");
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_auth_enable(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                               *rv;
    ngx_http_gpugate_auth_loc_conf_t   *alcf = conf;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK && alcf->enable) {
        amcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_gpugate_auth_module);
        amcf->used = 1;
    }

    return rv;
}


static char *
ngx_http_gpugate_auth_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_auth_loc_conf_t *alcf = conf;

    ngx_str_t   *value, *h;
    ngx_uint_t   i;

    if (alcf->headers != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    alcf->headers = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                     sizeof(ngx_str_t));
    if (alcf->headers == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        h = ngx_array_push(alcf->headers);
        if (h == NULL) {
            return NGX_CONF_ERROR;
        }

        h->len = value[i].len;
        h->data = ngx_pnalloc(cf->pool, h->len);
        if (h->data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_strlow(h->data, value[i].data, h->len);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_auth_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_auth_main_conf_t *amcf = conf;

    u_char      *p;
    ssize_t      size;
    ngx_int_t    negative_max;
    ngx_str_t   *value, name, s, val;
    ngx_uint_t   i;

    if (amcf->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;
    ngx_str_null(&name);
    size = 0;
    negative_max = NGX_CONF_UNSET;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_http_gpugate_conf_param(&value[i], "zone", &val)) {
            p = (u_char *) ngx_strchr(val.data, ':');
            if (p == NULL || p == val.data) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone \"%V\", expected "
                                   "zone=NAME:SIZE", &value[i]);
                return NGX_CONF_ERROR;
            }

            name.data = val.data;
            name.len = p - val.data;

            s.data = p + 1;
            s.len = val.data + val.len - s.data;

            size = ngx_parse_size(&s);
            if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small or invalid, "
                                   "at least %uz bytes",
                                   &value[i], 8 * ngx_pagesize);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "ttl", &val)) {
            if (ngx_http_gpugate_conf_sec(cf, &value[i], &val, 0, &amcf->ttl)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "negative_ttl", &val)) {
            if (ngx_http_gpugate_conf_sec(cf, &value[i], &val, 0,
                                           &amcf->negative_ttl)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "negative_max", &val)) {
            negative_max = ngx_atoi(val.data, val.len);
            if (negative_max == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\", expected a number",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "stale", &val)) {
            if (ngx_http_gpugate_conf_sec(cf, &value[i], &val, 0, &amcf->stale)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        return "needs zone=NAME:SIZE";
    }

    if (amcf->ttl < 1) {
        return "needs ttl of at least 1s";
    }

    /*
     * By default refused keys may take a quarter of the zone (a refused
     * entry fits a 256-byte slab chunk), the rest is for valid keys.
     */

    if (negative_max == NGX_CONF_UNSET) {
        negative_max = ngx_max(size / 4 / 256, 16);
    }

    amcf->zone = ngx_http_gpugate_auth_cache_zone(cf, &name, size,
                                               negative_max,
                                               &ngx_http_gpugate_auth_module);
    if (amcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_auth_postgres(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_gpugate_auth_main_conf_t *amcf = conf;

    char                     *errmsg;
    ngx_int_t                 n;
    ngx_str_t                *value, val, ci;
    ngx_uint_t                i, numeric;
    PQconninfoOption         *opts, *o;
    struct sockaddr_storage   sa;

    if (amcf->pg.conninfo.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    amcf->pg.connections = 2;
    amcf->pg.timeout = 3000;
    amcf->pg.backoff_max = 10000;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_http_gpugate_conf_param(&value[i], "connections", &val)) {
            n = ngx_atoi(val.data, val.len);
            if (n < 1 || n > 64) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\", expected 1..64",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
            amcf->pg.connections = n;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "timeout", &val)) {
            if (ngx_http_gpugate_conf_msec(cf, &value[i], &val, 1,
                                           &amcf->pg.timeout)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    /* libpq wants a C string */

    ci.len = value[1].len;
    ci.data = ngx_pnalloc(cf->pool, ci.len + 1);
    if (ci.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(ci.data, value[1].data, ci.len);
    ci.data[ci.len] = '\0';

    errmsg = NULL;
    opts = PQconninfoParse((char *) ci.data, &errmsg);

    if (opts == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid PostgreSQL conninfo: %s",
                           errmsg ? errmsg : "out of memory");
        PQfreemem(errmsg);
        return NGX_CONF_ERROR;
    }

    /*
     * PQconnectStart() resolves a host name with a blocking getaddrinfo()
     * inside the worker: only numeric addresses (or hostaddr=, or a unix
     * socket directory) are accepted, so the event loop never waits on DNS.
     */

    numeric = 1;

    for (o = opts; o->keyword; o++) {
        if (ngx_strcmp(o->keyword, "hostaddr") == 0 && o->val && *o->val) {
            numeric = 2;
            break;
        }
    }

    for (o = opts; numeric == 1 && o->keyword; o++) {
        if (ngx_strcmp(o->keyword, "host") != 0 || o->val == NULL
            || *o->val == '\0' || *o->val == '/')
        {
            continue;
        }

        if (inet_pton(AF_INET, o->val, &sa) != 1
            && inet_pton(AF_INET6, o->val, &sa) != 1)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "PostgreSQL host \"%s\" is not a numeric "
                               "address: use an IP address or add hostaddr= "
                               "so that workers never block on DNS",
                               o->val);
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }
    }

    PQconninfoFree(opts);

    amcf->pg.conninfo = ci;

    return NGX_CONF_OK;
}


/*
 * Reads a secret (the Redis password, the entries' HMAC key) from a file:
 * secrets stay out of nginx.conf and out of argv.  One trailing newline is
 * not part of it.
 */

static char *
ngx_http_gpugate_auth_read_secret(ngx_conf_t *cf, ngx_str_t *name,
    const char *what, size_t min, ngx_str_t *out)
{
    ssize_t          n;
    ngx_str_t        path;
    ngx_file_t       file;
    ngx_file_info_t  fi;
    u_char           buf[1024];

    path = *name;
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = path;
    file.log = cf->log;
    file.fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &path);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) != NGX_FILE_ERROR
        && (fi.st_mode & (S_IRWXG|S_IRWXO)))
    {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "%s file \"%V\" is readable by group or others: "
                           "chmod 600 it", what, &path);
    }

    n = ngx_read_file(&file, buf, sizeof(buf), 0);
    ngx_close_file(file.fd);

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    if (n == 0 || n == (ssize_t) sizeof(buf) || (size_t) n < min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s file \"%V\" is empty, too short (under %uz "
                           "bytes) or too long", what, &path, min);
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_CONF_ERROR;
    }

    out->len = n;
    out->data = ngx_pnalloc(cf->pool, n);

    if (out->data != NULL) {
        ngx_memcpy(out->data, buf, n);
    }

    ngx_explicit_memzero(buf, sizeof(buf));

    return out->data ? NGX_CONF_OK : NGX_CONF_ERROR;
}


static char *
ngx_http_gpugate_auth_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_auth_main_conf_t *amcf = conf;

    ngx_int_t    db;
    ngx_str_t   *value, val;
    ngx_uint_t   i;
    ngx_url_t    u;

    if (amcf->redis.addr) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 6379;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid Redis address \"%V\"%s%s: a numeric "
                           "ADDRESS:PORT is required", &value[1],
                           u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    amcf->redis.addr = &u.addrs[0];
    amcf->redis.timeout = 500;
    amcf->redis.backoff_max = 10000;
    amcf->redis.ping = 10000;
    ngx_str_set(&amcf->redis.channel, "gpugate:invalidate");

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_http_gpugate_conf_param(&value[i], "db", &val)) {
            db = ngx_atoi(val.data, val.len);
            if (db == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
            amcf->redis.db = db;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "timeout", &val)) {
            if (ngx_http_gpugate_conf_msec(cf, &value[i], &val, 1,
                                           &amcf->redis.timeout)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "ttl", &val)) {
            if (ngx_http_gpugate_conf_sec(cf, &value[i], &val, 0,
                                           &amcf->redis_ttl)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "channel", &val)) {
            amcf->redis.channel = val;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "password_file", &val)) {
            if (ngx_http_gpugate_auth_read_secret(cf, &val, "Redis password",
                                                  1, &amcf->redis.password)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "secret_file", &val)) {
            if (ngx_http_gpugate_auth_read_secret(cf, &val, "Redis entry "
                                                  "secret", 16, &amcf->secret)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (amcf->secret.len == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "gpugate_auth_redis without secret_file=: key "
                           "entries in Redis are trusted unsigned, so "
                           "whoever can write to Redis can make any key "
                           "valid");
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_gpugate_auth_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt                *h;
    ngx_http_core_main_conf_t          *cmcf;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_auth_module);

    if (!amcf->used) {
        return NGX_OK;
    }

    if (amcf->zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"gpugate_auth on\" needs \"gpugate_auth_zone\"");
        return NGX_ERROR;
    }

    if (amcf->pg.conninfo.len == 0 && amcf->redis.addr == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"gpugate_auth on\" needs "
                           "\"gpugate_auth_postgres\" (and optionally "
                           "\"gpugate_auth_redis\")");
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_gpugate_auth_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_auth_init_process(ngx_cycle_t *cycle)
{
    ngx_http_conf_ctx_t                *ctx;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    /* cache manager and loader processes serve no requests */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ctx = (ngx_http_conf_ctx_t *) ngx_get_conf(cycle->conf_ctx,
                                               ngx_http_module);
    if (ctx == NULL) {
        return NGX_OK;
    }

    amcf = ctx->main_conf[ngx_http_gpugate_auth_module.ctx_index];

    if (amcf == NULL || !amcf->used) {
        return NGX_OK;
    }

    return ngx_http_gpugate_auth_init_worker(cycle, amcf);
}


static void
ngx_http_gpugate_auth_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_auth_exit_worker();
}


ngx_int_t
ngx_http_gpugate_auth_counts(ngx_http_gpugate_auth_counts_t *out)
{
    ngx_http_gpugate_auth_stats_t      *st;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_gpugate_auth_module);

    if (amcf == NULL || amcf->zone == NULL || amcf->zone->data == NULL) {
        return NGX_DECLINED;
    }

    st = ngx_http_gpugate_auth_cache_stats(amcf->zone);

    out->shm_hits = st->shm_hits;
    out->redis_hits = st->redis_hits;
    out->pg_hits = st->pg_hits;
    out->stale = st->stale;
    out->unavailable = st->unavailable;
    out->invalidated = st->invalidated;
    out->evicted = st->evicted;

    return NGX_OK;
}


/*
 * The tunnel reads agent verifiers through this pool: its statements are
 * prepared on the same connections, so a worker keeps one set of
 * PostgreSQL connections whatever uses them.
 */

ngx_int_t
ngx_http_gpugate_auth_pg_share(ngx_conf_t *cf,
    ngx_http_gpugate_pg_stmt_t *stmts, ngx_uint_t n)
{
    ngx_http_gpugate_pg_stmt_t         *stmt;
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_auth_module);

    if (amcf->pg.conninfo.len == 0) {
        return NGX_DECLINED;
    }

    stmt = ngx_array_push_n(&amcf->pg.statements, n);
    if (stmt == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(stmt, stmts, n * sizeof(ngx_http_gpugate_pg_stmt_t));

    /* the pool starts in a worker only when someone uses it */
    amcf->used = 1;

    return NGX_OK;
}


time_t
ngx_http_gpugate_auth_lifetime(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_auth_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_gpugate_auth_module);

    return amcf->ttl + amcf->stale;
}
