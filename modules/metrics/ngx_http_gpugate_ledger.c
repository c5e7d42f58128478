
/*
 * Copyright (C) gpugate authors
 *
 * The usage ledger: one usage_events row per request, written by each
 * worker in batches through its own non-blocking PostgreSQL connection
 * (a connection apart from auth's, so a big INSERT never delays a key
 * lookup).  The log phase only copies the row into the worker's ring.
 *
 * Nothing is lost quietly:
 *
 *   - PostgreSQL down: rows stay in the ring (buffer= rows) and go out
 *     when it is back, a batch after another.  A full ring spills its
 *     oldest batch to a file in spill= (or, without one, the new row is
 *     dropped and counted).
 *   - reload, quit: the flush timer is not cancelable while rows are
 *     held, so a gracefully exiting worker stays until they are written,
 *     for up to exit_timeout=; what is left then is spilled.  A spill file
 *     is a batch's JSON, sent again by worker 0 at start and every 10 s.
 *   - a worker that dies: its held rows and its requests in flight are
 *     known from shared memory and counted as lost by the next worker to
 *     start or page to be asked for.
 *   - a row PostgreSQL refuses for its data (SQLSTATE class 22 or 23)
 *     would refuse its whole batch for ever: the batch is halved until
 *     the bad row is alone, and that row is counted, logged and dropped.
 *     A spill file refused so is renamed aside (".bad").
 *
 * Strings are cut on a character boundary with invalid bytes replaced
 * (gpugate_utf8.c) when the row is taken: PostgreSQL refuses the rest.
 *
 * A batch is INSERT ... SELECT FROM json_to_recordset($1): one statement,
 * one parameter, whatever the batch size.  usage_events has a unique key
 * (gateway, request_id), so a batch sent again after an answer was lost
 * adds nothing twice.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <dirent.h>
#include <grp.h>

#include "ngx_http_gpugate_metrics.h"
#include "ngx_http_gpugate_ledger_row.h"
#include "gpugate_utf8.h"


#define NGX_HTTP_GPUGATE_LEDGER_RESCAN    10000  /* ms between looks for
                                                    spill files */
#define NGX_HTTP_GPUGATE_LEDGER_POLL      250    /* ms: how soon a worker
                                                    that begins to exit
                                                    notices, rows held */



typedef struct {
    ngx_http_gpugate_metrics_main_conf_t  *mmcf;   /* settings */
    ngx_http_gpugate_metrics_shm_t        *shm;    /* counters */
    ngx_http_gpugate_metrics_proc_t       *proc;   /* our pending count in
                                                      shm, NULL: none */
    ngx_http_gpugate_pg_t                 *pg;     /* our connection */
    ngx_http_gpugate_ledger_row_t         *rows;   /* ring of mmcf->buffer */
    ngx_uint_t                             head;   /* oldest row */
    ngx_uint_t                             count;  /* rows held */
    ngx_uint_t                             sending; /* rows from head in the
                                                       query now; 0: none */
    u_char                                *json;   /* the query's payload */
    size_t                                 json_size; /* its allocation */
    ngx_str_t                              file;   /* spill file being sent,
                                                      or empty */
    ngx_http_gpugate_pg_query_t            query;  /* the one in flight */
    ngx_event_t                            timer;  /* flush, retry, rescan */
    ngx_msec_t                             backoff; /* after a failure */
    ngx_msec_t                             flush_at; /* when the held rows
                                                        are due */
    ngx_msec_t                             exit_at; /* give up exiting then;
                                                       0: not exiting */
    ngx_msec_t                             rescan_at; /* next look for spill
                                                         files (worker 0) */
    ngx_uint_t                             suspect; /* rows from head among
                                                       which one was refused
                                                       for its data; 0: none */
    ngx_uint_t                             limit;  /* rows per batch while
                                                      suspect: halved on
                                                      each refusal */
    const char                            *state;  /* for the status page */
    unsigned                               failing:1; /* logged once */
} ngx_http_gpugate_ledger_t;


static void ngx_http_gpugate_ledger_tick(ngx_event_t *ev);
static void ngx_http_gpugate_ledger_arm(ngx_msec_t delay);
static void ngx_http_gpugate_ledger_send(void);
static void ngx_http_gpugate_ledger_done(ngx_http_gpugate_pg_query_t *q,
    PGresult *res, const char *error);
