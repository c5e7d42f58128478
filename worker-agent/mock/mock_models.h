
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: the served models (mock_models.c): the check an
 * endpoint makes of a request's model, its 404, and the endpoints that
 * list the models or replace them.
 */


#ifndef _MOCK_MODELS_H_INCLUDED_
#define _MOCK_MODELS_H_INCLUDED_


#include "mock_conn.h"


/* 1 if "model" is one of the served models */
int mock_served(const char *model);

void mock_not_found_model(mock_conn_t *c, const char *model);

/* GET /v1/models */
void mock_models_list(mock_conn_t *c);

/* POST /mock/models: test control */
void mock_models_post(mock_conn_t *c);

/* --dialect ollama: GET /api/tags, or with "ps" GET /api/ps */
void mock_models_ollama(mock_conn_t *c, int ps);

/* --dialect tgi: GET /info */
void mock_models_tgi_info(mock_conn_t *c);


#endif /* _MOCK_MODELS_H_INCLUDED_ */
