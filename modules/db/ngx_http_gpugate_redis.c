
/*
 * Copyright (C) gpugate authors
 *
 * Redis client on nginx sockets; see ngx_http_gpugate_redis.h for why.
 *
 * Replies arrive in command order, so pending commands form a FIFO and
 * the head's deadline is the connection's deadline.  When a command times
 * out the connection is dropped with everything pending on it: a late
 * reply could otherwise be taken for the next command's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_gpugate_redis.h"


#define NGX_HTTP_GPUGATE_REDIS_READ_SIZE  4096


typedef enum {
    NGX_HTTP_GPUGATE_REDIS_DOWN = 0,
    NGX_HTTP_GPUGATE_REDIS_CONNECTING,
    NGX_HTTP_GPUGATE_REDIS_UP
} ngx_http_gpugate_redis_state_e;


typedef struct {
    ngx_queue_t                         queue;     /* pending, FIFO */
    ngx_http_gpugate_redis_handler_pt   handler;   /* NULL: internal
                                                      command (AUTH, ...) */
    void                               *data;      /* for the handler */
    ngx_msec_t                          deadline;  /* absolute */
} ngx_http_gpugate_redis_cmd_t;


typedef struct {
    ngx_http_gpugate_redis_t           *rd;        /* owner */
    ngx_peer_connection_t               peer;      /* socket, nginx-owned */
    ngx_http_gpugate_redis_state_e      state;     /* where it is */
    redisReader                        *reader;    /* reply parser, reset on
                                                      every reconnect */
    ngx_queue_t                         pending;   /* sent or to be sent */
    u_char                             *out;       /* formatted commands not
                                                      yet written */
    size_t                              out_len;   /* bytes in "out" */
    size_t                              out_size;  /* allocated */
    ngx_event_t                         timer;     /* head deadline, or the
                                                      reconnect delay */
    ngx_event_t                         ping;      /* subscriber keepalive */
    ngx_uint_t                          failures;  /* consecutive failures,
                                                      drive the backoff */
    unsigned                            subscriber:1; /* SUBSCRIBE mode */
} ngx_http_gpugate_redis_conn_t;


struct ngx_http_gpugate_redis_s {
    ngx_http_gpugate_redis_conf_t      *conf;      /* outlives the worker */
    ngx_log_t                          *log;       /* cycle log */
    ngx_http_gpugate_redis_conn_t       cmd;       /* commands */
    ngx_http_gpugate_redis_conn_t       sub;       /* subscriber */
    ngx_http_gpugate_redis_message_pt   on_message; /* subscriber callback */
    void                               *data;      /* for on_message */
    ngx_queue_t                         free;      /* recycled cmd structs */
};


static void ngx_http_gpugate_redis_connect(ngx_http_gpugate_redis_conn_t *rc);
static ngx_int_t ngx_http_gpugate_redis_push(
    ngx_http_gpugate_redis_conn_t *rc, ngx_http_gpugate_redis_handler_pt h,
    void *data, int argc, const char **argv, const size_t *argvlen);
static void ngx_http_gpugate_redis_write_handler(ngx_event_t *wev);
static void ngx_http_gpugate_redis_read_handler(ngx_event_t *rev);
static void ngx_http_gpugate_redis_reply(ngx_http_gpugate_redis_conn_t *rc,
    redisReply *reply);
static void ngx_http_gpugate_redis_fail(ngx_http_gpugate_redis_conn_t *rc,
    const char *reason);
static void ngx_http_gpugate_redis_arm(ngx_http_gpugate_redis_conn_t *rc);
static void ngx_http_gpugate_redis_timer_handler(ngx_event_t *ev);
static void ngx_http_gpugate_redis_ping_handler(ngx_event_t *ev);
static void ngx_http_gpugate_redis_internal(void *data, redisReply *reply,
    const char *error);