static size_t ngx_http_gpugate_ledger_json(u_char *buf, ngx_uint_t first,
    ngx_uint_t n);
static ngx_uint_t ngx_http_gpugate_ledger_spill(ngx_uint_t n);
static ngx_int_t ngx_http_gpugate_ledger_next_file(void);
static void ngx_http_gpugate_ledger_pending_set(void);
static void ngx_http_gpugate_ledger_set_aside(u_char *path, ngx_uint_t rows,
    const char *why);
static void ngx_http_gpugate_ledger_set_state(ngx_http_gpugate_ledger_t *lg,
    const char *state);


static ngx_http_gpugate_ledger_t  *ngx_http_gpugate_ledger;


ngx_int_t
ngx_http_gpugate_ledger_init(ngx_cycle_t *cycle,
    ngx_http_gpugate_metrics_main_conf_t *mmcf)
{
    ngx_http_gpugate_ledger_t       *lg;
    ngx_http_gpugate_metrics_shm_t  *shm;

    /* dead workers' rows were counted when this one took its slot */

    shm = mmcf->zone->data;

    if (!mmcf->ledger) {
        return NGX_OK;
    }

    lg = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_ledger_t));
    if (lg == NULL) {
        return NGX_ERROR;
    }

    lg->mmcf = mmcf;
    lg->shm = shm;
    lg->state = "idle";

    if (ngx_http_gpugate_metrics_slot < NGX_HTTP_GPUGATE_METRICS_PROCS) {
        lg->proc = &shm->procs[ngx_http_gpugate_metrics_slot];
    }

    /* untouched pages of the ring cost no memory until rows arrive */

    lg->rows = ngx_alloc(mmcf->buffer * sizeof(ngx_http_gpugate_ledger_row_t),
                         cycle->log);
    lg->json_size = mmcf->batch * (NGX_HTTP_GPUGATE_LEDGER_ROW_JSON
                                   + 6 * mmcf->gateway.len) + 3;
    lg->json = ngx_alloc(lg->json_size, cycle->log);

    if (lg->rows == NULL || lg->json == NULL) {
        return NGX_ERROR;
    }

    lg->pg = ngx_http_gpugate_pg_create(cycle, &mmcf->pg);
    if (lg->pg == NULL) {
        return NGX_ERROR;
    }

    lg->timer.handler = ngx_http_gpugate_ledger_tick;
    lg->timer.data = lg;
    lg->timer.log = cycle->log;

    ngx_http_gpugate_ledger = lg;

    /* worker 0 sends what earlier workers spilled */
    lg->rescan_at = (ngx_worker == 0) ? ngx_current_msec : (ngx_msec_t) -1;

    ngx_http_gpugate_ledger_arm(mmcf->interval);

    return NGX_OK;
}


/* the row of a request, in the log phase: a copy, nothing more */

void
ngx_http_gpugate_ledger_add(ngx_http_gpugate_metrics_req_t *req)
{
    ngx_http_gpugate_ledger_t      *lg;
    ngx_http_gpugate_ledger_row_t  *row;

    lg = ngx_http_gpugate_ledger;

    if (lg == NULL) {
        return;
    }

    if (lg->count == lg->mmcf->buffer) {
        if (lg->mmcf->spill.len == 0 || lg->sending
            || ngx_http_gpugate_ledger_spill(lg->mmcf->batch) == 0)
        {
            (void) ngx_atomic_fetch_add(&lg->shm->ledger_dropped, 1);

            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "gpugate ledger: %ui usage rows held, buffer "
                          "full: the row of request %V is dropped",
                          lg->count, &req->request_id);
            return;
        }
    }

    row = &lg->rows[(lg->head + lg->count) % lg->mmcf->buffer];

    ngx_http_gpugate_ledger_cut(row, request_id, req->request_id);
    ngx_http_gpugate_ledger_cut(row, model, req->model);
    ngx_http_gpugate_ledger_cut(row, agent, req->agent);
    ngx_http_gpugate_ledger_cut(row, endpoint, req->endpoint);
    ngx_http_gpugate_ledger_take_extra(row, req->extra);

    row->key_id = req->key_id;
    row->tenant_id = req->tenant_id;
    row->prompt = (uint32_t) req->prompt;
    row->completion = (uint32_t) req->completion;
    row->duration_ms = (uint32_t) req->duration_ms;
    row->ttft_ms = (int32_t) req->ttft_ms;
    row->sec = req->sec;
    row->msec = (uint16_t) req->msec;
    row->status = (uint16_t) req->status;
    row->stream = req->stream;
    row->partial = req->partial;
    row->cost = req->cost;

    lg->count++;
    ngx_http_gpugate_ledger_pending_set();

    if (lg->exit_at) {
        /* exit_timeout= runs from the worker's last request: a stream
           that ends long after the reload still gets its chance */
        lg->exit_at = ngx_current_msec + lg->mmcf->exit_timeout;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "gpugate ledger: exiting, deadline moved to %M",
                       lg->exit_at);
    }

    if (lg->count >= lg->mmcf->batch && !lg->sending) {
        /* a full batch need not wait for the interval */
        ngx_http_gpugate_ledger_arm(0);

    } else if (lg->count == 1) {
        /* from now on a quitting worker waits for the flush */
        lg->flush_at = ngx_current_msec + lg->mmcf->interval;
        ngx_http_gpugate_ledger_arm(lg->mmcf->interval);
    }
}


