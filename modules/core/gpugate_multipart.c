
/*
 * Copyright (C) gpugate authors
 *
 * The multipart scanner is a byte-at-a-time state machine, so a body may
 * be split anywhere (a delimiter across two reads, a header line across
 * three).  The delimiter search needs no look-back: the delimiter is
 * CRLF "--" boundary and a boundary has no CR, so after a mismatch the
 * only place a new match can start is the current byte.  The body is
 * scanned as if a CRLF came before it, so that a first delimiter at the
 * very start matches too.
 *
 * What a runtime reads as the model must be what the router checked: a
 * second model field, a model part that is a file, field names with
 * escapes and a body cut before its closing delimiter are refused, not
 * guessed at.
 */


#include <string.h>

#include "gpugate_multipart.h"


static int
gpugate_mp_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}


static int
gpugate_mp_ieq(const char *a, size_t len, const char *lit)
{
    size_t  i;

    if (strlen(lit) != len) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (gpugate_mp_lower((unsigned char) a[i]) != lit[i]) {
            return 0;
        }
    }

    return 1;
}


/* a boundary character (RFC 2046 bchars) */

static int
gpugate_mp_bchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
           || (c >= 'A' && c <= 'Z') || (c != 0 && strchr("'()+_,-./:=? ", c));
}


static int
gpugate_mp_fail(gpugate_mp_t *mp, const char *error, const char *param)
{
    mp->state = GPUGATE_MP_ERROR;
    mp->error = error;
    mp->param = param;

    return -1;
}


/*
 * The parameters of a header value after its first ';': each name and
 * value (quoted or a token) in turn.  1 and the next one set, 0 at the
 * end, -1 when malformed or a quoted value has an escape.
 */

static int
gpugate_mp_param(const char **p, const char *end, const char **name,
    size_t *name_len, const char **value, size_t *value_len)
{
    const char  *s;

    s = *p;

    while (s < end && (*s == ' ' || *s == '\t' || *s == ';')) {
        s++;
    }

    if (s == end) {
        return 0;
    }

    *name = s;

    while (s < end && *s != '=' && *s != ';' && *s != ' ' && *s != '\t') {
        s++;
    }

    *name_len = s - *name;

    while (s < end && (*s == ' ' || *s == '\t')) {
        s++;
    }

    if (s == end || *s != '=' || *name_len == 0) {
        return -1;
    }

    for (s++; s < end && (*s == ' ' || *s == '\t'); s++) { /* void */ }

    if (s < end && *s == '"') {
        *value = ++s;

        while (s < end && *s != '"') {
            if (*s == '\\') {
                return -1;
            }
            s++;
        }

        if (s == end) {
            return -1;
        }

        *value_len = s - *value;
        s++;

    } else {
        *value = s;

        while (s < end && *s != ';' && *s != ' ' && *s != '\t') {
            s++;
        }

        *value_len = s - *value;
    }

    *p = s;

    return 1;
}


int
gpugate_mp_boundary(const char *ctype, size_t ctype_len, const char **b,
    size_t *len)
{
    int          rc;
    size_t       i, nl, vl;
    const char  *p, *end, *n, *v;

    static const char  type[] = "multipart/form-data";

    end = ctype + ctype_len;

    if (ctype_len < sizeof(type) - 1
        || !gpugate_mp_ieq(ctype, sizeof(type) - 1, type))
    {
        return -1;
    }

    p = ctype + sizeof(type) - 1;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p == end || *p != ';') {
        return -1;
    }

    *b = NULL;

    while ((rc = gpugate_mp_param(&p, end, &n, &nl, &v, &vl)) == 1) {
        if (gpugate_mp_ieq(n, nl, "boundary")) {
            if (*b) {
                return -1;                      /* ambiguous */
            }
            *b = v;
            *len = vl;
        }
    }

    if (rc != 0 || *b == NULL || *len == 0 || *len > GPUGATE_MP_BOUNDARY_MAX
        || (*b)[*len - 1] == ' ')
    {
        return -1;
    }

    for (i = 0; i < *len; i++) {
        if (!gpugate_mp_bchar((unsigned char) (*b)[i])) {
            return -1;
        }
    }

    return 0;
}


void
gpugate_mp_init(gpugate_mp_t *mp, const char *boundary, size_t len)
{
    memset(mp, 0, sizeof(gpugate_mp_t));

    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, boundary, len);
    mp->delim_len = 4 + len;

    /* the body is read as if a CRLF came before it */
    mp->matched = 2;
    mp->state = GPUGATE_MP_PREAMBLE;
}


/* a complete header line of a part: only Content-Disposition matters */

