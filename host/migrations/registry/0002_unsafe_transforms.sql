-- Transforms caught breaking the row-wise contract after upload (a backfill's or an online
-- call's re-check): refused for new definitions and for serving. The first reason is kept.
CREATE TABLE unsafe_transforms (
    digest     TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    marked_at  BIGINT NOT NULL
);