static void
ngx_http_gpugate_ledger_pending_set(void)
{
    ngx_http_gpugate_ledger_t  *lg;

    lg = ngx_http_gpugate_ledger;

    if (lg->proc) {
        lg->proc->pending = lg->count;
    }
}


/*
 * (Re)arms the flush timer.  It holds a gracefully exiting worker only
 * while rows are held or a batch is out; an idle ledger must not keep a
 * worker from exiting.
 */

static void
ngx_http_gpugate_ledger_arm(ngx_msec_t delay)
{
    ngx_http_gpugate_ledger_t  *lg;

    lg = ngx_http_gpugate_ledger;

    lg->timer.cancelable = (lg->count == 0 && lg->file.len == 0);

    /*
     * nginx tells no module that a graceful exit began (ngx_exiting is
     * only a flag), so a worker holding rows looks at it often.
     */

    if (!lg->timer.cancelable && delay > NGX_HTTP_GPUGATE_LEDGER_POLL) {
        delay = NGX_HTTP_GPUGATE_LEDGER_POLL;
    }

    if (lg->timer.timer_set) {
        ngx_del_timer(&lg->timer);
    }

    ngx_add_timer(&lg->timer, delay);
}


static void
ngx_http_gpugate_ledger_tick(ngx_event_t *ev)
{
    ngx_http_gpugate_ledger_t  *lg;

    lg = ev->data;

    if (ngx_exiting && lg->exit_at == 0) {
        lg->exit_at = ngx_current_msec + lg->mmcf->exit_timeout;
        lg->backoff = 0;
    }

    if (lg->exit_at && (ngx_msec_int_t) (ngx_current_msec - lg->exit_at) >= 0
        && lg->sending == 0)
    {
        /* out of time: keep the rest on disk, or count it */
        if (lg->count) {
            ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                          "gpugate ledger: exit_timeout: %ui usage rows not "
                          "written", lg->count);
            (void) ngx_http_gpugate_ledger_spill(lg->count);
        }

        return;
    }

    if (lg->sending || lg->file.len) {
        /* the query's own deadline ends it; look again later */
        ngx_http_gpugate_ledger_arm(lg->mmcf->interval);
        return;
    }

    if (lg->count == 0 && !ngx_exiting
        && (ngx_msec_int_t) (ngx_current_msec - lg->rescan_at) >= 0
        && lg->rescan_at != (ngx_msec_t) -1)
    {
        lg->rescan_at = ngx_current_msec + NGX_HTTP_GPUGATE_LEDGER_RESCAN;

        if (ngx_http_gpugate_ledger_next_file() == NGX_OK) {
            return;
        }
    }

    if (lg->count
        && (ngx_exiting || lg->count >= lg->mmcf->batch
            || (ngx_msec_int_t) (ngx_current_msec - lg->flush_at) >= 0))
    {
        ngx_http_gpugate_ledger_send();
        return;
    }

    ngx_http_gpugate_ledger_arm(lg->count
                                ? lg->flush_at - ngx_current_msec
                                : lg->mmcf->interval);
}


