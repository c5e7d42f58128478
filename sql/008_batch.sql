-- gpugate schema, migration 008: asynchronous jobs, OpenAI's Batch API
-- (files, batches) and the platform's single-request jobs (issue 19).
--
-- Design: docs/batch.md.  In short:
--
--   batch_files   uploaded JSONL (purpose "batch") and the output and
--                 error files the gateway writes (purpose "batch_output"),
--                 the text kept here, owned by the key that made them
--   batches       one row per batch or job (kind), with OpenAI's status,
--                 request_counts and timestamps; a job is a batch of one
--                 line with a priority and a region (the "jobs" view)
--   batch_lines   one row per request to run: its custom_id, url and
--                 body, its state (pending -> running -> done | failed,
--                 or cancelled / expired before it ran), the lease of the
--                 node running it, attempts, and the answer
--
-- Every gateway node's runner claims pending lines with FOR UPDATE SKIP
-- LOCKED (gpugate_batch_claim): a line is handed to one node only, and
-- the node writes the answer in the statement that ends its lease
-- (gpugate_batch_line_done, matched on the attempt's request id, so a
-- late answer of a lease that was taken away changes nothing).  A line
-- whose lease ran out (its node died with it in flight) is NOT run again:
-- it fails with "interrupted" (at most once); a line is only put back to
-- pending when the gateway said it did not run it (429, 503, or the
-- runner could not deliver the request).
--
-- Like 004, the gateway may touch these tables only through the
-- functions below (SECURITY DEFINER): nginx passes the key id that auth
-- granted, and every function reads and changes only that key's rows.
--
-- Idempotent: tables and indexes IF NOT EXISTS, functions CREATE OR
-- REPLACE.

BEGIN;

CREATE TABLE IF NOT EXISTS batch_files (
    id          text PRIMARY KEY,
    api_key_id  bigint NOT NULL,
    tenant_id   bigint NOT NULL,
    purpose     text NOT NULL CHECK (purpose IN ('batch', 'batch_output')),
    filename    text NOT NULL,
    bytes       bigint NOT NULL,
    lines       integer NOT NULL,
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS batch_files_key_idx
    ON batch_files (api_key_id, created_at);

CREATE TABLE IF NOT EXISTS batches (
    id                 text PRIMARY KEY,
    -- creation order: the listing's pages and the runner's fairness
    seq                bigserial UNIQUE,
    kind               text NOT NULL CHECK (kind IN ('batch', 'job')),
    api_key_id         bigint NOT NULL,
    tenant_id          bigint NOT NULL,
    endpoint           text NOT NULL,
    completion_window  text NOT NULL DEFAULT '24h',
    status             text NOT NULL CHECK (status IN ('validating',
                           'failed', 'in_progress', 'finalizing',
                           'completed', 'expired', 'cancelling',
                           'cancelled')),
    input_file_id      text,
    output_file_id     text,
    error_file_id      text,
    total              integer NOT NULL DEFAULT 0,
    completed          integer NOT NULL DEFAULT 0,
    failed             integer NOT NULL DEFAULT 0,
    metadata           jsonb,
    errors             jsonb,
    -- jobs: what the request asked for; NULL: the key's default
    priority           smallint,
    region             text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    in_progress_at     timestamptz,
    expires_at         timestamptz NOT NULL,
    finalizing_at      timestamptz,
    completed_at       timestamptz,
    failed_at          timestamptz,
    expired_at         timestamptz,
    cancelling_at      timestamptz,
    cancelled_at       timestamptz
);

CREATE INDEX IF NOT EXISTS batches_key_idx
    ON batches (api_key_id, kind, seq);
CREATE INDEX IF NOT EXISTS batches_open_idx
    ON batches (expires_at) WHERE status = 'in_progress';

CREATE TABLE IF NOT EXISTS batch_lines (
    batch_id     text NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    line_no      integer NOT NULL,
    bseq         bigint NOT NULL,
    priority     smallint NOT NULL DEFAULT 0,
    custom_id    text NOT NULL,
    url          text NOT NULL,
    body         text NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'done', 'failed',
                                   'cancelled', 'expired')),
    lease_owner  text,
    lease_until  timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    -- "<batch id>.<line>.<attempt>": the attempt the lease belongs to
    request_id   text,
    status_code  integer,
    response     text,
    error        jsonb,
    finished_at  timestamptz,
    PRIMARY KEY (batch_id, line_no)
);