ngx_http_gpugate_redis_t *
ngx_http_gpugate_redis_create(ngx_cycle_t *cycle,
    ngx_http_gpugate_redis_conf_t *conf,
    ngx_http_gpugate_redis_message_pt on_message, void *data)
{
    ngx_uint_t                      i;
    ngx_http_gpugate_redis_t       *rd;
    ngx_http_gpugate_redis_conn_t  *rc;

    rd = ngx_pcalloc(cycle->pool, sizeof(ngx_http_gpugate_redis_t));
    if (rd == NULL) {
        return NULL;
    }

    rd->conf = conf;
    rd->log = cycle->log;
    rd->on_message = on_message;
    rd->data = data;
    ngx_queue_init(&rd->free);

    for (i = 0; i < 2; i++) {
        rc = i ? &rd->sub : &rd->cmd;

        if (i && conf->channel.len == 0) {
            break;
        }

        rc->rd = rd;
        rc->subscriber = i;
        ngx_queue_init(&rc->pending);

        rc->timer.handler = ngx_http_gpugate_redis_timer_handler;
        rc->timer.data = rc;
        rc->timer.log = cycle->log;

        rc->ping.handler = ngx_http_gpugate_redis_ping_handler;
        rc->ping.data = rc;
        rc->ping.log = cycle->log;
        rc->ping.cancelable = 1;

        ngx_http_gpugate_redis_connect(rc);
    }

    return rd;
}


void
ngx_http_gpugate_redis_destroy(ngx_http_gpugate_redis_t *rd)
{
    ngx_uint_t                      i;
    ngx_queue_t                    *qn;
    ngx_http_gpugate_redis_conn_t  *rc;

    for (i = 0; i < 2; i++) {
        rc = i ? &rd->sub : &rd->cmd;

        if (rc->rd == NULL) {
            continue;                /* no subscriber configured */
        }

        if (rc->timer.timer_set) {
            ngx_del_timer(&rc->timer);
        }

        if (rc->ping.timer_set) {
            ngx_del_timer(&rc->ping);
        }

        if (rc->peer.connection) {
            ngx_close_connection(rc->peer.connection);
            rc->peer.connection = NULL;
        }

        if (rc->reader) {
            redisReaderFree(rc->reader);
            rc->reader = NULL;
        }

        rc->state = NGX_HTTP_GPUGATE_REDIS_DOWN;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                       "gpugate redis: %s connection down: worker exiting",
                       rc->subscriber ? "subscriber" : "command");

        /* commands still pending get no answer: the worker is leaving */

        while (!ngx_queue_empty(&rc->pending)) {
            qn = ngx_queue_head(&rc->pending);
            ngx_queue_remove(qn);
            ngx_free(ngx_queue_data(qn, ngx_http_gpugate_redis_cmd_t, queue));
        }

        if (rc->out) {
            ngx_free(rc->out);
            rc->out = NULL;
            rc->out_len = 0;
            rc->out_size = 0;
        }
    }

    while (!ngx_queue_empty(&rd->free)) {
        qn = ngx_queue_head(&rd->free);
        ngx_queue_remove(qn);
        ngx_free(ngx_queue_data(qn, ngx_http_gpugate_redis_cmd_t, queue));
    }
}


const char *
ngx_http_gpugate_redis_state(ngx_http_gpugate_redis_t *rd)
{
    switch (rd->cmd.state) {
    case NGX_HTTP_GPUGATE_REDIS_UP:
        return "up";
    case NGX_HTTP_GPUGATE_REDIS_CONNECTING:
        return "connecting";
    default:
        return "down";
    }
}


