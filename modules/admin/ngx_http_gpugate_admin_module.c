
/*
 * Copyright (C) gpugate authors
 *
 * The admin API: "gpugate_admin;" in a location makes it the API's root
 * (/admin/v1/ in the demo).  Each route is one PostgreSQL function of
 * sql/004_admin.sql, called as one statement through the auth module's
 * non-blocking pool: the function checks the admin credential's digest
 * and role, makes the change and writes the audit row in one transaction,
 * and answers the status, the JSON body and the cache invalidations this
 * module then sends to Redis (DEL and PUBLISH, as gpugate-keys does)
 * before the client gets its answer.  The credential itself never leaves
 * this worker: only its SHA-256 digest goes to PostgreSQL.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_auth_api.h"
#include "gpugate_apikey.h"
#include "gpugate_utf8.h"
#include "gpugate_base64.h"
#include "gpugate_scram.h"
#include "ngx_http_gpugate_tunnel_api.h"


/* a bearer credential longer than this is refused before any lookup */
#define NGX_HTTP_GPUGATE_ADMIN_CRED_MAX  256

/* the largest request body the API reads */
#define NGX_HTTP_GPUGATE_ADMIN_BODY_MAX  65536

/* random characters of a new key, as gpugate-keys makes them */
#define NGX_HTTP_GPUGATE_ADMIN_KEY_BODY  40

/* random characters of a new agent token, as gpugate-keys makes them */
#define NGX_HTTP_GPUGATE_ADMIN_TOKEN_BODY  48

/* the SCRAM iteration count of new agent verifiers (gpugate-keys' too) */
#define NGX_HTTP_GPUGATE_ADMIN_SCRAM_ITER  4096

/* the SCRAM salt length of new agent verifiers */
#define NGX_HTTP_GPUGATE_ADMIN_SALT_LEN    16

/*
 * The function's "arg": an id of the path, "HEX64 PREFIX12" for a key's
 * creation, "SALT_B64 ITER HEX64 HEX64" for an agent's.
 */
#define NGX_HTTP_GPUGATE_ADMIN_ARG_MAX     192

/* what a created secret is shown as */
typedef enum {
    NGX_HTTP_GPUGATE_ADMIN_NO_SECRET = 0,
    NGX_HTTP_GPUGATE_ADMIN_API_KEY,          /* "key": sk-gg-... */
    NGX_HTTP_GPUGATE_ADMIN_AGENT_TOKEN       /* "token": gga-... */
} ngx_http_gpugate_admin_secret_e;


typedef struct {
    ngx_flag_t                    used;      /* a location has
                                                "gpugate_admin" */
} ngx_http_gpugate_admin_main_conf_t;


/* one route: a family ("keys"), with or without an id, and a method */
typedef struct {
    ngx_str_t                     family;    /* first path segment */
    ngx_str_t                     action;    /* "family/{id}/action",
                                                empty: none */
    unsigned                      with_id:1; /* "family/{id}" */
    unsigned                      live:1;    /* the input carries this
                                                node's tunnel status */
    unsigned                      secret:2;  /* a POST that makes a key
                                                or a token: ..._secret_e */
    ngx_uint_t                    method;    /* NGX_HTTP_GET, ... */
    ngx_http_gpugate_pg_stmt_t    stmt;      /* the route's function */
    unsigned                      text_id:1; /* the id is a batch's or a
                                                job's ("batch_..."), not
                                                a whole number */
} ngx_http_gpugate_admin_route_t;


/*
 * One API call.  Heap memory, not the request's pool: PostgreSQL and
 * Redis may answer after the client went away, and this must outlive
 * the request until the last of them has (see "busy").
 */
typedef struct {
    ngx_http_request_t           *request;   /* NULL once it is finalized
                                                or freed */
    ngx_http_gpugate_admin_route_t *route;   /* what is asked */
    ngx_http_gpugate_pg_query_t   query;     /* the route's statement */
    ngx_uint_t                    busy;      /* callbacks still to come
                                                (query, Redis replies) */
    ngx_uint_t                    status;    /* the answer's status */
    ngx_str_t                     body;      /* the answer (request pool) */
    ngx_uint_t                    redis_failed; /* an invalidation was not
                                                   confirmed */
    u_char                        digest[SHA256_DIGEST_LENGTH];
                                             /* of the admin credential */
    u_char                        client[NGX_SOCKADDR_STRLEN + 1];
                                             /* "from where", for the
                                                audit row */
    u_char                        arg[NGX_HTTP_GPUGATE_ADMIN_ARG_MAX];
                                             /* the id of the path, or the
                                                new key's digest */
    u_char                        key[64];   /* a new key or agent token,
                                                shown once; "" otherwise */
    char                         *input;     /* JSON for the function
                                                (malloc), NULL: none */
} ngx_http_gpugate_admin_op_t;


