-- gpugate schema, migration 007: priorities and region pins (issue 19).
--
-- A key and a tenant get a default priority and a maximum for the
-- tunnel's wait queue (0 lowest .. 9), and may be pinned to a region:
-- their requests then go only to agents of that region (agents say
-- theirs at the handshake, X-Gpugate-Region).  NULL means "not set":
-- the key's value wins over the tenant's for the default and the pin,
-- the lower of the two maxima applies, and with none set a request
-- waits at 5 and may not ask for more (README "Priorities").
--
-- The gateway reads these with the key (cached like the limits of 003);
-- its role's per-table grants cover the new columns.  Idempotent like
-- 003: ADD COLUMN IF NOT EXISTS skips a column already there.

BEGIN;

ALTER TABLE api_keys
    ADD COLUMN IF NOT EXISTS priority smallint
        CHECK (priority BETWEEN 0 AND 9),
    ADD COLUMN IF NOT EXISTS max_priority smallint
        CHECK (max_priority BETWEEN 0 AND 9),
    ADD COLUMN IF NOT EXISTS region text
        CHECK (region ~ '^[A-Za-z0-9._-]{1,31}$');

ALTER TABLE tenants
    ADD COLUMN IF NOT EXISTS priority smallint
        CHECK (priority BETWEEN 0 AND 9),
    ADD COLUMN IF NOT EXISTS max_priority smallint
        CHECK (max_priority BETWEEN 0 AND 9),
    ADD COLUMN IF NOT EXISTS region text
        CHECK (region ~ '^[A-Za-z0-9._-]{1,31}$');

INSERT INTO schema_migrations (version) VALUES ('007_priority')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
