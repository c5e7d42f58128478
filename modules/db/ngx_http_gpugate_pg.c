
/*
 * Copyright (C) gpugate authors
 *
 * Per-worker PostgreSQL pool driven by nginx events.  libpq owns each
 * socket (PQfinish closes it); nginx only borrows the descriptor in an
 * ngx_connection_t to get events, so connections are released with
 * ngx_free_connection(), never ngx_close_connection().
 *
 * Read interest is level-triggered: libpq's PQconsumeInput() may leave
 * bytes in the socket, which an edge-triggered event would not report
 * again.  Write interest is added only while libpq has unsent data or is
 * connecting, and removed afterwards.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_pg.h"


typedef enum {
    NGX_HTTP_GPUGATE_PG_DOWN = 0,
    NGX_HTTP_GPUGATE_PG_CONNECTING,
    NGX_HTTP_GPUGATE_PG_PREPARING,
    NGX_HTTP_GPUGATE_PG_IDLE,
    NGX_HTTP_GPUGATE_PG_BUSY
} ngx_http_gpugate_pg_state_e;


typedef struct {
    ngx_http_gpugate_pg_t         *pool;      /* owner */
    PGconn                        *pgconn;    /* libpq handle, NULL if down */
    ngx_connection_t              *c;         /* borrowed fd for events */
    ngx_http_gpugate_pg_state_e    state;     /* where the conn is */
    ngx_uint_t                     prepared;  /* statements done so far */
    ngx_http_gpugate_pg_query_t   *query;     /* running query (BUSY) */
    PGresult                      *result;    /* first result of the running
                                                 command, kept until libpq
                                                 says the command is done */
    ngx_event_t                    timer;     /* deadline of the current
                                                 operation, or the reconnect
                                                 delay while DOWN */
    ngx_uint_t                     failures;  /* consecutive failed connects,
                                                 drives the backoff */
} ngx_http_gpugate_pg_conn_t;


struct ngx_http_gpugate_pg_s {
    ngx_http_gpugate_pg_conf_t    *conf;      /* outlives the worker */
    ngx_log_t                     *log;       /* cycle log */
    ngx_http_gpugate_pg_conn_t    *conns;     /* conf->connections of them */
    ngx_queue_t                    waiting;   /* queries with no free conn,
                                                 FIFO, so the head has the
                                                 earliest deadline */
    ngx_event_t                    timer;     /* head of "waiting" expires */
};


static void ngx_http_gpugate_pg_connect(ngx_http_gpugate_pg_conn_t *pc);
static ngx_int_t ngx_http_gpugate_pg_wrap(ngx_http_gpugate_pg_conn_t *pc);
static void ngx_http_gpugate_pg_unwrap(ngx_http_gpugate_pg_conn_t *pc);
static ngx_int_t ngx_http_gpugate_pg_want(ngx_http_gpugate_pg_conn_t *pc,
    ngx_uint_t write);
static void ngx_http_gpugate_pg_event(ngx_event_t *ev);
static void ngx_http_gpugate_pg_poll_connect(ngx_http_gpugate_pg_conn_t *pc);
static void ngx_http_gpugate_pg_read(ngx_http_gpugate_pg_conn_t *pc);
static ngx_int_t ngx_http_gpugate_pg_flush(ngx_http_gpugate_pg_conn_t *pc);
static ngx_int_t ngx_http_gpugate_pg_prepare_next(
    ngx_http_gpugate_pg_conn_t *pc);
static ngx_int_t ngx_http_gpugate_pg_send(ngx_http_gpugate_pg_conn_t *pc,
    ngx_http_gpugate_pg_query_t *q);
static void ngx_http_gpugate_pg_ready(ngx_http_gpugate_pg_conn_t *pc);
static void ngx_http_gpugate_pg_fail(ngx_http_gpugate_pg_conn_t *pc,
    const char *reason);
static void ngx_http_gpugate_pg_timer_handler(ngx_event_t *ev);
static void ngx_http_gpugate_pg_queue_timer(ngx_event_t *ev);
static void ngx_http_gpugate_pg_arm_queue_timer(ngx_http_gpugate_pg_t *pg);
static void ngx_http_gpugate_pg_fail_waiting(ngx_http_gpugate_pg_t *pg,
    const char *reason);


