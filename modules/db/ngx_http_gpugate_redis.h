
/*
 * Copyright (C) gpugate authors
 *
 * Redis for nginx workers over nginx-owned sockets.  hiredis is used only
 * to format commands and to parse replies (redisFormatCommandArgv,
 * redisReader): its own connect and async layers would resolve names and
 * wait without timeouts (Debian ships hiredis 0.14, which has no async
 * timeouts), whereas nginx sockets come with the worker's event loop and
 * timers.  One pipelined command connection per worker, plus an optional
 * subscriber connection for invalidation messages.
 */


#ifndef _NGX_HTTP_GPUGATE_REDIS_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>


typedef struct ngx_http_gpugate_redis_s  ngx_http_gpugate_redis_t;


/*
 * Called once per command, never from inside ..._redis_command(): "reply"
 * is the parsed reply (an error reply is a reply: check reply->type), or
 * NULL with "error" saying why the command failed.  The reply is freed
 * after the call.
 */
typedef void (*ngx_http_gpugate_redis_handler_pt)(void *data,
    redisReply *reply, const char *error);

/* A message published on the subscribed channel. */
typedef void (*ngx_http_gpugate_redis_message_pt)(void *data,
    ngx_str_t *message);


typedef struct {
    ngx_addr_t                        *addr;        /* numeric address */
    ngx_str_t                          password;    /* AUTH, empty: none */
    ngx_int_t                          db;          /* SELECT, 0: none */
    ngx_msec_t                         timeout;     /* connect, each
                                                       command */
    ngx_msec_t                         backoff_max; /* reconnect delay cap */
    ngx_msec_t                         ping;        /* subscriber liveness
                                                       ping interval */
    ngx_str_t                          channel;     /* SUBSCRIBE channel,
                                                       empty: none */
} ngx_http_gpugate_redis_conf_t;


/* Creates this worker's connections and starts connecting. */
ngx_http_gpugate_redis_t *ngx_http_gpugate_redis_create(ngx_cycle_t *cycle,
    ngx_http_gpugate_redis_conf_t *conf,
    ngx_http_gpugate_redis_message_pt on_message, void *data);

/*
 * Queues a command.  NGX_OK: the handler will be called later.
 * NGX_DECLINED: Redis is known to be unreachable right now; the handler is
 * not called, so callers go straight to their fallback.  NGX_ERROR: no
 * memory.
 */
ngx_int_t ngx_http_gpugate_redis_command(ngx_http_gpugate_redis_t *rd,
    ngx_http_gpugate_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);

/* Closes the connections at worker exit; pending commands are dropped. */
void ngx_http_gpugate_redis_destroy(ngx_http_gpugate_redis_t *rd);

/* "up", "connecting" or "down", for logs and status. */
const char *ngx_http_gpugate_redis_state(ngx_http_gpugate_redis_t *rd);


#endif /* _NGX_HTTP_GPUGATE_REDIS_H_INCLUDED_ */
