-- The offline store's bookkeeping tables: backfill jobs and their chunks, materialization
-- runs and the feature log (the per-view feature tables are made as views are backfilled).
-- Times are µs since the Unix epoch. A store made before migrations already holds these
-- tables, made by the same statements: `IF NOT EXISTS` adopts them (a job table from before
-- job states got their columns just before, as SQLite cannot add a column if missing).

CREATE TABLE IF NOT EXISTS backfill_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    view TEXT NOT NULL,
    table_name TEXT NOT NULL,
    time_window TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL,
    -- Job states: `running` while a process heartbeats `alive_until`, and the plan a rerun
    -- resumes by.
    state TEXT NOT NULL DEFAULT 'running',
    finished_at INTEGER,
    alive_until INTEGER,
    plan_fingerprint TEXT,
    UNIQUE (table_name, fingerprint)
);
-- A fresh job's fingerprint is the plan's with `#<time>` after it.
UPDATE backfill_jobs SET plan_fingerprint = substr(fingerprint, 1, instr(fingerprint || '#', '#') - 1)
    WHERE plan_fingerprint IS NULL;
CREATE INDEX IF NOT EXISTS backfill_jobs_by_plan ON backfill_jobs (table_name, plan_fingerprint);

CREATE TABLE IF NOT EXISTS backfill_chunks (
    job_id INTEGER NOT NULL REFERENCES backfill_jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    spec TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    rows_in INTEGER NOT NULL DEFAULT 0,
    rows_out INTEGER NOT NULL DEFAULT 0,
    rows_rejected INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE IF NOT EXISTS materializations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    view TEXT NOT NULL,
    table_name TEXT NOT NULL,
    start_micros INTEGER NOT NULL,
    end_micros INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    finished_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS materializations_by_table ON materializations (table_name, end_micros);

CREATE TABLE IF NOT EXISTS feature_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    service TEXT NOT NULL,
    logged_at INTEGER NOT NULL,
    request_ts INTEGER NOT NULL,
    digests TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS feature_log_by_service ON feature_log (project, service, logged_at);