static void
ngx_http_gpugate_ledger_send(void)
{
    size_t                      len;
    ngx_uint_t                  n;
    ngx_http_gpugate_ledger_t  *lg;

    lg = ngx_http_gpugate_ledger;

    n = ngx_min(lg->count, lg->mmcf->batch);

    if (lg->suspect) {
        n = ngx_min(n, ngx_min(lg->limit, lg->suspect));
    }

    len = ngx_http_gpugate_ledger_json(lg->json, lg->head, n);

    /* a text parameter: libpq reads up to the NUL */
    lg->json[len] = '\0';

    lg->sending = n;
    ngx_http_gpugate_ledger_set_state(lg, "writing");

    ngx_memzero(&lg->query, sizeof(ngx_http_gpugate_pg_query_t));
    lg->query.stmt = "gpugate_usage";
    lg->query.nparams = 1;
    lg->query.values[0] = (const char *) lg->json;
    lg->query.lengths[0] = (int) len;
    lg->query.handler = ngx_http_gpugate_ledger_done;
    lg->query.data = lg;

    /* the flush timer keeps the worker while the batch is out */
    ngx_http_gpugate_ledger_arm(lg->mmcf->interval);

    if (ngx_http_gpugate_pg_run(lg->pg, &lg->query) != NGX_OK) {
        ngx_http_gpugate_ledger_done(&lg->query, NULL,
                                     "PostgreSQL is unreachable");
    }
}


static void
ngx_http_gpugate_ledger_done(ngx_http_gpugate_pg_query_t *q, PGresult *res,
    const char *error)
{
    ngx_http_gpugate_ledger_t *lg = q->data;

    ngx_uint_t                      n;
    ngx_http_gpugate_ledger_row_t  *row;

    if (res && PQresultStatus(res) != PGRES_COMMAND_OK) {
        error = PQresultErrorMessage(res);
    }

    /*
     * Classes 22 (data exception: a bad byte, a number out of range, bad
     * JSON) and 23 (integrity constraint): the rows are at fault, not the
     * server, and a retry would be refused the same way for ever.
     */

    if (error && (ngx_strncmp(q->sqlstate, "22", 2) == 0
                  || ngx_strncmp(q->sqlstate, "23", 2) == 0))
    {
        (void) ngx_atomic_fetch_add(&lg->shm->ledger_failures, 1);
        n = lg->sending;
        lg->sending = 0;

        if (lg->file.len) {
            ngx_http_gpugate_ledger_set_aside(lg->file.data, n, error);
            ngx_free(lg->file.data);
            ngx_str_null(&lg->file);
            ngx_http_gpugate_ledger_set_state(lg, "idle");
            lg->rescan_at = ngx_current_msec;
            ngx_http_gpugate_ledger_arm(0);
            return;
        }

        if (n > 1) {
            if (lg->suspect == 0) {
                ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                              "gpugate ledger: PostgreSQL refused a batch "
                              "of %ui usage rows for its data (SQLSTATE %s: "
                              "%s); looking for the bad rows",
                              n, q->sqlstate, error);
                lg->suspect = n;
            }

            lg->limit = n / 2;
            ngx_http_gpugate_ledger_set_state(lg, "isolating");

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "gpugate ledger: %ui suspect rows, batches of %ui",
                           lg->suspect, lg->limit);

            ngx_http_gpugate_ledger_arm(0);
            return;
        }

        row = &lg->rows[lg->head];

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "gpugate ledger: PostgreSQL refused the usage row of "
                      "request %*s (SQLSTATE %s: %s); it is dropped",
                      (size_t) row->request_id_len, row->strings.request_id,
                      q->sqlstate, error);

        (void) ngx_atomic_fetch_add(&lg->shm->ledger_rejected, 1);

        lg->head = (lg->head + 1) % lg->mmcf->buffer;
        lg->count--;
        ngx_http_gpugate_ledger_pending_set();

        /* the rest of the suspects are tried whole again */
        lg->suspect = lg->suspect ? lg->suspect - 1 : 0;
        lg->limit = lg->suspect;
        ngx_http_gpugate_ledger_set_state(lg, lg->suspect ? "isolating"
                                                          : "idle");
        lg->flush_at = ngx_current_msec;

        ngx_http_gpugate_ledger_arm(0);
        return;
    }

    if (error) {
        (void) ngx_atomic_fetch_add(&lg->shm->ledger_failures, 1);

        if (!lg->failing) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "gpugate ledger: cannot write usage rows (%s); "
                          "%ui kept for later", error,
                          lg->file.len ? lg->sending : lg->count);
        }

        lg->failing = 1;
        lg->sending = 0;
        ngx_http_gpugate_ledger_set_state(lg, "retrying");

        if (lg->file.len) {
            /* the file stays for the next scan */
            ngx_free(lg->file.data);
            ngx_str_null(&lg->file);
        }

        lg->backoff = lg->backoff ? ngx_min(2 * lg->backoff, 5000)
                                  : ngx_min(lg->mmcf->interval, 5000);
        lg->flush_at = ngx_current_msec + (ngx_exiting ? 200 : lg->backoff);

        ngx_http_gpugate_ledger_arm(lg->flush_at - ngx_current_msec);
        return;
    }

    if (lg->failing) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "gpugate ledger: PostgreSQL takes usage rows again; "
                      "%ui held", lg->count);
    }

    lg->failing = 0;
    lg->backoff = 0;
    n = lg->sending;
    lg->sending = 0;
    ngx_http_gpugate_ledger_set_state(lg, "idle");

    (void) ngx_atomic_fetch_add(&lg->shm->ledger_written, n);

    if (lg->file.len) {
        (void) ngx_delete_file(lg->file.data);
        ngx_free(lg->file.data);
        ngx_str_null(&lg->file);

        /* worker 0 after a spill file: look for the next one now */
        lg->rescan_at = ngx_current_msec;

    } else {
        lg->head = (lg->head + n) % lg->mmcf->buffer;
        lg->count -= n;
        ngx_http_gpugate_ledger_pending_set();

        if (lg->suspect) {
            /* the bad row is further on: the rest of the suspects whole */
            lg->suspect -= ngx_min(n, lg->suspect);
            lg->limit = lg->suspect;

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "gpugate ledger: %ui suspect rows left",
                           lg->suspect);
        }
    }

    /* more to write (an outage's backlog): the next batch at once */
    lg->flush_at = ngx_current_msec;
    ngx_http_gpugate_ledger_arm(lg->count || lg->rescan_at
                                             == ngx_current_msec
                                ? 0 : lg->mmcf->interval);
}


