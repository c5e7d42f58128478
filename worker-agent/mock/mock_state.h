
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: its settings, counters and log, below every other
 * file of it (mock_state.c).  main() (mock_runtime.c) fills the settings.
 */


#ifndef _MOCK_STATE_H_INCLUDED_
#define _MOCK_STATE_H_INCLUDED_


#include <stdio.h>

#include "gg_buf.h"
#include "gg_event.h"


#define MOCK_NAME          "gpugate-mock-runtime"
#define MOCK_MODELS_MAX    64


typedef struct {
    char          *models[MOCK_MODELS_MAX]; /* served model names */
    int            nmodels;          /* entries in "models" */
    long           ttft_ms;          /* time to first token */
    long           token_delay_ms;   /* between tokens */
    long           tokens;           /* completion tokens per answer */
    int            fail_status;      /* 0: none */
    long           drop_after;       /* -1: never */
    long           max_concurrency;  /* 0: unlimited */
    long           keepalive_ms;     /* close a keep-alive connection
                                        idle this long; 0: never */
    const char    *dialect;          /* also speak this runtime's load,
                                        discovery and health endpoints,
                                        or NULL */
    long           waiting;          /* requests it claims are queued */
    int            embedding_dim;    /* floats per embedding */
    int            quiet;            /* only errors and disconnects */
} mock_conf_t;


extern mock_conf_t   mock_conf;
extern gg_loop_t     mock_loop;
extern long          mock_in_flight;
extern long          mock_disconnects;
extern long          mock_connections;
extern long          mock_completion_tokens;
extern long          mock_strays;
extern FILE         *mock_log_file; /* stderr or --log-file */


void mock_log(int always, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mock_count(const char *path, int status);

/* the counters and --dialect's load gauges in Prometheus text */
int mock_metrics_text(gg_buf_t *b);

int mock_models_set(const char *list, size_t len, const char **err);
void mock_models_free(void);

/* a numeric flag's value, or exit 2 */
long mock_arg_long(const char *flag, const char *v, long min, long max);


#endif /* _MOCK_STATE_H_INCLUDED_ */
