
/*
 * Copyright (C) gpugate authors
 *
 * The batch runner: a timer in worker 0 of each node claims pending lines
 * from PostgreSQL (gpugate_batch_claim: FOR UPDATE SKIP LOCKED, a lease
 * per line) when the tunnel has capacity left over by interactive
 * traffic, and sends each line as an HTTP/1.0 request to this node's own
 * listener ("gpugate_batch ADDR"), so that it goes through auth (as the
 * key that made the batch, vouched for by X-Gpugate-Batch and the node's
 * secret), the router, limits, the tunnel and the ledger like any
 * request.  The answer ends the line's lease in one statement
 * (gpugate_batch_line_done).  Nothing here blocks: connections are
 * nginx's non-blocking peer connections, queries go through the auth
 * module's pool.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate.h"
#include "ngx_http_gpugate_auth_api.h"
#include "ngx_http_gpugate_tunnel_api.h"
#include "ngx_http_gpugate_batch.h"
#include "gpugate_apikey.h"
#include "gpugate_utf8.h"


/* connecting to the own listener and writing a line may take this long */
#define NGX_HTTP_GPUGATE_BATCH_SEND_TIMEOUT   10000

/* a failed result write is tried again after this long */
#define NGX_HTTP_GPUGATE_BATCH_RETRY          1000

/* the answer buffer's first size; it doubles up to max_answer */
#define NGX_HTTP_GPUGATE_BATCH_ANSWER_MIN     16384


typedef struct {
    ngx_event_t                   tick;      /* the next claim */
    ngx_http_gpugate_pg_query_t   claim;     /* the claim's query */
    ngx_uint_t                    claiming;  /* it is pending */
    ngx_uint_t                    asked;     /* lines it asked for */
    ngx_uint_t                    inflight;  /* lines being run */
    ngx_queue_t                   lines;     /* of ..._batch_line_t */
    ngx_http_gpugate_batch_main_conf_t *bmcf; /* the configuration */
    u_char                       *secret;    /* the node's runner secret
                                                (shm, the module's) */
    ngx_log_t                    *log;       /* the cycle's */
    u_char                        owner[NGX_MAXHOSTNAMELEN + NGX_INT64_LEN
                                        + 2];
                                             /* the lease owner,
                                                "host:pid" */
    u_char                        n[NGX_INT_T_LEN + 1];
                                             /* claim parameter: lines */
    u_char                        lease[NGX_INT_T_LEN + 1];
                                             /* claim parameter: ms */
} ngx_http_gpugate_batch_runner_t;


typedef struct {
    ngx_queue_t                   queue;     /* in the runner's lines */
    ngx_pool_t                   *pool;      /* all of the line's memory */
    ngx_http_gpugate_batch_runner_t *runner; /* its runner */
    ngx_peer_connection_t         peer;      /* to the own listener */
    ngx_buf_t                    *out;       /* the request */
    u_char                       *in;        /* the answer so far */
    size_t                        in_len;    /* its length */
    size_t                        in_size;   /* its buffer's size */
    char                         *rid;       /* the attempt's request id */
    char                         *answer;    /* what line_done stores */
    char                          code[NGX_INT_T_LEN + 1];
                                             /* HTTP status, "0": none */
    char                          retry[2];  /* "1": the gateway did not
                                                run it, back to pending */
    ngx_event_t                   again;     /* a failed result write is
                                                tried again */
    ngx_msec_t                    give_up;   /* when to stop trying */
    ngx_http_gpugate_pg_query_t   done;      /* line_done's query */
    unsigned                      sent:1;    /* the request was written
                                                whole: the gateway may
                                                have run it */
    unsigned                      finished:1; /* the answer is known */
} ngx_http_gpugate_batch_line_t;


static void ngx_http_gpugate_batch_tick(ngx_event_t *ev);
static void ngx_http_gpugate_batch_kick(ngx_http_gpugate_batch_runner_t *rn);
static void ngx_http_gpugate_batch_claimed(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error);
static void ngx_http_gpugate_batch_line_start(
    ngx_http_gpugate_batch_runner_t *rn, PGresult *res, int row);
static ngx_int_t ngx_http_gpugate_batch_request(
    ngx_http_gpugate_batch_line_t *ln, PGresult *res, int row);