/* rows [first, first + n) of the ring as a JSON array */

static size_t
ngx_http_gpugate_ledger_json(u_char *buf, ngx_uint_t first, ngx_uint_t n)
{
    u_char                         *p;
    ngx_uint_t                      i;
    ngx_http_gpugate_ledger_t      *lg;
    ngx_http_gpugate_ledger_row_t  *row;

    lg = ngx_http_gpugate_ledger;
    p = buf;
    *p++ = '[';

    for (i = 0; i < n; i++) {
        row = &lg->rows[(first + i) % lg->mmcf->buffer];

        if (i) {
            *p++ = ',';
        }

        ngx_http_gpugate_ledger_str(p, "{\"r\":", row->strings.request_id,
                                    row->request_id_len);
        ngx_http_gpugate_ledger_str(p, ",\"g\":", lg->mmcf->gateway.data,
                                    lg->mmcf->gateway.len);
        ngx_http_gpugate_ledger_str(p, ",\"m\":", row->strings.model,
                                    row->model_len);
        ngx_http_gpugate_ledger_str(p, ",\"e\":", row->strings.endpoint,
                                    row->endpoint_len);

        if (row->agent_len) {
            ngx_http_gpugate_ledger_str(p, ",\"a\":", row->strings.agent,
                                        row->agent_len);
        }

        if (row->key_id >= 0) {
            p = ngx_sprintf(p, ",\"k\":%L", row->key_id);
        }

        if (row->tenant_id >= 0) {
            p = ngx_sprintf(p, ",\"t\":%L", row->tenant_id);
        }

        if (row->ttft_ms >= 0) {
            p = ngx_sprintf(p, ",\"f\":%D", row->ttft_ms);
        }

        /* absent (older spill files too): the column's 0 */

        if (row->cost >= 0) {
            p = ngx_sprintf(p, ",\"co\":%L", row->cost);
        }

        p = ngx_http_gpugate_ledger_json_extra(p, row);

        p = ngx_sprintf(p, ",\"s\":%s,\"pa\":%s,\"p\":%uD,\"c\":%uD,"
                        "\"d\":%uD,\"st\":%ud,\"at\":%T.%03ud}",
                        row->stream ? "true" : "false",
                        row->partial ? "true" : "false",
                        row->prompt, row->completion, row->duration_ms,
                        (ngx_uint_t) row->status, row->sec,
                        (ngx_uint_t) row->msec);
    }

    *p++ = ']';

    return p - buf;
}


