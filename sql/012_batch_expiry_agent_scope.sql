-- gpugate schema, migration 012 (issue 19's left-outs): a batch's output
-- and error files expire; a tenant admin's agent routes are scoped.
--
--   POST /v1/batches       gpugate_batch_create: 010's, with OpenAI's
--                          "output_expires_after": {"anchor":
--                          "created_at", "seconds": N}, N an integer from
--                          3600 to 2592000 (null or absent: none).  Any
--                          other shape, anchor or value is a 400
--                          invalid_value naming output_expires_after.
--                          Stored in batches.output_expires_after.
--   finalize               gpugate_batch_finalize: 008's, the output and
--                          error files made with expires_at = their
--                          created_at + N (the anchor is the file's
--                          creation, as OpenAI's), so they expire as
--                          uploaded files do since 010: hidden at once
--                          (404, not listed), deleted by the next
--                          gpugate_batch_claim of any node's runner.
--
--   agents                 a tenant admin's agent routes (all 403 in
--                          011) scoped as its keys are: agents.tenant_id
--                          (agent-create --tenant, POST agents "tenant")
--                          says whose GPU host an agent is.  GET agents
--                          lists its tenant's only; GET, DELETE and
--                          drain / undrain of another tenant's agent, or
--                          of one of no tenant, are 404, as one that does
--                          not exist.  POST agents stays 403: the
--                          balancer gives an agent every tenant's
--                          requests (it does not read agents.tenant_id),
--                          so a tenant admin that registered one would
--                          receive other tenants' prompts.  011's
--                          wrappers are replaced, the routes' _unscoped
--                          functions stay.
--
-- Idempotent: ADD COLUMN IF NOT EXISTS, CREATE OR REPLACE of 008's,
-- 010's and 011's functions with the same signatures (their grants
-- hold).

BEGIN;

ALTER TABLE batches ADD COLUMN IF NOT EXISTS output_expires_after integer;


-- output_expires_after's seconds: 0 when absent or null, -1 when it is
-- not {"anchor": "created_at", "seconds": 3600..2592000}
CREATE OR REPLACE FUNCTION gpugate_batch_output_expiry(x jsonb)
RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n  numeric;
BEGIN
    IF x IS NULL OR jsonb_typeof(x) = 'null' THEN
        RETURN 0;
    END IF;
    IF jsonb_typeof(x) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(x) k
                  WHERE k NOT IN ('anchor', 'seconds'))
       OR jsonb_typeof(x -> 'anchor') IS DISTINCT FROM 'string'
       OR x ->> 'anchor' <> 'created_at'
       OR jsonb_typeof(x -> 'seconds') IS DISTINCT FROM 'number'
    THEN
        RETURN -1;
    END IF;
    n := (x ->> 'seconds')::numeric;
    IF n <> trunc(n) OR n NOT BETWEEN 3600 AND 2592000 THEN
        RETURN -1;
    END IF;
    RETURN n::integer;
END
$$;


-- 010's, taking output_expires_after
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
    secs integer;
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
    secs := gpugate_batch_output_expiry(q -> 'output_expires_after');
    IF secs < 0 THEN
        status := 400;
        body := gpugate_batch_error('output_expires_after must be '
                    || '{"anchor": "created_at", "seconds": N}, N an '
                    || 'integer from 3600 to 2592000 (1 hour to 30 days)',
                    'invalid_request_error', 'invalid_value',
                    'output_expires_after');
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
                         expires_at, output_expires_after)
    VALUES (gpugate_batch_new_id('batch_'), 'batch', kid::bigint,
            tid::bigint, q ->> 'endpoint', 'validating', f.id,
            q -> 'metadata', now(), now() + interval '24 hours',
            nullif(secs, 0))
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


-- 008's: the files get the batch's output_expires_after
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
    expires timestamptz;
