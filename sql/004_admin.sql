-- gpugate schema, migration 004: the admin API (issue 20).
--
-- Admin credentials are stored like API keys: the SHA-256 digest of the
-- credential and a display prefix, never the credential.  A role says
-- what an admin may do: "read" reads, "admin" reads and changes.
--
-- Every route of the admin API is one function below, called by the
-- gateway as one statement: the function checks the credential's digest
-- and role itself, makes the change and writes its audit row in the same
-- transaction, and answers the HTTP status, the JSON body and the cache
-- invalidation messages the gateway must publish.  The functions run as
-- their owner (SECURITY DEFINER) and the gateway's role may only call
-- them: nginx, which may otherwise only read keys and append usage, can
-- change nothing without a valid admin credential, and a revoked admin is
-- refused by the very next request (no cache to wait for).
--
-- Errors come back in OpenAI's error JSON; every JSON text is written by
-- PostgreSQL's json functions, so names, models and messages are escaped.
--
-- Idempotent like 001: tables and indexes IF NOT EXISTS, functions
-- CREATE OR REPLACE.

BEGIN;

CREATE TABLE IF NOT EXISTS admins (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE
                CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    digest      bytea NOT NULL UNIQUE CHECK (length(digest) = 32),
    prefix      text NOT NULL CHECK (length(prefix) BETWEEN 4 AND 16),
    role        text NOT NULL CHECK (role IN ('read', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Who changed what, when and from where.  No foreign key: the trail
-- outlives the admin.  "target" names the row ("key 12", "tenant 3"),
-- "detail" holds what the request asked for (never a secret).
CREATE TABLE IF NOT EXISTS admin_audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    admin_id    bigint,
    admin_name  text NOT NULL,
    client      text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    detail      jsonb
);

CREATE INDEX IF NOT EXISTS admin_audit_at_idx ON admin_audit (at);
CREATE INDEX IF NOT EXISTS admin_audit_admin_idx
    ON admin_audit (admin_id, at);

-- the key listing pages by id within a tenant
CREATE INDEX IF NOT EXISTS api_keys_tenant_id_idx
    ON api_keys (tenant_id, id);


-- OpenAI's error body
CREATE OR REPLACE FUNCTION gpugate_admin_error(msg text, type text,
    code text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT json_build_object('error', json_build_object(
        'message', msg, 'type', type, 'param', NULL, 'code', code))::text
$$;


-- The admin a credential digest names, if it may do this; NULL otherwise
-- (the caller answers 401 or 403 with gpugate_admin_refusal).
CREATE OR REPLACE FUNCTION gpugate_admin_who(d bytea, write boolean)
RETURNS admins LANGUAGE sql STABLE AS $$
    SELECT a.* FROM admins a
    WHERE a.digest = d AND a.revoked_at IS NULL
      AND (NOT write OR a.role = 'admin')
$$;


-- 401 for an unknown or revoked credential, 403 for a read-only one
CREATE OR REPLACE FUNCTION gpugate_admin_refusal(d bytea,
    OUT status integer, OUT body text, OUT inval text)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN a.id IS NULL THEN 401 ELSE 403 END,
           CASE WHEN a.id IS NULL THEN gpugate_admin_error(
                    'invalid admin credential', 'invalid_request_error',
                    'invalid_api_key')
                ELSE gpugate_admin_error(
                    'this admin credential is read-only',
                    'permission_error', 'insufficient_permissions') END,
           ''
    FROM (SELECT 1) one
    LEFT JOIN admins a ON a.digest = d AND a.revoked_at IS NULL
$$;


-- A key as the API shows it: never the key, nor its digest
CREATE OR REPLACE FUNCTION gpugate_admin_key_json(k api_keys, tname text)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', k.id, 'object', 'api_key', 'prefix', k.prefix,
        'tenant', tname, 'name', k.name, 'models', k.allowed_models,
        'rpm', k.rpm_limit, 'tpm', k.tpm_limit,
        'parallel', k.parallel_limit, 'tokens_per_day', k.tpd_limit,
        'budget_micros', k.budget_micros, 'budget_period', k.budget_period,
        'expires_at', k.expires_at, 'revoked_at', k.revoked_at,
        'created_at', k.created_at)
$$;


-- A JSON value as a positive limit, NULL for JSON null; raises
-- invalid_parameter_value otherwise
CREATE OR REPLACE FUNCTION gpugate_admin_limit(v jsonb, field text)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'number' OR (v #>> '{}') !~ '^[1-9][0-9]{0,14}$'
    THEN
        RAISE invalid_parameter_value
            USING MESSAGE = field || ' must be a whole number above 0 or '
                            || 'null';
    END IF;
    RETURN (v #>> '{}')::bigint;
END
$$;


-- A JSON array of model names as text[], NULL for JSON null (every
-- model).  The gateway reads the list comma-joined: no commas.
CREATE OR REPLACE FUNCTION gpugate_admin_models(v jsonb)
RETURNS text[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    m  jsonb;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'array' OR jsonb_array_length(v) = 0 THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'models must be a non-empty array of model '
                            || 'names or null';
    END IF;
    FOR m IN SELECT jsonb_array_elements(v) LOOP
        IF jsonb_typeof(m) <> 'string'
           OR (m #>> '{}') !~ '^[!-~]+$'
           OR length(m #>> '{}') > 256
           OR (m #>> '{}') ~ '[",\\]'
        THEN
            RAISE invalid_parameter_value
                USING MESSAGE = 'models: each a model name of 1-256 '
                                || 'printable ASCII bytes, no space, comma, '
                                || 'quote or backslash';
        END IF;
    END LOOP;
    RETURN ARRAY(SELECT jsonb_array_elements_text(v));
END
$$;


-- The request body as a JSON object; raises invalid_parameter_value
CREATE OR REPLACE FUNCTION gpugate_admin_body(body text, allowed text[])
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    b    jsonb;
    bad  text;
BEGIN
    BEGIN
        b := coalesce(nullif(body, ''), '{}')::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'the request body is not valid JSON';
    END;
    IF jsonb_typeof(b) <> 'object' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'the request body must be a JSON object';
    END IF;
    SELECT k INTO bad FROM jsonb_object_keys(b) k
    WHERE k <> ALL (allowed) LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'unknown field: ' || left(bad, 64);
    END IF;
    RETURN b;
END
$$;


-- GET keys: {"tenant","limit","after"} from the query string; a page of
-- keys by id, "has_more" and "last_id" for the next page (?after=)
CREATE OR REPLACE FUNCTION gpugate_admin_keys_list(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q      jsonb;
    n      integer;
    after  bigint;
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
       OR coalesce(q ->> 'after', '0') !~ '^[0-9]{1,18}$'
    THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'limit must be 1-500, after a key id';
    END IF;
    n := (coalesce(q ->> 'limit', '100'))::integer;
    IF n > 500 THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'limit must be 1-500, after a key id';
    END IF;
    after := (coalesce(q ->> 'after', '0'))::bigint;

    SELECT coalesce(json_agg(gpugate_admin_key_json(p.kr, p.tname)
                             ORDER BY (p.kr).id), '[]'::json),
           count(*) > n
    INTO page, more
    FROM (SELECT k AS kr, t.name AS tname
          FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
          WHERE k.id > after
            AND (q ->> 'tenant' IS NULL OR t.name = q ->> 'tenant')
          ORDER BY k.id LIMIT n + 1) p;

    IF more THEN
        page := (SELECT json_agg(e) FROM (SELECT e FROM json_array_elements(
                     page) WITH ORDINALITY AS x(e, i)
                 WHERE i <= n ORDER BY i) s);
    END IF;

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


-- GET keys/{id}
CREATE OR REPLACE FUNCTION gpugate_admin_keys_get(d bytea, client text,
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
    SELECT 200, gpugate_admin_key_json(k, t.name)::text
    INTO status, body_out
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
    WHERE k.id = arg::bigint;
    IF NOT FOUND THEN
        status := 404;
        body_out := gpugate_admin_error('no such key: ' || arg,
                                        'not_found_error', 'not_found');
    END IF;
END
$$;


-- POST keys: arg is "DIGEST_HEX PREFIX" of the key the gateway made (it
-- shows the key once; only its digest reaches PostgreSQL).  The tenant
-- is created when missing, as gpugate-keys create does.
CREATE OR REPLACE FUNCTION gpugate_admin_keys_create(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    who  admins;
    b    jsonb;
    tid  bigint;
    k    api_keys;
BEGIN
    who := gpugate_admin_who(d, true);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    b := gpugate_admin_body(body, ARRAY['tenant', 'name', 'models', 'rpm',
        'tpm', 'parallel', 'tokens_per_day', 'budget_micros',
        'budget_period', 'expires_at']);
    IF jsonb_typeof(b -> 'tenant') IS DISTINCT FROM 'string' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'tenant (a tenant name) is required';
    END IF;

    INSERT INTO tenants (name) VALUES (b ->> 'tenant')
        ON CONFLICT DO NOTHING;
    SELECT id INTO tid FROM tenants WHERE name = b ->> 'tenant';

    INSERT INTO api_keys (tenant_id, digest, prefix, name, allowed_models,
                          rpm_limit, tpm_limit, parallel_limit, tpd_limit,
                          budget_micros, budget_period, expires_at)
    VALUES (tid, decode(split_part(arg, ' ', 1), 'hex'),
            split_part(arg, ' ', 2), coalesce(b ->> 'name', ''),
            gpugate_admin_models(b -> 'models'),
            gpugate_admin_limit(b -> 'rpm', 'rpm'),
            gpugate_admin_limit(b -> 'tpm', 'tpm'),
            gpugate_admin_limit(b -> 'parallel', 'parallel'),
            gpugate_admin_limit(b -> 'tokens_per_day', 'tokens_per_day'),
            gpugate_admin_limit(b -> 'budget_micros', 'budget_micros'),
            b ->> 'budget_period', (b ->> 'expires_at')::timestamptz)
    RETURNING * INTO k;

    INSERT INTO admin_audit (admin_id, admin_name, client, action, target,
                             detail)
    VALUES (who.id, who.name, client, 'key.create', 'key ' || k.id, b);

    status := 201;
    body_out := gpugate_admin_key_json(k, b ->> 'tenant')::text;
    -- a cached "unknown key" for this digest must go
    inval := 'key ' || split_part(arg, ' ', 1);
EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
    status := 400;
    body_out := gpugate_admin_error(SQLERRM, 'invalid_request_error',
                                    'invalid_value');
    inval := '';
END
$$;


-- PATCH keys/{id}: the fields given change, null removes a limit
CREATE OR REPLACE FUNCTION gpugate_admin_keys_patch(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    who  admins;
    b    jsonb;
    k    api_keys;
BEGIN
    who := gpugate_admin_who(d, true);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    b := gpugate_admin_body(body, ARRAY['name', 'models', 'rpm', 'tpm',
        'parallel', 'tokens_per_day', 'budget_micros', 'budget_period',
        'expires_at', 'disabled']);
    IF b ? 'disabled' AND jsonb_typeof(b -> 'disabled') <> 'boolean' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'disabled must be true or false';
    END IF;

    UPDATE api_keys SET
        name = CASE WHEN b ? 'name' THEN coalesce(b ->> 'name', '')
                    ELSE name END,
        allowed_models = CASE WHEN b ? 'models'
            THEN gpugate_admin_models(b -> 'models') ELSE allowed_models END,
        rpm_limit = CASE WHEN b ? 'rpm'
            THEN gpugate_admin_limit(b -> 'rpm', 'rpm') ELSE rpm_limit END,
        tpm_limit = CASE WHEN b ? 'tpm'
            THEN gpugate_admin_limit(b -> 'tpm', 'tpm') ELSE tpm_limit END,
        parallel_limit = CASE WHEN b ? 'parallel'
            THEN gpugate_admin_limit(b -> 'parallel', 'parallel')
            ELSE parallel_limit END,
        tpd_limit = CASE WHEN b ? 'tokens_per_day'
            THEN gpugate_admin_limit(b -> 'tokens_per_day',
                                     'tokens_per_day')
            ELSE tpd_limit END,
        budget_micros = CASE WHEN b ? 'budget_micros'
            THEN gpugate_admin_limit(b -> 'budget_micros', 'budget_micros')
            ELSE budget_micros END,
        budget_period = CASE WHEN b ? 'budget_period'
            THEN b ->> 'budget_period' ELSE budget_period END,
        expires_at = CASE WHEN b ? 'expires_at'
            THEN (b ->> 'expires_at')::timestamptz ELSE expires_at END,
        -- a disabled key is a revoked one; enabling it again clears that
        revoked_at = CASE WHEN NOT b ? 'disabled' THEN revoked_at
            WHEN (b ->> 'disabled')::boolean THEN coalesce(revoked_at, now())
            ELSE NULL END
    WHERE id = arg::bigint
    RETURNING * INTO k;

    IF NOT FOUND THEN
        status := 404;
        body_out := gpugate_admin_error('no such key: ' || arg,
                                        'not_found_error', 'not_found');
        inval := '';
        RETURN;
    END IF;

    INSERT INTO admin_audit (admin_id, admin_name, client, action, target,
                             detail)
    VALUES (who.id, who.name, client, 'key.update', 'key ' || k.id, b);

    status := 200;
    body_out := gpugate_admin_key_json(k,
        (SELECT name FROM tenants WHERE id = k.tenant_id))::text;
    inval := 'key ' || encode(k.digest, 'hex');
EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
    status := 400;
    body_out := gpugate_admin_error(SQLERRM, 'invalid_request_error',
                                    'invalid_value');
    inval := '';
END
$$;


-- DELETE keys/{id}: revokes (the row stays for the ledger and the audit)
CREATE OR REPLACE FUNCTION gpugate_admin_keys_delete(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    who  admins;
    k    api_keys;
BEGIN
    who := gpugate_admin_who(d, true);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;

    UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
    WHERE id = arg::bigint RETURNING * INTO k;

    IF NOT FOUND THEN
        status := 404;
        body_out := gpugate_admin_error('no such key: ' || arg,
                                        'not_found_error', 'not_found');
        inval := '';
        RETURN;
    END IF;

    INSERT INTO admin_audit (admin_id, admin_name, client, action, target)
    VALUES (who.id, who.name, client, 'key.revoke', 'key ' || k.id);

    status := 200;
    body_out := gpugate_admin_key_json(k,
        (SELECT name FROM tenants WHERE id = k.tenant_id))::text;
    inval := 'key ' || encode(k.digest, 'hex');
END
$$;


-- POST keys/{id}/rotate: {"grace_seconds": 0-2592000, 3600 when not
-- given}.  arg is "ID DIGEST_HEX PREFIX" of the new key the gateway made.
-- The new key copies the old one's tenant, name, models, limits and
-- expiry; the old key expires after the grace (at once with 0, which
-- revokes it).  Limits count per key: during the grace each key has the
-- old one's limits.
CREATE OR REPLACE FUNCTION gpugate_admin_keys_rotate(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    who    admins;
    b      jsonb;
    grace  integer;
    old    api_keys;
    k      api_keys;
BEGIN
    who := gpugate_admin_who(d, true);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    b := gpugate_admin_body(body, ARRAY['grace_seconds']);
    IF b ? 'grace_seconds'
       AND ((b ->> 'grace_seconds') !~ '^[0-9]{1,7}$'
            OR jsonb_typeof(b -> 'grace_seconds') <> 'number'
            OR (b ->> 'grace_seconds')::integer > 2592000)
    THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'grace_seconds must be 0-2592000 (30 days)';
    END IF;
    grace := coalesce((b ->> 'grace_seconds')::integer, 3600);

    SELECT * INTO old FROM api_keys
    WHERE id = split_part(arg, ' ', 1)::bigint FOR UPDATE;

    IF NOT FOUND OR old.revoked_at IS NOT NULL
       OR old.expires_at <= now()
    THEN
        status := CASE WHEN old.id IS NULL THEN 404 ELSE 400 END;
        body_out := CASE WHEN old.id IS NULL
            THEN gpugate_admin_error('no such key: '
                     || split_part(arg, ' ', 1), 'not_found_error',
                     'not_found')
            ELSE gpugate_admin_error('key ' || old.id || ' is revoked or '
                     || 'expired: create a new one', 'invalid_request_error',
                     'invalid_value') END;
        inval := '';
        RETURN;
    END IF;

    INSERT INTO api_keys (tenant_id, digest, prefix, name, allowed_models,
                          rpm_limit, tpm_limit, parallel_limit, tpd_limit,
                          budget_micros, budget_period, expires_at)
    VALUES (old.tenant_id, decode(split_part(arg, ' ', 2), 'hex'),
            split_part(arg, ' ', 3), old.name, old.allowed_models,
            old.rpm_limit, old.tpm_limit, old.parallel_limit, old.tpd_limit,
            old.budget_micros, old.budget_period, old.expires_at)
    RETURNING * INTO k;

    UPDATE api_keys SET
        expires_at = least(coalesce(expires_at, 'infinity'),
                           now() + make_interval(secs => grace)),
        revoked_at = CASE WHEN grace = 0 THEN now() ELSE NULL END
    WHERE id = old.id;

    INSERT INTO admin_audit (admin_id, admin_name, client, action, target,
                             detail)
    VALUES (who.id, who.name, client, 'key.rotate', 'key ' || old.id,
            jsonb_build_object('new_id', k.id, 'grace_seconds', grace));

    status := 201;
    body_out := (gpugate_admin_key_json(k,
        (SELECT name FROM tenants WHERE id = k.tenant_id))::jsonb
        || jsonb_build_object('replaces', old.id,
               'replaced_expires_at',
               (SELECT expires_at FROM api_keys WHERE id = old.id)))::text;
    inval := 'key ' || encode(old.digest, 'hex') || E'\n'
             || 'key ' || split_part(arg, ' ', 2);
EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
    status := 400;
    body_out := gpugate_admin_error(SQLERRM, 'invalid_request_error',
                                    'invalid_value');
    inval := '';
END
$$;


-- A tenant as the API shows it
CREATE OR REPLACE FUNCTION gpugate_admin_tenant_json(t tenants)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', t.id, 'object', 'tenant', 'name', t.name,
        'disabled', t.disabled, 'rpm', t.rpm_limit, 'tpm', t.tpm_limit,
        'parallel', t.parallel_limit, 'tokens_per_day', t.tpd_limit,
        'budget_micros', t.budget_micros, 'budget_period', t.budget_period,
        'keys', (SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id),
        'created_at', t.created_at)
$$;


-- What a tenant's change makes stale: the Redis entry of each of its keys
-- ("del <digest>", no message), then "tenant <id>" for every gateway
-- worker, as gpugate-keys limit --tenant does
CREATE OR REPLACE FUNCTION gpugate_admin_tenant_inval(tid bigint)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_agg('del ' || encode(k.digest, 'hex'), E'\n'
                               ORDER BY k.id) || E'\n', '')
           || 'tenant ' || tid
    FROM api_keys k WHERE k.tenant_id = tid
$$;


-- GET tenants: {"limit","after"}; a page of tenants by id
CREATE OR REPLACE FUNCTION gpugate_admin_tenants_list(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q      jsonb;
    n      integer;
    after  bigint;
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
       OR coalesce(q ->> 'after', '0') !~ '^[0-9]{1,18}$'
       OR (coalesce(q ->> 'limit', '100'))::integer > 500
    THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'limit must be 1-500, after a tenant id';
    END IF;
    n := (coalesce(q ->> 'limit', '100'))::integer;
    after := (coalesce(q ->> 'after', '0'))::bigint;

    SELECT coalesce(json_agg(gpugate_admin_tenant_json(p.tr)
                             ORDER BY (p.tr).id), '[]'::json)
    INTO page
    FROM (SELECT t AS tr FROM tenants t WHERE t.id > after
          ORDER BY t.id LIMIT n) p;
    more := EXISTS (SELECT 1 FROM tenants t WHERE t.id > after
                    ORDER BY t.id OFFSET n LIMIT 1);

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


-- GET tenants/{id}
CREATE OR REPLACE FUNCTION gpugate_admin_tenants_get(d bytea, client text,
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
    SELECT 200, gpugate_admin_tenant_json(t)::text INTO status, body_out
    FROM tenants t WHERE t.id = arg::bigint;
    IF NOT FOUND THEN
        status := 404;
        body_out := gpugate_admin_error('no such tenant: ' || arg,
                                        'not_found_error', 'not_found');
    END IF;
END
$$;


-- POST tenants: {"name", limits...}; 409 when the name is taken
CREATE OR REPLACE FUNCTION gpugate_admin_tenants_create(d bytea,
    client text, arg text, body text, OUT status integer,
    OUT body_out text, OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    who  admins;
    b    jsonb;
    t    tenants;
BEGIN
    who := gpugate_admin_who(d, true);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    inval := '';
    b := gpugate_admin_body(body, ARRAY['name', 'rpm', 'tpm', 'parallel',
        'tokens_per_day', 'budget_micros', 'budget_period']);
    IF jsonb_typeof(b -> 'name') IS DISTINCT FROM 'string' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'name (a tenant name) is required';
    END IF;

    INSERT INTO tenants (name, rpm_limit, tpm_limit, parallel_limit,
                         tpd_limit, budget_micros, budget_period)
    VALUES (b ->> 'name', gpugate_admin_limit(b -> 'rpm', 'rpm'),
            gpugate_admin_limit(b -> 'tpm', 'tpm'),
            gpugate_admin_limit(b -> 'parallel', 'parallel'),
            gpugate_admin_limit(b -> 'tokens_per_day', 'tokens_per_day'),
            gpugate_admin_limit(b -> 'budget_micros', 'budget_micros'),
            b ->> 'budget_period')
    ON CONFLICT (name) DO NOTHING
    RETURNING * INTO t;

    IF t.id IS NULL THEN
        status := 409;
        body_out := gpugate_admin_error('tenant ' || (b ->> 'name')
                                        || ' exists', 'invalid_request_error',
                                        'conflict');
        RETURN;
    END IF;

    INSERT INTO admin_audit (admin_id, admin_name, client, action, target,
                             detail)
    VALUES (who.id, who.name, client, 'tenant.create', 'tenant ' || t.id,
            b);

    status := 201;
    body_out := gpugate_admin_tenant_json(t)::text;
EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
    status := 400;
    body_out := gpugate_admin_error(SQLERRM, 'invalid_request_error',
                                    'invalid_value');
    inval := '';
END
$$;


-- PATCH tenants/{id}: limits (null removes one) and disabled
CREATE OR REPLACE FUNCTION gpugate_admin_tenants_patch(d bytea,
    client text, arg text, body text, OUT status integer,
    OUT body_out text, OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    who  admins;
    b    jsonb;
    t    tenants;
BEGIN
    who := gpugate_admin_who(d, true);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    b := gpugate_admin_body(body, ARRAY['rpm', 'tpm', 'parallel',
        'tokens_per_day', 'budget_micros', 'budget_period', 'disabled']);
    IF b ? 'disabled' AND jsonb_typeof(b -> 'disabled') <> 'boolean' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'disabled must be true or false';
    END IF;

    UPDATE tenants SET
        rpm_limit = CASE WHEN b ? 'rpm'
            THEN gpugate_admin_limit(b -> 'rpm', 'rpm') ELSE rpm_limit END,
        tpm_limit = CASE WHEN b ? 'tpm'
            THEN gpugate_admin_limit(b -> 'tpm', 'tpm') ELSE tpm_limit END,
        parallel_limit = CASE WHEN b ? 'parallel'
            THEN gpugate_admin_limit(b -> 'parallel', 'parallel')
            ELSE parallel_limit END,
        tpd_limit = CASE WHEN b ? 'tokens_per_day'
            THEN gpugate_admin_limit(b -> 'tokens_per_day',
                                     'tokens_per_day')
            ELSE tpd_limit END,
        budget_micros = CASE WHEN b ? 'budget_micros'
            THEN gpugate_admin_limit(b -> 'budget_micros', 'budget_micros')
            ELSE budget_micros END,
        budget_period = CASE WHEN b ? 'budget_period'
            THEN b ->> 'budget_period' ELSE budget_period END,
        disabled = CASE WHEN b ? 'disabled'
            THEN (b ->> 'disabled')::boolean ELSE disabled END
    WHERE id = arg::bigint
    RETURNING * INTO t;

    IF NOT FOUND THEN
        status := 404;
        body_out := gpugate_admin_error('no such tenant: ' || arg,
                                        'not_found_error', 'not_found');
        inval := '';
        RETURN;
    END IF;

    INSERT INTO admin_audit (admin_id, admin_name, client, action, target,
                             detail)
    VALUES (who.id, who.name, client, 'tenant.update', 'tenant ' || t.id,
            b);

    status := 200;
    body_out := gpugate_admin_tenant_json(t)::text;
    inval := gpugate_admin_tenant_inval(t.id);
EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
    status := 400;
    body_out := gpugate_admin_error(SQLERRM, 'invalid_request_error',
                                    'invalid_value');
    inval := '';
END
$$;


-- An agent as the API shows it, with its live connections on the node
-- that answers ("live": the "agents" of that node's tunnel status whose
-- name is this agent's; null when the node has no tunnel).  Never the
-- verifier.
CREATE OR REPLACE FUNCTION gpugate_admin_agent_json(a agents, live jsonb)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', a.id, 'object', 'agent', 'name', a.name,
        'tenant', (SELECT t.name FROM tenants t WHERE t.id = a.tenant_id),
        'models', a.allowed_models, 'region', a.region,
        'created_at', a.created_at, 'revoked_at', a.revoked_at,
        'connected', CASE WHEN live IS NULL THEN NULL
                          ELSE EXISTS (SELECT 1 FROM
                               jsonb_array_elements(live -> 'agents') e
                               WHERE e ->> 'name' = a.name) END,
        'live', CASE WHEN live IS NULL THEN NULL
                     ELSE (SELECT coalesce(jsonb_agg(e), '[]'::jsonb)
                           FROM jsonb_array_elements(live -> 'agents') e
                           WHERE e ->> 'name' = a.name) END)
$$;


-- The live status the gateway adds to a GET's input, or NULL
CREATE OR REPLACE FUNCTION gpugate_admin_live(q jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(q -> 'live') = 'object'
                 AND jsonb_typeof(q -> 'live' -> 'agents') = 'array'
                THEN q -> 'live' END
$$;


-- GET agents: {"limit","after","live"}; a page of agents by id
CREATE OR REPLACE FUNCTION gpugate_admin_agents_list(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q      jsonb;
    n      integer;
    after  bigint;
    page   json;
    more   boolean;
BEGIN
    IF gpugate_admin_who(d, false) IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
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
    FROM (SELECT a AS ar FROM agents a WHERE a.id > after
          ORDER BY a.id LIMIT n) p;
    more := EXISTS (SELECT 1 FROM agents a WHERE a.id > after
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


-- GET agents/{id}
CREATE OR REPLACE FUNCTION gpugate_admin_agents_get(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q  jsonb;
BEGIN
    IF gpugate_admin_who(d, false) IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    inval := '';
    q := coalesce(nullif(body, ''), '{}')::jsonb;
    SELECT 200, gpugate_admin_agent_json(a, gpugate_admin_live(q))::text
    INTO status, body_out
    FROM agents a WHERE a.id = arg::bigint;
    IF NOT FOUND THEN
        status := 404;
        body_out := gpugate_admin_error('no such agent: ' || arg,
                                        'not_found_error', 'not_found');
    END IF;
END
$$;


-- POST agents: {"name", "tenant", "models", "region"}; arg is the SCRAM
-- verifier of the token the gateway made and shows once: "SALT_B64
-- ITERATIONS STOREDKEY_HEX SERVERKEY_HEX".  409 when the name is taken.
CREATE OR REPLACE FUNCTION gpugate_admin_agents_create(d bytea,
    client text, arg text, body text, OUT status integer,
    OUT body_out text, OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    who  admins;
    b    jsonb;
    tid  bigint;
    a    agents;
BEGIN
    who := gpugate_admin_who(d, true);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    inval := '';
    b := gpugate_admin_body(body, ARRAY['name', 'tenant', 'models',
                                        'region']);
    IF jsonb_typeof(b -> 'name') IS DISTINCT FROM 'string' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'name (an agent name) is required';
    END IF;
    IF b ? 'region' AND (jsonb_typeof(b -> 'region') <> 'string'
                         OR (b ->> 'region') !~ '^[A-Za-z0-9._-]{0,64}$')
    THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'region: letters, digits, ".", "_" or "-"';
    END IF;
    IF b ? 'tenant' AND jsonb_typeof(b -> 'tenant') <> 'null' THEN
        SELECT id INTO tid FROM tenants WHERE name = b ->> 'tenant';
        IF tid IS NULL THEN
            RAISE invalid_parameter_value
                USING MESSAGE = 'no such tenant: ' || left(b ->> 'tenant',
                                                           64);
        END IF;
    END IF;

    INSERT INTO agents (name, tenant_id, scram_salt, scram_iterations,
                        scram_stored_key, scram_server_key, allowed_models,
                        region)
    VALUES (b ->> 'name', tid, decode(split_part(arg, ' ', 1), 'base64'),
            split_part(arg, ' ', 2)::integer,
            decode(split_part(arg, ' ', 3), 'hex'),
            decode(split_part(arg, ' ', 4), 'hex'),
            gpugate_admin_models(b -> 'models'),
            coalesce(b ->> 'region', ''))
    ON CONFLICT (name) DO NOTHING
    RETURNING * INTO a;

    IF a.id IS NULL THEN
        status := 409;
        body_out := gpugate_admin_error('agent ' || (b ->> 'name')
                                        || ' exists', 'invalid_request_error',
                                        'conflict');
        RETURN;
    END IF;

    INSERT INTO admin_audit (admin_id, admin_name, client, action, target,
                             detail)
    VALUES (who.id, who.name, client, 'agent.create', 'agent ' || a.id, b);

    status := 201;
    body_out := gpugate_admin_agent_json(a, NULL)::text;
EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
    status := 400;
    body_out := gpugate_admin_error(SQLERRM, 'invalid_request_error',
                                    'invalid_value');
    inval := '';
END
$$;


-- DELETE agents/{id}: revokes; "agent <name>" makes every gateway worker
-- close its tunnels, whose next handshake PostgreSQL refuses
CREATE OR REPLACE FUNCTION gpugate_admin_agents_delete(d bytea,
    client text, arg text, body text, OUT status integer,
    OUT body_out text, OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    who  admins;
    a    agents;
BEGIN
    who := gpugate_admin_who(d, true);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;

    UPDATE agents SET revoked_at = coalesce(revoked_at, now())
    WHERE id = arg::bigint RETURNING * INTO a;

    IF NOT FOUND THEN
        status := 404;
        body_out := gpugate_admin_error('no such agent: ' || arg,
                                        'not_found_error', 'not_found');
        inval := '';
        RETURN;
    END IF;

    INSERT INTO admin_audit (admin_id, admin_name, client, action, target)
    VALUES (who.id, who.name, client, 'agent.revoke', 'agent ' || a.id);

    status := 200;
    body_out := gpugate_admin_agent_json(a, NULL)::text;
    inval := 'agent ' || a.name;
END
$$;


-- GET usage: totals from the ledger over a range ("from", "to": at most
-- 93 days; the created_at indexes bound the scan), by "group" (tenant,
-- key, model or agent), optionally per "bucket" (minute, hour, day: a
-- time series) and for one "tenant"; paged by "limit" and "offset" over
-- the sorted groups.  Requests refused by the gateway count as errors.
CREATE OR REPLACE FUNCTION gpugate_admin_usage(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    q       jsonb;
    grp     text;
    col     text;
    bkt     text;
    t_from  timestamptz;
    t_to    timestamptz;
    tid     bigint;
    n       integer;
    off     integer;
    page    json;
    total   bigint;
BEGIN
    IF gpugate_admin_who(d, false) IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    inval := '';
    q := gpugate_admin_body(body, ARRAY['from', 'to', 'group', 'bucket',
                                        'tenant', 'limit', 'offset']);
    grp := coalesce(q ->> 'group', 'tenant');
    col := CASE grp WHEN 'tenant' THEN 'u.tenant_id'
                    WHEN 'key' THEN 'u.api_key_id'
                    WHEN 'model' THEN 'u.model'
                    WHEN 'agent' THEN 'u.agent_name' END;
    IF col IS NULL THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'group must be tenant, key, model or agent';
    END IF;
    bkt := q ->> 'bucket';
    IF bkt IS NOT NULL AND bkt NOT IN ('minute', 'hour', 'day') THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'bucket must be minute, hour or day';
    END IF;
    IF q ->> 'from' IS NULL THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'from (a timestamp) is required';
    END IF;
    t_from := (q ->> 'from')::timestamptz;
    t_to := coalesce((q ->> 'to')::timestamptz, now());
    IF t_to <= t_from OR t_to - t_from > interval '93 days' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'the range from..to must be 93 days at most, '
                            || 'from before to';
    END IF;
    IF coalesce(q ->> 'limit', '100') !~ '^[1-9][0-9]{0,3}$'
       OR (coalesce(q ->> 'limit', '100'))::integer > 1000
       OR coalesce(q ->> 'offset', '0') !~ '^[0-9]{1,6}$'
    THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'limit must be 1-1000, offset 0-999999';
    END IF;
    n := (coalesce(q ->> 'limit', '100'))::integer;
    off := (coalesce(q ->> 'offset', '0'))::integer;
    IF q ? 'tenant' THEN
        SELECT id INTO tid FROM tenants WHERE name = q ->> 'tenant';
        tid := coalesce(tid, -1);
    END IF;

    EXECUTE format($f$
        SELECT coalesce(json_agg(json_build_object(
                   'bucket', s.b, %L, s.v, 'requests', s.n,
                   'prompt_tokens', s.pt, 'completion_tokens', s.ct,
                   'cost_micros', s.c, 'errors', s.e)
                   ORDER BY s.b, s.v), '[]'::json),
               count(*)
        FROM (SELECT %s AS b, %s AS v, count(*) AS n,
                     sum(u.prompt_tokens) AS pt,
                     sum(u.completion_tokens) AS ct,
                     sum(u.cost_micros) AS c,
                     count(*) FILTER (WHERE u.status >= 400) AS e
              FROM usage_events u
              WHERE u.created_at >= $1 AND u.created_at < $2
                AND ($3::bigint IS NULL OR u.tenant_id = $3)
              GROUP BY 1, 2 ORDER BY 1, 2 OFFSET $4 LIMIT $5) s
        $f$, grp,
        CASE WHEN bkt IS NULL THEN 'NULL::timestamptz'
             ELSE format('date_trunc(%L, u.created_at)', bkt) END,
        col)
    INTO page, total
    USING t_from, t_to, tid, off, n + 1;

    IF total > n THEN
        page := (SELECT json_agg(e) FROM (SELECT e FROM json_array_elements(
                     page) WITH ORDINALITY AS x(e, i)
                 WHERE i <= n ORDER BY i) s);
    END IF;

    status := 200;
    body_out := json_build_object('object', 'usage', 'group', grp,
        'bucket', bkt, 'from', t_from, 'to', t_to, 'data', page,
        'has_more', total > n,
        'next_offset', CASE WHEN total > n THEN off + n END)::text;
EXCEPTION WHEN data_exception THEN
    status := 400;
    body_out := gpugate_admin_error(SQLERRM, 'invalid_request_error',
                                    'invalid_value');
    inval := '';
END
$$;


-- Only the route functions are the gateway's; the helpers run inside them
REVOKE ALL ON FUNCTION
    gpugate_admin_keys_list(bytea, text, text, text),
    gpugate_admin_keys_get(bytea, text, text, text),
    gpugate_admin_keys_create(bytea, text, text, text),
    gpugate_admin_keys_patch(bytea, text, text, text),
    gpugate_admin_keys_delete(bytea, text, text, text),
    gpugate_admin_tenants_list(bytea, text, text, text),
    gpugate_admin_tenants_get(bytea, text, text, text),
    gpugate_admin_tenants_create(bytea, text, text, text),
    gpugate_admin_tenants_patch(bytea, text, text, text),
    gpugate_admin_agents_list(bytea, text, text, text),
    gpugate_admin_agents_get(bytea, text, text, text),
    gpugate_admin_agents_create(bytea, text, text, text),
    gpugate_admin_agents_delete(bytea, text, text, text),
    gpugate_admin_usage(bytea, text, text, text),
    gpugate_admin_keys_rotate(bytea, text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    gpugate_admin_keys_list(bytea, text, text, text),
    gpugate_admin_keys_get(bytea, text, text, text),
    gpugate_admin_keys_create(bytea, text, text, text),
    gpugate_admin_keys_patch(bytea, text, text, text),
    gpugate_admin_keys_delete(bytea, text, text, text),
    gpugate_admin_tenants_list(bytea, text, text, text),
    gpugate_admin_tenants_get(bytea, text, text, text),
    gpugate_admin_tenants_create(bytea, text, text, text),
    gpugate_admin_tenants_patch(bytea, text, text, text),
    gpugate_admin_agents_list(bytea, text, text, text),
    gpugate_admin_agents_get(bytea, text, text, text),
    gpugate_admin_agents_create(bytea, text, text, text),
    gpugate_admin_agents_delete(bytea, text, text, text),
    gpugate_admin_usage(bytea, text, text, text),
    gpugate_admin_keys_rotate(bytea, text, text, text)
    TO gpugate_gateway;

INSERT INTO schema_migrations (version) VALUES ('004_admin')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