-- what the runners claim: oldest batch first, higher priority first
CREATE INDEX IF NOT EXISTS batch_lines_pending_idx
    ON batch_lines (priority DESC, bseq, line_no) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS batch_lines_lease_idx
    ON batch_lines (lease_until) WHERE status = 'running';
CREATE UNIQUE INDEX IF NOT EXISTS batch_lines_request_idx
    ON batch_lines (request_id) WHERE request_id IS NOT NULL;

-- the ledger's rows of one batch or job
CREATE INDEX IF NOT EXISTS usage_events_batch_idx
    ON usage_events (batch_id) WHERE batch_id IS NOT NULL;

-- the platform's jobs, for operators
CREATE OR REPLACE VIEW jobs AS
    SELECT b.id, b.api_key_id, b.tenant_id, b.endpoint, b.status,
           b.priority, b.region, l.status AS line_status, l.status_code,
           l.response AS result, l.error, b.created_at, b.completed_at
    FROM batches b JOIN batch_lines l ON l.batch_id = b.id
    WHERE b.kind = 'job';


-- OpenAI's error body
CREATE OR REPLACE FUNCTION gpugate_batch_error(msg text, type text,
    code text, param text DEFAULT NULL)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT json_build_object('error', json_build_object(
        'message', msg, 'type', type, 'param', param, 'code', code))::text
$$;


CREATE OR REPLACE FUNCTION gpugate_batch_new_id(prefix text)
RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT prefix || replace(gen_random_uuid()::text, '-', '')
$$;


-- the endpoints a line may name: the router's JSON endpoints
CREATE OR REPLACE FUNCTION gpugate_batch_endpoint_ok(e text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT e IN ('/v1/chat/completions', '/v1/completions',
                 '/v1/embeddings', '/v1/responses', '/v1/messages',
                 '/v1/rerank', '/v1/score', '/v1/moderations')
$$;


CREATE OR REPLACE FUNCTION gpugate_batch_epoch(t timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT extract(epoch FROM t)::bigint
$$;


-- a runtime's answer as JSON when it is JSON, as a string otherwise
CREATE OR REPLACE FUNCTION gpugate_batch_jsonb(t text)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN others THEN
    RETURN to_jsonb(t);
END
$$;


CREATE OR REPLACE FUNCTION gpugate_batch_file_json(f batch_files)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', f.id, 'object', 'file', 'bytes', f.bytes,
        'created_at', gpugate_batch_epoch(f.created_at),
        'expires_at', NULL, 'filename', f.filename, 'purpose', f.purpose,
        'status', 'processed', 'status_details', NULL)
$$;


CREATE OR REPLACE FUNCTION gpugate_batch_json(b batches)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', b.id, 'object', 'batch', 'endpoint', b.endpoint,
        'errors', b.errors, 'input_file_id', b.input_file_id,
        'completion_window', b.completion_window, 'status', b.status,
        'output_file_id', b.output_file_id,
        'error_file_id', b.error_file_id,
        'created_at', gpugate_batch_epoch(b.created_at),
        'in_progress_at', gpugate_batch_epoch(b.in_progress_at),
        'expires_at', gpugate_batch_epoch(b.expires_at),
        'finalizing_at', gpugate_batch_epoch(b.finalizing_at),
        'completed_at', gpugate_batch_epoch(b.completed_at),
        'failed_at', gpugate_batch_epoch(b.failed_at),
        'expired_at', gpugate_batch_epoch(b.expired_at),
        'cancelling_at', gpugate_batch_epoch(b.cancelling_at),
        'cancelled_at', gpugate_batch_epoch(b.cancelled_at),
        'request_counts', json_build_object('total', b.total,
            'completed', b.completed, 'failed', b.failed),
        'metadata', b.metadata)
$$;


