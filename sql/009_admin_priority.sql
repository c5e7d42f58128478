-- gpugate schema, migration 009: priorities and region pins in the admin
-- API (issue 20).
--
-- 007 gave keys and tenants "priority", "max_priority" (0-9) and
-- "region" (a pin); gpugate-keys sets them, the admin API did not know
-- them.  Here POST and PATCH of keys and tenants take them (null
-- unsets one, as for the limits), the key and tenant JSON show them, and
-- the audit row's detail is the body as for every other field.  The
-- cache invalidation is the one the limits already have: "key <digest>"
-- for a key, gpugate_admin_tenant_inval for a tenant.  POST
-- keys/{id}/rotate copies them to the new key.
--
-- Idempotent: CREATE OR REPLACE of 004's functions, same signatures, so
-- 004's grants hold.

BEGIN;


-- A JSON value as a priority 0-9, NULL for JSON null; raises
-- invalid_parameter_value otherwise (gpugate-keys takes one digit)
CREATE OR REPLACE FUNCTION gpugate_admin_priority(v jsonb, field text)
RETURNS smallint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'number' OR (v #>> '{}') !~ '^[0-9]$' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = field || ' must be a whole number 0 (lowest) '
                            || 'to 9, or null';
    END IF;
    RETURN (v #>> '{}')::smallint;
END
$$;


-- A JSON value as a region pin, NULL for JSON null; raises
-- invalid_parameter_value otherwise (007's CHECK, gpugate-keys' grammar)
CREATE OR REPLACE FUNCTION gpugate_admin_region(v jsonb)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) <> 'string'
       OR (v #>> '{}') !~ '^[A-Za-z0-9._-]{1,31}$'
    THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'region must be 1-31 of letters, digits, ".", '
                            || '"_" or "-", or null';
    END IF;
    RETURN v #>> '{}';
END
$$;


-- 004's key as the API shows it, plus priority, max_priority and region
CREATE OR REPLACE FUNCTION gpugate_admin_key_json(k api_keys, tname text)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', k.id, 'object', 'api_key', 'prefix', k.prefix,
        'tenant', tname, 'name', k.name, 'models', k.allowed_models,
        'rpm', k.rpm_limit, 'tpm', k.tpm_limit,
        'parallel', k.parallel_limit, 'tokens_per_day', k.tpd_limit,
        'budget_micros', k.budget_micros, 'budget_period', k.budget_period,
        'priority', k.priority, 'max_priority', k.max_priority,
        'region', k.region,
        'expires_at', k.expires_at, 'revoked_at', k.revoked_at,
        'created_at', k.created_at)
$$;


-- 004's tenant as the API shows it, plus priority, max_priority, region
CREATE OR REPLACE FUNCTION gpugate_admin_tenant_json(t tenants)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', t.id, 'object', 'tenant', 'name', t.name,
        'disabled', t.disabled, 'rpm', t.rpm_limit, 'tpm', t.tpm_limit,
        'parallel', t.parallel_limit, 'tokens_per_day', t.tpd_limit,
        'budget_micros', t.budget_micros, 'budget_period', t.budget_period,
        'priority', t.priority, 'max_priority', t.max_priority,
        'region', t.region,
        'keys', (SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id),
        'created_at', t.created_at)
$$;


-- POST keys: arg is "DIGEST_HEX PREFIX" of the key the gateway made (it
-- shows the key once; only its digest reaches PostgreSQL).  The tenant
-- is created when missing, as gpugate-keys create does.  009: with
-- priority, max_priority and region.
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
        'budget_period', 'expires_at', 'priority', 'max_priority',
        'region']);
    IF jsonb_typeof(b -> 'tenant') IS DISTINCT FROM 'string' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'tenant (a tenant name) is required';
    END IF;

    INSERT INTO tenants (name) VALUES (b ->> 'tenant')
        ON CONFLICT DO NOTHING;
    SELECT id INTO tid FROM tenants WHERE name = b ->> 'tenant';

    INSERT INTO api_keys (tenant_id, digest, prefix, name, allowed_models,
                          rpm_limit, tpm_limit, parallel_limit, tpd_limit,
                          budget_micros, budget_period, priority,
                          max_priority, region, expires_at)
    VALUES (tid, decode(split_part(arg, ' ', 1), 'hex'),
            split_part(arg, ' ', 2), coalesce(b ->> 'name', ''),
            gpugate_admin_models(b -> 'models'),
            gpugate_admin_limit(b -> 'rpm', 'rpm'),
            gpugate_admin_limit(b -> 'tpm', 'tpm'),
            gpugate_admin_limit(b -> 'parallel', 'parallel'),
            gpugate_admin_limit(b -> 'tokens_per_day', 'tokens_per_day'),
            gpugate_admin_limit(b -> 'budget_micros', 'budget_micros'),
            b ->> 'budget_period',
            gpugate_admin_priority(b -> 'priority', 'priority'),
            gpugate_admin_priority(b -> 'max_priority', 'max_priority'),
            gpugate_admin_region(b -> 'region'),
            (b ->> 'expires_at')::timestamptz)
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