static ngx_http_gpugate_admin_route_t *ngx_http_gpugate_admin_find(
    ngx_http_request_t *r, ngx_str_t *id, ngx_int_t *rc);
static ngx_int_t ngx_http_gpugate_admin_handler(ngx_http_request_t *r);
static void ngx_http_gpugate_admin_body_read(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_admin_start(ngx_http_request_t *r,
    ngx_http_gpugate_admin_op_t *op);
static ngx_int_t ngx_http_gpugate_admin_query_args(ngx_http_request_t *r,
    ngx_http_gpugate_admin_op_t *op);
static ngx_int_t ngx_http_gpugate_admin_random(u_char *p, size_t n);
static ngx_int_t ngx_http_gpugate_admin_new_secret(
    ngx_http_gpugate_admin_op_t *op);
static void ngx_http_gpugate_admin_pg_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error);
static void ngx_http_gpugate_admin_invalidate(
    ngx_http_gpugate_admin_op_t *op, char *inval);
static void ngx_http_gpugate_admin_redis_done(void *data,
    redisReply *reply, const char *error);
static void ngx_http_gpugate_admin_respond(ngx_http_gpugate_admin_op_t *op);
static void ngx_http_gpugate_admin_release(ngx_http_gpugate_admin_op_t *op);
static void ngx_http_gpugate_admin_cleanup(void *data);
static ngx_int_t ngx_http_gpugate_admin_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, const char *code, const char *msg);
static void *ngx_http_gpugate_admin_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_admin(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gpugate_admin_init(ngx_conf_t *cf);


#define ngx_http_gpugate_admin_stmt(fn)                                     \
    { fn, "SELECT status, body_out, inval FROM " fn "($1, $2, $3, $4)", 4 }


static ngx_http_gpugate_admin_route_t  ngx_http_gpugate_admin_routes[] = {

    { ngx_string("keys"), ngx_null_string, 0, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_keys_list"), 0 },

    { ngx_string("keys"), ngx_null_string, 0, 0,
      NGX_HTTP_GPUGATE_ADMIN_API_KEY,
      NGX_HTTP_POST,
      ngx_http_gpugate_admin_stmt("gpugate_admin_keys_create"), 0 },

    { ngx_string("keys"), ngx_null_string, 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_keys_get"), 0 },

    { ngx_string("keys"), ngx_null_string, 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_PATCH,
      ngx_http_gpugate_admin_stmt("gpugate_admin_keys_patch"), 0 },

    { ngx_string("keys"), ngx_null_string, 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_DELETE,
      ngx_http_gpugate_admin_stmt("gpugate_admin_keys_delete"), 0 },

    { ngx_string("tenants"), ngx_null_string, 0, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_tenants_list"), 0 },

    { ngx_string("tenants"), ngx_null_string, 0, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_POST,
      ngx_http_gpugate_admin_stmt("gpugate_admin_tenants_create"), 0 },

    { ngx_string("tenants"), ngx_null_string, 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_tenants_get"), 0 },

    { ngx_string("tenants"), ngx_null_string, 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_PATCH,
      ngx_http_gpugate_admin_stmt("gpugate_admin_tenants_patch"), 0 },

    { ngx_string("agents"), ngx_null_string, 0, 1,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_agents_list"), 0 },

    { ngx_string("agents"), ngx_null_string, 0, 0,
      NGX_HTTP_GPUGATE_ADMIN_AGENT_TOKEN,
      NGX_HTTP_POST,
      ngx_http_gpugate_admin_stmt("gpugate_admin_agents_create"), 0 },

    { ngx_string("agents"), ngx_null_string, 1, 1,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_agents_get"), 0 },

    { ngx_string("agents"), ngx_null_string, 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_DELETE,
      ngx_http_gpugate_admin_stmt("gpugate_admin_agents_delete"), 0 },

    { ngx_string("usage"), ngx_null_string, 0, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_usage"), 0 },

    { ngx_string("keys"), ngx_string("rotate"), 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_API_KEY,
      NGX_HTTP_POST,
      ngx_http_gpugate_admin_stmt("gpugate_admin_keys_rotate"), 0 },

    /* sql/006_drain.sql */

    { ngx_string("whoami"), ngx_null_string, 0, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_whoami"), 0 },

    { ngx_string("agents"), ngx_string("drain"), 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_POST,
      ngx_http_gpugate_admin_stmt("gpugate_admin_agents_drain"), 0 },

    { ngx_string("agents"), ngx_string("drain"), 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_DELETE,
      ngx_http_gpugate_admin_stmt("gpugate_admin_agents_undrain"), 0 },

    /* sql/010_batch_files.sql: every tenant's batches and jobs */

    { ngx_string("batches"), ngx_null_string, 0, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_batches_list"), 0 },

    { ngx_string("batches"), ngx_null_string, 1, 0,
      NGX_HTTP_GPUGATE_ADMIN_NO_SECRET,
      NGX_HTTP_GET,
      ngx_http_gpugate_admin_stmt("gpugate_admin_batches_get"), 1 },

    { ngx_null_string, ngx_null_string, 0, 0, 0, 0, { NULL, NULL, 0 }, 0 }
};


static ngx_command_t  ngx_http_gpugate_admin_commands[] = {

    { ngx_string("gpugate_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_gpugate_admin,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gpugate_admin_module_ctx = {
    NULL,                                    /* preconfiguration */
    ngx_http_gpugate_admin_init,             /* postconfiguration */

    ngx_http_gpugate_admin_create_main_conf, /* create main configuration */
    NULL,                                    /* init main configuration */

    NULL,                                    /* create server configuration */
    NULL,                                    /* merge server configuration */

    NULL,                                    /* create location configuration */
    NULL                                     /* merge location configuration */
};


ngx_module_t  ngx_http_gpugate_admin_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_admin_module_ctx,      /* module context */
    ngx_http_gpugate_admin_commands,         /* module directives */
    NGX_HTTP_MODULE,                         /* module type */
    NULL,                                    /* init master */
    NULL,                                    /* init module */
    NULL,                                    /* init process */
    NULL,                                    /* init thread */
    NULL,                                    /* exit thread */
    NULL,                                    /* exit process */
    NULL,                                    /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * The route of the path below the location ("keys", "keys/{id}") and the
 * method; NULL with the error answer's code in "rc" when there is none.
 */

static ngx_http_gpugate_admin_route_t *
ngx_http_gpugate_admin_find(ngx_http_request_t *r, ngx_str_t *id,
    ngx_int_t *rc)
{
    u_char                          *p, *last;
    ngx_str_t                        family, action;
    ngx_uint_t                       allowed, digits;
    ngx_http_core_loc_conf_t        *clcf;
    ngx_http_gpugate_admin_route_t  *rt, *found;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data + ngx_min(clcf->name.len, r->uri.len);
    last = r->uri.data + r->uri.len;

    while (p < last && *p == '/') {
        p++;
    }

    family.data = p;
    while (p < last && *p != '/') {
        p++;
    }
    family.len = p - family.data;

    id->data = NULL;
    id->len = 0;
    ngx_str_null(&action);

    digits = 1;

    if (p < last) {
        id->data = ++p;

        /* a batch's id is "batch_" and hex: routes that take none refuse */
        while (p < last
               && (isalnum(*p) || *p == '_' || *p == '-'))
        {
            digits &= (*p >= '0' && *p <= '9');
            p++;
        }
        id->len = p - id->data;

        action.data = (p < last && *p == '/') ? p + 1 : last;
        action.len = last - action.data;

        if ((p != last && action.len == 0) || id->len == 0 || id->len > 64
            || (digits && id->len > 18))
        {
            *rc = ngx_http_gpugate_admin_error(r, NGX_HTTP_NOT_FOUND,
                      NGX_HTTP_GPUGATE_ERR_NOT_FOUND, "not_found",
                      "no such admin route (an id is a whole number)");
            return NULL;
        }
    }

    found = NULL;
    allowed = 0;

    for (rt = ngx_http_gpugate_admin_routes; rt->family.len; rt++) {
        if (rt->family.len != family.len
            || ngx_strncmp(rt->family.data, family.data, family.len) != 0
            || rt->with_id != (id->data != NULL)
            || (id->data && !digits && !rt->text_id)
            || rt->action.len != action.len
            || (action.len
                && ngx_strncmp(rt->action.data, action.data, action.len)
                   != 0))
        {
            continue;
        }

        allowed |= rt->method;

        if (rt->method == r->method) {
            found = rt;
        }
    }

    if (allowed == 0) {
        *rc = ngx_http_gpugate_admin_error(r, NGX_HTTP_NOT_FOUND,
                  NGX_HTTP_GPUGATE_ERR_NOT_FOUND, "not_found",
                  digits ? "no such admin route"
                         : "no such admin route (an id is a whole number)");
        return NULL;
    }

    if (found == NULL) {
        *rc = ngx_http_gpugate_admin_error(r, NGX_HTTP_NOT_ALLOWED,
                  NGX_HTTP_GPUGATE_ERR_INVALID, "method_not_allowed",
                  "this method is not allowed on this admin route");
        return NULL;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate admin: %V %V%s", &r->method_name, &family,
                   id->data ? "/{id}" : "");

    return found;
}


static ngx_int_t
ngx_http_gpugate_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        id, cred;
    ngx_pool_cleanup_t              *cln;
    ngx_http_gpugate_admin_op_t     *op;
    ngx_http_gpugate_admin_route_t  *found;

    found = ngx_http_gpugate_admin_find(r, &id, &rc);
    if (found == NULL) {
        return rc;
    }

    /* the credential: "Authorization: Bearer ..."; never logged */
    if (r->headers_in.authorization == NULL
        || r->headers_in.authorization->value.len <= sizeof("Bearer ") - 1
        || ngx_strncasecmp(r->headers_in.authorization->value.data,
                           (u_char *) "Bearer ", sizeof("Bearer ") - 1)
           != 0)
    {
        return ngx_http_gpugate_admin_error(r, NGX_HTTP_UNAUTHORIZED,
                   NGX_HTTP_GPUGATE_ERR_INVALID, "missing_api_key",
                   "an admin credential is required "
                   "(Authorization: Bearer ...)");
    }

    cred.data = r->headers_in.authorization->value.data
                + sizeof("Bearer ") - 1;
    cred.len = r->headers_in.authorization->value.len
               - (sizeof("Bearer ") - 1);

    if (cred.len > NGX_HTTP_GPUGATE_ADMIN_CRED_MAX) {
        return ngx_http_gpugate_admin_error(r, NGX_HTTP_UNAUTHORIZED,
                   NGX_HTTP_GPUGATE_ERR_INVALID, "invalid_api_key",
                   "invalid admin credential");
    }

    if (ngx_http_gpugate_auth_pg() == NULL) {
        return ngx_http_gpugate_admin_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE,
                   NGX_HTTP_GPUGATE_ERR_SERVER, "admin_unavailable",
                   "the admin API has no database in this worker");
    }

    op = ngx_calloc(sizeof(ngx_http_gpugate_admin_op_t),
                    r->connection->log);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(op);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_gpugate_admin_cleanup;
    cln->data = op;

    op->request = r;
    op->route = found;

    SHA256(cred.data, cred.len, op->digest);

    (void) ngx_cpystrn(op->client, r->connection->addr_text.data,
                       ngx_min(r->connection->addr_text.len + 1,
                               sizeof(op->client)));

    if (id.data) {
        ngx_memcpy(op->arg, id.data, id.len);
    }

    /*
     * whoami asked by auth_request guards the console's /status and
     * /metrics, which show every tenant's agents: "auth" makes it refuse
     * a tenant admin (sql/011_tenant_admins.sql)
     */
    if (r != r->main && found->family.len == sizeof("whoami") - 1
        && ngx_strncmp(found->family.data, "whoami", found->family.len)
           == 0)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "gpugate admin: whoami for a subrequest: "
                       "operators only");
        (void) ngx_cpystrn(op->arg, (u_char *) "auth", sizeof(op->arg));
    }

    if (r->method & (NGX_HTTP_POST|NGX_HTTP_PATCH)) {
        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                 ngx_http_gpugate_admin_body_read);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (found->method == NGX_HTTP_GET && (id.data == NULL || found->live)) {
        rc = ngx_http_gpugate_admin_query_args(r, op);

        /* no input: the 400 was sent, and "rc" is how that went */
        if (rc != NGX_OK || op->input == NULL) {
            return rc;
        }
    }

    rc = ngx_http_gpugate_admin_start(r, op);
    if (rc != NGX_OK) {
        return rc;
    }

    r->main->count++;

    return NGX_DONE;
}


/* POST and PATCH: the JSON body is the function's input as it is */

static void
ngx_http_gpugate_admin_body_read(ngx_http_request_t *r)
{
    size_t                        len;
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_chain_t                  *cl;
    ngx_pool_cleanup_t           *cln;
    ngx_http_gpugate_admin_op_t  *op;

    op = NULL;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_gpugate_admin_cleanup) {
            op = cln->data;
            break;
        }
    }

    if (op == NULL || r->request_body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {

        /*
         * "Content-Length: 0" (a browser's POST without a body) leaves an
         * empty last_buf, in neither memory nor a file
         */
        if (ngx_buf_special(cl->buf)) {
            continue;
        }

        if (!ngx_buf_in_memory(cl->buf)) {
            len = NGX_HTTP_GPUGATE_ADMIN_BODY_MAX + 1;
            break;
        }

        len += ngx_buf_size(cl->buf);
    }

    if (len > NGX_HTTP_GPUGATE_ADMIN_BODY_MAX) {
        ngx_http_finalize_request(r, ngx_http_gpugate_admin_error(r,
            NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, NGX_HTTP_GPUGATE_ERR_INVALID,
            "body_too_large", "the request body is larger than 64 KiB or "
            "than client_body_buffer_size"));
        return;
    }

    op->input = ngx_alloc(len + 1, r->connection->log);
    if (op->input == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = (u_char *) op->input;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (!ngx_buf_special(cl->buf)) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    *p = '\0';

    /*
     * A NUL would cut the text parameter short, and PostgreSQL refuses a
     * parameter that is not UTF-8 as a failed query: both are the
     * client's mistake, answered as such.
     */
    if (ngx_strlen(op->input) != len
        || !gpugate_utf8_valid((u_char *) op->input, len))
    {
        ngx_http_finalize_request(r, ngx_http_gpugate_admin_error(r,
            NGX_HTTP_BAD_REQUEST, NGX_HTTP_GPUGATE_ERR_INVALID,
            "invalid_value", "the request body is not valid JSON"));
        return;
    }

    if (op->route->secret
        && ngx_http_gpugate_admin_new_secret(op) != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_gpugate_admin_start(r, op);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * GET of a list: ?tenant=&limit=&after= become the function's JSON input
 * (jansson escapes them; a value that is not UTF-8 is refused).
 */

static ngx_int_t
ngx_http_gpugate_admin_query_args(ngx_http_request_t *r,
    ngx_http_gpugate_admin_op_t *op)
{
    json_t     *obj, *live;
    ngx_int_t   rc;
    ngx_buf_t  *b;

    static const char *const  names[] = { "tenant", "limit", "after",
                                           "from", "to", "group", "bucket",
                                           "offset" };

    rc = ngx_http_gpugate_query_json(r, names,
                                     sizeof(names) / sizeof(names[0]), &obj);

    if (rc == NGX_DECLINED) {
        return ngx_http_gpugate_admin_error(r, NGX_HTTP_BAD_REQUEST,
                   NGX_HTTP_GPUGATE_ERR_INVALID, "invalid_value",
                   "a query parameter is not valid UTF-8 "
                   "or holds a NUL byte (%00)");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* this node's tunnel status: whether each agent is connected here */
    if (op->route->live
        && ngx_http_gpugate_tunnel_status_json(r->pool, &b) == NGX_OK
        && b != NULL)
    {
        live = json_loadb((const char *) b->pos, b->last - b->pos, 0, NULL);

        if (live == NULL || json_object_set_new(obj, "live", live) != 0) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "gpugate admin: the tunnel status is not JSON; "
                          "agents listed without their live state");
        }
    }

    op->input = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);

    return op->input ? NGX_OK : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * "n" random characters of 62 into "p", each byte drawn until it falls in
 * the 248 values that map evenly onto them.
 */

static ngx_int_t
ngx_http_gpugate_admin_random(u_char *p, size_t n)
{
    u_char      *last, rnd[64];
    ngx_uint_t   i;

    static const u_char  alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    last = p + n;

    while (p < last) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            return NGX_ERROR;
        }

        for (i = 0; i < sizeof(rnd) && p < last; i++) {
            if (rnd[i] < 248) {
                *p++ = alnum[rnd[i] % 62];
            }
        }
    }

    *p = '\0';

    return NGX_OK;
}


/*
 * A new key or agent token, made here so that only its digest or SCRAM
 * verifier reaches PostgreSQL (and the audit row); the client sees it in
 * the answer, once.  The verifier's 4096 PBKDF2 rounds cost about a
 * millisecond of this worker's time, once per agent created by an admin.
 */

static ngx_int_t
ngx_http_gpugate_admin_new_secret(ngx_http_gpugate_admin_op_t *op)
{
    u_char  *p, *arg, hex[SHA256_DIGEST_LENGTH * 2];
    u_char   digest[SHA256_DIGEST_LENGTH];
    u_char   salt[NGX_HTTP_GPUGATE_ADMIN_SALT_LEN];
    u_char   stored[GPUGATE_SCRAM_KEY_LEN], server[GPUGATE_SCRAM_KEY_LEN];

    if (op->route->secret == NGX_HTTP_GPUGATE_ADMIN_API_KEY) {
        p = ngx_cpymem(op->key, GPUGATE_APIKEY_TAG, GPUGATE_APIKEY_TAG_LEN);
        arg = op->arg + ngx_strlen(op->arg);

        /* a rotation: "ID HEX64 PREFIX12" */
        if (arg != op->arg) {
            *arg++ = ' ';
        }

        if (ngx_http_gpugate_admin_random(p, NGX_HTTP_GPUGATE_ADMIN_KEY_BODY)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        SHA256(op->key, ngx_strlen(op->key), digest);
        gpugate_digest_hex(digest, hex);

        p = ngx_cpymem(arg, hex, sizeof(hex));
        *p++ = ' ';
        p = ngx_cpymem(p, op->key, GPUGATE_APIKEY_PREFIX_LEN);
        *p = '\0';

        return NGX_OK;
    }

    p = ngx_cpymem(op->key, "gga-", 4);

    if (ngx_http_gpugate_admin_random(p, NGX_HTTP_GPUGATE_ADMIN_TOKEN_BODY)
            != NGX_OK
        || RAND_bytes(salt, sizeof(salt)) != 1
        || gpugate_scram_make_verifier(op->key, ngx_strlen(op->key), salt,
                                       sizeof(salt),
                                       NGX_HTTP_GPUGATE_ADMIN_SCRAM_ITER,
                                       stored, server)
           != GPUGATE_SCRAM_OK)
    {
        return NGX_ERROR;
    }

    p = op->arg;
    p += gpugate_base64_encode(salt, sizeof(salt), (char *) p);
    p = ngx_sprintf(p, " %d ", NGX_HTTP_GPUGATE_ADMIN_SCRAM_ITER);
    gpugate_digest_hex(stored, p);
    p += GPUGATE_SCRAM_KEY_LEN * 2;
    *p++ = ' ';
    gpugate_digest_hex(server, p);
    p += GPUGATE_SCRAM_KEY_LEN * 2;
    *p = '\0';

    ngx_explicit_memzero(stored, sizeof(stored));
    ngx_explicit_memzero(server, sizeof(server));

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_admin_start(ngx_http_request_t *r,
    ngx_http_gpugate_admin_op_t *op)
{
    ngx_int_t                     rc;
    ngx_http_gpugate_pg_t        *pg;
    ngx_http_gpugate_pg_query_t  *q;

    pg = ngx_http_gpugate_auth_pg();
    q = &op->query;

    q->stmt = op->route->stmt.name;
    q->nparams = 4;
    q->values[0] = (const char *) op->digest;
    q->lengths[0] = sizeof(op->digest);
    q->formats[0] = 1;
    q->values[1] = (const char *) op->client;
    q->values[2] = (const char *) op->arg;
    q->values[3] = op->input ? op->input : "";
    q->deadline = 0;
    q->handler = ngx_http_gpugate_admin_pg_done;
    q->data = op;

    rc = ngx_http_gpugate_pg_run(pg, q);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate admin: PostgreSQL is %s, %s refused",
                      ngx_http_gpugate_pg_state(pg), op->route->stmt.name);

        return ngx_http_gpugate_admin_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE,
                   NGX_HTTP_GPUGATE_ERR_SERVER, "database_unavailable",
                   "the admin API's database is unreachable; nothing was "
                   "changed");
    }

    op->busy++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate admin: %s queued", op->route->stmt.name);

    return NGX_OK;
}


static void
ngx_http_gpugate_admin_pg_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error)
{
    ngx_http_gpugate_admin_op_t *op = q->data;

    char                *body, *inval;
    size_t               len, klen;
    const char          *name;
    u_char              *p;
    ngx_int_t            status;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    op->busy--;
    r = op->request;

    if (r == NULL) {
        /* the client left; a change was made all the same */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate admin: %s answered after the request ended",
                       op->route->stmt.name);
        ngx_http_gpugate_admin_release(op);
        return;
    }

    if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 3) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate admin: %s failed: %s (is sql/004_admin.sql "
                      "applied?)", op->route->stmt.name,
                      error ? error : "unexpected result");

        c = r->connection;
        ngx_http_finalize_request(r, ngx_http_gpugate_admin_error(r,
            NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_GPUGATE_ERR_SERVER,
            "database_error", "the admin API's database did not answer; "
            "the change may or may not be made: read it back"));
        ngx_http_run_posted_requests(c);
        return;
    }

    status = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                      PQgetlength(res, 0, 0));
    body = PQgetvalue(res, 0, 1);
    len = PQgetlength(res, 0, 1);
    inval = PQgetvalue(res, 0, 2);

    if (status < 200 || status > 599) {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a created secret is shown here, once: {"key":"sk-gg-...", ...} */
    name = (op->route->secret == NGX_HTTP_GPUGATE_ADMIN_API_KEY) ? "key"
                                                                  : "token";
    klen = (status == NGX_HTTP_CREATED && op->key[0]
            && len > 1 && body[0] == '{')
           ? sizeof("{\"\":\"\",") - 1 + ngx_strlen(name)
             + ngx_strlen(op->key)
           : 0;

    op->body.data = ngx_pnalloc(r->pool, len + klen + 1);
    if (op->body.data == NULL) {
        c = r->connection;
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    p = op->body.data;

    if (klen) {
        p = ngx_sprintf(p, "{\"%s\":\"%s\",", name, op->key);
        p = ngx_cpymem(p, body + 1, len - 1);

    } else {
        p = ngx_cpymem(p, body, len);
    }

    *p++ = '\n';
    op->body.len = p - op->body.data;
    op->status = status;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate admin: %s answered %i",
                   op->route->stmt.name, status);

    if (status == NGX_HTTP_UNAUTHORIZED || status == NGX_HTTP_FORBIDDEN) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "gpugate admin: %s refused (%i): %s credential",
                      op->route->stmt.name, status,
                      status == NGX_HTTP_FORBIDDEN ? "read-only"
                                                   : "unknown or revoked");
    }

    ngx_http_gpugate_admin_invalidate(op, inval);
}


