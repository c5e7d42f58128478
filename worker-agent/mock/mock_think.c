
/*
 * Copyright (C) gpugate authors
 *
 * Inline reasoning for the gateway's reasoning split (X-Mock-Think): the
 * answer starts with "<think>", N words, "</think>" and a blank line, as
 * a thinking model sends it through a runtime without a reasoning parser.
 * One token each, or one byte each (X-Mock-Think-Bytes), so that a test
 * sees the tags cut at every byte by the events.  The tokens count in
 * the answer's completion tokens like any other.
 */


#include <string.h>

#include "mock_think.h"


static const char  *mock_think_words[] = {
    " the", " user", " wants", " an", " answer", " so", " let", " me",
    " think", " it", " through", " first"
};

#define MOCK_THINK_NWORDS                                                  \
    (sizeof(mock_think_words) / sizeof(mock_think_words[0]))

/* the longest preamble made one byte per token */
#define MOCK_THINK_MAX  4096


static const char *
mock_think_byte(unsigned char c)
{
    static char  one[256][2];

    one[c][0] = (char) c;
    one[c][1] = '\0';

    return one[c];
}


/* token i of the words form: "<think>", the words, "</think>", "\n\n" */

static const char *
mock_think_word(const mock_req_t *req, long i)
{
    if (i == 0) {
        return "<think>";
    }

    if (i <= req->think) {
        return mock_think_words[(i - 1) % MOCK_THINK_NWORDS];
    }

    if (i == req->think + 1) {
        return "</think>";
    }

    return i == req->think + 2 ? "\n\n" : NULL;
}


static size_t
mock_think_text(const mock_req_t *req, char *buf, size_t cap)
{
    long         i;
    size_t       len, n;
    const char  *w;

    len = 0;

    for (i = 0; (w = mock_think_word(req, i)) != NULL; i++) {
        n = strlen(w);

        if (len + n >= cap) {
            break;
        }

        memcpy(buf + len, w, n);
        len += n;
    }

    buf[len] = '\0';

    return len;
}


const char *
mock_think_token(const mock_req_t *req, long i)
{
    size_t  len;
    char    text[MOCK_THINK_MAX];

    if (i < 0) {
        return NULL;
    }

    if (!req->think_bytes) {
        return mock_think_word(req, i);
    }

    len = mock_think_text(req, text, sizeof(text));

    return (size_t) i < len ? mock_think_byte((unsigned char) text[i]) : NULL;
}


long
mock_think_tokens(const mock_req_t *req)
{
    char  text[MOCK_THINK_MAX];

    if (req->think <= 0) {
        return 0;
    }

    if (req->think_bytes) {
        return (long) mock_think_text(req, text, sizeof(text));
    }

    return req->think + 3;
}