ngx_int_t
ngx_http_gpugate_redis_command(ngx_http_gpugate_redis_t *rd,
    ngx_http_gpugate_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_http_gpugate_redis_conn_t  *rc;

    rc = &rd->cmd;

    if (rc->state == NGX_HTTP_GPUGATE_REDIS_DOWN) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                       "gpugate redis: command declined: connection down");
        return NGX_DECLINED;
    }

    if (ngx_http_gpugate_redis_push(rc, handler, data, argc, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (rc->state == NGX_HTTP_GPUGATE_REDIS_UP) {
        ngx_http_gpugate_redis_write_handler(rc->peer.connection->write);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_gpugate_redis_push(ngx_http_gpugate_redis_conn_t *rc,
    ngx_http_gpugate_redis_handler_pt h, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    int                            len;
    char                          *buf;
    size_t                         size;
    u_char                        *out;
    ngx_queue_t                   *qn;
    ngx_http_gpugate_redis_t      *rd;
    ngx_http_gpugate_redis_cmd_t  *cmd;

    rd = rc->rd;

    len = redisFormatCommandArgv(&buf, argc, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    if (rc->out_len + len > rc->out_size) {
        size = ngx_max(rc->out_size * 2, rc->out_len + len);
        size = ngx_max(size, 1024);

        out = ngx_alloc(size, rd->log);
        if (out == NULL) {
            redisFreeCommand(buf);
            return NGX_ERROR;
        }

        if (rc->out) {
            ngx_memcpy(out, rc->out, rc->out_len);
            ngx_free(rc->out);
        }

        rc->out = out;
        rc->out_size = size;
    }

    if (!ngx_queue_empty(&rd->free)) {
        qn = ngx_queue_head(&rd->free);
        ngx_queue_remove(qn);
        cmd = ngx_queue_data(qn, ngx_http_gpugate_redis_cmd_t, queue);

    } else {
        cmd = ngx_alloc(sizeof(ngx_http_gpugate_redis_cmd_t), rd->log);
        if (cmd == NULL) {
            redisFreeCommand(buf);
            return NGX_ERROR;
        }
    }

    ngx_memcpy(rc->out + rc->out_len, buf, len);
    rc->out_len += len;
    redisFreeCommand(buf);

    cmd->handler = h;
    cmd->data = data;
    cmd->deadline = ngx_current_msec + rd->conf->timeout;

    ngx_queue_insert_tail(&rc->pending, &cmd->queue);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "gpugate redis: command queued, %s",
                   rc->state == NGX_HTTP_GPUGATE_REDIS_UP
                   ? "sending" : "sent once connected");

    if (!rc->timer.timer_set) {
        ngx_http_gpugate_redis_arm(rc);
    }

    return NGX_OK;
}


static void
ngx_http_gpugate_redis_connect(ngx_http_gpugate_redis_conn_t *rc)
{
    int                              argc;
    ngx_int_t                        rv;
    const char                      *argv[3];
    size_t                           argvlen[3];
    u_char                           db[NGX_INT_T_LEN];
    ngx_connection_t                *c;
    ngx_http_gpugate_redis_t        *rd;
    ngx_http_gpugate_redis_conf_t   *conf;

    rd = rc->rd;
    conf = rd->conf;

    rc->reader = redisReaderCreate();
    if (rc->reader == NULL) {
        ngx_http_gpugate_redis_fail(rc, "out of memory");
        return;
    }

    ngx_memzero(&rc->peer, sizeof(ngx_peer_connection_t));
    rc->peer.sockaddr = conf->addr->sockaddr;
    rc->peer.socklen = conf->addr->socklen;
    rc->peer.name = &conf->addr->name;
    rc->peer.get = ngx_event_get_peer;
    rc->peer.log = rd->log;
    rc->peer.log_error = NGX_ERROR_ERR;

    rv = ngx_event_connect_peer(&rc->peer);

    if (rv == NGX_ERROR || rv == NGX_BUSY || rv == NGX_DECLINED) {
        ngx_http_gpugate_redis_fail(rc, "connect() failed");
        return;
    }

    c = rc->peer.connection;
    c->data = rc;
    c->read->handler = ngx_http_gpugate_redis_read_handler;
    c->write->handler = ngx_http_gpugate_redis_write_handler;
    /* half-open connections behind NAT or a dead host are found by the
       pings and deadlines; TCP keepalive is the backstop */
    argc = 1;
    (void) setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, (const void *) &argc,
                      sizeof(int));

    rc->state = NGX_HTTP_GPUGATE_REDIS_CONNECTING;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "gpugate redis: %s connection to %V connecting",
                   rc->subscriber ? "subscriber" : "command",
                   &conf->addr->name);

    /* the handshake goes first in the pipeline, before queued work */

    if (conf->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (const char *) conf->password.data;
        argvlen[1] = conf->password.len;

        if (ngx_http_gpugate_redis_push(rc, ngx_http_gpugate_redis_internal,
                                        rc, 2, argv, argvlen) != NGX_OK)
        {
            ngx_http_gpugate_redis_fail(rc, "out of memory");
            return;
        }
    }

    if (conf->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%i", conf->db) - db;

        if (ngx_http_gpugate_redis_push(rc, ngx_http_gpugate_redis_internal,
                                        rc, 2, argv, argvlen) != NGX_OK)
        {
            ngx_http_gpugate_redis_fail(rc, "out of memory");
            return;
        }
    }

    if (rc->subscriber) {
        argv[0] = "SUBSCRIBE";
        argvlen[0] = 9;
        argv[1] = (const char *) conf->channel.data;
        argvlen[1] = conf->channel.len;

        if (ngx_http_gpugate_redis_push(rc, ngx_http_gpugate_redis_internal,
                                        rc, 2, argv, argvlen) != NGX_OK)
        {
            ngx_http_gpugate_redis_fail(rc, "out of memory");
            return;
        }

    } else {
        /* a PING proves the server answers before the conn counts as up */
        argv[0] = "PING";
        argvlen[0] = 4;

        if (ngx_http_gpugate_redis_push(rc, ngx_http_gpugate_redis_internal,
                                        rc, 1, argv, argvlen) != NGX_OK)
        {
            ngx_http_gpugate_redis_fail(rc, "out of memory");
            return;
        }
    }

    if (rv == NGX_OK) {
        ngx_http_gpugate_redis_write_handler(c->write);

    } else if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_http_gpugate_redis_fail(rc, "cannot watch the socket");
    }
}