-- PATCH keys/{id}: 004's, plus priority, max_priority and region
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
        'expires_at', 'disabled', 'priority', 'max_priority', 'region']);
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
        priority = CASE WHEN b ? 'priority'
            THEN gpugate_admin_priority(b -> 'priority', 'priority')
            ELSE priority END,
        max_priority = CASE WHEN b ? 'max_priority'
            THEN gpugate_admin_priority(b -> 'max_priority', 'max_priority')
            ELSE max_priority END,
        region = CASE WHEN b ? 'region'
            THEN gpugate_admin_region(b -> 'region') ELSE region END,
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



-- POST tenants: {"name", limits..., priority, max_priority, region};
-- 409 when the name is taken
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
        'tokens_per_day', 'budget_micros', 'budget_period', 'priority',
        'max_priority', 'region']);
    IF jsonb_typeof(b -> 'name') IS DISTINCT FROM 'string' THEN
        RAISE invalid_parameter_value
            USING MESSAGE = 'name (a tenant name) is required';
    END IF;

    INSERT INTO tenants (name, rpm_limit, tpm_limit, parallel_limit,
                         tpd_limit, budget_micros, budget_period, priority,
                         max_priority, region)
    VALUES (b ->> 'name', gpugate_admin_limit(b -> 'rpm', 'rpm'),
            gpugate_admin_limit(b -> 'tpm', 'tpm'),
            gpugate_admin_limit(b -> 'parallel', 'parallel'),
            gpugate_admin_limit(b -> 'tokens_per_day', 'tokens_per_day'),
            gpugate_admin_limit(b -> 'budget_micros', 'budget_micros'),
            b ->> 'budget_period',
            gpugate_admin_priority(b -> 'priority', 'priority'),
            gpugate_admin_priority(b -> 'max_priority', 'max_priority'),
            gpugate_admin_region(b -> 'region'))
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


-- PATCH tenants/{id}: 004's, plus priority, max_priority and region
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
        'tokens_per_day', 'budget_micros', 'budget_period', 'disabled',
        'priority', 'max_priority', 'region']);
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
            THEN (b ->> 'disabled')::boolean ELSE disabled END,
        priority = CASE WHEN b ? 'priority'
            THEN gpugate_admin_priority(b -> 'priority', 'priority')
            ELSE priority END,
        max_priority = CASE WHEN b ? 'max_priority'
            THEN gpugate_admin_priority(b -> 'max_priority', 'max_priority')
            ELSE max_priority END,
        region = CASE WHEN b ? 'region'
            THEN gpugate_admin_region(b -> 'region') ELSE region END
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

-- POST keys/{id}/rotate: {"grace_seconds": 0-2592000, 3600 when not
-- given}.  arg is "ID DIGEST_HEX PREFIX" of the new key the gateway made.
-- The new key copies the old one's tenant, name, models, limits,
-- priorities, region pin (004's did not copy these three: a rotated
-- batch key would have jumped to the default priority, a pinned one
-- left its region) and expiry; the old key expires after the grace (at
-- once with 0, which revokes it).  Limits count per key: during the
-- grace each key has the old one's limits.
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
                          budget_micros, budget_period, priority,
                          max_priority, region, expires_at)
    VALUES (old.tenant_id, decode(split_part(arg, ' ', 2), 'hex'),
            split_part(arg, ' ', 3), old.name, old.allowed_models,
            old.rpm_limit, old.tpm_limit, old.parallel_limit, old.tpd_limit,
            old.budget_micros, old.budget_period, old.priority,
            old.max_priority, old.region, old.expires_at)
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


INSERT INTO schema_migrations (version) VALUES ('009_admin_priority')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
