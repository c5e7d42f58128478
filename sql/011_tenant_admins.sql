-- gpugate schema, migration 011: admin credentials scoped to one tenant
-- (issue 19: batches and jobs are readable by "the key that created a
-- batch or job, or its tenant's admin").
--
-- admins.tenant_id binds a credential to one tenant (NULL: an operator,
-- as every credential before 011).  A tenant admin sees and changes only
-- its tenant:
--
--   keys       listed, read, patched, revoked and rotated only when its
--              tenant's; another tenant's key is 404, as one that does
--              not exist, so ids do not leak.  POST keys: "tenant" its
--              own or absent (403 otherwise).
--   tenants    list and get: its own only (another is 404).  POST: 403.
--              PATCH of its own: only "priority", at most the ceiling
--              below; limits, budget, max_priority, region and disabled
--              are the operator's caps on the tenant: 403.
--   caps       a key it creates or patches may not ask more than the
--              tenant could: "priority" and "max_priority" at most the
--              tenant's max_priority (else its priority, else 5), and
--              no "region" other than the tenant's pin (a key's pin
--              wins over its tenant's).  403 otherwise.
--   agents     GPU hosts, drain included, are the operator's: 403.
--   usage      and batches: forced to its tenant; "tenant" naming any
--              other is 404 "no such tenant" whether it exists or not.
--   whoami     adds "tenant" (null for an operator); asked by nginx's
--              auth_request (the console's /status and /metrics, which
--              show every tenant's agents) it is 403 for a tenant admin.
--
-- How: each route's 004-010 function is renamed <name>_unscoped (the
-- gateway may no longer call it) and a function of the route's name
-- checks the scope, then calls it; an operator's call goes straight
-- through.  So the routes' logic stays where it is, the module's calls
-- do not change, and 403/404 come before anything is read or written
-- (a refusal writes no audit row, as before; what passes is audited by
-- the unscoped function under the tenant admin's name).  A later
-- migration that changes a route redefines its _unscoped function (one
-- that replaced the route's function would drop the scope: t/118 fails).
--
-- Idempotent with the suite's "apply every file in order": the rename
-- is done only when the route's function is not this file's wrapper
-- (a re-applied 004 put the unscoped one back under the route's name).

BEGIN;

ALTER TABLE admins ADD COLUMN IF NOT EXISTS tenant_id bigint
    REFERENCES tenants (id);


-- the unscoped functions move aside, out of the gateway's reach
DO $$
DECLARE
    fn   text;
    src  text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['keys_list', 'keys_get', 'keys_create',
        'keys_patch', 'keys_delete', 'keys_rotate', 'tenants_list',
        'tenants_get', 'tenants_create', 'tenants_patch', 'agents_list',
        'agents_get', 'agents_create', 'agents_delete', 'agents_drain',
        'agents_undrain', 'usage', 'batches_list', 'batches_get']
    LOOP
        SELECT prosrc INTO src FROM pg_proc
        WHERE oid = format('gpugate_admin_%s(bytea,text,text,text)',
                           fn)::regprocedure;
        CONTINUE WHEN position('_unscoped' IN src) > 0;
        EXECUTE format('DROP FUNCTION IF EXISTS '
                       || 'gpugate_admin_%s_unscoped(bytea, text, text, '
                       || 'text)', fn);
        EXECUTE format('ALTER FUNCTION gpugate_admin_%s(bytea, text, '
                       || 'text, text) RENAME TO gpugate_admin_%s_unscoped',
                       fn, fn);
        EXECUTE format('REVOKE ALL ON FUNCTION gpugate_admin_%s_unscoped('
                       || 'bytea, text, text, text) FROM PUBLIC, '
                       || 'gpugate_gateway', fn);
    END LOOP;
END
$$;


-- The tenant a valid credential is scoped to; a row of NULLs for an
-- operator and for an unknown or revoked credential (whose call then
-- goes to the unscoped function, which answers 401)
CREATE OR REPLACE FUNCTION gpugate_admin_scope(d bytea)
RETURNS tenants LANGUAGE sql STABLE AS $$
    SELECT t.* FROM admins a JOIN tenants t ON t.id = a.tenant_id
    WHERE a.digest = d AND a.revoked_at IS NULL
$$;


-- 403 for what a tenant admin may not do
CREATE OR REPLACE FUNCTION gpugate_admin_forbidden(t tenants, why text,
    OUT status integer, OUT body_out text, OUT inval text)
LANGUAGE sql STABLE AS $$
    SELECT 403, gpugate_admin_error(why || ': this admin credential '
               || 'manages tenant ' || t.name || ' only',
               'permission_error', 'insufficient_permissions'), ''
$$;


-- 404 for another tenant's row, word for word the unscoped function's
-- answer for a row that does not exist
CREATE OR REPLACE FUNCTION gpugate_admin_not_found(what text, arg text,
    OUT status integer, OUT body_out text, OUT inval text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT 404, gpugate_admin_error('no such ' || what || ': ' || arg,
                                    'not_found_error', 'not_found'), ''
$$;


-- The request's JSON object, NULL when it is not one (the unscoped
-- function then refuses it with its own 400)
CREATE OR REPLACE FUNCTION gpugate_admin_object(body text)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    b  jsonb;
BEGIN
    b := coalesce(nullif(body, ''), '{}')::jsonb;
    RETURN CASE WHEN jsonb_typeof(b) = 'object' THEN b END;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;


-- A row id from the route's argument, NULL when it is not one
CREATE OR REPLACE FUNCTION gpugate_admin_id(arg text)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN arg ~ '^[0-9]{1,18}$' THEN arg::bigint END
$$;


-- What a tenant admin asks beyond its tenant's caps in a key's fields,
-- NULL when nothing: a priority or max_priority above the tenant's
-- ceiling, a region pin other than the tenant's.  Malformed values pass
-- (the unscoped function answers 400).
CREATE OR REPLACE FUNCTION gpugate_admin_key_caps(t tenants, b jsonb)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN f.name IS NOT NULL
        THEN f.name || ' above ' || f.ceiling || ', the tenant''s ceiling'
        WHEN t.region IS NOT NULL
             AND jsonb_typeof(b -> 'region') = 'string'
             AND b ->> 'region' <> t.region
        THEN 'region other than ' || t.region || ', the tenant''s pin'
        END
    FROM (SELECT coalesce(t.max_priority, t.priority, 5) AS ceiling) c
    LEFT JOIN LATERAL (
        SELECT x.name, c.ceiling FROM unnest(ARRAY['priority',
                                                   'max_priority']) x(name)
        WHERE jsonb_typeof(b -> x.name) = 'number'
          AND (b ->> x.name) ~ '^[0-9]$'
          AND (b ->> x.name)::integer > c.ceiling
        LIMIT 1) f ON true
$$;


-- GET keys: its tenant's only ("tenant" forced as for usage, below)
CREATE OR REPLACE FUNCTION gpugate_admin_keys_list(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_tenant_arg(d, body, false);
    IF status IS NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_keys_list_unscoped(d, client, arg, body_out);
    END IF;
END
$$;


-- keys/{id} (GET, PATCH, DELETE) and keys/{id}/rotate: "arg" starts with
-- the key's id; another tenant's key is 404.  PATCH is held to the caps.
CREATE OR REPLACE FUNCTION gpugate_admin_key_scope(d bytea, arg text,
    body text, OUT status integer, OUT body_out text, OUT inval text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t    tenants := gpugate_admin_scope(d);
    kid  text := split_part(arg, ' ', 1);
    why  text;
BEGIN
    IF t.id IS NULL THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM api_keys k
                   WHERE k.id = gpugate_admin_id(kid)
                     AND k.tenant_id = t.id)
    THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_not_found('key', kid);
        RETURN;
    END IF;
    why := gpugate_admin_key_caps(t, gpugate_admin_object(body));
    IF why IS NOT NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_forbidden(t, why);
    END IF;
END
$$;


CREATE OR REPLACE FUNCTION gpugate_admin_keys_get(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_key_scope(d, arg, '');
    IF status IS NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_keys_get_unscoped(d, client, arg, body);
    END IF;
END
$$;


CREATE OR REPLACE FUNCTION gpugate_admin_keys_patch(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_key_scope(d, arg, body);
    IF status IS NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_keys_patch_unscoped(d, client, arg, body);
    END IF;
END
$$;


CREATE OR REPLACE FUNCTION gpugate_admin_keys_delete(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_key_scope(d, arg, '');
    IF status IS NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_keys_delete_unscoped(d, client, arg, body);
    END IF;
END
$$;


-- the new key copies the old one's tenant and caps: only the id counts
CREATE OR REPLACE FUNCTION gpugate_admin_keys_rotate(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_key_scope(d, arg, '');
    IF status IS NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_keys_rotate_unscoped(d, client, arg, body);
    END IF;
END
$$;


-- POST keys: in its tenant ("tenant" its own or absent), within the caps
CREATE OR REPLACE FUNCTION gpugate_admin_keys_create(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    t    tenants := gpugate_admin_scope(d);
    b    jsonb := gpugate_admin_object(body);
    why  text;
BEGIN
    IF t.id IS NOT NULL AND b IS NOT NULL THEN
        why := CASE WHEN b ? 'tenant' AND b ->> 'tenant'
                                          IS DISTINCT FROM t.name
                    THEN 'a key of another tenant'
                    ELSE gpugate_admin_key_caps(t, b) END;
        IF why IS NOT NULL THEN
            SELECT * INTO status, body_out, inval
            FROM gpugate_admin_forbidden(t, why);
            RETURN;
        END IF;
        body := (b || jsonb_build_object('tenant', t.name))::text;
    END IF;
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_keys_create_unscoped(d, client, arg, body);
END
$$;


-- GET tenants: its own, if past "after" (the unscoped function checks
-- the arguments and answers their 400)
CREATE OR REPLACE FUNCTION gpugate_admin_tenants_list(d bytea,
    client text, arg text, body text, OUT status integer,
    OUT body_out text, OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    t     tenants := gpugate_admin_scope(d);
    page  json;
BEGIN
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_tenants_list_unscoped(d, client, arg, body);
    IF t.id IS NULL OR status <> 200 THEN
        RETURN;
    END IF;
    page := CASE WHEN t.id > coalesce(gpugate_admin_object(body) ->> 'after',
                                      '0')::bigint
                 THEN json_build_array(gpugate_admin_tenant_json(t))
                 ELSE '[]'::json END;
    body_out := json_build_object('object', 'list', 'data', page,
        'has_more', false,
        'last_id', (page -> (json_array_length(page) - 1)) -> 'id')::text;
END
$$;


CREATE OR REPLACE FUNCTION gpugate_admin_tenants_get(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    t  tenants := gpugate_admin_scope(d);
BEGIN
    IF t.id IS NOT NULL AND gpugate_admin_id(arg) IS DISTINCT FROM t.id
    THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_not_found('tenant', arg);
        RETURN;
    END IF;
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_tenants_get_unscoped(d, client, arg, body);
END
$$;


-- PATCH tenants/{id}: its own, "priority" only, at most the ceiling
CREATE OR REPLACE FUNCTION gpugate_admin_tenants_patch(d bytea,
    client text, arg text, body text, OUT status integer,
    OUT body_out text, OUT inval text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    t    tenants := gpugate_admin_scope(d);
    b    jsonb := gpugate_admin_object(body);
    why  text;
BEGIN
    IF t.id IS NOT NULL THEN
        IF gpugate_admin_id(arg) IS DISTINCT FROM t.id THEN
            SELECT * INTO status, body_out, inval
            FROM gpugate_admin_not_found('tenant', arg);
            RETURN;
        END IF;
        SELECT 'changing ' || left(k, 64) || ', an operator''s cap'
        INTO why FROM jsonb_object_keys(coalesce(b, '{}')) k
        WHERE k <> 'priority' ORDER BY k LIMIT 1;
        why := coalesce(why, gpugate_admin_key_caps(t, b));
        IF why IS NOT NULL THEN
            SELECT * INTO status, body_out, inval
            FROM gpugate_admin_forbidden(t, why);
            RETURN;
        END IF;
    END IF;
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_tenants_patch_unscoped(d, client, arg, body);
END
$$;


-- GET usage and GET batches: "tenant" forced to its own; naming another
-- is 404 "no such tenant", existing or not (batches also take its id)
CREATE OR REPLACE FUNCTION gpugate_admin_tenant_arg(d bytea, body text,
    ids boolean, OUT status integer, OUT body_out text, OUT inval text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t  tenants := gpugate_admin_scope(d);
    q  jsonb := gpugate_admin_object(body);
BEGIN
    body_out := body;
    IF t.id IS NULL OR q IS NULL THEN
        RETURN;
    END IF;
    IF q ? 'tenant' AND q ->> 'tenant' IS DISTINCT FROM t.name
       AND NOT (ids AND q ->> 'tenant' = t.id::text)
    THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_not_found('tenant', left(q ->> 'tenant', 64));
        RETURN;
    END IF;
    body_out := (q || jsonb_build_object('tenant', t.name))::text;
END
$$;


CREATE OR REPLACE FUNCTION gpugate_admin_usage(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_tenant_arg(d, body, false);
    IF status IS NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_usage_unscoped(d, client, arg, body_out);
    END IF;
END
$$;


CREATE OR REPLACE FUNCTION gpugate_admin_batches_list(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_tenant_arg(d, body, true);
    IF status IS NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_batches_list_unscoped(d, client, arg, body_out);
    END IF;
END
$$;


CREATE OR REPLACE FUNCTION gpugate_admin_batches_get(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    t  tenants := gpugate_admin_scope(d);
BEGIN
    IF t.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM batches b
                                        WHERE b.id = arg
                                          AND b.tenant_id = t.id)
    THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_not_found('batch or job', arg);
        RETURN;
    END IF;
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_batches_get_unscoped(d, client, arg, body);
END
$$;


-- The operator's routes: POST tenants and every agents route (agents
-- are GPU hosts every tenant's requests may use).  Each is the same
-- wrapper: 403 for a tenant admin, the unscoped function otherwise.
DO $do$
DECLARE
    r  record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('tenants_create', 'VOLATILE', 'creating a tenant'),
        ('agents_list', 'STABLE', 'agents'),
        ('agents_get', 'STABLE', 'agents'),
        ('agents_create', 'VOLATILE', 'creating an agent'),
        ('agents_delete', 'VOLATILE', 'revoking an agent'),
        ('agents_drain', 'VOLATILE', 'draining an agent'),
        ('agents_undrain', 'VOLATILE', 'undraining an agent'))
        v(fn, vol, what)
    LOOP
        EXECUTE format($f$
CREATE OR REPLACE FUNCTION gpugate_admin_%1$s(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql %2$s SECURITY DEFINER SET search_path = public, pg_temp
AS $b$
DECLARE
    t  tenants := gpugate_admin_scope(d);
BEGIN
    IF t.id IS NOT NULL THEN
        SELECT * INTO status, body_out, inval
        FROM gpugate_admin_forbidden(t, %3$L);
        RETURN;
    END IF;
    SELECT * INTO status, body_out, inval
    FROM gpugate_admin_%1$s_unscoped(d, client, arg, body);
END
$b$$f$, r.fn, r.vol, r.what || ' is for an operator');
    END LOOP;
END
$do$;


-- GET whoami: 006's, plus "tenant" (null: an operator).  "arg" is "auth"
-- when nginx's auth_request asks (the console's /status and /metrics,
-- every tenant's agents): 403 for a tenant admin.
CREATE OR REPLACE FUNCTION gpugate_admin_whoami(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    who  admins;
BEGIN
    who := gpugate_admin_who(d, false);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;
    IF arg = 'auth' AND who.tenant_id IS NOT NULL THEN
        status := 403;
        body_out := gpugate_admin_error('the console''s status and metrics '
                        || 'show every tenant''s agents: for an operator',
                        'permission_error', 'insufficient_permissions');
        inval := '';
        RETURN;
    END IF;
    status := 200;
    body_out := json_build_object('object', 'admin', 'id', who.id,
        'name', who.name, 'role', who.role,
        'tenant', (SELECT t.name FROM tenants t
                   WHERE t.id = who.tenant_id))::text;
    inval := '';
END
$$;


-- The wrappers are the gateway's (a new function may be run by PUBLIC)
DO $$
DECLARE
    fn  text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['keys_list', 'keys_get', 'keys_create',
        'keys_patch', 'keys_delete', 'keys_rotate', 'tenants_list',
        'tenants_get', 'tenants_create', 'tenants_patch', 'agents_list',
        'agents_get', 'agents_create', 'agents_delete', 'agents_drain',
        'agents_undrain', 'usage', 'batches_list', 'batches_get']
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION gpugate_admin_%s(bytea, '
                       || 'text, text, text) FROM PUBLIC', fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION gpugate_admin_%s(bytea, '
                       || 'text, text, text) TO gpugate_gateway', fn);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION
    gpugate_admin_key_scope(bytea, text, text),
    gpugate_admin_tenant_arg(bytea, text, boolean)
    FROM PUBLIC;

INSERT INTO schema_migrations (version) VALUES ('011_tenant_admins')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
