-- gpugate schema, migration 006: draining an agent (issue 20).
--
-- A drained agent keeps its tunnels and the requests on them, but the
-- balancer sends it no new request: the operator's way to take a GPU
-- host out of service without cutting a stream.  agents.drained_at says
-- since when (NULL: not drained).  The gateway reads it at every
-- handshake and in its periodic re-check of the agents it holds, so a
-- drained agent that reconnects stays drained, and a lost Redis message
-- still takes effect within the re-check period.
--
-- Two admin routes, SECURITY DEFINER and audited like those of 004:
-- POST agents/{id}/drain and DELETE agents/{id}/drain (undrain).  Each
-- answers the agent and the message "drain <name>", which makes every
-- gateway worker ask PostgreSQL about its agents at once (anyone who can
-- publish on Redis could send it: it only forces that re-check).
--
-- And GET whoami, which the console's login and nginx's auth_request
-- ask whether a credential is an admin's.
--
-- Idempotent: ADD COLUMN IF NOT EXISTS, CREATE OR REPLACE.

BEGIN;

ALTER TABLE agents ADD COLUMN IF NOT EXISTS drained_at timestamptz;


-- 004's agent as the API shows it, plus drained_at
CREATE OR REPLACE FUNCTION gpugate_admin_agent_json(a agents, live jsonb)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', a.id, 'object', 'agent', 'name', a.name,
        'tenant', (SELECT t.name FROM tenants t WHERE t.id = a.tenant_id),
        'models', a.allowed_models, 'region', a.region,
        'created_at', a.created_at, 'revoked_at', a.revoked_at,
        'drained_at', a.drained_at,
        'connected', CASE WHEN live IS NULL THEN NULL
                          ELSE EXISTS (SELECT 1 FROM
                               jsonb_array_elements(live -> 'agents') e
                               WHERE e ->> 'name' = a.name) END,
        'live', CASE WHEN live IS NULL THEN NULL
                     ELSE (SELECT coalesce(jsonb_agg(e), '[]'::jsonb)
                           FROM jsonb_array_elements(live -> 'agents') e
                           WHERE e ->> 'name' = a.name) END)
$$;


-- drain (on) or undrain (not on) agent "arg"; the body is not read
CREATE OR REPLACE FUNCTION gpugate_admin_agent_drain(d bytea, client text,
    arg text, body text, drain boolean, OUT status integer,
    OUT body_out text, OUT inval text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    who  admins;
    a    agents;
BEGIN
    who := gpugate_admin_who(d, true);
    IF who IS NULL THEN
        SELECT * INTO status, body_out, inval FROM gpugate_admin_refusal(d);
        RETURN;
    END IF;

    -- a second drain keeps the first one's time
    UPDATE agents
    SET drained_at = CASE WHEN drain THEN coalesce(drained_at, now()) END
    WHERE id = arg::bigint RETURNING * INTO a;

    IF NOT FOUND THEN
        status := 404;
        body_out := gpugate_admin_error('no such agent: ' || arg,
                                        'not_found_error', 'not_found');
        inval := '';
        RETURN;
    END IF;

    INSERT INTO admin_audit (admin_id, admin_name, client, action, target)
    VALUES (who.id, who.name, client,
            CASE WHEN drain THEN 'agent.drain' ELSE 'agent.undrain' END,
            'agent ' || a.id);

    status := 200;
    body_out := gpugate_admin_agent_json(a, NULL)::text;
    inval := 'drain ' || a.name;
END
$$;


-- POST agents/{id}/drain
CREATE OR REPLACE FUNCTION gpugate_admin_agents_drain(d bytea, client text,
    arg text, body text, OUT status integer, OUT body_out text,
    OUT inval text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT * FROM gpugate_admin_agent_drain(d, client, arg, body, true)
$$;


-- DELETE agents/{id}/drain: the agent takes new requests again
CREATE OR REPLACE FUNCTION gpugate_admin_agents_undrain(d bytea,
    client text, arg text, body text, OUT status integer,
    OUT body_out text, OUT inval text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT * FROM gpugate_admin_agent_drain(d, client, arg, body, false)
$$;


-- GET whoami: the credential's admin name and role; the console's login
-- check, and nginx's auth_request for the console's copies of /status and
-- /metrics (conf/nginx.conf.in).  Not audited: it reads nothing else.
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
    status := 200;
    body_out := json_build_object('object', 'admin', 'id', who.id,
                                  'name', who.name, 'role', who.role)::text;
    inval := '';
END
$$;


REVOKE ALL ON FUNCTION
    gpugate_admin_whoami(bytea, text, text, text),
    gpugate_admin_agent_drain(bytea, text, text, text, boolean),
    gpugate_admin_agents_drain(bytea, text, text, text),
    gpugate_admin_agents_undrain(bytea, text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    gpugate_admin_whoami(bytea, text, text, text),
    gpugate_admin_agents_drain(bytea, text, text, text),
    gpugate_admin_agents_undrain(bytea, text, text, text)
    TO gpugate_gateway;

INSERT INTO schema_migrations (version) VALUES ('006_drain')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
