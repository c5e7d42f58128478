
/*
 * Copyright (C) gpugate authors
 *
 * The streaming multipart scanner: the same answer however the body is
 * split (every split point, one byte at a time), the model field's value
 * and its place in the body, boundaries as Content-Type gives them, and
 * every refusal (two model fields, a model file, escapes, a cut body).
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpugate_multipart.h"
#include "tap.h"


#define B  "XyZ-b0und"

#define PART(name, value)                                                     \
    "--" B "\r\nContent-Disposition: form-data; name=\"" name "\"\r\n\r\n"    \
    value "\r\n"

#define FILE_PART(name, data)                                                 \
    "--" B "\r\nContent-Disposition: form-data; name=\"" name "\"; "          \
    "filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n" data "\r\n"

#define END  "--" B "--\r\n"


/* scans s in pieces of "step" bytes (0: one piece); the finish result */

static int
scan(gpugate_mp_t *mp, const char *s, size_t len, size_t step)
{
    size_t  i, n;

    gpugate_mp_init(mp, B, sizeof(B) - 1);

    for (i = 0; i < len; i += n) {
        n = (step == 0 || len - i < step) ? len - i : step;

        if (gpugate_mp_feed(mp, (const unsigned char *) s + i, n) != 0) {
            return -1;
        }
    }

    return gpugate_mp_finish(mp);
}


/* every split in two and every step size give the same model and place */

static int
same_everywhere(const char *s, size_t len, const char *model)
{
    size_t        i, step;
    gpugate_mp_t  mp;
    long long     start, end;

    if (scan(&mp, s, len, 0) != 0 || strcmp(mp.model, model) != 0) {
        printf("# whole: %s\n", mp.error ? mp.error : mp.model);
        return 0;
    }

    start = mp.model_start;
    end = mp.model_end;

    if (end - start != (long long) strlen(model)
        || memcmp(s + start, model, strlen(model)) != 0)
    {
        printf("# offsets %lld..%lld\n", start, end);
        return 0;
    }

    for (i = 1; i < len; i++) {
        gpugate_mp_init(&mp, B, sizeof(B) - 1);

        if (gpugate_mp_feed(&mp, (const unsigned char *) s, i) != 0
            || gpugate_mp_feed(&mp, (const unsigned char *) s + i, len - i)
               != 0
            || gpugate_mp_finish(&mp) != 0
            || strcmp(mp.model, model) != 0 || mp.model_start != start
            || mp.model_end != end)
        {
            printf("# split at %zu\n", i);
            return 0;
        }
    }

    for (step = 1; step < 8; step++) {
        if (scan(&mp, s, len, step) != 0 || strcmp(mp.model, model) != 0
            || mp.model_start != start || mp.model_end != end)
        {
            printf("# step %zu\n", step);
            return 0;
        }
    }

    return 1;
}


static int
refused(const char *s, const char *param)
{
    size_t        step;
    gpugate_mp_t  mp;

    for (step = 0; step < 4; step++) {
        if (scan(&mp, s, strlen(s), step) == 0 || mp.error == NULL
            || (param == NULL) != (mp.param == NULL)
            || (param && strcmp(param, mp.param) != 0))
        {
            printf("# step %zu: %s\n", step, mp.error ? mp.error : "ok");
            return 0;
        }
    }

    return 1;
}


