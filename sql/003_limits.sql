-- gpugate schema, migration 003: limits and budgets (issue 16).
--
-- Keys already had rpm_limit and tpm_limit; this adds requests in flight,
-- tokens per UTC day and a spend budget per period to keys, the same six
-- limits to tenants (both apply, the stricter wins), and what a request
-- cost to the ledger.  NULL means "no limit" everywhere.
--
-- Money is in micro-units of the currency models are priced in (1 unit =
-- 1000000 micros), so that sums are exact integers.  A budget needs a
-- period and a period needs a budget: a CHECK refuses either alone.
--
-- Idempotent like 001: ADD COLUMN IF NOT EXISTS skips a column (and the
-- CHECK written with it) that is already there, and the table CHECKs are
-- added only when missing.  The gateway's role (002) keeps working: its
-- grants are per table, so they cover the new columns.

BEGIN;

ALTER TABLE api_keys
    ADD COLUMN IF NOT EXISTS parallel_limit integer
        CHECK (parallel_limit > 0),
    ADD COLUMN IF NOT EXISTS tpd_limit bigint CHECK (tpd_limit > 0),
    ADD COLUMN IF NOT EXISTS budget_micros bigint CHECK (budget_micros > 0),
    ADD COLUMN IF NOT EXISTS budget_period text
        CHECK (budget_period IN ('day', 'month'));

ALTER TABLE tenants
    ADD COLUMN IF NOT EXISTS rpm_limit integer CHECK (rpm_limit > 0),
    ADD COLUMN IF NOT EXISTS tpm_limit integer CHECK (tpm_limit > 0),
    ADD COLUMN IF NOT EXISTS parallel_limit integer
        CHECK (parallel_limit > 0),
    ADD COLUMN IF NOT EXISTS tpd_limit bigint CHECK (tpd_limit > 0),
    ADD COLUMN IF NOT EXISTS budget_micros bigint CHECK (budget_micros > 0),
    ADD COLUMN IF NOT EXISTS budget_period text
        CHECK (budget_period IN ('day', 'month'));

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'api_keys_budget_needs_period') THEN
        ALTER TABLE api_keys ADD CONSTRAINT api_keys_budget_needs_period
            CHECK ((budget_micros IS NULL) = (budget_period IS NULL));
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'tenants_budget_needs_period') THEN
        ALTER TABLE tenants ADD CONSTRAINT tenants_budget_needs_period
            CHECK ((budget_micros IS NULL) = (budget_period IS NULL));
    END IF;
END
$$;

-- What the request cost, from the model's prices; written by the ledger.
-- A constant default makes this a catalogue change, not a rewrite of the
-- ledger; no CHECK, which would scan every row under an exclusive lock.
ALTER TABLE usage_events
    ADD COLUMN IF NOT EXISTS cost_micros bigint NOT NULL DEFAULT 0;

INSERT INTO schema_migrations (version) VALUES ('003_limits')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