static void ngx_http_gpugate_batch_write(ngx_event_t *wev);
static void ngx_http_gpugate_batch_read(ngx_event_t *rev);
static void ngx_http_gpugate_batch_dummy(ngx_event_t *ev);
static void ngx_http_gpugate_batch_answer(ngx_http_gpugate_batch_line_t *ln);
static void ngx_http_gpugate_batch_finish(ngx_http_gpugate_batch_line_t *ln,
    ngx_uint_t code, ngx_uint_t retry, const char *answer, size_t len);
static void ngx_http_gpugate_batch_store(ngx_http_gpugate_batch_line_t *ln);
static void ngx_http_gpugate_batch_store_again(ngx_event_t *ev);
static void ngx_http_gpugate_batch_stored(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error);
static void ngx_http_gpugate_batch_free(ngx_http_gpugate_batch_line_t *ln);


ngx_http_gpugate_pg_stmt_t  ngx_http_gpugate_batch_runner_stmts[] = {
    { "gpugate_batch_claim",
      "SELECT * FROM gpugate_batch_claim($1, $2, $3, $4)", 4 },
    { "gpugate_batch_line_done",
      "SELECT gpugate_batch_line_done($1, $2, $3, $4)", 4 }
};

ngx_uint_t  ngx_http_gpugate_batch_runner_nstmts = 2;


static ngx_http_gpugate_batch_runner_t  *ngx_http_gpugate_batch_runner;


ngx_int_t
ngx_http_gpugate_batch_runner_init(ngx_cycle_t *cycle,
    ngx_http_gpugate_batch_main_conf_t *bmcf, u_char *secret)
{
    ngx_http_gpugate_batch_runner_t  *rn;

    if (bmcf == NULL || ngx_process != NGX_PROCESS_WORKER || ngx_worker != 0)
    {
        return NGX_OK;
    }

    if (bmcf->runner == NULL) {
        return NGX_OK;
    }

    rn = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_batch_runner_t));
    if (rn == NULL) {
        return NGX_ERROR;
    }

    rn->bmcf = bmcf;
    rn->secret = secret;
    rn->log = cycle->log;
    ngx_queue_init(&rn->lines);

    (void) ngx_snprintf(rn->owner, sizeof(rn->owner) - 1, "%V:%P%Z",
                        &cycle->hostname, ngx_pid);
    (void) ngx_sprintf(rn->lease, "%M%Z", bmcf->lease);

    rn->tick.handler = ngx_http_gpugate_batch_tick;
    rn->tick.data = rn;
    rn->tick.log = cycle->log;
    rn->tick.cancelable = 1;

    ngx_add_timer(&rn->tick, bmcf->interval);

    ngx_http_gpugate_batch_runner = rn;

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "gpugate batch: runner started as \"%s\", lines to %V, "
                  "%ui at once", rn->owner, &bmcf->runner_text,
                  bmcf->concurrency);

    return NGX_OK;
}


void
ngx_http_gpugate_batch_runner_exit(ngx_cycle_t *cycle)
{
    ngx_queue_t                      *q;
    ngx_http_gpugate_batch_line_t    *ln;
    ngx_http_gpugate_batch_runner_t  *rn;

    rn = ngx_http_gpugate_batch_runner;

    if (rn == NULL) {
        return;
    }

    /* a fast stop: these lines' leases run out and they fail then */

    while (!ngx_queue_empty(&rn->lines)) {
        q = ngx_queue_head(&rn->lines);
        ln = ngx_queue_data(q, ngx_http_gpugate_batch_line_t, queue);

        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "gpugate batch: exiting with line %s in flight; it "
                      "fails as interrupted when its lease ends", ln->rid);

        ngx_http_gpugate_batch_free(ln);
    }

    ngx_http_gpugate_batch_runner = NULL;
}