/*
 * Writes the oldest "n" rows to spill files, a batch per file, and
 * forgets them; never while a batch is out (its rows are the oldest).
 * Returns the rows taken; those that could not be written are counted as
 * dropped.
 */

static ngx_uint_t
ngx_http_gpugate_ledger_spill(ngx_uint_t n)
{
    size_t                      len;
    u_char                      tmp[NGX_MAX_PATH], name[NGX_MAX_PATH];
    ngx_fd_t                    fd;
    ngx_uint_t                  k, done, seq;
    ngx_http_gpugate_ledger_t  *lg;

    lg = ngx_http_gpugate_ledger;
    done = 0;
    seq = 0;

    if (lg->sending) {
        return 0;
    }

    n = ngx_min(n, lg->count);

    /* a bad row spilled with the rest makes its file set aside later */
    lg->suspect = 0;

    while (done < n) {
        k = ngx_min(n - done, lg->mmcf->batch);

        if (lg->mmcf->spill.len == 0) {
            break;
        }

        len = ngx_http_gpugate_ledger_json(lg->json, lg->head, k);

        /* the row count ends the name: the sender counts them */

        (void) ngx_snprintf(name, sizeof(name),
                            "%V/gpugate-usage-%P-%M-%ui-%ui.json%Z",
                            &lg->mmcf->spill, ngx_pid, ngx_current_msec,
                            seq, k);
        (void) ngx_snprintf(tmp, sizeof(tmp), "%s.tmp%Z", name);
        seq++;

        /* written aside, then renamed: a scanner never reads half */

        fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                           NGX_FILE_DEFAULT_ACCESS);

        if (fd == NGX_INVALID_FILE
            || ngx_write_fd(fd, lg->json, len) != (ssize_t) len
            || ngx_close_file(fd) == NGX_FILE_ERROR
            || ngx_rename_file(tmp, name) == NGX_FILE_ERROR)
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                          "gpugate ledger: cannot spill usage rows to "
                          "\"%s\"", tmp);
            break;
        }

        (void) ngx_atomic_fetch_add(&lg->shm->ledger_spilled, k);

        lg->head = (lg->head + k) % lg->mmcf->buffer;
        lg->count -= k;
        done += k;
    }

    if (done < n && lg->mmcf->spill.len) {
        /* the disk failed us too: logged above, counted here */
        (void) ngx_atomic_fetch_add(&lg->shm->ledger_dropped, n - done);
        lg->head = (lg->head + (n - done)) % lg->mmcf->buffer;
        lg->count -= n - done;
        done = n;

    } else if (done < n) {
        (void) ngx_atomic_fetch_add(&lg->shm->ledger_dropped, n - done);
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "gpugate ledger: %ui usage rows dropped (no spill=)",
                      n - done);
        lg->head = (lg->head + (n - done)) % lg->mmcf->buffer;
        lg->count -= n - done;
    }

    ngx_http_gpugate_ledger_pending_set();

    return done;
}


/* worker 0: sends the next spill file as a batch; NGX_OK if one went */