static void
ngx_http_gpugate_redis_internal(void *data, redisReply *reply,
    const char *error)
{
    ngx_http_gpugate_redis_conn_t  *rc = data;

    if (reply == NULL) {
        return;                      /* the connection is failing anyway */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rc->rd->log, 0,
                      "gpugate redis: handshake refused: %*s",
                      (size_t) reply->len, reply->str);
        ngx_http_gpugate_redis_fail(rc, "handshake refused");
        return;
    }

    /* the last handshake reply (PING or SUBSCRIBE) completes the connect */

    if (rc->state == NGX_HTTP_GPUGATE_REDIS_CONNECTING
        && (reply->type == REDIS_REPLY_ARRAY
            || (reply->type == REDIS_REPLY_STATUS && reply->len == 4
                && ngx_strncmp(reply->str, "PONG", 4) == 0)))
    {
        rc->state = NGX_HTTP_GPUGATE_REDIS_UP;
        rc->failures = 0;

        ngx_log_error(NGX_LOG_INFO, rc->rd->log, 0,
                      "gpugate redis: %s connection up",
                      rc->subscriber ? "subscriber" : "command");

        if (rc->subscriber && rc->rd->conf->ping) {
            ngx_add_timer(&rc->ping, rc->rd->conf->ping);
        }
    }
}


static void
ngx_http_gpugate_redis_write_handler(ngx_event_t *wev)
{
    int                             err;
    ssize_t                         n;
    socklen_t                       len;
    ngx_connection_t               *c;
    ngx_http_gpugate_redis_conn_t  *rc;

    c = wev->data;
    rc = c->data;

    if (rc->state == NGX_HTTP_GPUGATE_REDIS_CONNECTING && wev->ready) {
        /* a finished non-blocking connect reports its result here */
        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_log_error(NGX_LOG_ERR, rc->rd->log, err,
                          "gpugate redis: connect() to %V failed",
                          rc->peer.name);
            ngx_http_gpugate_redis_fail(rc, "connect() failed");
            return;
        }
    }

    while (rc->out_len) {
        n = c->send(c, rc->out, rc->out_len);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_gpugate_redis_fail(rc, "send() failed");
            return;
        }

        ngx_memmove(rc->out, rc->out + n, rc->out_len - n);
        rc->out_len -= n;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_gpugate_redis_fail(rc, "cannot watch the socket");
    }
}


