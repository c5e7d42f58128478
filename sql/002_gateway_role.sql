-- gpugate schema, migration 002: the gateway's least-privilege role.
--
-- nginx needs to read keys, tenants and agent verifiers and to append
-- usage rows; nothing else.  Operators log nginx in as a role that is a
-- member of gpugate_gateway (scripts/run.sh creates one, "gpugate_nginx",
-- with a password kept in a 0600 passfile), never as the schema owner:
-- a worker that is taken over can then neither mint keys, nor un-revoke
-- agents, nor rewrite the ledger.  The key tool (scripts/gpugate-keys)
-- keeps using the owner.
--
-- Creating a role needs CREATEROLE (or a superuser); the statement is
-- skipped when the role already exists, so the file stays idempotent.

BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles
                   WHERE rolname = 'gpugate_gateway') THEN
        CREATE ROLE gpugate_gateway NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO gpugate_gateway;
GRANT SELECT ON tenants, api_keys, agents TO gpugate_gateway;
GRANT INSERT ON usage_events TO gpugate_gateway;
-- ON CONFLICT (gateway, request_id) reads the conflict target
GRANT SELECT (gateway, request_id) ON usage_events TO gpugate_gateway;
GRANT USAGE ON SEQUENCE usage_events_id_seq TO gpugate_gateway;

INSERT INTO schema_migrations (version) VALUES ('002_gateway_role')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