-- a line as OpenAI's output and error files show it
CREATE OR REPLACE FUNCTION gpugate_batch_line_json(l batch_lines)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', 'batch_req_' || md5(l.batch_id || '.' || l.line_no),
        'custom_id', l.custom_id,
        'response', CASE WHEN l.status_code IS NULL THEN NULL
                    ELSE json_build_object('status_code', l.status_code,
                        'request_id', l.request_id,
                        'body', gpugate_batch_jsonb(l.response)) END,
        'error', l.error)
$$;


-- a job: its one line's state and answer
CREATE OR REPLACE FUNCTION gpugate_batch_job_json(b batches, l batch_lines)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', b.id, 'object', 'job', 'endpoint', b.endpoint,
        'status', CASE l.status WHEN 'pending' THEN 'queued'
                                WHEN 'running' THEN 'running'
                                WHEN 'done' THEN 'completed'
                                ELSE l.status END,
        'priority', b.priority, 'region', b.region,
        'created_at', gpugate_batch_epoch(b.created_at),
        'completed_at', gpugate_batch_epoch(l.finished_at),
        'attempts', l.attempts,
        'result', CASE WHEN l.status_code IS NULL THEN NULL
                  ELSE json_build_object('status_code', l.status_code,
                      'request_id', l.request_id,
                      'body', gpugate_batch_jsonb(l.response)) END,
        'error', l.error)
$$;