static void
ngx_http_gpugate_batch_tick(ngx_event_t *ev)
{
    ngx_http_gpugate_batch_runner_t *rn = ev->data;

    ngx_int_t                     free;
    ngx_uint_t                    n;
    ngx_http_gpugate_pg_t        *pg;
    ngx_http_gpugate_pg_query_t  *q;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, rn->log, 0,
                       "gpugate batch: exiting, no more lines claimed");
        return;
    }

    ngx_add_timer(&rn->tick, rn->bmcf->interval);

    if (rn->claiming || rn->inflight >= rn->bmcf->concurrency) {
        return;
    }

    n = rn->bmcf->concurrency - rn->inflight;

    /* lowest priority: only what interactive traffic leaves free */
    free = ngx_http_gpugate_tunnel_free_slots();

    if (free >= 0 && (ngx_uint_t) free < n) {
        n = free;
    }

    /*
     * n == 0 still claims: the statement's housekeeping (lapsed leases,
     * expired batches and files) must not wait for an agent
     */
    if (n == 0) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rn->log, 0,
                       "gpugate batch: no free capacity (%i), "
                       "housekeeping only", free);
    }

    pg = ngx_http_gpugate_auth_pg();

    if (pg == NULL) {
        return;
    }

    (void) ngx_sprintf(rn->n, "%ui%Z", n);

    q = &rn->claim;
    ngx_memzero(q, sizeof(ngx_http_gpugate_pg_query_t));

    q->stmt = "gpugate_batch_claim";
    q->nparams = 4;
    q->values[0] = (const char *) rn->owner;
    q->values[1] = (const char *) rn->n;
    q->values[2] = (const char *) rn->lease;
    q->values[3] = "";
    q->handler = ngx_http_gpugate_batch_claimed;
    q->data = rn;

    if (ngx_http_gpugate_pg_run(pg, q) != NGX_OK) {
        return;
    }

    rn->claiming = 1;
    rn->asked = n;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rn->log, 0,
                   "gpugate batch: claiming up to %ui lines", n);
}


/* claims again soon: a line ended, or the last claim was full */

static void
ngx_http_gpugate_batch_kick(ngx_http_gpugate_batch_runner_t *rn)
{
    if (ngx_http_gpugate_batch_runner != rn || ngx_exiting) {
        return;
    }

    if (rn->tick.timer_set) {
        ngx_del_timer(&rn->tick);
    }

    ngx_add_timer(&rn->tick, 1);
}


static void
ngx_http_gpugate_batch_claimed(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error)
{
    ngx_http_gpugate_batch_runner_t *rn = q->data;

    int  i, rows;

    rn->claiming = 0;

    if (ngx_http_gpugate_batch_runner != rn) {
        return;
    }

    if (res == NULL || PQnfields(res) != 7) {
        ngx_log_error(NGX_LOG_WARN, rn->log, 0,
                      "gpugate batch: claiming lines failed: %s (is "
                      "sql/008_batch.sql applied?)",
                      error ? error : "unexpected result");
        return;
    }

    rows = PQntuples(res);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rn->log, 0,
                   "gpugate batch: claimed %d of %ui lines", rows,
                   rn->asked);

    for (i = 0; i < rows; i++) {
        ngx_http_gpugate_batch_line_start(rn, res, i);
    }

    if (rows > 0 && (ngx_uint_t) rows == rn->asked) {
        ngx_http_gpugate_batch_kick(rn);
    }
}


/*
 * A claimed line: request_id, batch_id, url, body, digest, priority,
 * region.  Whatever fails here is answered to PostgreSQL as "not
 * delivered", so the line goes back to pending.
 */

static void
ngx_http_gpugate_batch_line_start(ngx_http_gpugate_batch_runner_t *rn,
    PGresult *res, int row)
{
    ngx_int_t                       rc;
    ngx_pool_t                     *pool;
    ngx_connection_t               *c;
    ngx_peer_connection_t          *pc;
    ngx_http_gpugate_batch_line_t  *ln;

    pool = ngx_create_pool(4096, rn->log);
    if (pool == NULL) {
        return;
    }

    ln = ngx_pcalloc(pool, sizeof(ngx_http_gpugate_batch_line_t));
    if (ln == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    ln->pool = pool;
    ln->runner = rn;
    ln->rid = ngx_pnalloc(pool, PQgetlength(res, row, 0) + 1);

    if (ln->rid == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    (void) ngx_cpystrn((u_char *) ln->rid, (u_char *) PQgetvalue(res, row, 0),
                       PQgetlength(res, row, 0) + 1);

    ngx_queue_insert_tail(&rn->lines, &ln->queue);
    rn->inflight++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rn->log, 0,
                   "gpugate batch: line %s claimed", ln->rid);

    if (ngx_http_gpugate_batch_request(ln, res, row) != NGX_OK) {
        ngx_http_gpugate_batch_finish(ln, 0, 1, "out of memory", 13);
        return;
    }

    pc = &ln->peer;
    pc->sockaddr = rn->bmcf->runner->sockaddr;
    pc->socklen = rn->bmcf->runner->socklen;
    pc->name = &rn->bmcf->runner->name;
    pc->get = ngx_event_get_peer;
    pc->log = rn->log;
    pc->log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_http_gpugate_batch_finish(ln, 0, 1,
                                      "the runner could not connect to its "
                                      "node's listener", 48);
        return;
    }

    c = pc->connection;
    c->data = ln;
    c->read->handler = ngx_http_gpugate_batch_read;
    c->write->handler = ngx_http_gpugate_batch_write;

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, NGX_HTTP_GPUGATE_BATCH_SEND_TIMEOUT);
        return;
    }

    ngx_http_gpugate_batch_write(c->write);
}


