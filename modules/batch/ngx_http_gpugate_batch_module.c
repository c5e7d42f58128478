
/*
 * Copyright (C) gpugate authors
 *
 * The batch module's directives and its API: "gpugate_batch_api;" in a
 * location serves /v1/files, /v1/batches and /v1/jobs below it for the
 * key that auth granted.  Each route is one PostgreSQL function of
 * sql/008_batch.sql, called as one statement through the auth module's
 * non-blocking pool, that reads and changes only that key's rows and
 * answers the status, the body and its type.  "gpugate_batch ADDR"
 * starts the runner (ngx_http_gpugate_batch_runner.c) and lets auth
 * trust the runner's requests (X-Gpugate-Batch with this node's secret).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_auth_api.h"
#include "ngx_http_gpugate_ledger_api.h"
#include "ngx_http_gpugate_batch.h"
#include "gpugate_apikey.h"
#include "gpugate_utf8.h"


/* an id of the path: "file-", "batch_", "job_" and 32 hex digits */
#define NGX_HTTP_GPUGATE_BATCH_ID_MAX   64

/* the largest JSON body of POST /v1/batches and /v1/jobs */
#define NGX_HTTP_GPUGATE_BATCH_BODY_MAX  (1024 * 1024)


/* one route: a family, with or without an id and an action, a method */
typedef struct {
    ngx_str_t                     family;    /* "files", "batches", "jobs" */
    ngx_str_t                     action;    /* after the id; "": none */
    unsigned                      with_id:1; /* "family/{id}" */
    unsigned                      upload:1;  /* POST /v1/files */
    unsigned                      body:1;    /* the JSON body is the
                                                function's input */
    unsigned                      list:1;    /* ?after=&limit= are */
    ngx_uint_t                    method;    /* NGX_HTTP_GET, ... */
    const char                   *input;     /* the input otherwise */
    ngx_http_gpugate_pg_stmt_t    stmt;      /* the route's function */
} ngx_http_gpugate_batch_route_t;


/*
 * One API call.  Heap memory, not the request's pool: PostgreSQL may
 * answer after the client went away, and this must outlive the request
 * until it has.
 */
typedef struct {
    ngx_http_request_t           *request;   /* NULL once the request is
                                                gone */
    ngx_http_gpugate_batch_route_t *route;   /* what is asked */
    ngx_http_gpugate_pg_query_t   query;     /* the route's statement */
    ngx_uint_t                    busy;      /* the query is pending */
    u_char                        kid[NGX_INT64_LEN + 1];
                                             /* the key id, as text */
    u_char                        tid[NGX_INT64_LEN + 1];
                                             /* its tenant's id */
    u_char                        arg[NGX_INT_T_LEN + 1
                                      + NGX_HTTP_GPUGATE_BATCH_ID_MAX + 1];
                                             /* the id of the path, or
                                                "SECONDS NAME" of an
                                                upload: its expires_after
                                                (0: none) and name */
    char                         *input;     /* the function's input
                                                (malloc), NULL: none */
} ngx_http_gpugate_batch_op_t;


static ngx_int_t ngx_http_gpugate_batch_handler(ngx_http_request_t *r);
static ngx_http_gpugate_batch_route_t *ngx_http_gpugate_batch_find(
    ngx_http_request_t *r, ngx_str_t *id, ngx_int_t *rc);
static void ngx_http_gpugate_batch_body_read(ngx_http_request_t *r);
static ngx_int_t ngx_http_gpugate_batch_json_body(ngx_http_request_t *r,
    ngx_http_gpugate_batch_op_t *op);
static ngx_int_t ngx_http_gpugate_batch_list_args(ngx_http_request_t *r,
    ngx_http_gpugate_batch_op_t *op);
static ngx_int_t ngx_http_gpugate_batch_start(ngx_http_request_t *r,
    ngx_http_gpugate_batch_op_t *op);
static void ngx_http_gpugate_batch_pg_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error);
static ngx_int_t ngx_http_gpugate_batch_send(ngx_http_request_t *r,
    ngx_uint_t status, const char *ctype, const char *body, size_t len);
