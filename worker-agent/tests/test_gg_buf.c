
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of gg_buf: appending, consuming, compaction.  Prints TAP.
 */


#include <string.h>

#include "gg_buf.h"
#include "tests/tap.h"           /* modules/core/tests/tap.h */


int
main(void)
{
    int       i, ok;
    char      big[5000];
    gg_buf_t  b;

    memset(&b, 0, sizeof(b));

    tap_ok(gg_buf_len(&b) == 0 && b.data == NULL, "empty buffer holds nothing");

    tap_ok(gg_buf_append(&b, "hello", 5) == 0 && gg_buf_len(&b) == 5
           && memcmp(gg_buf_pos(&b), "hello", 5) == 0, "append");

    tap_ok(gg_buf_printf(&b, " %d-%s", 42, "x") == 0 && gg_buf_len(&b) == 10
           && memcmp(gg_buf_pos(&b), "hello 42-x", 10) == 0, "printf");

    gg_buf_consume(&b, 6);
    tap_ok(gg_buf_len(&b) == 4 && memcmp(gg_buf_pos(&b), "42-x", 4) == 0,
           "consume from the front");

    memset(big, 'z', sizeof(big));
    tap_ok(gg_buf_append(&b, big, sizeof(big)) == 0
           && gg_buf_len(&b) == 5004
           && memcmp(gg_buf_pos(&b), "42-xzz", 6) == 0
           && gg_buf_pos(&b)[5003] == 'z', "growth keeps the live bytes");

    gg_buf_consume(&b, 5004);
    tap_ok(gg_buf_len(&b) == 0 && b.start == 0, "consuming all resets");

    ok = 1;

    for (i = 0; i < 10000; i++) {
        if (gg_buf_append(&b, "abc", 3) != 0) {
            ok = 0;
        }

        gg_buf_consume(&b, 2);
    }

    tap_ok(ok && gg_buf_len(&b) == 10000 && b.cap < 65536,
           "a queue that drains as it fills stays small");

    gg_buf_reset(&b);
    tap_ok(gg_buf_len(&b) == 0 && b.data != NULL, "reset keeps storage");

    gg_buf_free(&b);
    tap_ok(b.data == NULL && b.cap == 0, "free");

    return tap_done();
}