static int
gpugate_mp_header(gpugate_mp_t *mp)
{
    int          rc, file;
    size_t       nl, vl, name_len;
    const char  *p, *end, *colon, *n, *v, *name;

    end = mp->line + mp->line_len;
    colon = memchr(mp->line, ':', mp->line_len);

    if (colon == NULL) {
        return gpugate_mp_fail(mp, "A part header line has no ':'.", NULL);
    }

    if (!gpugate_mp_ieq(mp->line, colon - mp->line, "content-disposition")) {
        return 0;
    }

    for (p = colon + 1; p < end && (*p == ' ' || *p == '\t'); p++) {
        /* void */
    }

    if (end - p < 9 || !gpugate_mp_ieq(p, 9, "form-data")) {
        return 0;
    }

    p += 9;
    name = NULL;
    name_len = 0;
    file = 0;

    while ((rc = gpugate_mp_param(&p, end, &n, &nl, &v, &vl)) == 1) {

        if (gpugate_mp_ieq(n, nl, "name")) {
            if (name) {
                return gpugate_mp_fail(mp, "A part has two field names.",
                                       NULL);
            }
            name = v;
            name_len = vl;

        } else if (gpugate_mp_ieq(n, nl, "filename")
                   || gpugate_mp_ieq(n, nl, "filename*"))
        {
            file = 1;
        }
    }

    if (rc != 0) {
        return gpugate_mp_fail(mp, "A part's Content-Disposition is "
                               "malformed or has escapes (the request "
                               "would be ambiguous).", NULL);
    }

    if (name == NULL) {
        return 0;
    }

    mp->part_named = 1;

    if (name_len == 5 && memcmp(name, "model", 5) == 0) {
        if (file) {
            return gpugate_mp_fail(mp, "'model' must be a field, not a "
                                   "file.", "model");
        }
        mp->part_model = 1;

    } else if (name_len == 6 && memcmp(name, "stream", 6) == 0 && !file) {
        mp->part_stream = 1;

    } else if (name_len == 1 && name[0] == 'n' && !file) {
        mp->part_n = 1;
        mp->n_len = 0;

    } else if (name_len == 4 && memcmp(name, "size", 4) == 0 && !file) {
        mp->part_size = 1;
        mp->size_len = 0;
    }

    return 0;
}


/*
 * Appends to a short field's value what fits; *len counts every byte, so
 * a value longer than the array is known to be so.
 */

static void
gpugate_mp_keep_short(char *val, size_t cap, size_t *len,
    const unsigned char *p, size_t n)
{
    if (*len < cap) {
        memcpy(val + *len, p, n < cap - *len ? n : cap - *len);
    }

    *len += n;
}


/* a part's content byte the scanner keeps (model, stream, n, size) */

static int
gpugate_mp_keep(gpugate_mp_t *mp, const unsigned char *p, size_t n)
{
    if (mp->part_model) {
        if (mp->model_len + n > GPUGATE_MP_MODEL_MAX) {
            return gpugate_mp_fail(mp, "'model' must be 1 to 256 "
                                   "characters.", "model");
        }

        memcpy(mp->model + mp->model_len, p, n);
        mp->model_len += n;

    } else if (mp->part_stream) {
        if (mp->stream_len + n > sizeof(mp->stream_val)) {
            n = sizeof(mp->stream_val) - mp->stream_len;
        }

        memcpy(mp->stream_val + mp->stream_len, p, n);
        mp->stream_len += n;

    } else if (mp->part_n) {
        gpugate_mp_keep_short(mp->n_val, sizeof(mp->n_val), &mp->n_len, p,
                              n);

    } else if (mp->part_size) {
        gpugate_mp_keep_short(mp->size_val, sizeof(mp->size_val),
                              &mp->size_len, p, n);
    }

    return 0;
}


/* a part's end (its delimiter just matched) */

static int
gpugate_mp_part_end(gpugate_mp_t *mp)
{
    size_t  i;

    if (mp->part_model) {
        if (mp->model_len == 0) {
            return gpugate_mp_fail(mp, "'model' must be 1 to 256 "
                                   "characters.", "model");
        }

        for (i = 0; i < mp->model_len; i++) {
            if (mp->model[i] < 0x20 || mp->model[i] > 0x7e
                || mp->model[i] == '"' || mp->model[i] == '\\')
            {
                return gpugate_mp_fail(mp, "'model' must be printable "
                                       "ASCII without quotes or "
                                       "backslashes.", "model");
            }
        }

        mp->model[mp->model_len] = '\0';
        mp->model_seen = 1;
        mp->model_end = mp->offset + 1 - (long long) mp->delim_len;
    }

    if (mp->part_stream) {
        mp->stream = (mp->stream_len == 4
                      && memcmp(mp->stream_val, "true", 4) == 0);
    }

    mp->part_model = 0;
    mp->part_stream = 0;
    mp->part_named = 0;
    mp->part_n = 0;
    mp->part_size = 0;

    return 0;
}


/* one byte of content or preamble: the delimiter search */