static void ngx_http_gpugate_batch_release(ngx_http_gpugate_batch_op_t *op);
static void ngx_http_gpugate_batch_cleanup(void *data);
static ngx_int_t ngx_http_gpugate_batch_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, const char *code, const char *msg);
static ngx_int_t ngx_http_gpugate_batch_trusted(ngx_http_request_t *r,
    u_char *digest);
static ngx_int_t ngx_http_gpugate_batch_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void *ngx_http_gpugate_batch_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_gpugate_batch_init_main_conf(ngx_conf_t *cf,
    void *conf);
static char *ngx_http_gpugate_batch_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_gpugate_batch(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_gpugate_batch_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_gpugate_batch_init_process(ngx_cycle_t *cycle);
static void ngx_http_gpugate_batch_exit_process(ngx_cycle_t *cycle);


#define ngx_http_gpugate_batch_stmt(fn)                                     \
    { fn, "SELECT status, body, ctype FROM " fn "($1, $2, $3, $4)", 4 }


static ngx_http_gpugate_batch_route_t  ngx_http_gpugate_batch_routes[] = {

    { ngx_string("files"), ngx_null_string, 0, 1, 0, 0, NGX_HTTP_POST, "",
      ngx_http_gpugate_batch_stmt("gpugate_batch_file_upload") },

    { ngx_string("files"), ngx_null_string, 0, 0, 0, 1, NGX_HTTP_GET, "",
      ngx_http_gpugate_batch_stmt("gpugate_batch_file_list") },

    { ngx_string("files"), ngx_null_string, 1, 0, 0, 0, NGX_HTTP_DELETE,
      "", ngx_http_gpugate_batch_stmt("gpugate_batch_file_delete") },

    { ngx_string("files"), ngx_null_string, 1, 0, 0, 0, NGX_HTTP_GET, "",
      ngx_http_gpugate_batch_stmt("gpugate_batch_file_get") },

    { ngx_string("files"), ngx_string("content"), 1, 0, 0, 0, NGX_HTTP_GET,
      "content", ngx_http_gpugate_batch_stmt("gpugate_batch_file_get") },

    { ngx_string("batches"), ngx_null_string, 0, 0, 1, 0, NGX_HTTP_POST, "",
      ngx_http_gpugate_batch_stmt("gpugate_batch_create") },

    { ngx_string("batches"), ngx_null_string, 0, 0, 0, 1, NGX_HTTP_GET, "",
      ngx_http_gpugate_batch_stmt("gpugate_batch_list") },

    { ngx_string("batches"), ngx_null_string, 1, 0, 0, 0, NGX_HTTP_GET, "",
      ngx_http_gpugate_batch_stmt("gpugate_batch_get") },

    { ngx_string("batches"), ngx_string("cancel"), 1, 0, 0, 0,
      NGX_HTTP_POST, "batch",
      ngx_http_gpugate_batch_stmt("gpugate_batch_cancel") },

    { ngx_string("jobs"), ngx_null_string, 0, 0, 1, 0, NGX_HTTP_POST, "",
      ngx_http_gpugate_batch_stmt("gpugate_job_create") },

    { ngx_string("jobs"), ngx_null_string, 1, 0, 0, 0, NGX_HTTP_GET, "",
      ngx_http_gpugate_batch_stmt("gpugate_job_get") },

    { ngx_string("jobs"), ngx_null_string, 1, 0, 0, 0, NGX_HTTP_DELETE,
      "job", ngx_http_gpugate_batch_stmt("gpugate_batch_cancel") },

    { ngx_null_string, ngx_null_string, 0, 0, 0, 0, 0, NULL,
      { NULL, NULL, 0 } }
};


static ngx_command_t  ngx_http_gpugate_batch_commands[] = {

    { ngx_string("gpugate_batch_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_gpugate_batch_api,
      0,
      0,
      NULL },

    { ngx_string("gpugate_batch"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_gpugate_batch,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_gpugate_batch_module_ctx = {
    NULL,                                    /* preconfiguration */
    ngx_http_gpugate_batch_init,             /* postconfiguration */

    ngx_http_gpugate_batch_create_main_conf, /* create main configuration */
    ngx_http_gpugate_batch_init_main_conf,   /* init main configuration */

    NULL,                                    /* create server configuration */
    NULL,                                    /* merge server configuration */

    NULL,                                    /* create location configuration */
    NULL                                     /* merge location configuration */
};


ngx_module_t  ngx_http_gpugate_batch_module = {
    NGX_MODULE_V1,
    &ngx_http_gpugate_batch_module_ctx,      /* module context */
    ngx_http_gpugate_batch_commands,         /* module directives */
    NGX_HTTP_MODULE,                         /* module type */
    NULL,                                    /* init master */
    NULL,                                    /* init module */
    ngx_http_gpugate_batch_init_process,     /* init process */
    NULL,                                    /* init thread */
    NULL,                                    /* exit thread */
    ngx_http_gpugate_batch_exit_process,     /* exit process */
    NULL,                                    /* exit master */
    NGX_MODULE_V1_PADDING
};


/* the secret in shared memory: every worker, and the next generation */
static u_char  *ngx_http_gpugate_batch_secret_ptr;


u_char *
ngx_http_gpugate_batch_secret(void)
{
    return ngx_http_gpugate_batch_secret_ptr;
}


/*
 * "/v1/FAMILY", "/v1/FAMILY/{id}", "/v1/FAMILY/{id}/ACTION": the route
 * and the id, or NULL with the error answer's code in "rc".
 */

static ngx_http_gpugate_batch_route_t *
ngx_http_gpugate_batch_find(ngx_http_request_t *r, ngx_str_t *id,
    ngx_int_t *rc)
{
    u_char                          *p, *last;
    ngx_str_t                        family, action;
    ngx_uint_t                       allowed;
    ngx_http_gpugate_batch_route_t  *rt, *found;

    p = r->uri.data;
    last = r->uri.data + r->uri.len;

    if (r->uri.len < 4 || ngx_strncmp(p, "/v1/", 4) != 0) {
        goto not_found;
    }

    p += 4;
    family.data = p;

    while (p < last && *p != '/') {
        p++;
    }

    family.len = p - family.data;
    ngx_str_null(id);
    ngx_str_null(&action);

    if (p < last) {
        id->data = ++p;

        while (p < last
               && (isalnum(*p) || *p == '-' || *p == '_'))
        {
            p++;
        }

        id->len = p - id->data;

        if (p < last) {
            if (*p != '/') {
                goto not_found;
            }

            action.data = p + 1;
            action.len = last - action.data;

            if (action.len == 0) {
                goto not_found;
            }
        }

        if (id->len == 0 || id->len > NGX_HTTP_GPUGATE_BATCH_ID_MAX) {
            goto not_found;
        }
    }

    found = NULL;
    allowed = 0;

    for (rt = ngx_http_gpugate_batch_routes; rt->family.len; rt++) {
        if (rt->family.len != family.len
            || ngx_strncmp(rt->family.data, family.data, family.len) != 0
            || rt->with_id != (id->data != NULL)
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
        goto not_found;
    }

    if (found == NULL) {
        *rc = ngx_http_gpugate_batch_error(r, NGX_HTTP_NOT_ALLOWED,
                  NGX_HTTP_GPUGATE_ERR_INVALID, "method_not_allowed",
                  "this method is not allowed on this route");
        return NULL;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate batch: %V %V%s", &r->method_name, &family,
                   id->data ? "/{id}" : "");

    return found;

not_found:

    *rc = ngx_http_gpugate_batch_error(r, NGX_HTTP_NOT_FOUND,
              NGX_HTTP_GPUGATE_ERR_INVALID, "not_found",
              "no such route: the batch API has /v1/files, /v1/batches "
              "and /v1/jobs");
    return NULL;
}


static ngx_int_t
ngx_http_gpugate_batch_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        id;
    ngx_pool_cleanup_t              *cln;
    ngx_http_gpugate_limits_t        lim;
    ngx_http_gpugate_batch_op_t     *op;
    ngx_http_gpugate_batch_route_t  *found;

    found = ngx_http_gpugate_batch_find(r, &id, &rc);
    if (found == NULL) {
        return rc;
    }

    if (ngx_http_gpugate_auth_limits(r, &lim) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate batch: \"gpugate_batch_api\" needs "
                      "\"gpugate_auth on\" in its location");
        return ngx_http_gpugate_batch_error(r,
                   NGX_HTTP_INTERNAL_SERVER_ERROR,
                   NGX_HTTP_GPUGATE_ERR_SERVER, "misconfigured",
                   "the batch API is not configured with a key check");
    }

    if (ngx_http_gpugate_auth_pg() == NULL) {
        return ngx_http_gpugate_batch_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE,
                   NGX_HTTP_GPUGATE_ERR_SERVER, "batch_unavailable",
                   "the batch API has no database in this worker");
    }

    op = ngx_calloc(sizeof(ngx_http_gpugate_batch_op_t),
                    r->connection->log);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(op);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_gpugate_batch_cleanup;
    cln->data = op;

    op->request = r;
    op->route = found;
    (void) ngx_sprintf(op->kid, "%L%Z", lim.key_id);
    (void) ngx_sprintf(op->tid, "%L%Z", lim.tenant_id);

    if (id.data) {
        ngx_memcpy(op->arg, id.data, id.len);
    }

    if (r->method == NGX_HTTP_POST && (found->upload || found->body)) {
        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                 ngx_http_gpugate_batch_body_read);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (found->list) {
        rc = ngx_http_gpugate_batch_list_args(r, op);

        /* no input: the 400 was sent, and "rc" is how that went */
        if (rc != NGX_OK || op->input == NULL) {
            return rc;
        }
    }

    rc = ngx_http_gpugate_batch_start(r, op);
    if (rc != NGX_OK) {
        return rc;
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_gpugate_batch_body_read(ngx_http_request_t *r)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_str_t                     name;
    ngx_uint_t                    expires;
    ngx_pool_cleanup_t           *cln;
    ngx_http_gpugate_batch_op_t  *op;

    op = NULL;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_gpugate_batch_cleanup) {
            op = cln->data;
            break;
        }
    }

    if (op == NULL || r->request_body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (op->route->upload) {
        if (ngx_http_gpugate_batch_upload(r, &op->input, &name, &expires,
                                          &rc)
            != NGX_OK)
        {
            ngx_http_finalize_request(r, rc);
            return;
        }

        /* the name as given, cut to what the row keeps (64 bytes) */
        p = ngx_sprintf(op->arg, "%ui ", expires);
        (void) gpugate_utf8_cut(p, NGX_HTTP_GPUGATE_BATCH_ID_MAX + 1,
                                name.data, name.len);

    } else {
        rc = ngx_http_gpugate_batch_json_body(r, op);

        if (rc != NGX_OK) {
            ngx_http_finalize_request(r, rc);
            return;
        }
    }

    rc = ngx_http_gpugate_batch_start(r, op);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
    }
}


/* POST /v1/batches and /v1/jobs: the JSON body, as text, is the input */

static ngx_int_t
ngx_http_gpugate_batch_json_body(ngx_http_request_t *r,
    ngx_http_gpugate_batch_op_t *op)
{
    size_t        len;
    u_char       *p;
    ngx_chain_t  *cl;

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (!ngx_buf_in_memory(cl->buf)) {
            len = NGX_HTTP_GPUGATE_BATCH_BODY_MAX + 1;
            break;
        }

        len += ngx_buf_size(cl->buf);
    }

    if (len > NGX_HTTP_GPUGATE_BATCH_BODY_MAX) {
        return ngx_http_gpugate_batch_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                   NGX_HTTP_GPUGATE_ERR_INVALID, "body_too_large",
                   "the request body is larger than 1 MiB or than "
                   "client_body_buffer_size");
    }

    op->input = ngx_alloc(len + 1, r->connection->log);
    if (op->input == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = (u_char *) op->input;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    *p = '\0';

    /* a NUL would cut the parameter short; PostgreSQL refuses bad UTF-8 */
    if (ngx_strlen(op->input) != len
        || !gpugate_utf8_valid((u_char *) op->input, len))
    {
        return ngx_http_gpugate_batch_error(r, NGX_HTTP_BAD_REQUEST,
                   NGX_HTTP_GPUGATE_ERR_INVALID, "invalid_value",
                   "the request body is not valid JSON");
    }

    return NGX_OK;
}


/*
 * GET /v1/batches?after=&limit=, GET /v1/files?purpose=&limit=&order=
 * &after=: the arguments as a JSON object (each function reads its own)
 */

static ngx_int_t
ngx_http_gpugate_batch_list_args(ngx_http_request_t *r,
    ngx_http_gpugate_batch_op_t *op)
{
    json_t     *obj;
    ngx_int_t   rc;

    static const char *const  names[] = { "after", "limit", "purpose",
                                           "order" };

    rc = ngx_http_gpugate_query_json(r, names,
                                     sizeof(names) / sizeof(names[0]), &obj);

    if (rc == NGX_DECLINED) {
        return ngx_http_gpugate_batch_error(r, NGX_HTTP_BAD_REQUEST,
                   NGX_HTTP_GPUGATE_ERR_INVALID, "invalid_value",
                   "a query parameter is not valid UTF-8 "
                   "or holds a NUL byte (%00)");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    op->input = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);

    return op->input ? NGX_OK : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static ngx_int_t
ngx_http_gpugate_batch_start(ngx_http_request_t *r,
    ngx_http_gpugate_batch_op_t *op)
{
    ngx_int_t                     rc;
    ngx_http_gpugate_pg_t        *pg;
    ngx_http_gpugate_pg_query_t  *q;

    pg = ngx_http_gpugate_auth_pg();
    q = &op->query;

    q->stmt = op->route->stmt.name;
    q->nparams = 4;
    q->values[0] = (const char *) op->kid;
    q->values[1] = (const char *) op->tid;
    q->values[2] = (const char *) op->arg;
    q->values[3] = op->input ? op->input : op->route->input;
    q->deadline = 0;
    q->handler = ngx_http_gpugate_batch_pg_done;
    q->data = op;

    rc = ngx_http_gpugate_pg_run(pg, q);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate batch: PostgreSQL is %s, %s refused",
                      ngx_http_gpugate_pg_state(pg), op->route->stmt.name);

        return ngx_http_gpugate_batch_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE,
                   NGX_HTTP_GPUGATE_ERR_SERVER, "database_unavailable",
                   "the batch API's database is unreachable; nothing was "
                   "changed");
    }

    op->busy = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate batch: %s queued", op->route->stmt.name);

    return NGX_OK;
}