static ngx_int_t
ngx_http_gpugate_ledger_next_file(void)
{
    DIR                        *dir;
    size_t                      len;
    u_char                     *path;
    ssize_t                     n;
    ngx_fd_t                    fd;
    ngx_file_info_t             fi;
    struct dirent              *de;
    ngx_http_gpugate_ledger_t  *lg;

    lg = ngx_http_gpugate_ledger;

    if (lg->mmcf->spill.len == 0) {
        return NGX_DECLINED;
    }

    dir = opendir((char *) lg->mmcf->spill.data);
    if (dir == NULL) {
        return NGX_DECLINED;
    }

    path = NULL;

    while ((de = readdir(dir)) != NULL) {
        len = ngx_strlen(de->d_name);

        if (len > 19 && ngx_strncmp(de->d_name, "gpugate-usage-", 14) == 0
            && ngx_strcmp(de->d_name + len - 5, ".json") == 0)
        {
            path = ngx_alloc(lg->mmcf->spill.len + 1 + len + 1,
                             ngx_cycle->log);
            if (path) {
                (void) ngx_sprintf(path, "%V/%s%Z", &lg->mmcf->spill,
                                   de->d_name);
            }

            break;
        }
    }

    closedir(dir);

    if (path == NULL) {
        return NGX_DECLINED;
    }

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_free(path);
        return NGX_DECLINED;
    }

    n = -1;

    if (ngx_fd_info(fd, &fi) != NGX_FILE_ERROR
        && (size_t) ngx_file_size(&fi) < lg->json_size)
    {
        n = read(fd, lg->json, lg->json_size - 1);
    }

    (void) ngx_close_file(fd);

    if (n <= 2) {
        /* left in place, it would be the next file picked for ever */
        ngx_http_gpugate_ledger_set_aside(path, 0,
                                          "unreadable or too big for a "
                                          "batch");
        ngx_free(path);
        lg->rescan_at = ngx_current_msec;
        return NGX_DECLINED;
    }

    lg->json[n] = '\0';
    lg->file.data = path;
    lg->file.len = ngx_strlen(path);

    /* its rows (the name's last number) count as written when taken */

    {
        u_char  *e, *d;

        e = path + lg->file.len - 5;
        d = e;

        while (d > path && d[-1] >= '0' && d[-1] <= '9') {
            d--;
        }

        lg->sending = (ngx_uint_t) ngx_max(ngx_atoi(d, e - d), 1);
    }

    ngx_memzero(&lg->query, sizeof(ngx_http_gpugate_pg_query_t));
    lg->query.stmt = "gpugate_usage";
    lg->query.nparams = 1;
    lg->query.values[0] = (const char *) lg->json;
    lg->query.lengths[0] = (int) n;
    lg->query.handler = ngx_http_gpugate_ledger_done;
    lg->query.data = lg;

    ngx_http_gpugate_ledger_set_state(lg, "writing");
    ngx_http_gpugate_ledger_arm(lg->mmcf->interval);

    if (ngx_http_gpugate_pg_run(lg->pg, &lg->query) != NGX_OK) {
        ngx_http_gpugate_ledger_done(&lg->query, NULL,
                                     "PostgreSQL is unreachable");
    }

    return NGX_OK;
}


/*
 * A spill file PostgreSQL refuses (or that cannot be read) is renamed
 * to NAME.bad, out of the scan: the files behind it go on.  Its rows
 * (from the name) are counted as rejected; the operator may fix the file
 * and rename it back.
 */

static void
ngx_http_gpugate_ledger_set_aside(u_char *path, ngx_uint_t rows,
    const char *why)
{
    u_char                     *e, *d, bad[NGX_MAX_PATH];
    size_t                      len;
    ngx_http_gpugate_ledger_t  *lg;

    lg = ngx_http_gpugate_ledger;
    len = ngx_strlen(path);

    if (rows == 0 && len > 5) {
        e = path + len - 5;
        d = e;

        while (d > path && d[-1] >= '0' && d[-1] <= '9') {
            d--;
        }

        rows = (ngx_uint_t) ngx_max(ngx_atoi(d, e - d), 0);
    }

    (void) ngx_snprintf(bad, sizeof(bad), "%s.bad%Z", path);

    if (ngx_rename_file(path, bad) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "gpugate ledger: spill file \"%s\" refused (%s) and "
                      "cannot be renamed aside", path, why);
        return;
    }

    (void) ngx_atomic_fetch_add(&lg->shm->ledger_rejected, rows);

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "gpugate ledger: spill file \"%s\" refused (%s): %ui "
                  "usage rows set aside as \"%s\"", path, why, rows, bad);
}


/* the worker exits: what was not written goes to disk, or is counted */

