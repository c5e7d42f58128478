
/*
 * Copyright (C) gpugate authors
 *
 * The reasoning split ("gpugate_reasoning"): its configuration, shared by
 * the directive (_reasoning_conf.c) and the filter (_reasoning.c).
 */


#ifndef _NGX_HTTP_GPUGATE_OPENAI_REASONING_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_OPENAI_REASONING_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct {
    ngx_str_t         pool;        /* pool= the rule is for; "": every
                                      other pool */
    ngx_str_t         open;        /* opening tag, 1..32 printable ASCII
                                      bytes (open=) */
    ngx_str_t         close;       /* closing tag (close=) */
    ngx_flag_t        split;       /* split, or off */
} ngx_http_gpugate_reasoning_rule_t;


typedef struct {
    ngx_array_t      *rules;       /* of ..._rule_t; NULL: none here or
                                      inherited (off) */
} ngx_http_gpugate_reasoning_loc_conf_t;


extern ngx_module_t  ngx_http_gpugate_reasoning_module;


/* the rule for a pool: its own, else the one without pool=; NULL: off */
ngx_http_gpugate_reasoning_rule_t *ngx_http_gpugate_reasoning_rule(
    ngx_http_request_t *r, ngx_str_t *pool);

/* the filter's postconfiguration */
ngx_int_t ngx_http_gpugate_reasoning_filter_init(ngx_conf_t *cf);


#endif /* _NGX_HTTP_GPUGATE_OPENAI_REASONING_H_INCLUDED_ */