/*
 * What the change makes stale, one message a line: "key <digest>" (the
 * Redis entry goes, then every gateway worker drops its copy), "del
 * <digest>" (the Redis entry only), "tenant <id>" (the message only).  The
 * answer waits for Redis, so that a client that got it knows every node
 * was told.
 */

static void
ngx_http_gpugate_admin_invalidate(ngx_http_gpugate_admin_op_t *op,
    char *inval)
{
    char                      *line, *next;
    u_char                     rkey[sizeof("gpugate:key:") - 1
                                    + SHA256_DIGEST_LENGTH * 2];
    size_t                     len, argvlen[3];
    ngx_str_t                  channel;
    const char                *argv[3];
    ngx_http_gpugate_redis_t  *rd;

    rd = ngx_http_gpugate_auth_redis_cmd(&channel);

    /* held while commands are issued, so that none responds early */
    op->busy++;

    for (line = inval; rd && *line; line = next) {
        next = strchr(line, '\n');
        len = next ? (size_t) (next - line) : ngx_strlen(line);
        next = next ? next + 1 : line + len;

        if (len == sizeof("key ") - 1 + SHA256_DIGEST_LENGTH * 2
            && (ngx_strncmp(line, "key ", 4) == 0
                || ngx_strncmp(line, "del ", 4) == 0))
        {
            ngx_memcpy(ngx_cpymem(rkey, "gpugate:key:", 12), line + 4,
                       SHA256_DIGEST_LENGTH * 2);

            argv[0] = "DEL";
            argvlen[0] = 3;
            argv[1] = (const char *) rkey;
            argvlen[1] = sizeof(rkey);

            op->busy++;

            if (ngx_http_gpugate_redis_command(rd,
                    ngx_http_gpugate_admin_redis_done, op, 2, argv, argvlen)
                != NGX_OK)
            {
                op->busy--;
                op->redis_failed = 1;
            }

            /* "del": the Redis entry only; a "tenant" message follows */
            if (line[0] == 'd') {
                continue;
            }
        }

        argv[0] = "PUBLISH";
        argvlen[0] = 7;
        argv[1] = (const char *) channel.data;
        argvlen[1] = channel.len;
        argv[2] = line;
        argvlen[2] = len;

        op->busy++;

        if (ngx_http_gpugate_redis_command(rd,
                ngx_http_gpugate_admin_redis_done, op, 3, argv, argvlen)
            != NGX_OK)
        {
            op->busy--;
            op->redis_failed = 1;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate admin: invalidating \"%*s\"", len, line);
    }

    op->busy--;

    if (op->busy == 0) {
        ngx_http_gpugate_admin_respond(op);
    }
}