static void
ngx_http_gpugate_redis_read_handler(ngx_event_t *rev)
{
    void                           *reply;
    ssize_t                         n;
    ngx_connection_t               *c;
    ngx_http_gpugate_redis_conn_t  *rc;
    u_char                          buf[NGX_HTTP_GPUGATE_REDIS_READ_SIZE];

    c = rev->data;
    rc = c->data;

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_gpugate_redis_fail(rc, n ? "recv() failed"
                                              : "connection closed by Redis");
            return;
        }

        if (redisReaderFeed(rc->reader, (const char *) buf, n) != REDIS_OK) {
            ngx_http_gpugate_redis_fail(rc, "cannot buffer reply");
            return;
        }

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
                ngx_http_gpugate_redis_fail(rc, "protocol error");
                return;
            }

            if (reply == NULL) {
                break;
            }

            ngx_http_gpugate_redis_reply(rc, reply);
            freeReplyObject(reply);

            /* a handler may have failed this connection */
            if (rc->state == NGX_HTTP_GPUGATE_REDIS_DOWN) {
                return;
            }
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_gpugate_redis_fail(rc, "cannot watch the socket");
    }
}


static void
ngx_http_gpugate_redis_reply(ngx_http_gpugate_redis_conn_t *rc,
    redisReply *reply)
{
    ngx_str_t                       msg;
    redisReply                     *kind;
    ngx_queue_t                    *qn;
    ngx_http_gpugate_redis_cmd_t   *cmd;

    /* published messages are not replies to anything of ours */

    if (rc->subscriber && rc->state == NGX_HTTP_GPUGATE_REDIS_UP
        && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3)
    {
        kind = reply->element[0];

        if (kind->type == REDIS_REPLY_STRING && kind->len == 7
            && ngx_strncmp(kind->str, "message", 7) == 0
            && reply->element[2]->type == REDIS_REPLY_STRING)
        {
            msg.data = (u_char *) reply->element[2]->str;
            msg.len = reply->element[2]->len;

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rc->rd->log, 0,
                           "gpugate redis: message of %uz bytes", msg.len);

            rc->rd->on_message(rc->rd->data, &msg);
            return;
        }
    }

    if (ngx_queue_empty(&rc->pending)) {
        ngx_log_error(NGX_LOG_WARN, rc->rd->log, 0,
                      "gpugate redis: unexpected reply ignored");
        return;
    }

    qn = ngx_queue_head(&rc->pending);
    ngx_queue_remove(qn);
    cmd = ngx_queue_data(qn, ngx_http_gpugate_redis_cmd_t, queue);

    ngx_http_gpugate_redis_arm(rc);

    /* recycle before the call: the handler may queue a new command */
    ngx_queue_insert_head(&rc->rd->free, qn);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rc->rd->log, 0,
                   "gpugate redis: reply to a command, type %d",
                   reply->type);

    cmd->handler(cmd->data, reply, NULL);
}