ngx_http_gpugate_pg_t *
ngx_http_gpugate_pg_create(ngx_cycle_t *cycle,
    ngx_http_gpugate_pg_conf_t *conf)
{
    ngx_uint_t                   i;
    ngx_http_gpugate_pg_t       *pg;
    ngx_http_gpugate_pg_conn_t  *pc;

    pg = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_pg_t));
    if (pg == NULL) {
        return NULL;
    }

    pg->conns = ngx_pcalloc(cycle->pool,
                    conf->connections * sizeof(ngx_http_gpugate_pg_conn_t));
    if (pg->conns == NULL) {
        return NULL;
    }

    pg->conf = conf;
    pg->log = cycle->log;
    ngx_queue_init(&pg->waiting);

    pg->timer.handler = ngx_http_gpugate_pg_queue_timer;
    pg->timer.data = pg;
    pg->timer.log = cycle->log;

    for (i = 0; i < conf->connections; i++) {
        pc = &pg->conns[i];
        pc->pool = pg;
        pc->timer.handler = ngx_http_gpugate_pg_timer_handler;
        pc->timer.data = pc;
        pc->timer.log = cycle->log;

        ngx_http_gpugate_pg_connect(pc);
    }

    return pg;
}


void
ngx_http_gpugate_pg_destroy(ngx_http_gpugate_pg_t *pg)
{
    ngx_uint_t                   i;
    ngx_http_gpugate_pg_conn_t  *pc;

    /* the worker is exiting: no handler may run any more */

    for (i = 0; i < pg->conf->connections; i++) {
        pc = &pg->conns[i];

        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }

        ngx_http_gpugate_pg_unwrap(pc);

        if (pc->result) {
            PQclear(pc->result);
            pc->result = NULL;
        }

        if (pc->pgconn) {
            PQfinish(pc->pgconn);
            pc->pgconn = NULL;
        }

        pc->state = NGX_HTTP_GPUGATE_PG_DOWN;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                       "gpugate pg: connection %ui down: worker exiting", i);
    }

    if (pg->timer.timer_set) {
        ngx_del_timer(&pg->timer);
    }
}


const char *
ngx_http_gpugate_pg_state(ngx_http_gpugate_pg_t *pg)
{
    ngx_uint_t  i, connecting;

    connecting = 0;

    for (i = 0; i < pg->conf->connections; i++) {
        switch (pg->conns[i].state) {
        case NGX_HTTP_GPUGATE_PG_IDLE:
        case NGX_HTTP_GPUGATE_PG_BUSY:
            return "up";
        case NGX_HTTP_GPUGATE_PG_CONNECTING:
        case NGX_HTTP_GPUGATE_PG_PREPARING:
            connecting = 1;
            break;
        default:
            break;
        }
    }

    return connecting ? "connecting" : "down";
}


ngx_int_t
ngx_http_gpugate_pg_run(ngx_http_gpugate_pg_t *pg,
    ngx_http_gpugate_pg_query_t *q)
{
    ngx_uint_t                   i, pending;
    ngx_http_gpugate_pg_conn_t  *pc;

    q->deadline = ngx_current_msec + pg->conf->timeout;
    q->sqlstate[0] = '\0';

    pending = 0;

    for (i = 0; i < pg->conf->connections; i++) {
        pc = &pg->conns[i];

        if (pc->state == NGX_HTTP_GPUGATE_PG_IDLE) {
            if (ngx_http_gpugate_pg_send(pc, q) == NGX_OK) {
                return NGX_OK;
            }

            /* the connection is gone; q was not started: try others */
            ngx_http_gpugate_pg_fail(pc, "cannot send query");
            continue;
        }

        if (pc->state != NGX_HTTP_GPUGATE_PG_DOWN) {
            pending = 1;
        }
    }

    if (!pending) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                       "gpugate pg: query declined: no connection up");
        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(&pg->waiting, &q->queue);
    ngx_http_gpugate_pg_arm_queue_timer(pg);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                   "gpugate pg: query waits for a connection");

    return NGX_OK;
}


