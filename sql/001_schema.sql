-- gpugate schema, migration 001.
--
-- Migrations are applied in file-name order by scripts/ (psql -f) and are
-- idempotent: each one may run again on a database that already has it.
-- PostgreSQL is the source of truth; Redis and nginx shared memory only
-- cache what is here.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tenants (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE
                CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled    boolean NOT NULL DEFAULT false
);

-- API keys.  The raw key is shown once at creation and never stored: the
-- gateway hashes the presented key with SHA-256 and looks the digest up.
-- "prefix" is the first characters of the key, kept only so that people
-- can tell their keys apart in listings and logs.
CREATE TABLE IF NOT EXISTS api_keys (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    digest          bytea NOT NULL UNIQUE CHECK (length(digest) = 32),
    prefix          text NOT NULL CHECK (length(prefix) BETWEEN 4 AND 16),
    name            text NOT NULL DEFAULT '',
    -- NULL: every model; otherwise the model names this key may use
    allowed_models  text[],
    -- requests per minute and tokens per minute; NULL: unlimited
    rpm_limit       integer CHECK (rpm_limit > 0),
    tpm_limit       integer CHECK (tpm_limit > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    revoked_at      timestamptz
);

CREATE INDEX IF NOT EXISTS api_keys_tenant_idx ON api_keys (tenant_id);

-- GPU-host agents.  Credentials are SCRAM-SHA-256 verifiers (RFC 5802):
-- the salt, the iteration count, StoredKey = H(HMAC(SaltedPassword,
-- "Client Key")) and ServerKey = HMAC(SaltedPassword, "Server Key").
-- Neither the token nor anything that logs in by itself is stored.
CREATE TABLE IF NOT EXISTS agents (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE
                    CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    tenant_id       bigint REFERENCES tenants (id),
    scram_salt      bytea NOT NULL CHECK (length(scram_salt) >= 16),
    scram_iterations integer NOT NULL CHECK (scram_iterations >= 4096),
    scram_stored_key bytea NOT NULL CHECK (length(scram_stored_key) = 32),
    scram_server_key bytea NOT NULL CHECK (length(scram_server_key) = 32),
    -- NULL: whatever the agent advertises; otherwise an upper bound
    allowed_models  text[],
    region          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

-- One row per request, written in batches by the gateway's log phase.
-- No foreign keys on purpose: a ledger row must be accepted even when the
-- key or agent was deleted between the request and the batch write.
CREATE TABLE IF NOT EXISTS usage_events (
    id                 bigserial PRIMARY KEY,
    request_id         text NOT NULL,
    gateway            text NOT NULL DEFAULT '',
    api_key_id         bigint,
    tenant_id          bigint,
    agent_id           bigint,
    agent_name         text,
    model              text NOT NULL DEFAULT '',
    endpoint           text NOT NULL DEFAULT '',
    stream             boolean NOT NULL DEFAULT false,
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    ttft_ms            integer,
    duration_ms        integer NOT NULL DEFAULT 0,
    status             smallint NOT NULL,
    partial            boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- a batch retried after a lost acknowledgement must not double-count
    UNIQUE (gateway, request_id)
);

CREATE INDEX IF NOT EXISTS usage_events_time_idx
    ON usage_events (created_at);
CREATE INDEX IF NOT EXISTS usage_events_key_time_idx
    ON usage_events (api_key_id, created_at);
CREATE INDEX IF NOT EXISTS usage_events_tenant_time_idx
    ON usage_events (tenant_id, created_at);

INSERT INTO schema_migrations (version) VALUES ('001_schema')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