/* the line as an HTTP/1.0 request: the answer ends with the connection */

static ngx_int_t
ngx_http_gpugate_batch_request(ngx_http_gpugate_batch_line_t *ln,
    PGresult *res, int row)
{
    u_char     *secret, hex[NGX_HTTP_GPUGATE_BATCH_SECRET_LEN * 2];
    size_t      len, blen;
    ngx_buf_t  *b;
    ngx_str_t  *host;

    secret = ln->runner->secret;
    host = &ln->runner->bmcf->runner_text;
    blen = PQgetlength(res, row, 3);

    gpugate_digest_hex(secret, hex);

    len = sizeof("POST  HTTP/1.0\r\nHost: \r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: \r\n"
                 NGX_HTTP_GPUGATE_BATCH_HEADER ":   \r\n"
                 "X-Gpugate-Priority: \r\nX-Gpugate-Region: \r\n\r\n")
          + PQgetlength(res, row, 2) + host->len + NGX_SIZE_T_LEN
          + sizeof(hex) + PQgetlength(res, row, 4)
          + PQgetlength(res, row, 1) + PQgetlength(res, row, 5)
          + PQgetlength(res, row, 6) + 1 + blen;

    b = ngx_create_temp_buf(ln->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last, "POST %s HTTP/1.0\r\nHost: %V\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: %uz\r\n"
                          NGX_HTTP_GPUGATE_BATCH_HEADER ": ",
                          PQgetvalue(res, row, 2), host, blen);
    b->last = ngx_cpymem(b->last, hex, sizeof(hex));
    b->last = ngx_sprintf(b->last, " %s %s\r\n", PQgetvalue(res, row, 4),
                          PQgetvalue(res, row, 1));

    /*
     * A job's own: the balancer reads them as it reads a client's.  A
     * batch line has none and waits at the lowest, 0, behind interactive
     * requests; without the header it would wait at its key's default,
     * among them.
     */
    b->last = ngx_sprintf(b->last, "X-Gpugate-Priority: %s\r\n",
                          PQgetisnull(res, row, 5)
                          ? "0" : PQgetvalue(res, row, 5));

    if (!PQgetisnull(res, row, 6)) {
        b->last = ngx_sprintf(b->last, "X-Gpugate-Region: %s\r\n",
                              PQgetvalue(res, row, 6));
    }

    b->last = ngx_cpymem(b->last, "\r\n", 2);
    b->last = ngx_cpymem(b->last, PQgetvalue(res, row, 3), blen);

    ln->out = b;

    return NGX_OK;
}


static void
ngx_http_gpugate_batch_write(ngx_event_t *wev)
{
    ssize_t                         n;
    ngx_connection_t               *c;
    ngx_http_gpugate_batch_line_t  *ln;

    c = wev->data;
    ln = c->data;

    if (wev->timedout) {
        ngx_http_gpugate_batch_finish(ln, 0, 1, "the runner's node did not "
                                      "take the request in time", 44);
        return;
    }

    while (ln->out->pos < ln->out->last) {
        n = c->send(c, ln->out->pos, ln->out->last - ln->out->pos);

        if (n == NGX_AGAIN) {
            ngx_add_timer(wev, NGX_HTTP_GPUGATE_BATCH_SEND_TIMEOUT);

            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_gpugate_batch_finish(ln, 0, 1, "event error", 11);
            }

            return;
        }

        if (n == NGX_ERROR) {
            /* not all of it went out: nginx did not run a part request */
            ngx_http_gpugate_batch_finish(ln, 0, 1, "the runner could not "
                                          "send the request", 36);
            return;
        }

        ln->out->pos += n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    ln->sent = 1;
    wev->handler = ngx_http_gpugate_batch_dummy;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "gpugate batch: line %s sent", ln->rid);

    ngx_add_timer(c->read, ln->runner->bmcf->lease / 10 * 9);

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_gpugate_batch_finish(ln, 0, 0, "event error", 11);
    }
}


