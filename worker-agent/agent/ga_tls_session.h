
/*
 * Copyright (C) gpugate authors
 *
 * The TLS session a new tunnel offers the gateway (ga_tls_session.c).
 */


#ifndef _GA_TLS_SESSION_H_INCLUDED_
#define _GA_TLS_SESSION_H_INCLUDED_


#include <openssl/ssl.h>


int ga_tls_offer_session(SSL *ssl);


#endif /* _GA_TLS_SESSION_H_INCLUDED_ */
