
/*
 * Copyright (C) gpugate authors
 *
 * gpugate-mock-runtime: the request dispatcher (mock_handler.c), on top
 * of the endpoints' files.
 */


#ifndef _MOCK_HANDLER_H_INCLUDED_
#define _MOCK_HANDLER_H_INCLUDED_


/* serves the listening socket "fd": its requests go to the dispatcher */
int mock_handler_listen(int fd);


#endif /* _MOCK_HANDLER_H_INCLUDED_ */