BEGIN
    SELECT * INTO b FROM batches WHERE id = bid;

    -- output_expires_after's anchor is the files' created_at: now()
    expires := now() + make_interval(secs => b.output_expires_after);

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
                                 filename, bytes, lines, content,
                                 expires_at)
        VALUES (oid, b.api_key_id, b.tenant_id, 'batch_output',
                bid || '_output.jsonl', octet_length(out) + 1, nout,
                out || E'\n', expires);
    END IF;

    IF b.kind = 'batch' AND nerr > 0 THEN
        eid := gpugate_batch_new_id('file-');
        INSERT INTO batch_files (id, api_key_id, tenant_id, purpose,
                                 filename, bytes, lines, content,
                                 expires_at)
        VALUES (eid, b.api_key_id, b.tenant_id, 'batch_output',
                bid || '_error.jsonl', octet_length(err) + 1, nerr,
                err || E'\n', expires);
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


-- agents/{id} (GET, DELETE) and agents/{id}/drain: another tenant's
-- agent, or one of no tenant, is 404 for a tenant admin
CREATE OR REPLACE FUNCTION gpugate_admin_agent_scope(d bytea, arg text,
    OUT status integer, OUT body_out text, OUT inval text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t    tenants := gpugate_admin_scope(d);
    aid  text := split_part(arg, ' ', 1);
BEGIN
    IF t.id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM agents a
                       WHERE a.id = gpugate_admin_id(aid)
                         AND a.tenant_id = t.id)
    THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_not_found('agent', aid);
    END IF;
END
$$;


DO $do$
DECLARE
    r  record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('agents_get', 'STABLE'), ('agents_delete', 'VOLATILE'),
        ('agents_drain', 'VOLATILE'), ('agents_undrain', 'VOLATILE'))
        v(fn, vol)
    LOOP
        EXECUTE format($f$
CREATE OR REPLACE FUNCTION gpugate_admin_%1$s(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql %2$s SECURITY DEFINER SET search_path = public, pg_temp
AS $b$
BEGIN
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_agent_scope(d, arg);
    IF status IS NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_%1$s_unscoped(d, client, arg, body);
    END IF;
END
$b$$f$, r.fn, r.vol);
    END LOOP;
END
$do$;


-- GET agents: an operator's call is 004's; a tenant admin's is the same
-- page (limit, after, live) of its tenant's agents only
CREATE OR REPLACE FUNCTION gpugate_admin_agents_list(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    t      tenants := gpugate_admin_scope(d);
    q      jsonb;
    n      integer;
    after  bigint;
    page   json;
    more   boolean;
BEGIN
    IF t.id IS NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_agents_list_unscoped(d, client, arg, body);
        RETURN;
    END IF;
    inval := '';
    q := gpugate_admin_body(body, ARRAY['tenant', 'limit', 'after', 'live']);
    IF coalesce(q ->> 'limit', '100') !~ '^[1-9][0-9]{0,2}$'
       OR coalesce(q ->> 'after', '0') !~ '^[0-9]{1,18}$'
       OR (coalesce(q ->> 'limit', '100'))::integer > 500
    THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'limit must be 1-500, after an agent id';
    END IF;
    n := (coalesce(q ->> 'limit', '100'))::integer;
    after := (coalesce(q ->> 'after', '0'))::bigint;

    SELECT coalesce(json_agg(gpugate_admin_agent_json(p.ar,
                                 gpugate_admin_live(q))
                             ORDER BY (p.ar).id), '[]'::json)
    INTO page
    FROM (SELECT a AS ar FROM agents a
          WHERE a.id > after AND a.tenant_id = t.id
          ORDER BY a.id LIMIT n) p;
    more := EXISTS (SELECT 1 FROM agents a
                    WHERE a.id > after AND a.tenant_id = t.id
                    ORDER BY a.id OFFSET n LIMIT 1);

    status := 200;
    body_out := json_build_object('object', 'list', 'data', page,
        'has_more', more,
        'last_id', (page -> (json_array_length(page) - 1)) -> 'id')::text;
EXCEPTION WHEN invalid_parameter_value THEN
    status := 400;
    body_out := gpugate_admin_error(SQLERRM, 'invalid_request_error',
                                    'invalid_value');
    inval := '';
END
$$;


INSERT INTO schema_migrations (version) VALUES ('012_batch_expiry_agent_scope')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
