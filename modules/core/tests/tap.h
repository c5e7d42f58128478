
/*
 * Copyright (C) gpugate authors
 *
 * Minimal TAP output for the C unit tests of the core and of
 * worker-agent/ (TAP::Harness runs them; worker-agent includes it as
 * "tests/tap.h" through its -I of modules/core).
 */


#ifndef _GPUGATE_TAP_H_INCLUDED_
#define _GPUGATE_TAP_H_INCLUDED_


#include <stdio.h>


static int  tap_n;
static int  tap_failed;


#define tap_ok(cond, ...)                                                     \
    do {                                                                      \
        int  ok_ = (cond) ? 1 : 0;                                            \
        tap_n++;                                                              \
        printf("%sok %d - ", ok_ ? "" : "not ", tap_n);                       \
        printf(__VA_ARGS__);                                                  \
        printf("\n");                                                         \
        if (!ok_) {                                                           \
            tap_failed++;                                                     \
            printf("#   at %s line %d\n", __FILE__, __LINE__);                \
        }                                                                     \
    } while (0)


#define tap_done()                                                            \
    (printf("1..%d\n", tap_n), tap_failed ? 1 : 0)


#endif /* _GPUGATE_TAP_H_INCLUDED_ */
