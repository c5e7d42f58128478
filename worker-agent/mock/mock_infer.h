
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: chat completions, completions and embeddings
 * (mock_infer.c), and the timed generation of their answers.
 */


#ifndef _MOCK_INFER_H_INCLUDED_
#define _MOCK_INFER_H_INCLUDED_


#include "mock_conn.h"


/* answers a POST to the endpoint of "kind" */
void mock_infer(mock_conn_t *c, mock_kind_e kind);

/* advances the answer's generation as far as its delays allow */
void mock_infer_run(mock_conn_t *c);

/*
 * Ends an inference request: "completed" 1 after its last byte was sent,
 * 0 when the client left first (logged and counted), -1 at exit.
 */
void mock_infer_release(mock_conn_t *c, int completed);


#endif /* _MOCK_INFER_H_INCLUDED_ */
