
/*
 * Copyright (C) gpugate authors
 *
 * The OpenAI router's configuration, shared by the router module and its
 * response filter (both part of the router concern).
 */


#ifndef _NGX_HTTP_GPUGATE_OPENAI_H_INCLUDED_
#define _NGX_HTTP_GPUGATE_OPENAI_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_GPUGATE_MODEL_MAX_LEN  256


typedef struct {
    ngx_str_t     name;            /* model id as clients send it */
} ngx_http_gpugate_model_t;


typedef struct {
    ngx_array_t  *models;          /* of ngx_http_gpugate_model_t; NULL if
                                      no gpugate_model at this level and
                                      none inherited */
    ngx_flag_t    enable;          /* "gpugate_openai": responses proxied
                                      here are OpenAI-aware (SSE streams
                                      unbuffered) */
    ngx_str_t     models_body;     /* "gpugate_models": /v1/models answer,
                                      serialised once at configuration
                                      time; empty len if not a models
                                      location */
    time_t        created;         /* configuration load time, reported
                                      as each model's "created" */
    unsigned      models_handler:1; /* "gpugate_models" is set here */
} ngx_http_gpugate_openai_loc_conf_t;


extern ngx_module_t  ngx_http_gpugate_openai_module;


#endif /* _NGX_HTTP_GPUGATE_OPENAI_H_INCLUDED_ */