static void
ngx_http_gpugate_admin_redis_done(void *data, redisReply *reply,
    const char *error)
{
    ngx_http_gpugate_admin_op_t *op = data;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        op->redis_failed = 1;
    }

    op->busy--;

    if (op->busy) {
        return;
    }

    if (op->request == NULL) {
        ngx_http_gpugate_admin_release(op);
        return;
    }

    ngx_http_gpugate_admin_respond(op);
}


/*
 * Called from PostgreSQL's or Redis' event, not the client's: a request
 * that is a subrequest (nginx's auth_request asking GET whoami for the
 * console's /status) wakes its parent through the posted requests, which
 * only the client connection's handler runs otherwise.
 */

static void
ngx_http_gpugate_admin_respond(ngx_http_gpugate_admin_op_t *op)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = op->request;
    c = r->connection;

    if (op->redis_failed) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate admin: %s: the change is made but its Redis "
                      "invalidation failed; gateways apply it within their "
                      "cache ttl", op->route->stmt.name);
    }

    ngx_http_finalize_request(r,
        ngx_http_gpugate_send_json(r, op->status, &op->body));
    ngx_http_run_posted_requests(c);
}


/* frees the call once the request is gone and nothing is pending */

static void
ngx_http_gpugate_admin_release(ngx_http_gpugate_admin_op_t *op)
{
    if (op->request || op->busy) {
        return;
    }

    if (op->input) {
        free(op->input);
    }

    ngx_explicit_memzero(op->key, sizeof(op->key));
    ngx_free(op);
}


