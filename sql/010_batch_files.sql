-- gpugate schema, migration 010: the rest of the Batch API's files and
-- the admin API's batch routes (issue 19).
--
--   GET /v1/files          gpugate_batch_file_list: the key's files,
--                          OpenAI's list (purpose=, limit= 1-10000,
--                          order=asc|desc, after= a file id)
--   DELETE /v1/files/{id}  gpugate_batch_file_delete: any file of the key,
--                          input, output or error file.  A batch that
--                          uses it is not touched: its lines were copied
--                          into batch_lines when it was created, and its
--                          input_file_id / output_file_id go on naming
--                          the deleted file (404), as OpenAI does.
--   POST /v1/files         gpugate_batch_file_upload: 008's create with
--                          OpenAI's expires_after (seconds from
--                          created_at, 3600 to 2592000) as "expires_at"
--   expiry                 a file past expires_at is hidden at once (404,
--                          not listed, not usable by a new batch) and
--                          deleted by the next gpugate_batch_claim of any
--                          node's runner, 32 at a time
--   POST /v1/jobs          008's gpugate_job_create, priority 0-9 and a
--                          region of 1-31 characters: what the balancer
--                          takes as X-Gpugate-Priority / -Region
--   GET /admin/v1/batches[/{id}]  gpugate_admin_batches_list / _get: every
--                          tenant's batches and jobs for an admin
--                          credential (read role suffices)
--
-- Files get a creation sequence ("seq"): the list's order and its cursor,
-- as batches have.  Like 008 the gateway only calls SECURITY DEFINER
-- functions.  Idempotent: ADD COLUMN / CREATE INDEX IF NOT EXISTS,
-- CREATE OR REPLACE of 008's functions with the same signatures (their
-- grants hold).

BEGIN;

ALTER TABLE batch_files ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE batch_files ADD COLUMN IF NOT EXISTS seq bigserial;

CREATE INDEX IF NOT EXISTS batch_files_key_seq_idx
    ON batch_files (api_key_id, seq);
CREATE INDEX IF NOT EXISTS batch_files_expiry_idx
    ON batch_files (expires_at) WHERE expires_at IS NOT NULL;

-- the admin listing: a tenant's batches and jobs, newest first
CREATE INDEX IF NOT EXISTS batches_tenant_idx ON batches (tenant_id, seq);


CREATE OR REPLACE FUNCTION gpugate_batch_file_json(f batch_files)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', f.id, 'object', 'file', 'bytes', f.bytes,
        'created_at', gpugate_batch_epoch(f.created_at),
        'expires_at', gpugate_batch_epoch(f.expires_at),
        'filename', f.filename, 'purpose', f.purpose,
        'status', 'processed', 'status_details', NULL)
$$;


