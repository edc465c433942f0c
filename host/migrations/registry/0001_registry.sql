-- Transform blobs by digest, their versions per name, aliases, and applied definitions.
-- Times are microseconds since the Unix epoch (UTC), as everywhere in Lockstep.
-- One schema for Postgres and SQLite (where BYTEA stores blobs unchanged).

CREATE TABLE transform_blobs (
    digest      TEXT PRIMARY KEY,
    bytes       BYTEA NOT NULL,
    size_bytes  BIGINT NOT NULL
);

CREATE TABLE transform_versions (
    name              TEXT NOT NULL,
    version           INTEGER NOT NULL,
    digest            TEXT NOT NULL REFERENCES transform_blobs (digest),
    declared_name     TEXT NOT NULL,
    declared_version  TEXT NOT NULL,
    inputs            TEXT NOT NULL,
    outputs           TEXT NOT NULL,
    uploaded_at       BIGINT NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, digest)
);

CREATE TABLE transform_aliases (
    name        TEXT NOT NULL,
    alias       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES transform_versions (name, version)
);

-- Every applied version of every object; `spec` NULL marks a deletion.
CREATE TABLE definition_objects (
    project     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    spec        TEXT,
    applied_at  BIGINT NOT NULL,
    PRIMARY KEY (project, kind, name, version)
);