static void
ngx_http_gpugate_admin_cleanup(void *data)
{
    ngx_http_gpugate_admin_op_t *op = data;

    op->request = NULL;
    ngx_http_gpugate_admin_release(op);
}


static ngx_int_t
ngx_http_gpugate_admin_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *code, const char *msg)
{
    ngx_http_gpugate_error_t  err;

    err.status = status;
    err.type = type;
    err.code = code;
    err.param = NULL;
    err.message.data = (u_char *) msg;
    err.message.len = ngx_strlen(msg);

    return ngx_http_gpugate_send_error(r, &err);
}


static void *
ngx_http_gpugate_admin_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_admin_main_conf_t));
}


static char *
ngx_http_gpugate_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_gpugate_admin_main_conf_t  *amcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_admin_module);

    if (clcf->handler == ngx_http_gpugate_admin_handler) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_gpugate_admin_handler;
    amcf->used = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_gpugate_admin_init(ngx_conf_t *cf)
{
    ngx_int_t                            rc;
    ngx_uint_t                           n;
    ngx_http_gpugate_pg_stmt_t           stmts[32];
    ngx_http_gpugate_admin_route_t      *rt;
    ngx_http_gpugate_admin_main_conf_t  *amcf;

    amcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_admin_module);

    if (!amcf->used) {
        return NGX_OK;
    }

    n = 0;

    for (rt = ngx_http_gpugate_admin_routes; rt->family.len; rt++) {
        stmts[n++] = rt->stmt;
    }

    rc = ngx_http_gpugate_auth_pg_share(cf, stmts, n);

    if (rc == NGX_DECLINED) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"gpugate_admin\" keeps its data in "
                           "PostgreSQL: \"gpugate_auth_postgres\" is "
                           "required");
        return NGX_ERROR;
    }

    return rc;
}