static void
ngx_http_gpugate_pg_connect(ngx_http_gpugate_pg_conn_t *pc)
{
    ngx_http_gpugate_pg_t  *pg;

    pg = pc->pool;

    pc->pgconn = PQconnectStart((char *) pg->conf->conninfo.data);

    if (pc->pgconn == NULL) {
        ngx_http_gpugate_pg_fail(pc, "out of memory");
        return;
    }

    if (PQstatus(pc->pgconn) == CONNECTION_BAD
        || PQsetnonblocking(pc->pgconn, 1) != 0)
    {
        ngx_http_gpugate_pg_fail(pc, PQerrorMessage(pc->pgconn));
        return;
    }

    pc->state = NGX_HTTP_GPUGATE_PG_CONNECTING;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                   "gpugate pg: connecting");

    if (ngx_http_gpugate_pg_wrap(pc) != NGX_OK) {
        ngx_http_gpugate_pg_fail(pc, "cannot watch the socket");
        return;
    }

    /* libpq: before the first PQconnectPoll(), act as if it said WRITING */

    if (ngx_http_gpugate_pg_want(pc, 1) != NGX_OK) {
        ngx_http_gpugate_pg_fail(pc, "cannot watch the socket");
        return;
    }

    pc->timer.cancelable = 1;
    ngx_add_timer(&pc->timer, pg->conf->timeout);
}