static void
ngx_http_gpugate_batch_read(ngx_event_t *rev)
{
    u_char                         *p;
    size_t                          size;
    ssize_t                         n;
    ngx_connection_t               *c;
    ngx_http_gpugate_batch_line_t  *ln;

    c = rev->data;
    ln = c->data;

    if (rev->timedout) {
        ngx_http_gpugate_batch_finish(ln, 0, 0, "no answer within 90% of "
                                      "the lease", 33);
        return;
    }

    for ( ;; ) {
        if (ln->in_len == ln->in_size) {
            if (ln->in_size >= ln->runner->bmcf->max_answer) {
                ngx_http_gpugate_batch_finish(ln, 0, 0, "the answer is "
                                              "larger than max_answer", 36);
                return;
            }

            size = ln->in_size ? ln->in_size * 2
                               : NGX_HTTP_GPUGATE_BATCH_ANSWER_MIN;
            size = ngx_min(size, ln->runner->bmcf->max_answer);

            p = ngx_pnalloc(ln->pool, size + 1);
            if (p == NULL) {
                ngx_http_gpugate_batch_finish(ln, 0, 0, "out of memory", 13);
                return;
            }

            if (ln->in_len) {
                ngx_memcpy(p, ln->in, ln->in_len);
            }

            ln->in = p;
            ln->in_size = size;
        }

        n = c->recv(c, ln->in + ln->in_len, ln->in_size - ln->in_len);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_gpugate_batch_finish(ln, 0, 0, "event error", 11);
            }

            return;
        }

        if ((n == NGX_ERROR || n == 0) && ln->in_len == 0 && ngx_exiting) {
            /*
             * This node is stopping and closed its listener with the line
             * still in the queue of connections not yet taken: it never
             * ran, so it goes back to pending for a node that runs.
             */
            ngx_http_gpugate_batch_finish(ln, 0, 1, "the node stopped "
                                          "before it took the line", 39);
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_gpugate_batch_finish(ln, 0, 0, "the connection to the "
                                          "runner's node failed before "
                                          "the answer ended", 62);
            return;
        }

        if (n == 0) {
            ngx_http_gpugate_batch_answer(ln);
            return;
        }

        ln->in_len += n;
    }
}


static void
ngx_http_gpugate_batch_dummy(ngx_event_t *ev)
{
}


/*
 * The whole answer: its status and body.  429 and 503 come from the
 * gateway's limits and queue (no agent took it): the line goes back to
 * pending.  Anything else is the line's answer, stored as it is.
 */

static void
ngx_http_gpugate_batch_answer(ngx_http_gpugate_batch_line_t *ln)
{
    u_char      *p, *last, *body;
    ngx_int_t    code;

    p = ln->in;
    last = ln->in + ln->in_len;

    if (ln->in_len < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0) {
        ngx_http_gpugate_batch_finish(ln, 0, 0, "the runner's node "
                                      "answered something else than "
                                      "HTTP", 50);
        return;
    }

    code = ngx_atoi(p + 9, 3);
    body = ngx_strnstr(p, "\r\n\r\n", ln->in_len);

    if (code < 100 || body == NULL) {
        ngx_http_gpugate_batch_finish(ln, 0, 0, "the runner's node "
                                      "answered a malformed head", 43);
        return;
    }

    body += 4;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ln->runner->log, 0,
                   "gpugate batch: line %s answered %i", ln->rid, code);

    if (!gpugate_utf8_valid(body, last - body)
        || ngx_strlchr(body, last, '\0'))
    {
        ngx_http_gpugate_batch_finish(ln, code, 0,
                                      "\"(an answer that is not UTF-8 "
                                      "text)\"", 37);
        return;
    }

    ngx_http_gpugate_batch_finish(ln, code,
                                  code == NGX_HTTP_TOO_MANY_REQUESTS
                                  || code == NGX_HTTP_SERVICE_UNAVAILABLE,
                                  (char *) body, last - body);
}


