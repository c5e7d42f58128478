
/*
 * Copyright (C) gpugate authors
 *
 * Unit tests of gg_buf: appending, consuming, compaction, the shelf of
 * freed blocks.  Prints TAP.
 */


#include <string.h>

#include "gg_buf.h"
#include "tests/tap.h"           /* modules/core/tests/tap.h */


/*
 * The shelf: a freed block of GG_BUF_BLOCK bytes is the storage of the
 * next empty buffer that needs no more, whatever it asks for; nothing
 * else is shelved, and the shelf holds at most GG_BUF_SHELF blocks.
 */

static void
test_shelf(void)
{
    int       i, ok, from_shelf;
    char     *p;
    size_t    sizes[] = { 1, 300, 4096, GG_BUF_BLOCK };
    gg_buf_t  a, b, many[GG_BUF_SHELF + 5];

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));

    ok = 1;

    for (i = 0; i < (int) (sizeof(sizes) / sizeof(sizes[0])); i++) {
        if (gg_buf_reserve(&a, GG_BUF_BLOCK) != 0 || a.cap != GG_BUF_BLOCK) {
            ok = 0;
            break;
        }

        (void) gg_buf_append(&a, "left over", 9);
        p = a.data;
        gg_buf_free(&a);

        if (gg_buf_reserve(&b, sizes[i]) != 0 || b.data != p
            || b.cap != GG_BUF_BLOCK || gg_buf_len(&b) != 0
            || gg_buf_append(&b, "x", 1) != 0 || gg_buf_pos(&b)[0] != 'x')
        {
            ok = 0;
        }

        gg_buf_free(&b);
        gg_buf_shelf_free();
    }

    tap_ok(ok, "a freed block is reused, empty, for 1 to %d bytes",
           GG_BUF_BLOCK);

    (void) gg_buf_reserve(&a, GG_BUF_BLOCK);
    gg_buf_free(&a);
    tap_ok(gg_buf_reserve(&b, GG_BUF_BLOCK + 1) == 0
           && b.cap > GG_BUF_BLOCK, "a larger need is not given a block");
    gg_buf_free(&b);
    gg_buf_shelf_free();

    (void) gg_buf_append(&a, "small", 5);
    gg_buf_free(&a);
    tap_ok(gg_buf_reserve(&b, 1) == 0 && b.cap < GG_BUF_BLOCK,
           "a smaller buffer is freed, not shelved");
    gg_buf_free(&b);

    (void) gg_buf_reserve(&a, GG_BUF_BLOCK);
    (void) gg_buf_append(&a, "x", 1);
    (void) gg_buf_reserve(&a, GG_BUF_BLOCK);
    gg_buf_free(&a);
    tap_ok(gg_buf_reserve(&b, 1) == 0 && b.cap < GG_BUF_BLOCK,
           "a buffer grown past a block is freed, not shelved");
    gg_buf_free(&b);

    for (i = 0; i < GG_BUF_SHELF + 5; i++) {
        memset(&many[i], 0, sizeof(gg_buf_t));
        (void) gg_buf_reserve(&many[i], GG_BUF_BLOCK);
    }

    for (i = 0; i < GG_BUF_SHELF + 5; i++) {
        gg_buf_free(&many[i]);
    }

    from_shelf = 0;

    for (i = 0; i < GG_BUF_SHELF + 5; i++) {
        (void) gg_buf_reserve(&many[i], 1);
        from_shelf += (many[i].cap == GG_BUF_BLOCK);
    }

    tap_ok(from_shelf == GG_BUF_SHELF, "the shelf holds %d blocks (%d reused)",
           GG_BUF_SHELF, from_shelf);

    for (i = 0; i < GG_BUF_SHELF + 5; i++) {
        gg_buf_free(&many[i]);
    }

    gg_buf_shelf_free();
    tap_ok(gg_buf_reserve(&b, 1) == 0 && b.cap < GG_BUF_BLOCK,
           "gg_buf_shelf_free() empties the shelf");
    gg_buf_free(&b);
}


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

    test_shelf();

    return tap_done();
}