static void
ngx_http_gpugate_batch_pg_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error)
{
    ngx_http_gpugate_batch_op_t *op = q->data;

    ngx_int_t            status;
    ngx_http_request_t  *r;

    op->busy = 0;
    r = op->request;

    if (r == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate batch: %s answered after the request ended",
                       op->route->stmt.name);
        ngx_http_gpugate_batch_release(op);
        return;
    }

    if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 3) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "gpugate batch: %s failed: %s (are sql/008_batch.sql "
                      "and sql/010_batch_files.sql applied?)",
                      op->route->stmt.name,
                      error ? error : "unexpected result");

        ngx_http_finalize_request(r, ngx_http_gpugate_batch_error(r,
            NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_GPUGATE_ERR_SERVER,
            "database_error", "the batch API's database did not answer; "
            "the change may or may not be made: read it back"));
        return;
    }

    status = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                      PQgetlength(res, 0, 0));

    if (status < 200 || status > 599) {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate batch: %s answered %i",
                   op->route->stmt.name, status);

    ngx_http_finalize_request(r, ngx_http_gpugate_batch_send(r, status,
        PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 1),
        PQgetlength(res, 0, 1)));
}


/* the answer, copied out of the result, which the driver frees */

static ngx_int_t
ngx_http_gpugate_batch_send(ngx_http_request_t *r, ngx_uint_t status,
    const char *ctype, const char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, body, len);

    /* JSON answers end with a newline as the other APIs'; files as kept */
    if (ngx_strcmp(ctype, "application/json") == 0) {
        *b->last++ = '\n';
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type.len = ngx_strlen(ctype);
    r->headers_out.content_type.data = ngx_pnalloc(r->pool,
                                           r->headers_out.content_type.len);
    if (r->headers_out.content_type.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(r->headers_out.content_type.data, ctype,
               r->headers_out.content_type.len);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* frees the call once the request is gone and nothing is pending */

static void
ngx_http_gpugate_batch_release(ngx_http_gpugate_batch_op_t *op)
{
    if (op->request || op->busy) {
        return;
    }

    if (op->input) {
        free(op->input);
    }

    ngx_free(op);
}


static void
ngx_http_gpugate_batch_cleanup(void *data)
{
    ngx_http_gpugate_batch_op_t *op = data;

    op->request = NULL;
    ngx_http_gpugate_batch_release(op);
}


static ngx_int_t
ngx_http_gpugate_batch_error(ngx_http_request_t *r, ngx_uint_t status,
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


/*
 * Auth's question for every request: is it a line of this node's runner?
 * "X-Gpugate-Batch: SECRET DIGEST BATCH" (hex, hex, the batch or job id)
 * with this node's secret names the key by its digest.  The header's
 * value is then cut to the batch id, so that the secret is not sent on
 * to the runtime (proxy_pass passes the client's headers).
 */

static ngx_int_t
ngx_http_gpugate_batch_trusted(ngx_http_request_t *r, u_char *digest)
{
    u_char                               *v, *last, *secret;
    u_char                                given[32];  /* the secret given */
    ngx_uint_t                            i;
    ngx_list_part_t                      *part;
    ngx_table_elt_t                      *h;
    ngx_http_gpugate_ledger_extra_t      *ex;
    ngx_http_gpugate_batch_main_conf_t   *bmcf;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_DECLINED;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof(NGX_HTTP_GPUGATE_BATCH_HEADER) - 1
            && ngx_strncasecmp(h[i].key.data,
                               (u_char *) NGX_HTTP_GPUGATE_BATCH_HEADER,
                               h[i].key.len) == 0)
        {
            break;
        }
    }

    h = &h[i];
    v = h->value.data;
    last = v + h->value.len;

    bmcf = ngx_http_get_module_main_conf(r, ngx_http_gpugate_batch_module);
    secret = ngx_http_gpugate_batch_secret();

    if (bmcf->runner == NULL || secret == NULL
        || h->value.len < 64 + 1 + 64 + 2
        || v[64] != ' ' || v[129] != ' '
        || !gpugate_hex_digest(v, 64, given)
        || CRYPTO_memcmp(given, secret, sizeof(given)) != 0
        || !gpugate_hex_digest(v + 65, 64, digest))
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "gpugate batch: a request with a bad "
                      NGX_HTTP_GPUGATE_BATCH_HEADER " header from %V "
                      "refused%s", &r->connection->addr_text,
                      bmcf->runner ? "" : " (no gpugate_batch runner here)");
        return NGX_ERROR;
    }

    h->value.data = v + 130;
    h->value.len = last - h->value.data;

    ex = ngx_http_gpugate_ledger_extra(r);

    if (ex) {
        ex->batch_id = h->value;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "gpugate batch: a line of %V runs as its key",
                   &h->value);

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_batch_init_zone(ngx_shm_zone_t *zone, void *data)
{
    u_char           *secret;
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: lines in flight still carry the old workers' secret */
        zone->data = data;
        ngx_http_gpugate_batch_secret_ptr = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    secret = ngx_slab_alloc(shpool, NGX_HTTP_GPUGATE_BATCH_SECRET_LEN);
    if (secret == NULL) {
        return NGX_ERROR;
    }

    if (RAND_bytes(secret, NGX_HTTP_GPUGATE_BATCH_SECRET_LEN) != 1) {
        return NGX_ERROR;
    }

    zone->data = secret;
    ngx_http_gpugate_batch_secret_ptr = secret;

    return NGX_OK;
}