-- The end of a batch (its row locked by the caller): the output and
-- error files and the final status.  "finalizing" lasts this statement.
CREATE OR REPLACE FUNCTION gpugate_batch_finalize(bid text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    b    batches;
    out  text;
    err  text;
    nout integer;
    nerr integer;
    oid  text;
    eid  text;
BEGIN
    SELECT * INTO b FROM batches WHERE id = bid;

    SELECT string_agg(gpugate_batch_line_json(l)::text, E'\n'
                      ORDER BY l.line_no) FILTER (WHERE l.status = 'done'),
           count(*) FILTER (WHERE l.status = 'done'),
           string_agg(gpugate_batch_line_json(l)::text, E'\n'
                      ORDER BY l.line_no) FILTER (WHERE l.status <> 'done'),
           count(*) FILTER (WHERE l.status <> 'done')
    INTO out, nout, err, nerr
    FROM batch_lines l WHERE l.batch_id = bid;

    IF b.kind = 'batch' AND nout > 0 THEN
        oid := gpugate_batch_new_id('file-');
        INSERT INTO batch_files (id, api_key_id, tenant_id, purpose,
                                 filename, bytes, lines, content)
        VALUES (oid, b.api_key_id, b.tenant_id, 'batch_output',
                bid || '_output.jsonl', octet_length(out) + 1, nout,
                out || E'\n');
    END IF;

    IF b.kind = 'batch' AND nerr > 0 THEN
        eid := gpugate_batch_new_id('file-');
        INSERT INTO batch_files (id, api_key_id, tenant_id, purpose,
                                 filename, bytes, lines, content)
        VALUES (eid, b.api_key_id, b.tenant_id, 'batch_output',
                bid || '_error.jsonl', octet_length(err) + 1, nerr,
                err || E'\n');
    END IF;

    UPDATE batches SET
        output_file_id = oid, error_file_id = eid,
        finalizing_at = now(),
        status = CASE WHEN status = 'cancelling' THEN 'cancelled'
                      WHEN expired_at IS NOT NULL THEN 'expired'
                      ELSE 'completed' END,
        cancelled_at = CASE WHEN status = 'cancelling' THEN now() END,
        completed_at = CASE WHEN status <> 'cancelling'
                             AND expired_at IS NULL THEN now() END
    WHERE id = bid;
END
$$;


-- finalizes a batch (row locked) once no line is left to run
CREATE OR REPLACE FUNCTION gpugate_batch_progress(bid text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM batches
               WHERE id = bid AND status IN ('in_progress', 'cancelling'))
       AND NOT EXISTS (SELECT 1 FROM batch_lines
                       WHERE batch_id = bid
                         AND status IN ('pending', 'running'))
    THEN
        PERFORM gpugate_batch_finalize(bid);
    END IF;
END
$$;


-- The routes.  Each takes the key id and tenant id auth granted, the id
-- of the path ("" if none) and the input (JSON, or a file's text), and
-- answers the HTTP status, the body and its content type.

-- POST /v1/files: "arg" is the file name, "input" the JSONL, which the
-- gateway has checked line by line
CREATE OR REPLACE FUNCTION gpugate_batch_file_create(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    f  batch_files;
BEGIN
    INSERT INTO batch_files (id, api_key_id, tenant_id, purpose, filename,
                             bytes, lines, content)
    VALUES (gpugate_batch_new_id('file-'), kid::bigint, tid::bigint,
            'batch', arg, octet_length(input),
            (SELECT count(*) FROM regexp_split_to_table(input, E'\n') s
             WHERE btrim(s, E' \t\r') <> ''),
            input)
    RETURNING * INTO f;
    status := 200;
    body := gpugate_batch_file_json(f)::text;
    ctype := 'application/json';
END
$$;


-- GET /v1/files/{id}, GET /v1/files/{id}/content
CREATE OR REPLACE FUNCTION gpugate_batch_file_get(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    f  batch_files;
BEGIN
    SELECT * INTO f FROM batch_files
    WHERE id = arg AND api_key_id = kid::bigint;
    IF NOT FOUND THEN
        status := 404;
        body := gpugate_batch_error('No such File object: ' || arg,
                    'invalid_request_error', 'file_not_found', 'id');
        ctype := 'application/json';
        RETURN;
    END IF;
    status := 200;
    IF input = 'content' THEN
        body := f.content;
        ctype := 'application/jsonl';
    ELSE
        body := gpugate_batch_file_json(f)::text;
        ctype := 'application/json';
    END IF;
END
$$;


-- POST /v1/batches {input_file_id, endpoint, completion_window, metadata}
CREATE OR REPLACE FUNCTION gpugate_batch_create(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q    jsonb;
    f    batch_files;
    b    batches;
    bad  integer;
BEGIN
    ctype := 'application/json';
    BEGIN
        q := input::jsonb;
    EXCEPTION WHEN others THEN
        q := NULL;
    END;
    IF q IS NULL OR jsonb_typeof(q) <> 'object' THEN
        status := 400;
        body := gpugate_batch_error('the body must be a JSON object',
                    'invalid_request_error', 'invalid_value');
        RETURN;
    END IF;
    IF NOT gpugate_batch_endpoint_ok(coalesce(q ->> 'endpoint', '')) THEN
        status := 400;
        body := gpugate_batch_error('endpoint must be one of '
                    || '/v1/chat/completions, /v1/completions, '
                    || '/v1/embeddings, /v1/responses, /v1/messages, '
                    || '/v1/rerank, /v1/score, /v1/moderations',
                    'invalid_request_error', 'invalid_value', 'endpoint');
        RETURN;
    END IF;
    IF coalesce(q ->> 'completion_window', '') <> '24h' THEN
        status := 400;
        body := gpugate_batch_error('completion_window must be "24h"',
                    'invalid_request_error', 'invalid_value',
                    'completion_window');
        RETURN;
    END IF;
    IF q ? 'metadata' AND jsonb_typeof(q -> 'metadata') NOT IN ('object',
                                                                 'null')
    THEN
        status := 400;
        body := gpugate_batch_error('metadata must be an object',
                    'invalid_request_error', 'invalid_value', 'metadata');
        RETURN;
    END IF;
    SELECT * INTO f FROM batch_files
    WHERE id = coalesce(q ->> 'input_file_id', '')
      AND api_key_id = kid::bigint AND purpose = 'batch';
    IF NOT FOUND THEN
        status := 404;
        body := gpugate_batch_error('No such File object: '
                    || coalesce(q ->> 'input_file_id', '(none)'),
                    'invalid_request_error', 'file_not_found',
                    'input_file_id');
        RETURN;
    END IF;

    INSERT INTO batches (id, kind, api_key_id, tenant_id, endpoint,
                         status, input_file_id, metadata, in_progress_at,
                         expires_at)
    VALUES (gpugate_batch_new_id('batch_'), 'batch', kid::bigint,
            tid::bigint, q ->> 'endpoint', 'validating', f.id,
            q -> 'metadata', now(), now() + interval '24 hours')
    RETURNING * INTO b;

    INSERT INTO batch_lines (batch_id, line_no, bseq, custom_id, url, body)
    SELECT b.id, s.n, b.seq, j ->> 'custom_id', j ->> 'url',
           (j -> 'body')::text
    FROM regexp_split_to_table(f.content, E'\n') WITH ORDINALITY
             AS s(line, n),
         LATERAL (SELECT s.line::jsonb AS j) x
    WHERE btrim(s.line, E' \t\r') <> '';

    -- OpenAI's rule: every line names the batch's endpoint
    SELECT min(line_no) INTO bad FROM batch_lines
    WHERE batch_id = b.id AND url <> b.endpoint;

    IF bad IS NOT NULL THEN
        DELETE FROM batch_lines WHERE batch_id = b.id;
        UPDATE batches SET status = 'failed', failed_at = now(),
            in_progress_at = NULL,
            errors = jsonb_build_object('object', 'list', 'data',
                jsonb_build_array(jsonb_build_object(
                    'code', 'invalid_url', 'line', bad, 'param', 'url',
                    'message', 'the line''s url is not the batch''s '
                               || 'endpoint ' || b.endpoint)))
        WHERE id = b.id RETURNING * INTO b;
    ELSE
        UPDATE batches SET status = 'in_progress',
            total = (SELECT count(*) FROM batch_lines
                     WHERE batch_id = b.id)
        WHERE id = b.id RETURNING * INTO b;
        -- an empty file has nothing to run
        PERFORM gpugate_batch_progress(b.id);
        SELECT * INTO b FROM batches WHERE id = b.id;
    END IF;

    status := 200;
    body := gpugate_batch_json(b)::text;
END
$$;


-- GET /v1/batches/{id}
CREATE OR REPLACE FUNCTION gpugate_batch_get(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    b  batches;
BEGIN
    ctype := 'application/json';
    SELECT * INTO b FROM batches
    WHERE id = arg AND api_key_id = kid::bigint AND kind = 'batch';
    IF NOT FOUND THEN
        status := 404;
        body := gpugate_batch_error('No such Batch object: ' || arg,
                    'invalid_request_error', 'batch_not_found', 'id');
        RETURN;
    END IF;
    status := 200;
    body := gpugate_batch_json(b)::text;
END
$$;


-- GET /v1/batches?after=&limit=: newest first, as OpenAI lists them
CREATE OR REPLACE FUNCTION gpugate_batch_list(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q      jsonb;
    n      integer;
    below  bigint;
    page   json;
    more   boolean;
BEGIN
    ctype := 'application/json';
    q := input::jsonb;
    IF coalesce(q ->> 'limit', '20') !~ '^[1-9][0-9]{0,2}$'
       OR coalesce(q ->> 'limit', '20')::integer > 100
    THEN
        status := 400;
        body := gpugate_batch_error('limit must be 1-100',
                    'invalid_request_error', 'invalid_value', 'limit');
        RETURN;
    END IF;
    n := coalesce(q ->> 'limit', '20')::integer;
    below := 9223372036854775807;
    IF q ? 'after' THEN
        SELECT seq INTO below FROM batches
        WHERE id = q ->> 'after' AND api_key_id = kid::bigint;
        IF NOT FOUND THEN
            status := 400;
            body := gpugate_batch_error('after names no batch of this key',
                        'invalid_request_error', 'invalid_value', 'after');
            RETURN;
        END IF;
    END IF;

    SELECT coalesce(json_agg(gpugate_batch_json(p.br) ORDER BY p.i)
                        FILTER (WHERE p.i <= n), '[]'::json),
           count(*) > n
    INTO page, more
    FROM (SELECT b AS br, row_number() OVER (ORDER BY b.seq DESC) AS i
          FROM batches b
          WHERE b.api_key_id = kid::bigint AND b.kind = 'batch'
            AND b.seq < below
          ORDER BY b.seq DESC LIMIT n + 1) p;

    status := 200;
    body := json_build_object('object', 'list', 'data', page,
        'first_id', page -> 0 -> 'id',
        'last_id', page -> (json_array_length(page) - 1) -> 'id',
        'has_more', more)::text;
END
$$;


-- POST /v1/batches/{id}/cancel, DELETE /v1/jobs/{id}: lines not yet
-- sent are cancelled; the batch ends once those in flight have answered
CREATE OR REPLACE FUNCTION gpugate_batch_cancel(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    b     batches;
    l     batch_lines;
    want  text;
BEGIN
    ctype := 'application/json';
    want := CASE WHEN input = 'job' THEN 'job' ELSE 'batch' END;
    SELECT * INTO b FROM batches
    WHERE id = arg AND api_key_id = kid::bigint AND batches.kind = want
    FOR UPDATE;
    IF NOT FOUND THEN
        status := 404;
        body := gpugate_batch_error('No such ' || initcap(want)
                    || ' object: ' || arg, 'invalid_request_error',
                    want || '_not_found', 'id');
        RETURN;
    END IF;

    IF b.status IN ('validating', 'in_progress') THEN
        UPDATE batch_lines SET status = 'cancelled', finished_at = now(),
            error = jsonb_build_object('code', 'batch_cancelled',
                'message', 'cancelled before it was sent')
        WHERE batch_id = b.id AND batch_lines.status = 'pending';
        UPDATE batches SET status = 'cancelling', cancelling_at = now()
        WHERE id = b.id;
        PERFORM gpugate_batch_progress(b.id);
    ELSIF b.status NOT IN ('cancelling', 'cancelled') THEN
        status := 409;
        body := gpugate_batch_error('the ' || want || ' is already '
                    || b.status || ' and cannot be cancelled',
                    'invalid_request_error', 'not_cancellable');
        RETURN;
    END IF;

    SELECT * INTO b FROM batches WHERE id = b.id;
    status := 200;
    IF want = 'job' THEN
        SELECT * INTO l FROM batch_lines WHERE batch_id = b.id;
        body := gpugate_batch_job_json(b, l)::text;
    ELSE
        body := gpugate_batch_json(b)::text;
    END IF;
END
$$;


-- POST /v1/jobs {endpoint, body, priority, region}
CREATE OR REPLACE FUNCTION gpugate_job_create(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q  jsonb;
    b  batches;
    l  batch_lines;
BEGIN
    ctype := 'application/json';
    BEGIN
        q := input::jsonb;
    EXCEPTION WHEN others THEN
        q := NULL;
    END;
    IF q IS NULL OR jsonb_typeof(q) <> 'object' THEN
        status := 400;
        body := gpugate_batch_error('the body must be a JSON object',
                    'invalid_request_error', 'invalid_value');
        RETURN;
    END IF;
    IF NOT gpugate_batch_endpoint_ok(coalesce(q ->> 'endpoint', '')) THEN
        status := 400;
        body := gpugate_batch_error('endpoint must be one of '
                    || '/v1/chat/completions, /v1/completions, '
                    || '/v1/embeddings, /v1/responses, /v1/messages, '
                    || '/v1/rerank, /v1/score, /v1/moderations',
                    'invalid_request_error', 'invalid_value', 'endpoint');
        RETURN;
    END IF;
    IF jsonb_typeof(q -> 'body') IS DISTINCT FROM 'object'
       OR (q -> 'body' -> 'stream') = 'true'::jsonb
    THEN
        status := 400;
        body := gpugate_batch_error('body must be a JSON object (the '
                    || 'request to run), without "stream": true',
                    'invalid_request_error', 'invalid_value', 'body');
        RETURN;
    END IF;
    IF q ? 'priority' AND (jsonb_typeof(q -> 'priority') <> 'number'
                           OR (q ->> 'priority') !~ '^-?[0-9]{1,4}$')
    THEN
        status := 400;
        body := gpugate_batch_error('priority must be a whole number '
                    || 'from -9999 to 9999', 'invalid_request_error',
                    'invalid_value', 'priority');
        RETURN;
    END IF;
    IF q ? 'region' AND (jsonb_typeof(q -> 'region') <> 'string'
                         OR (q ->> 'region') !~ '^[A-Za-z0-9._-]{1,64}$')
    THEN
        status := 400;
        body := gpugate_batch_error('region must be a name of letters, '
                    || 'digits, ".", "_" or "-"', 'invalid_request_error',
                    'invalid_value', 'region');
        RETURN;
    END IF;

    INSERT INTO batches (id, kind, api_key_id, tenant_id, endpoint, status,
                         total, priority, region, in_progress_at,
                         expires_at)
    VALUES (gpugate_batch_new_id('job_'), 'job', kid::bigint, tid::bigint,
            q ->> 'endpoint', 'in_progress', 1,
            (q ->> 'priority')::smallint, q ->> 'region', now(),
            now() + interval '24 hours')
    RETURNING * INTO b;

    INSERT INTO batch_lines (batch_id, line_no, bseq, priority, custom_id,
                             url, body)
    VALUES (b.id, 1, b.seq, coalesce(b.priority, 0), b.id, b.endpoint,
            (q -> 'body')::text)
    RETURNING * INTO l;

    status := 200;
    body := gpugate_batch_job_json(b, l)::text;
END
$$;


-- GET /v1/jobs/{id}
CREATE OR REPLACE FUNCTION gpugate_job_get(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    b  batches;
    l  batch_lines;
BEGIN
    ctype := 'application/json';
    SELECT * INTO b FROM batches
    WHERE id = arg AND api_key_id = kid::bigint AND kind = 'job';
    IF NOT FOUND THEN
        status := 404;
        body := gpugate_batch_error('No such Job object: ' || arg,
                    'invalid_request_error', 'job_not_found', 'id');
        RETURN;
    END IF;
    SELECT * INTO l FROM batch_lines WHERE batch_id = b.id;
    status := 200;
    body := gpugate_batch_job_json(b, l)::text;
END
$$;


-- The runner.  Housekeeping first (a few rows at a time, rows other
-- nodes hold are skipped): lines whose lease ran out fail as
-- "interrupted" (never run twice), batches past their window expire, then
-- up to "n" pending lines are leased to "owner" for "lease_ms" and
-- returned with the digest of the key that made them (what the gateway
-- looks the key up by; not a usable key).
CREATE OR REPLACE FUNCTION gpugate_batch_claim(owner text, n text,
    lease_ms text, unused text)
RETURNS TABLE (request_id text, batch_id text, url text, body text,
               digest text, priority integer, region text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    bid  text;
    k    integer;
BEGIN
    FOR bid IN SELECT DISTINCT l.batch_id FROM batch_lines l
               WHERE l.status = 'running' AND l.lease_until < now()
               LIMIT 8
    LOOP
        PERFORM 1 FROM batches b WHERE b.id = bid FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        UPDATE batch_lines l SET status = 'failed', finished_at = now(),
            lease_owner = NULL, lease_until = NULL,
            error = jsonb_build_object('code', 'interrupted',
                'message', 'the gateway node running this request stopped '
                || 'before its answer was stored; it is not sent again, '
                || 'so that it never runs twice')
        WHERE l.batch_id = bid AND l.status = 'running'
          AND l.lease_until < now();
        GET DIAGNOSTICS k = ROW_COUNT;
        UPDATE batches b SET failed = b.failed + k WHERE b.id = bid;
        PERFORM gpugate_batch_progress(bid);
    END LOOP;

    FOR bid IN SELECT b.id FROM batches b
               WHERE b.status = 'in_progress' AND b.expires_at < now()
                 AND b.expired_at IS NULL
               LIMIT 8 FOR UPDATE SKIP LOCKED
    LOOP
        UPDATE batch_lines l SET status = 'expired', finished_at = now(),
            error = jsonb_build_object('code', 'batch_expired',
                'message', 'the batch''s completion window ended before '
                || 'this request was sent')
        WHERE l.batch_id = bid AND l.status = 'pending';
        UPDATE batches b SET expired_at = now() WHERE b.id = bid;
        PERFORM gpugate_batch_progress(bid);
    END LOOP;

    RETURN QUERY
    WITH c AS (
        UPDATE batch_lines l SET status = 'running',
            lease_owner = owner,
            lease_until = now() + lease_ms::integer * interval '1 ms',
            attempts = l.attempts + 1,
            request_id = l.batch_id || '.' || l.line_no || '.'
                         || (l.attempts + 1)
        WHERE (l.batch_id, l.line_no) IN (
            SELECT p.batch_id, p.line_no FROM batch_lines p
            WHERE p.status = 'pending'
            ORDER BY p.priority DESC, p.bseq, p.line_no
            LIMIT n::integer FOR UPDATE SKIP LOCKED)
        RETURNING l.request_id, l.batch_id, l.url, l.body)
    SELECT c.request_id, c.batch_id, c.url, c.body,
           encode(k2.digest, 'hex'), b.priority::integer, b.region
    FROM c JOIN batches b ON b.id = c.batch_id
           JOIN api_keys k2 ON k2.id = b.api_key_id;
END
$$;


-- A line's answer ends its lease, in one statement with the count and,
-- for the last line, the batch's files.  "code" is the HTTP status, 0
-- when the runner got none; "retry" 1: the gateway did not run it (429,
-- 503, not delivered), so it goes back to pending, up to 5 attempts.
-- Answers "stale" when the lease was no longer this attempt's.
CREATE OR REPLACE FUNCTION gpugate_batch_line_done(rid text, code text,
    answer text, retry text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    l    batch_lines;
    st   text;
BEGIN
    SELECT * INTO l FROM batch_lines WHERE request_id = rid;
    IF NOT FOUND THEN
        RETURN 'stale';
    END IF;
    -- the batch first, as every writer locks it: no deadlock
    PERFORM 1 FROM batches WHERE id = l.batch_id FOR UPDATE;
    SELECT * INTO l FROM batch_lines
    WHERE request_id = rid AND status = 'running' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'stale';
    END IF;

    IF retry = '1' AND l.attempts < 5
       AND EXISTS (SELECT 1 FROM batches
                   WHERE id = l.batch_id AND status = 'in_progress'
                     AND expired_at IS NULL)
    THEN
        UPDATE batch_lines SET status = 'pending', lease_owner = NULL,
            lease_until = NULL
        WHERE batch_id = l.batch_id AND line_no = l.line_no;
        RETURN 'retry';
    END IF;

    st := CASE WHEN code::integer BETWEEN 200 AND 299 THEN 'done'
               ELSE 'failed' END;

    UPDATE batch_lines SET status = st, lease_owner = NULL,
        lease_until = NULL, finished_at = now(),
        status_code = nullif(code::integer, 0),
        response = CASE WHEN code::integer > 0 THEN answer END,
        error = CASE WHEN code::integer = 0 THEN
                    jsonb_build_object('code', CASE WHEN retry = '1'
                                           THEN 'not_delivered'
                                           ELSE 'no_answer' END,
                                       'message', answer) END
    WHERE batch_id = l.batch_id AND line_no = l.line_no;

    UPDATE batches SET
        completed = completed + (st = 'done')::integer,
        failed = failed + (st = 'failed')::integer
    WHERE id = l.batch_id;

    PERFORM gpugate_batch_progress(l.batch_id);
    RETURN st;
END
$$;


REVOKE ALL ON FUNCTION
    gpugate_batch_file_create(text, text, text, text),
    gpugate_batch_file_get(text, text, text, text),
    gpugate_batch_create(text, text, text, text),
    gpugate_batch_get(text, text, text, text),
    gpugate_batch_list(text, text, text, text),
    gpugate_batch_cancel(text, text, text, text),
    gpugate_job_create(text, text, text, text),
    gpugate_job_get(text, text, text, text),
    gpugate_batch_claim(text, text, text, text),
    gpugate_batch_line_done(text, text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    gpugate_batch_file_create(text, text, text, text),
    gpugate_batch_file_get(text, text, text, text),
    gpugate_batch_create(text, text, text, text),
    gpugate_batch_get(text, text, text, text),
    gpugate_batch_list(text, text, text, text),
    gpugate_batch_cancel(text, text, text, text),
    gpugate_job_create(text, text, text, text),
    gpugate_job_get(text, text, text, text),
    gpugate_batch_claim(text, text, text, text),
    gpugate_batch_line_done(text, text, text, text)
    TO gpugate_gateway;

INSERT INTO schema_migrations (version) VALUES ('008_batch')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