static void
ngx_http_gpugate_redis_fail(ngx_http_gpugate_redis_conn_t *rc,
    const char *reason)
{
    ngx_msec_t                      delay, cap;
    ngx_uint_t                      was_up, level;
    ngx_queue_t                    *qn, failed;
    ngx_http_gpugate_redis_t       *rd;
    ngx_http_gpugate_redis_cmd_t   *cmd;

    rd = rc->rd;

    if (rc->state == NGX_HTTP_GPUGATE_REDIS_DOWN && rc->timer.timer_set) {
        return;                      /* already failed, reconnect pending */
    }

    was_up = (rc->state == NGX_HTTP_GPUGATE_REDIS_UP);

    level = was_up ? NGX_LOG_ERR : NGX_LOG_WARN;

    ngx_log_error(level, rd->log, 0,
                  "gpugate redis: %s connection to %V failed: %s",
                  rc->subscriber ? "subscriber" : "command",
                  &rd->conf->addr->name, reason);

    if (rc->peer.connection) {
        ngx_close_connection(rc->peer.connection);
        rc->peer.connection = NULL;
    }

    if (rc->reader) {
        redisReaderFree(rc->reader);
        rc->reader = NULL;
    }

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    if (rc->ping.timer_set) {
        ngx_del_timer(&rc->ping);
    }

    rc->state = NGX_HTTP_GPUGATE_REDIS_DOWN;
    rc->out_len = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rc->rd->log, 0,
                   "gpugate redis: %s connection down, %ui failures",
                   rc->subscriber ? "subscriber" : "command", rc->failures);

    /* same policy as PostgreSQL: one quick retry, then jittered backoff */

    if (was_up) {
        rc->failures = 0;
        delay = 0;

    } else {
        rc->failures++;
        cap = rd->conf->backoff_max;
        delay = rc->failures > 16 ? cap
                : ngx_min(cap, (ngx_msec_t) 100 << (rc->failures - 1));
        delay = (ngx_msec_t) ngx_random() % (delay + 1);
    }

    rc->timer.cancelable = 1;
    ngx_add_timer(&rc->timer, delay ? delay : 1);

    /* fail what was pending after the state is consistent: handlers may
       call back into this module */

    ngx_queue_init(&failed);

    if (!ngx_queue_empty(&rc->pending)) {
        failed = rc->pending;
        failed.next->prev = &failed;
        failed.prev->next = &failed;
        ngx_queue_init(&rc->pending);
    }

    while (!ngx_queue_empty(&failed)) {
        qn = ngx_queue_head(&failed);
        ngx_queue_remove(qn);
        cmd = ngx_queue_data(qn, ngx_http_gpugate_redis_cmd_t, queue);

        ngx_queue_insert_head(&rd->free, qn);

        if (cmd->handler != ngx_http_gpugate_redis_internal) {
            cmd->handler(cmd->data, NULL, reason);
        }
    }
}


static void
ngx_http_gpugate_redis_arm(ngx_http_gpugate_redis_conn_t *rc)
{
    ngx_msec_int_t                  left;
    ngx_http_gpugate_redis_cmd_t   *cmd;

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    if (ngx_queue_empty(&rc->pending)) {
        return;
    }

    cmd = ngx_queue_data(ngx_queue_head(&rc->pending),
                         ngx_http_gpugate_redis_cmd_t, queue);

    left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);

    /* waiting for a reply is work in progress, unlike the reconnect */
    rc->timer.cancelable = (rc->state != NGX_HTTP_GPUGATE_REDIS_UP);
    ngx_add_timer(&rc->timer, left > 0 ? (ngx_msec_t) left : 1);
}


static void
ngx_http_gpugate_redis_timer_handler(ngx_event_t *ev)
{
    ngx_http_gpugate_redis_conn_t  *rc;

    rc = ev->data;

    if (rc->state == NGX_HTTP_GPUGATE_REDIS_DOWN) {
        ngx_http_gpugate_redis_connect(rc);
        return;
    }

    ngx_http_gpugate_redis_fail(rc, "timed out");
}


static void
ngx_http_gpugate_redis_ping_handler(ngx_event_t *ev)
{
    const char                     *argv[1];
    size_t                          argvlen[1];
    ngx_http_gpugate_redis_conn_t  *rc;

    rc = ev->data;

    if (rc->state != NGX_HTTP_GPUGATE_REDIS_UP) {
        return;
    }

    /*
     * A subscriber only reads, so a silently dropped connection would
     * never be noticed and invalidations would be lost until the TTL;
     * a PING with a deadline finds it.
     */

    argv[0] = "PING";
    argvlen[0] = 4;

    if (ngx_http_gpugate_redis_push(rc, ngx_http_gpugate_redis_internal, rc,
                                    1, argv, argvlen) != NGX_OK)
    {
        ngx_http_gpugate_redis_fail(rc, "out of memory");
        return;
    }

    ngx_http_gpugate_redis_write_handler(rc->peer.connection->write);

    if (rc->state == NGX_HTTP_GPUGATE_REDIS_UP) {
        ngx_add_timer(&rc->ping, rc->rd->conf->ping);
    }
}