static void *
ngx_http_gpugate_batch_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_gpugate_batch_main_conf_t  *bmcf;

    bmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_gpugate_batch_main_conf_t));
    if (bmcf == NULL) {
        return NULL;
    }

    bmcf->concurrency = NGX_CONF_UNSET_UINT;
    bmcf->interval = NGX_CONF_UNSET_MSEC;
    bmcf->lease = NGX_CONF_UNSET_MSEC;
    bmcf->max_answer = NGX_CONF_UNSET_SIZE;

    return bmcf;
}


static char *
ngx_http_gpugate_batch_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_gpugate_batch_main_conf_t *bmcf = conf;

    ngx_conf_init_uint_value(bmcf->concurrency, 4);
    ngx_conf_init_msec_value(bmcf->interval, 1000);
    ngx_conf_init_msec_value(bmcf->lease, 600000);
    ngx_conf_init_size_value(bmcf->max_answer, 4 * 1024 * 1024);

    return NGX_CONF_OK;
}


static char *
ngx_http_gpugate_batch_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_gpugate_batch_main_conf_t  *bmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    bmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_batch_module);

    if (clcf->handler == ngx_http_gpugate_batch_handler) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_gpugate_batch_handler;
    bmcf->api = 1;

    return NGX_CONF_OK;
}