static void
ngx_http_gpugate_batch_finish(ngx_http_gpugate_batch_line_t *ln,
    ngx_uint_t code, ngx_uint_t retry, const char *answer, size_t len)
{
    if (ln->peer.connection) {
        ngx_close_connection(ln->peer.connection);
        ln->peer.connection = NULL;
    }

    if (code == 0) {
        ngx_log_error(NGX_LOG_WARN, ln->runner->log, 0,
                      "gpugate batch: line %s: %*s%s", ln->rid, len, answer,
                      retry ? "; back to pending" : "");
    }

    ln->finished = 1;
    ln->answer = ngx_pnalloc(ln->pool, len + 1);

    if (ln->answer == NULL) {
        ln->answer = "";
        len = 0;

    } else {
        ngx_memcpy(ln->answer, answer, len);
        ln->answer[len] = '\0';
    }

    (void) ngx_sprintf((u_char *) ln->code, "%ui%Z", code);
    ln->retry[0] = retry ? '1' : '0';
    ln->retry[1] = '\0';
    ln->give_up = ngx_current_msec + ln->runner->bmcf->lease;

    ngx_http_gpugate_batch_store(ln);
}


/* line_done: the answer ends the lease (or puts the line back) */

static void
ngx_http_gpugate_batch_store(ngx_http_gpugate_batch_line_t *ln)
{
    ngx_http_gpugate_pg_t        *pg;
    ngx_http_gpugate_pg_query_t  *q;

    pg = ngx_http_gpugate_auth_pg();
    q = &ln->done;

    ngx_memzero(q, sizeof(ngx_http_gpugate_pg_query_t));

    q->stmt = "gpugate_batch_line_done";
    q->nparams = 4;
    q->values[0] = ln->rid;
    q->values[1] = ln->code;
    q->values[2] = ln->answer;
    q->values[3] = ln->retry;
    q->handler = ngx_http_gpugate_batch_stored;
    q->data = ln;

    if (pg && ngx_http_gpugate_pg_run(pg, q) == NGX_OK) {
        return;
    }

    ngx_http_gpugate_batch_stored(q, NULL, "PostgreSQL is unreachable");
}


static void
ngx_http_gpugate_batch_store_again(ngx_event_t *ev)
{
    ngx_http_gpugate_batch_store(ev->data);
}


static void
ngx_http_gpugate_batch_stored(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error)
{
    ngx_http_gpugate_batch_line_t *ln = q->data;

    ngx_http_gpugate_batch_runner_t  *rn;

    rn = ln->runner;

    if (res == NULL || PQntuples(res) != 1) {
        if ((ngx_msec_int_t) (ln->give_up - ngx_current_msec) > 0
            && !ngx_terminate)
        {
            ngx_log_error(NGX_LOG_WARN, rn->log, 0,
                          "gpugate batch: the answer of line %s is not "
                          "stored yet: %s; trying again",
                          ln->rid, error ? error : "unexpected result");

            ln->again.handler = ngx_http_gpugate_batch_store_again;
            ln->again.data = ln;
            ln->again.log = rn->log;
            ngx_add_timer(&ln->again, NGX_HTTP_GPUGATE_BATCH_RETRY);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, rn->log, 0,
                      "gpugate batch: the answer of line %s is lost: %s; "
                      "the line fails as interrupted when its lease ends",
                      ln->rid, error ? error : "unexpected result");

    } else {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rn->log, 0,
                       "gpugate batch: line %s stored: %s", ln->rid,
                       PQgetvalue(res, 0, 0));
    }

    ngx_http_gpugate_batch_free(ln);
    ngx_http_gpugate_batch_kick(rn);
}


static void
ngx_http_gpugate_batch_free(ngx_http_gpugate_batch_line_t *ln)
{
    if (ln->peer.connection) {
        ngx_close_connection(ln->peer.connection);
    }

    if (ln->again.timer_set) {
        ngx_del_timer(&ln->again);
    }

    ngx_queue_remove(&ln->queue);
    ln->runner->inflight--;

    ngx_destroy_pool(ln->pool);
}
