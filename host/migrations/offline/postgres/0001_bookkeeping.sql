-- The offline store's bookkeeping tables: backfill jobs and their chunks, materialization
-- runs and the feature log (the per-view feature tables are made as views are backfilled).
-- Times are µs since the Unix epoch where they are BIGINT. A store made before migrations
-- already holds these tables, made by the same statements: `IF NOT EXISTS` adopts them,
-- and a job table from before job states gets their columns.

CREATE TABLE IF NOT EXISTS backfill_jobs (
    id BIGSERIAL PRIMARY KEY,
    project TEXT NOT NULL,
    view TEXT NOT NULL,
    table_name TEXT NOT NULL,
    time_window TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (table_name, fingerprint)
);

-- Job states: `running` while a process heartbeats `alive_until`, and the plan a rerun
-- resumes by.
ALTER TABLE backfill_jobs ADD COLUMN IF NOT EXISTS state TEXT NOT NULL DEFAULT 'running';
ALTER TABLE backfill_jobs ADD COLUMN IF NOT EXISTS finished_at TIMESTAMPTZ;
ALTER TABLE backfill_jobs ADD COLUMN IF NOT EXISTS alive_until TIMESTAMPTZ;
ALTER TABLE backfill_jobs ADD COLUMN IF NOT EXISTS plan_fingerprint TEXT;
-- A fresh job's fingerprint is the plan's with `#<time>` after it.
UPDATE backfill_jobs SET plan_fingerprint = split_part(fingerprint, '#', 1)
    WHERE plan_fingerprint IS NULL;
CREATE INDEX IF NOT EXISTS backfill_jobs_by_plan ON backfill_jobs (table_name, plan_fingerprint);

CREATE TABLE IF NOT EXISTS backfill_chunks (
    job_id BIGINT NOT NULL REFERENCES backfill_jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    spec TEXT NOT NULL,
    done BOOLEAN NOT NULL DEFAULT false,
    lease_owner TEXT,
    lease_expires TIMESTAMPTZ,
    attempts INTEGER NOT NULL DEFAULT 0,
    rows_in BIGINT NOT NULL DEFAULT 0,
    rows_out BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE IF NOT EXISTS materializations (
    id BIGSERIAL PRIMARY KEY,
    project TEXT NOT NULL,
    view TEXT NOT NULL,
    table_name TEXT NOT NULL,
    start_micros BIGINT NOT NULL,
    end_micros BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS materializations_by_table ON materializations (table_name, end_micros);

CREATE TABLE IF NOT EXISTS feature_log (
    id BIGSERIAL PRIMARY KEY,
    project TEXT NOT NULL,
    service TEXT NOT NULL,
    logged_at BIGINT NOT NULL,
    request_ts BIGINT NOT NULL,
    digests TEXT NOT NULL,
    payload BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS feature_log_by_service ON feature_log (project, service, logged_at);