/* gpugate_batch ADDR [concurrency=N] [interval=T] [lease=T] [max_answer=S] */

static char *
ngx_http_gpugate_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_gpugate_batch_main_conf_t *bmcf = conf;

    char        *rv;
    ssize_t      size;
    ngx_int_t    n;
    ngx_str_t   *value, val, name;
    ngx_url_t    u;
    ngx_uint_t   i;

    if (bmcf->runner) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs != 1
        || u.no_port)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"gpugate_batch\" needs this node's own "
                           "listener as ADDRESS:PORT, not \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    bmcf->runner = &u.addrs[0];
    bmcf->runner_text = value[1];

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_gpugate_conf_param(&value[i], "concurrency", &val)) {
            n = ngx_atoi(val.data, val.len);

            if (n < 1 || n > 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": 1 to 1024 lines in "
                                   "flight", &value[i]);
                return NGX_CONF_ERROR;
            }

            bmcf->concurrency = n;
            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "interval", &val)) {
            rv = ngx_http_gpugate_conf_msec(cf, &value[i], &val, 10,
                                            &bmcf->interval);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "lease", &val)) {
            rv = ngx_http_gpugate_conf_msec(cf, &value[i], &val, 1000,
                                            &bmcf->lease);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        if (ngx_http_gpugate_conf_param(&value[i], "max_answer", &val)) {
            size = ngx_parse_size(&val);

            if (size < 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": a size of 1k or more",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            bmcf->max_answer = size;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&name, "gpugate_batch_secret");

    bmcf->zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                       &ngx_http_gpugate_batch_module);
    if (bmcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    bmcf->zone->init = ngx_http_gpugate_batch_init_zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_gpugate_batch_init(ngx_conf_t *cf)
{
    ngx_int_t                            rc;
    ngx_uint_t                           n, i;
    ngx_http_gpugate_pg_stmt_t           stmts[32];
    ngx_http_gpugate_batch_route_t      *rt;
    ngx_http_gpugate_batch_main_conf_t  *bmcf;

    bmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_gpugate_batch_module);

    if (!bmcf->api && bmcf->runner == NULL) {
        return NGX_OK;
    }

    n = 0;

    if (bmcf->api) {
        for (rt = ngx_http_gpugate_batch_routes; rt->family.len; rt++) {
            for (i = 0; i < n; i++) {
                if (ngx_strcmp(stmts[i].name, rt->stmt.name) == 0) {
                    break;
                }
            }

            if (i == n) {
                stmts[n++] = rt->stmt;
            }
        }
    }

    if (bmcf->runner) {
        for (i = 0; i < ngx_http_gpugate_batch_runner_nstmts; i++) {
            stmts[n++] = ngx_http_gpugate_batch_runner_stmts[i];
        }

        ngx_http_gpugate_auth_on_trusted(ngx_http_gpugate_batch_trusted);
    }

    rc = ngx_http_gpugate_auth_pg_share(cf, stmts, n);

    if (rc == NGX_DECLINED) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the batch API keeps its data in PostgreSQL: "
                           "\"gpugate_auth_postgres\" is required");
        return NGX_ERROR;
    }

    return rc;
}


static ngx_int_t
ngx_http_gpugate_batch_init_process(ngx_cycle_t *cycle)
{
    ngx_http_conf_ctx_t  *ctx;

    ctx = (ngx_http_conf_ctx_t *) cycle->conf_ctx[ngx_http_module.index];

    if (ctx == NULL) {
        return NGX_OK;
    }

    return ngx_http_gpugate_batch_runner_init(cycle,
               ctx->main_conf[ngx_http_gpugate_batch_module.ctx_index],
               ngx_http_gpugate_batch_secret());
}


static void
ngx_http_gpugate_batch_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_batch_runner_exit(cycle);
}