static ngx_int_t
ngx_http_gpugate_pg_wrap(ngx_http_gpugate_pg_conn_t *pc)
{
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    fd = PQsocket(pc->pgconn);
    if (fd == (ngx_socket_t) -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, pc->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = pc;
    c->read->handler = ngx_http_gpugate_pg_event;
    c->write->handler = ngx_http_gpugate_pg_event;
    c->read->log = pc->pool->log;
    c->write->log = pc->pool->log;

    pc->c = c;

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_http_gpugate_pg_unwrap(pc);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_gpugate_pg_unwrap(ngx_http_gpugate_pg_conn_t *pc)
{
    ngx_connection_t  *c;

    c = pc->c;

    if (c == NULL) {
        return;
    }

    /*
     * The descriptor is libpq's and is closed (or was already replaced)
     * by libpq, so the events are dropped as for a closing socket.
     */

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    pc->c = NULL;
}


static ngx_int_t
ngx_http_gpugate_pg_want(ngx_http_gpugate_pg_conn_t *pc, ngx_uint_t write)
{
    ngx_event_t  *wev;

    wev = pc->c->write;

    if (write && !wev->active) {
        return ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    if (!write && wev->active) {
        return ngx_del_event(wev, NGX_WRITE_EVENT, 0);
    }

    return NGX_OK;
}


static void
ngx_http_gpugate_pg_event(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_gpugate_pg_conn_t  *pc;

    c = ev->data;
    pc = c->data;

    switch (pc->state) {

    case NGX_HTTP_GPUGATE_PG_CONNECTING:
        ngx_http_gpugate_pg_poll_connect(pc);
        return;

    case NGX_HTTP_GPUGATE_PG_PREPARING:
    case NGX_HTTP_GPUGATE_PG_BUSY:
        if (ev->write) {
            if (ngx_http_gpugate_pg_flush(pc) != NGX_OK) {
                ngx_http_gpugate_pg_fail(pc, PQerrorMessage(pc->pgconn));
            }
            return;
        }

        ngx_http_gpugate_pg_read(pc);
        return;

    case NGX_HTTP_GPUGATE_PG_IDLE:
        if (ev->write) {
            (void) ngx_http_gpugate_pg_want(pc, 0);
            return;
        }

        /* an idle connection speaks only to say it is going away */

        if (PQconsumeInput(pc->pgconn) == 0
            || PQstatus(pc->pgconn) == CONNECTION_BAD)
        {
            ngx_http_gpugate_pg_fail(pc, PQerrorMessage(pc->pgconn));
            return;
        }

        while (!PQisBusy(pc->pgconn)) {
            PGresult  *res = PQgetResult(pc->pgconn);

            if (res == NULL) {
                break;
            }

            PQclear(res);
        }

        return;

    default:
        return;
    }
}


static void
ngx_http_gpugate_pg_poll_connect(ngx_http_gpugate_pg_conn_t *pc)
{
    PostgresPollingStatusType  st;

    st = PQconnectPoll(pc->pgconn);

    /* libpq may open a new socket while trying hosts or SSL modes */

    if (st != PGRES_POLLING_FAILED
        && PQsocket(pc->pgconn) != pc->c->fd)
    {
        ngx_http_gpugate_pg_unwrap(pc);

        if (ngx_http_gpugate_pg_wrap(pc) != NGX_OK) {
            ngx_http_gpugate_pg_fail(pc, "cannot watch the socket");
            return;
        }
    }

    switch (st) {

    case PGRES_POLLING_READING:
        if (ngx_http_gpugate_pg_want(pc, 0) != NGX_OK) {
            ngx_http_gpugate_pg_fail(pc, "cannot watch the socket");
        }
        return;

    case PGRES_POLLING_WRITING:
        if (ngx_http_gpugate_pg_want(pc, 1) != NGX_OK) {
            ngx_http_gpugate_pg_fail(pc, "cannot watch the socket");
        }
        return;

    case PGRES_POLLING_OK:
        if (ngx_http_gpugate_pg_want(pc, 0) != NGX_OK) {
            ngx_http_gpugate_pg_fail(pc, "cannot watch the socket");
            return;
        }

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                       "gpugate pg: connected, preparing statements");

        pc->state = NGX_HTTP_GPUGATE_PG_PREPARING;
        pc->prepared = 0;

        if (ngx_http_gpugate_pg_prepare_next(pc) != NGX_OK) {
            ngx_http_gpugate_pg_fail(pc, PQerrorMessage(pc->pgconn));
        }

        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_http_gpugate_pg_fail(pc, PQerrorMessage(pc->pgconn));
        return;
    }
}


static void
ngx_http_gpugate_pg_read(ngx_http_gpugate_pg_conn_t *pc)
{
    char                         *err;
    PGresult                     *res;
    ExecStatusType                st;
    ngx_http_gpugate_pg_query_t  *q;

    if (PQconsumeInput(pc->pgconn) == 0) {
        ngx_http_gpugate_pg_fail(pc, PQerrorMessage(pc->pgconn));
        return;
    }

    for ( ;; ) {
        if (PQisBusy(pc->pgconn)) {
            return;
        }

        res = PQgetResult(pc->pgconn);

        if (res == NULL) {
            break;
        }

        if (pc->result == NULL) {
            pc->result = res;

        } else {
            PQclear(res);
        }
    }

    /* the command is complete */

    res = pc->result;
    pc->result = NULL;

    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    err = (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
          ? NULL : (res ? PQresultErrorMessage(res) : "no result");

    if (pc->state == NGX_HTTP_GPUGATE_PG_PREPARING) {

        if (err) {
            /* a statement the server rejects will not improve by retry
               soon: this goes through the backoff like a dead server */
            ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                          "gpugate pg: preparing \"%s\" failed: %s",
                          pc->pool->conf->statements.nelts > pc->prepared
                          ? ((ngx_http_gpugate_pg_stmt_t *)
                             pc->pool->conf->statements.elts)
                            [pc->prepared].name : "?", err);
            if (res) {
                PQclear(res);
            }
            ngx_http_gpugate_pg_fail(pc, "statement preparation failed");
            return;
        }

        if (res) {
            PQclear(res);
        }

        pc->prepared++;

        if (ngx_http_gpugate_pg_prepare_next(pc) != NGX_OK) {
            ngx_http_gpugate_pg_fail(pc, PQerrorMessage(pc->pgconn));
        }

        return;
    }

    /* BUSY: hand the result over, then take the next waiting query */

    q = pc->query;
    pc->query = NULL;
    pc->state = NGX_HTTP_GPUGATE_PG_IDLE;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                   "gpugate pg: \"%s\" answered, connection idle",
                   q ? q->stmt : "");

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    q->sqlstate[0] = '\0';

    if (err && res && PQresultErrorField(res, PG_DIAG_SQLSTATE)) {
        ngx_cpystrn((u_char *) q->sqlstate,
                    (u_char *) PQresultErrorField(res, PG_DIAG_SQLSTATE),
                    sizeof(q->sqlstate));
    }

    q->handler(q, err ? NULL : res, err);

    if (res) {
        PQclear(res);
    }

    /* the handler may have started another query on this connection */

    if (pc->state == NGX_HTTP_GPUGATE_PG_IDLE) {
        ngx_http_gpugate_pg_ready(pc);
    }
}


static ngx_int_t
ngx_http_gpugate_pg_flush(ngx_http_gpugate_pg_conn_t *pc)
{
    int  rc;

    rc = PQflush(pc->pgconn);

    if (rc == -1) {
        return NGX_ERROR;
    }

    return ngx_http_gpugate_pg_want(pc, rc == 1);
}


static ngx_int_t
ngx_http_gpugate_pg_prepare_next(ngx_http_gpugate_pg_conn_t *pc)
{
    ngx_http_gpugate_pg_stmt_t  *stmt;

    if (pc->prepared == pc->pool->conf->statements.nelts) {
        pc->state = NGX_HTTP_GPUGATE_PG_IDLE;
        pc->failures = 0;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                       "gpugate pg: %ui statements prepared, connection "
                       "idle", pc->prepared);

        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }

        ngx_log_error(NGX_LOG_INFO, pc->pool->log, 0,
                      "gpugate pg: connection ready");

        ngx_http_gpugate_pg_ready(pc);
        return NGX_OK;
    }

    stmt = pc->pool->conf->statements.elts;
    stmt = &stmt[pc->prepared];

    if (!PQsendPrepare(pc->pgconn, stmt->name, stmt->sql, stmt->nparams,
                       NULL))
    {
        return NGX_ERROR;
    }

    return ngx_http_gpugate_pg_flush(pc);
}