-- POST /v1/files: "arg" is "SECONDS NAME", SECONDS the expires_after the
-- gateway checked (3600-2592000) or 0 for none; "input" the JSONL, which
-- the gateway has checked line by line
CREATE OR REPLACE FUNCTION gpugate_batch_file_upload(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    f     batch_files;
    secs  integer;
BEGIN
    ctype := 'application/json';
    IF arg !~ '^[0-9]{1,7} ' THEN
        status := 400;
        body := gpugate_batch_error('expires_after[seconds] must be 3600 '
                    || 'to 2592000', 'invalid_request_error',
                    'invalid_value', 'expires_after');
        RETURN;
    END IF;
    secs := split_part(arg, ' ', 1)::integer;
    IF secs <> 0 AND secs NOT BETWEEN 3600 AND 2592000 THEN
        status := 400;
        body := gpugate_batch_error('expires_after[seconds] must be 3600 '
                    || 'to 2592000', 'invalid_request_error',
                    'invalid_value', 'expires_after');
        RETURN;
    END IF;
    INSERT INTO batch_files (id, api_key_id, tenant_id, purpose, filename,
                             bytes, lines, content, expires_at)
    VALUES (gpugate_batch_new_id('file-'), kid::bigint, tid::bigint,
            'batch', substr(arg, position(' ' in arg) + 1),
            octet_length(input),
            (SELECT count(*) FROM regexp_split_to_table(input, E'\n') s
             WHERE btrim(s, E' \t\r') <> ''),
            input,
            CASE WHEN secs > 0 THEN now() + make_interval(secs => secs)
            END)
    RETURNING * INTO f;
    status := 200;
    body := gpugate_batch_file_json(f)::text;
END
$$;


-- GET /v1/files?purpose=&limit=&order=&after=: OpenAI's list, newest
-- first unless order=asc; "after" is the last id of the previous page
CREATE OR REPLACE FUNCTION gpugate_batch_file_list(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q      jsonb;
    n      integer;
    asc_   boolean;
    cur    bigint;
    page   json;
    more   boolean;
BEGIN
    ctype := 'application/json';
    q := input::jsonb;
    IF coalesce(q ->> 'limit', '10000') !~ '^[1-9][0-9]{0,4}$'
       OR coalesce(q ->> 'limit', '10000')::integer > 10000
    THEN
        status := 400;
        body := gpugate_batch_error('limit must be 1-10000',
                    'invalid_request_error', 'invalid_value', 'limit');
        RETURN;
    END IF;
    IF coalesce(q ->> 'order', 'desc') NOT IN ('asc', 'desc') THEN
        status := 400;
        body := gpugate_batch_error('order must be "asc" or "desc"',
                    'invalid_request_error', 'invalid_value', 'order');
        RETURN;
    END IF;
    n := coalesce(q ->> 'limit', '10000')::integer;
    asc_ := coalesce(q ->> 'order', 'desc') = 'asc';
    cur := NULL;
    IF q ? 'after' THEN
        SELECT seq INTO cur FROM batch_files
        WHERE id = q ->> 'after' AND api_key_id = kid::bigint
          AND (expires_at IS NULL OR expires_at > now());
        IF NOT FOUND THEN
            status := 400;
            body := gpugate_batch_error('after names no file of this key',
                        'invalid_request_error', 'invalid_value', 'after');
            RETURN;
        END IF;
    END IF;

    SELECT coalesce(json_agg(gpugate_batch_file_json(p.fr) ORDER BY p.i)
                        FILTER (WHERE p.i <= n), '[]'::json),
           count(*) > n
    INTO page, more
    FROM (SELECT f AS fr,
                 row_number() OVER (ORDER BY CASE WHEN asc_ THEN f.seq
                                                  ELSE -f.seq END) AS i
          FROM batch_files f
          WHERE f.api_key_id = kid::bigint
            AND (f.expires_at IS NULL OR f.expires_at > now())
            AND (NOT q ? 'purpose' OR f.purpose = q ->> 'purpose')
            AND (cur IS NULL OR (asc_ AND f.seq > cur)
                 OR (NOT asc_ AND f.seq < cur))
          ORDER BY CASE WHEN asc_ THEN f.seq ELSE -f.seq END
          LIMIT n + 1) p;

    status := 200;
    body := json_build_object('object', 'list', 'data', page,
        'first_id', page -> 0 -> 'id',
        'last_id', page -> (json_array_length(page) - 1) -> 'id',
        'has_more', more)::text;
END
$$;


-- DELETE /v1/files/{id}
CREATE OR REPLACE FUNCTION gpugate_batch_file_delete(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    ctype := 'application/json';
    DELETE FROM batch_files
    WHERE id = arg AND api_key_id = kid::bigint
      AND (expires_at IS NULL OR expires_at > now());
    IF NOT FOUND THEN
        status := 404;
        body := gpugate_batch_error('No such File object: ' || arg,
                    'invalid_request_error', 'file_not_found', 'id');
        RETURN;
    END IF;
    status := 200;
    body := json_build_object('id', arg, 'object', 'file',
                              'deleted', true)::text;
END
$$;


-- 008's, an expired file being no file
CREATE OR REPLACE FUNCTION gpugate_batch_file_get(kid text, tid text,
    arg text, input text, OUT status integer, OUT body text,
    OUT ctype text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    f  batch_files;
BEGIN
    SELECT * INTO f FROM batch_files
    WHERE id = arg AND api_key_id = kid::bigint
      AND (expires_at IS NULL OR expires_at > now());
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
      AND api_key_id = kid::bigint AND purpose = 'batch'
      AND (expires_at IS NULL OR expires_at > now());
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


-- 008's runner claim, which also deletes expired files
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
    -- files past their expires_at: a few at a time, as the rest
    DELETE FROM batch_files f WHERE f.id IN (
        SELECT x.id FROM batch_files x
        WHERE x.expires_at < now()
        LIMIT 32 FOR UPDATE SKIP LOCKED);

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


-- 008's, with the balancer's bounds: it reads a job's priority and
-- region as X-Gpugate-Priority (one digit) and X-Gpugate-Region (1-31
-- characters), and refused the line when 008 let more through
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
                           OR (q ->> 'priority') !~ '^[0-9]$')
    THEN
        status := 400;
        body := gpugate_batch_error('priority must be a whole number '
                    || 'from 0 (lowest) to 9', 'invalid_request_error',
                    'invalid_value', 'priority');
        RETURN;
    END IF;
    IF q ? 'region' AND (jsonb_typeof(q -> 'region') <> 'string'
                         OR (q ->> 'region') !~ '^[A-Za-z0-9._-]{1,31}$')
    THEN
        status := 400;
        body := gpugate_batch_error('region must be a name of 1-31 '
                    || 'letters, digits, ".", "_" or "-"',
                    'invalid_request_error',
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


-- The admin API's view of a batch or job: OpenAI's object plus whose it
-- is; a job adds its one line's state and answer
CREATE OR REPLACE FUNCTION gpugate_admin_batch_json(b batches)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT (gpugate_batch_json(b)::jsonb || jsonb_build_object(
        'kind', b.kind, 'api_key_id', b.api_key_id,
        'tenant_id', b.tenant_id,
        'tenant', (SELECT t.name FROM tenants t WHERE t.id = b.tenant_id),
        'priority', b.priority, 'region', b.region,
        'job', CASE WHEN b.kind = 'job' THEN
                   (SELECT gpugate_batch_job_json(b, l)::jsonb
                    FROM batch_lines l WHERE l.batch_id = b.id) END))::json
$$;


-- GET batches?tenant=&limit=&after=: batches and jobs, newest first;
-- "tenant" a tenant's name or id, "after" the last id of the previous
-- page ("has_more", "last_id" as the other lists)
CREATE OR REPLACE FUNCTION gpugate_admin_batches_list(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q      jsonb;
    n      integer;
    tid    bigint;
    below  bigint;
    page   json;
    more   boolean;
BEGIN
    IF gpugate_admin_who(d, false) IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    inval := '';
    q := gpugate_admin_body(body, ARRAY['tenant', 'limit', 'after']);
    IF coalesce(q ->> 'limit', '100') !~ '^[1-9][0-9]{0,2}$'
       OR (q ->> 'limit')::integer > 500
    THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'limit must be 1-500';
    END IF;
    n := coalesce(q ->> 'limit', '100')::integer;

    IF q ? 'tenant' THEN
        SELECT id INTO tid FROM tenants WHERE name = q ->> 'tenant';
        IF tid IS NULL AND q ->> 'tenant' ~ '^[0-9]{1,18}$' THEN
            SELECT id INTO tid FROM tenants
            WHERE id = (q ->> 'tenant')::bigint;
        END IF;
        IF tid IS NULL THEN
            status := 404;
            body_out := gpugate_admin_error('no such tenant: '
                            || left(q ->> 'tenant', 64),
                            'not_found_error', 'not_found');
            RETURN;
        END IF;
    END IF;

    below := 9223372036854775807;
    IF q ? 'after' THEN
        -- a cursor of the listed tenant only: a tenant admin (011 forces
        -- "tenant") must not learn that another tenant's id exists
        SELECT seq INTO below FROM batches
        WHERE id = q ->> 'after' AND (tid IS NULL OR tenant_id = tid);
        IF NOT FOUND THEN
            RAISE invalid_parameter_value
                USING MESSAGE = 'after must be the id of a batch or job';
        END IF;
    END IF;

    SELECT coalesce(json_agg(gpugate_admin_batch_json(p.br) ORDER BY p.i)
                        FILTER (WHERE p.i <= n), '[]'::json),
           count(*) > n
    INTO page, more
    FROM (SELECT b AS br, row_number() OVER (ORDER BY b.seq DESC) AS i
          FROM batches b
          WHERE (tid IS NULL OR b.tenant_id = tid) AND b.seq < below
          ORDER BY b.seq DESC LIMIT n + 1) p;

    status := 200;
    body_out := json_build_object('object', 'list', 'data', page,
        'has_more', more,
        'last_id', page -> (json_array_length(page) - 1) -> 'id')::text;
EXCEPTION WHEN invalid_parameter_value THEN
    status := 400;
    body_out := gpugate_admin_error(SQLERRM, 'invalid_request_error',
                                    'invalid_value');
    inval := '';
END
$$;


-- GET batches/{id}: a batch or a job, of any tenant
CREATE OR REPLACE FUNCTION gpugate_admin_batches_get(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF gpugate_admin_who(d, false) IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    inval := '';
    SELECT 200, gpugate_admin_batch_json(b)::text INTO status, body_out
    FROM batches b WHERE b.id = arg;
    IF NOT FOUND THEN
        status := 404;
        body_out := gpugate_admin_error('no such batch or job: ' || arg,
                                        'not_found_error', 'not_found');
    END IF;
END
$$;


REVOKE ALL ON FUNCTION
    gpugate_batch_file_upload(text, text, text, text),
    gpugate_batch_file_list(text, text, text, text),
    gpugate_batch_file_delete(text, text, text, text),
    gpugate_admin_batches_list(bytea, text, text, text),
    gpugate_admin_batches_get(bytea, text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    gpugate_batch_file_upload(text, text, text, text),
    gpugate_batch_file_list(text, text, text, text),
    gpugate_batch_file_delete(text, text, text, text),
    gpugate_admin_batches_list(bytea, text, text, text),
    gpugate_admin_batches_get(bytea, text, text, text)
    TO gpugate_gateway;

INSERT INTO schema_migrations (version) VALUES ('010_batch_files')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