int
main(void)
{
    size_t        len;
    const char   *b;
    gpugate_mp_t  mp;

    static const char  basic[] = PART("model", "whisper-1")
                                 FILE_PART("file", "RIFF....WAVE")
                                 PART("language", "en") END;

    /* a file whose bytes look like a delimiter, CRs, a closing one */
    static const char  tricky[] = "preamble\r\n--XyZ-b0un not yet\r\n"
                                  FILE_PART("file", "\r\n--XyZ-b0un\r\r\n-"
                                            "\r\n--XyZ-B0und\r\n\r\n--")
                                  PART("model", "org/model:7b")
                                  PART("stream", "true") END
                                  "epilogue --" B "--";

    static const char  padded[] = "--" B " \t\r\nContent-Disposition: "
                                  "FORM-DATA ; NAME=model\r\n\r\nm1\r\n"
                                  "--" B "--";

    tap_ok(same_everywhere(basic, sizeof(basic) - 1, "whisper-1"),
           "model read, split anywhere and byte by byte, offsets exact");
    tap_ok(same_everywhere(tricky, sizeof(tricky) - 1, "org/model:7b"),
           "delimiter look-alikes, CRs and preamble/epilogue are content");
    tap_ok(scan(&mp, tricky, sizeof(tricky) - 1, 1) == 0 && mp.stream
           && mp.parts == 3, "the stream field and the part count");
    tap_ok(same_everywhere(padded, sizeof(padded) - 1, "m1"),
           "transport padding, case-insensitive header, unquoted name");
    tap_ok(scan(&mp, basic, sizeof(basic) - 1, 0) == 0 && !mp.stream,
           "no stream field: not a stream");

    {
        size_t  step;
        int     ok;

        /* an images/edits upload: n and size kept, split anywhere */

        static const char  edits[] = PART("n", "3")
                                     FILE_PART("image", "\r\n--XyZ n")
                                     PART("size", "1024x1024")
                                     PART("model", "m") END;
        static const char  longer[] = PART("size", "1024x1024-and-more")
                                      PART("n", "123456789012")
                                      PART("model", "m") END;
        static const char  filed[] = FILE_PART("n", "7")
                                     FILE_PART("size", "512x512")
                                     PART("model", "m") END;

        ok = 1;

        for (step = 0; step <= 7; step++) {
            ok &= scan(&mp, edits, sizeof(edits) - 1, step) == 0
                  && mp.n_len == 1 && mp.n_val[0] == '3'
                  && mp.size_len == 9
                  && memcmp(mp.size_val, "1024x1024", 9) == 0;
        }

        tap_ok(ok, "n and size fields kept, however the body is split");
        tap_ok(scan(&mp, longer, sizeof(longer) - 1, 1) == 0
               && mp.size_len == 18 && mp.n_len == 12,
               "longer values: their length counted past the arrays");
        tap_ok(scan(&mp, filed, sizeof(filed) - 1, 0) == 0
               && mp.size_len == 0 && mp.n_len == 0,
               "n and size sent as files are not the fields");
        tap_ok(scan(&mp, basic, sizeof(basic) - 1, 0) == 0
               && mp.size_len == 0 && mp.n_len == 0,
               "no n, no size");
    }

    /* refusals */

    tap_ok(refused(PART("file", "x") END, "model"), "no model field");
    tap_ok(refused(PART("model", "a") PART("model", "b") END, "model"),
           "two model fields");
    tap_ok(refused(FILE_PART("model", "a") END, "model"),
           "a model that is a file");
    tap_ok(refused(PART("model", "") END, "model"), "an empty model");
    tap_ok(refused(PART("model", "a\"b") END, "model"),
           "a model with a quote");
    tap_ok(refused(PART("model", "a\x01" "b") END, "model"),
           "a model with a control byte");
    tap_ok(refused("--" B "\r\nContent-Disposition: form-data; "
                   "name=\"mod\\el\"\r\n\r\nx\r\n" END, NULL),
           "a field name with an escape");
    tap_ok(refused("--" B "\r\nContent-Disposition: form-data; "
                   "name=\"model\"; name=\"x\"\r\n\r\nx\r\n" END, NULL),
           "two names in one part");
    tap_ok(refused(PART("model", "m") "--" B, NULL),
           "a body cut before its closing delimiter");
    tap_ok(refused(PART("model", "m") "--" B "-x", NULL)
           && refused(PART("model", "m") "--" B "x\r\n" END, NULL),
           "a delimiter followed by garbage (a boundary is never a "
           "line's prefix)");
    tap_ok(refused("--" B "\r\nno colon here\r\n\r\n" END, NULL),
           "a header line without ':'");

    {
        char  big[2048];

        memset(big, 'm', sizeof(big));
        big[sizeof(big) - 1] = '\0';
        memcpy(big, "--" B "\r\nX: ", 17);
        tap_ok(refused(big, NULL), "a header line over 1024 bytes");

        snprintf(big, sizeof(big), "%s%0300d\r\n%s",
                 "--" B "\r\nContent-Disposition: form-data; "
                 "name=\"model\"\r\n\r\n", 0, END);
        tap_ok(refused(big, "model"), "a model over 256 bytes");
    }

    /* Content-Type */

    tap_ok(gpugate_mp_boundary("multipart/form-data; boundary=abc", 33, &b,
                               &len) == 0 && len == 3
           && memcmp(b, "abc", 3) == 0, "a boundary");
    tap_ok(gpugate_mp_boundary("Multipart/Form-Data;charset=x; "
                               "BOUNDARY=\"a b:c\"", 47, &b, &len) == 0
           && len == 5 && memcmp(b, "a b:c", 5) == 0,
           "a quoted boundary among other parameters, any case");
    tap_ok(gpugate_mp_boundary("multipart/mixed; boundary=abc", 29, &b, &len)
           == -1, "not form-data");
    tap_ok(gpugate_mp_boundary("multipart/form-data", 19, &b, &len) == -1,
           "no boundary");
    tap_ok(gpugate_mp_boundary("multipart/form-data; boundary=a;"
                               " boundary=b", 43, &b, &len) == -1,
           "two boundaries");
    tap_ok(gpugate_mp_boundary("multipart/form-data; boundary=\"a\r\"", 35,
                               &b, &len) == -1, "a CR in a boundary");
    tap_ok(gpugate_mp_boundary("multipart/form-data; boundary="
                               "01234567890123456789012345678901234567890"
                               "1234567890123456789012345678901", 101, &b,
                               &len) == -1, "a boundary over 70 bytes");

    return tap_done();
}