static ngx_int_t
ngx_http_gpugate_pg_send(ngx_http_gpugate_pg_conn_t *pc,
    ngx_http_gpugate_pg_query_t *q)
{
    ngx_msec_int_t  left;

    if (!PQsendQueryPrepared(pc->pgconn, q->stmt, q->nparams, q->values,
                             q->lengths, q->formats, 0))
    {
        return NGX_ERROR;
    }

    pc->state = NGX_HTTP_GPUGATE_PG_BUSY;
    pc->query = q;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                   "gpugate pg: running \"%s\"", q->stmt);

    left = (ngx_msec_int_t) (q->deadline - ngx_current_msec);

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    /* a running query is work in progress: a graceful exit waits for it */
    pc->timer.cancelable = 0;
    ngx_add_timer(&pc->timer, left > 0 ? (ngx_msec_t) left : 1);

    if (ngx_http_gpugate_pg_flush(pc) != NGX_OK) {
        pc->state = NGX_HTTP_GPUGATE_PG_IDLE;
        pc->query = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* an IDLE connection takes the oldest waiting query, if any */

static void
ngx_http_gpugate_pg_ready(ngx_http_gpugate_pg_conn_t *pc)
{
    ngx_queue_t                  *qn;
    ngx_http_gpugate_pg_t        *pg;
    ngx_http_gpugate_pg_query_t  *q;

    pg = pc->pool;

    if (ngx_queue_empty(&pg->waiting)) {
        return;
    }

    qn = ngx_queue_head(&pg->waiting);
    q = ngx_queue_data(qn, ngx_http_gpugate_pg_query_t, queue);
    ngx_queue_remove(qn);

    ngx_http_gpugate_pg_arm_queue_timer(pg);

    if (ngx_http_gpugate_pg_send(pc, q) != NGX_OK) {
        /* give the query back before failing the connection, which may
           call handlers and rearrange the queue */
        ngx_queue_insert_head(&pg->waiting, &q->queue);
        ngx_http_gpugate_pg_arm_queue_timer(pg);
        ngx_http_gpugate_pg_fail(pc, PQerrorMessage(pc->pgconn));
    }
}


static void
ngx_http_gpugate_pg_fail(ngx_http_gpugate_pg_conn_t *pc, const char *reason)
{
    size_t                        len;
    ngx_msec_t                    delay, cap;
    ngx_uint_t                    i, was_up, any_alive;
    ngx_http_gpugate_pg_t        *pg;
    ngx_http_gpugate_pg_query_t  *q;

    pg = pc->pool;
    q = pc->query;
    was_up = (pc->state == NGX_HTTP_GPUGATE_PG_IDLE
              || pc->state == NGX_HTTP_GPUGATE_PG_BUSY);

    /* libpq messages end with a newline that log lines do not want */

    len = ngx_strlen(reason);
    while (len && (reason[len - 1] == '\n' || reason[len - 1] == ' ')) {
        len--;
    }

    ngx_log_error(NGX_LOG_ERR, pg->log, 0,
                  "gpugate pg: connection failed: %*s", len, reason);

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    ngx_http_gpugate_pg_unwrap(pc);

    if (pc->result) {
        PQclear(pc->result);
        pc->result = NULL;
    }

    if (pc->pgconn) {
        PQfinish(pc->pgconn);
        pc->pgconn = NULL;
    }

    pc->state = NGX_HTTP_GPUGATE_PG_DOWN;
    pc->query = NULL;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                   "gpugate pg: connection down, %ui failures",
                   pc->failures);

    /*
     * A connection that was up gets one immediate retry (a restarted
     * server, a killed backend); after that, full-jitter exponential
     * backoff keeps the workers of every gateway node from reconnecting
     * in step.
     */

    if (was_up) {
        pc->failures = 0;
        delay = 0;

    } else {
        pc->failures++;
        cap = pg->conf->backoff_max;
        delay = pc->failures > 16 ? cap
                : ngx_min(cap, (ngx_msec_t) 100 << (pc->failures - 1));
        delay = (ngx_msec_t) ngx_random() % (delay + 1);
    }

    pc->timer.cancelable = 1;
    ngx_add_timer(&pc->timer, delay ? delay : 1);

    if (q) {
        q->handler(q, NULL, "PostgreSQL connection lost");
    }

    any_alive = 0;

    for (i = 0; i < pg->conf->connections; i++) {
        if (pg->conns[i].state != NGX_HTTP_GPUGATE_PG_DOWN) {
            any_alive = 1;
            break;
        }
    }

    if (!any_alive) {
        ngx_http_gpugate_pg_fail_waiting(pg, "PostgreSQL is unreachable");
    }
}