static int
gpugate_mp_data(gpugate_mp_t *mp, const unsigned char *c)
{
    int  keep;

    if (*c == mp->delim[mp->matched]) {

        if (++mp->matched < mp->delim_len) {
            return 0;
        }

        mp->matched = 0;

        if (mp->state == GPUGATE_MP_DATA && gpugate_mp_part_end(mp) != 0) {
            return -1;
        }

        mp->state = GPUGATE_MP_AFTER_DELIM;
        return 0;
    }

    keep = (mp->state == GPUGATE_MP_DATA
            && (mp->part_model || mp->part_stream || mp->part_n
                || mp->part_size));

    /* the bytes that looked like a delimiter were content (the virtual
       CRLF before the body is not: it is only in the preamble) */

    if (keep && mp->matched
        && gpugate_mp_keep(mp, mp->delim, mp->matched) != 0)
    {
        return -1;
    }

    mp->matched = (*c == mp->delim[0]) ? 1 : 0;

    if (keep && mp->matched == 0) {
        return gpugate_mp_keep(mp, c, 1);
    }

    return 0;
}


int
gpugate_mp_feed(gpugate_mp_t *mp, const unsigned char *p, size_t len)
{
    const unsigned char  *c, *end;

    end = p + len;

    for (c = p; c < end; c++, mp->offset++) {

        switch (mp->state) {

        case GPUGATE_MP_PREAMBLE:
        case GPUGATE_MP_DATA:
            if (gpugate_mp_data(mp, c) != 0) {
                return -1;
            }
            break;

        case GPUGATE_MP_AFTER_DELIM:
            if (*c == '-') {
                mp->state = GPUGATE_MP_AFTER_DELIM_DASH;
            } else if (*c == '\r') {
                mp->state = GPUGATE_MP_AFTER_DELIM_CR;
            } else if (*c == ' ' || *c == '\t') {
                mp->state = GPUGATE_MP_AFTER_DELIM_PAD;
            } else {
                goto bad_delimiter;
            }
            break;

        case GPUGATE_MP_AFTER_DELIM_DASH:
            if (*c != '-') {
                goto bad_delimiter;
            }
            mp->state = GPUGATE_MP_EPILOGUE;
            break;

        case GPUGATE_MP_AFTER_DELIM_PAD:
            if (*c == '\r') {
                mp->state = GPUGATE_MP_AFTER_DELIM_CR;
            } else if (*c != ' ' && *c != '\t') {
                goto bad_delimiter;
            }
            break;

        case GPUGATE_MP_AFTER_DELIM_CR:
            if (*c != '\n') {
                goto bad_delimiter;
            }
            mp->parts++;
            mp->line_len = 0;
            mp->state = GPUGATE_MP_HEADERS;
            break;

        case GPUGATE_MP_HEADERS:
            if (*c == '\r') {
                mp->state = GPUGATE_MP_HEADER_CR;
                break;
            }

            if (mp->line_len == GPUGATE_MP_LINE_MAX) {
                return gpugate_mp_fail(mp, "A part header line is longer "
                                       "than 1024 bytes.", NULL);
            }

            mp->line[mp->line_len++] = (char) *c;
            break;

        case GPUGATE_MP_HEADER_CR:
            if (*c != '\n') {
                return gpugate_mp_fail(mp, "A part header line does not "
                                       "end with CRLF.", NULL);
            }

            if (mp->line_len) {
                if (gpugate_mp_header(mp) != 0) {
                    return -1;
                }
                mp->line_len = 0;
                mp->state = GPUGATE_MP_HEADERS;
                break;
            }

            /* the empty line: the content begins */

            if (mp->part_model) {
                if (mp->model_seen) {
                    return gpugate_mp_fail(mp, "The body has two 'model' "
                                           "fields.", "model");
                }
                mp->model_len = 0;
                mp->model_start = mp->offset + 1;
            }

            mp->matched = 0;
            mp->state = GPUGATE_MP_DATA;
            break;

        case GPUGATE_MP_EPILOGUE:
            /* ignored, as RFC 2046 says */
            return 0;

        case GPUGATE_MP_ERROR:
            return -1;
        }
    }

    return 0;

bad_delimiter:

    return gpugate_mp_fail(mp, "A multipart delimiter is followed by "
                           "neither CRLF nor \"--\".", NULL);
}


int
gpugate_mp_finish(gpugate_mp_t *mp)
{
    if (mp->state == GPUGATE_MP_ERROR) {
        return -1;
    }

    if (mp->state != GPUGATE_MP_EPILOGUE) {
        return gpugate_mp_fail(mp, "The multipart body ends before its "
                               "closing delimiter.", NULL);
    }

    if (!mp->model_seen) {
        return gpugate_mp_fail(mp, "You must provide a model parameter.",
                               "model");
    }

    return 0;
}
