-- gpugate schema, migration 005: what the third wave adds to a ledger row.
--
-- Each column is written by the gateway only when the module that knows
-- it set it (modules/metrics/ngx_http_gpugate_ledger_api.h); NULL means
-- "not known" or "does not apply":
--
--   trace_id             W3C trace id of the request (tracing)
--   batch_id             the batch or job whose line the request ran
--   region               region of the agent that served it
--   priority             priority it was served at
--   reasoning_tokens     tokens of the model's reasoning; with
--   reasoning_estimated  true when counted by the gateway, not reported
--   cache_read_tokens    prompt tokens read from the runtime's cache
--   cache_write_tokens   prompt tokens written to it (Anthropic)
--   images, image_size   images made and their size as asked
--
-- Nullable columns without a default are a catalogue change: no rewrite
-- of the ledger.  Idempotent: ADD COLUMN IF NOT EXISTS.  The gateway's
-- INSERT grant (002) is per table and covers them.

BEGIN;

ALTER TABLE usage_events
    ADD COLUMN IF NOT EXISTS trace_id text,
    ADD COLUMN IF NOT EXISTS batch_id text,
    ADD COLUMN IF NOT EXISTS region text,
    ADD COLUMN IF NOT EXISTS priority smallint,
    ADD COLUMN IF NOT EXISTS reasoning_tokens integer,
    ADD COLUMN IF NOT EXISTS reasoning_estimated boolean NOT NULL
        DEFAULT false,
    ADD COLUMN IF NOT EXISTS cache_read_tokens integer,
    ADD COLUMN IF NOT EXISTS cache_write_tokens integer,
    ADD COLUMN IF NOT EXISTS images integer,
    ADD COLUMN IF NOT EXISTS image_size text;

-- a trace id leads to its rows; most rows have none
CREATE INDEX IF NOT EXISTS usage_events_trace_idx
    ON usage_events (trace_id) WHERE trace_id IS NOT NULL;

INSERT INTO schema_migrations (version) VALUES ('005_ledger_extra')
    ON CONFLICT (version) DO NOTHING;

COMMIT;