static void
ngx_http_gpugate_pg_timer_handler(ngx_event_t *ev)
{
    ngx_http_gpugate_pg_conn_t  *pc;

    pc = ev->data;

    switch (pc->state) {

    case NGX_HTTP_GPUGATE_PG_DOWN:
        ngx_http_gpugate_pg_connect(pc);
        return;

    case NGX_HTTP_GPUGATE_PG_CONNECTING:
    case NGX_HTTP_GPUGATE_PG_PREPARING:
        ngx_http_gpugate_pg_fail(pc, "connect timed out");
        return;

    case NGX_HTTP_GPUGATE_PG_BUSY:
        /*
         * PQcancel() would block on a new connection; dropping this one
         * makes the server abort the query when it next writes to us.
         */
        ngx_http_gpugate_pg_fail(pc, "query timed out");
        return;

    default:
        return;
    }
}


static void
ngx_http_gpugate_pg_arm_queue_timer(ngx_http_gpugate_pg_t *pg)
{
    ngx_msec_int_t                left;
    ngx_http_gpugate_pg_query_t  *q;

    if (pg->timer.timer_set) {
        ngx_del_timer(&pg->timer);
    }

    if (ngx_queue_empty(&pg->waiting)) {
        return;
    }

    q = ngx_queue_data(ngx_queue_head(&pg->waiting),
                       ngx_http_gpugate_pg_query_t, queue);

    left = (ngx_msec_int_t) (q->deadline - ngx_current_msec);
    ngx_add_timer(&pg->timer, left > 0 ? (ngx_msec_t) left : 1);
}


static void
ngx_http_gpugate_pg_queue_timer(ngx_event_t *ev)
{
    ngx_queue_t                  *qn;
    ngx_http_gpugate_pg_t        *pg;
    ngx_http_gpugate_pg_query_t  *q;

    pg = ev->data;

    while (!ngx_queue_empty(&pg->waiting)) {
        qn = ngx_queue_head(&pg->waiting);
        q = ngx_queue_data(qn, ngx_http_gpugate_pg_query_t, queue);

        if ((ngx_msec_int_t) (q->deadline - ngx_current_msec) > 0) {
            break;
        }

        ngx_queue_remove(qn);

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                       "gpugate pg: query timed out waiting for a "
                       "connection");

        q->handler(q, NULL, "timed out waiting for a PostgreSQL connection");
    }

    ngx_http_gpugate_pg_arm_queue_timer(pg);
}


static void
ngx_http_gpugate_pg_fail_waiting(ngx_http_gpugate_pg_t *pg,
    const char *reason)
{
    ngx_queue_t                  *qn;
    ngx_http_gpugate_pg_query_t  *q;

    /* one at a time: a handler may queue new work while we iterate */

    while (!ngx_queue_empty(&pg->waiting)) {
        qn = ngx_queue_head(&pg->waiting);
        q = ngx_queue_data(qn, ngx_http_gpugate_pg_query_t, queue);
        ngx_queue_remove(qn);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pg->log, 0,
                       "gpugate pg: waiting query failed: %s", reason);

        q->handler(q, NULL, reason);
    }

    ngx_http_gpugate_pg_arm_queue_timer(pg);
}