void
ngx_http_gpugate_ledger_exit(ngx_cycle_t *cycle)
{
    ngx_http_gpugate_ledger_t  *lg;

    lg = ngx_http_gpugate_ledger;

    if (lg == NULL) {
        return;
    }

    lg->sending = 0;

    if (lg->count) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "gpugate ledger: exiting with %ui usage rows not "
                      "written", lg->count);
        (void) ngx_http_gpugate_ledger_spill(lg->count);
    }

    /* the metrics module frees the slot */

    ngx_http_gpugate_pg_destroy(lg->pg);
    ngx_http_gpugate_ledger = NULL;
}


const char *
ngx_http_gpugate_ledger_state(void)
{
    return ngx_http_gpugate_ledger ? ngx_http_gpugate_ledger->state : "off";
}


/*
 * In the master, with the configuration read: workers (running as the
 * "user" directive's user when nginx starts as root) must be able to
 * create files in spill=, else every spill becomes a drop.  Permission
 * bits of the directory and of each directory above it are checked for
 * that user and its groups (ACLs aside).
 */

ngx_int_t
ngx_http_gpugate_ledger_check_spill(ngx_cycle_t *cycle,
    ngx_http_gpugate_metrics_main_conf_t *mmcf)
{
    int               ngroups, i;
    u_char           *path, *p;
    gid_t             groups[64];
    ngx_uid_t         uid;
    ngx_gid_t         gid;
    ngx_uint_t        want, member;
    const char       *user;
    ngx_file_info_t   fi;
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    path = ngx_pnalloc(cycle->pool, mmcf->spill.len + 1);
    if (path == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(path, mmcf->spill.data, mmcf->spill.len + 1);

    if (ngx_file_info(path, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "gpugate_usage_ledger: spill directory \"%s\" "
                      "cannot be used", path);
        return NGX_ERROR;
    }

    if (!ngx_is_dir(&fi)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "gpugate_usage_ledger: spill=\"%s\" is not a "
                      "directory", path);
        return NGX_ERROR;
    }

    if (geteuid() != 0 || ccf->user == (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        /* workers run as we do: the kernel answers for us */
        if (access((char *) path, W_OK|X_OK) == 0) {
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "gpugate_usage_ledger: spill directory \"%s\" is "
                      "not writable by the worker user (uid %d)", path,
                      (int) geteuid());
        return NGX_ERROR;
    }

    uid = ccf->user;
    gid = ccf->group;
    user = ccf->username ? ccf->username : "?";

    if (uid == 0) {
        return NGX_OK;
    }

    ngroups = 64;

    if (getgrouplist(user, gid, groups, &ngroups) == -1) {
        ngroups = 0;
    }

    /* each directory on the way needs x; the last one w and x too */

    for (p = path + 1; ; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }

        want = (*p == '\0') ? 3 : 1;

        if (*p == '/') {
            *p = '\0';

            if (ngx_file_info(path, &fi) == NGX_FILE_ERROR) {
                *p = '/';
                continue;
            }

            *p = '/';

        } else if (ngx_file_info(path, &fi) == NGX_FILE_ERROR) {
            break;
        }

        member = (fi.st_gid == gid);

        for (i = 0; !member && i < ngroups; i++) {
            member = (fi.st_gid == groups[i]);
        }

        if (fi.st_uid == uid) {
            member = (fi.st_mode >> 6) & 7;

        } else if (member) {
            member = (fi.st_mode >> 3) & 7;

        } else {
            member = fi.st_mode & 7;
        }

        /* w is 2, x is 1 in each triplet */

        if (((want & 1) && !(member & 1)) || ((want & 2) && !(member & 2))) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "gpugate_usage_ledger: spill directory \"%s\" is "
                          "not writable by the worker user \"%s\" (uid %d):"
                          " \"%*s\" does not allow it; make the directory "
                          "the user's (chown) or drop spill=",
                          path, user, (int) uid, (size_t) (p - path), path);
            return NGX_ERROR;
        }

        if (*p == '\0') {
            break;
        }
    }

    return NGX_OK;
}


/* the state the status page shows; every change is a debug line */

static void
ngx_http_gpugate_ledger_set_state(ngx_http_gpugate_ledger_t *lg,
    const char *state)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "gpugate ledger: %s -> %s", lg->state, state);

    lg->state = state;
}
