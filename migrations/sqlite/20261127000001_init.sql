-- The store's first schema (DESIGN.md "Store"). Types and statements are kept to what
-- PostgreSQL also accepts, so that its migrations folder mirrors this one.

CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    source      TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- One row per video of a dataset, ok or failed with its reason.
CREATE TABLE videos (
    id             INTEGER PRIMARY KEY,
    dataset_id     INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    path           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error_kind     TEXT,
    error_message  TEXT,
    sha256         TEXT,
    size_bytes     BIGINT,
    mtime_ns       BIGINT,
    duration_s     DOUBLE PRECISION,
    fps            DOUBLE PRECISION,
    width          INTEGER,
    height         INTEGER,
    rotation       INTEGER,
    codec          TEXT,
    frame_count    BIGINT,
    keyframe_count BIGINT,
    has_audio      BOOLEAN,
    reference      TEXT,
    tags           TEXT NOT NULL DEFAULT '[]',
    updated_at     TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (dataset_id, key),
    CHECK (status = 'failed' OR sha256 IS NOT NULL),
    CHECK (status = 'ok' OR error_kind IS NOT NULL)
);
CREATE INDEX videos_sha256 ON videos (sha256);

-- Problems of the source itself (a manifest line without a path, a duplicate key), from
-- the latest intake of the dataset.
CREATE TABLE intake_problems (
    id         INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    location   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL
);
CREATE INDEX intake_problems_dataset ON intake_problems (dataset_id);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id),
    config      TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- The job graph's queue: one item per (run, video, stage).
CREATE TABLE work_items (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    video_id         INTEGER NOT NULL REFERENCES videos(id),
    stage            TEXT NOT NULL,
    result_key       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'quarantined')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    error_kind       TEXT,
    error_message    TEXT,
    updated_at       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (run_id, video_id, stage)
);
CREATE INDEX work_items_claim ON work_items (status, run_id);

-- One caption per video and source of a run; a failed stage never lands here.
CREATE TABLE captions (
    id                INTEGER PRIMARY KEY,
    run_id            INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    video_id          INTEGER NOT NULL REFERENCES videos(id),
    source            TEXT NOT NULL,
    caption           TEXT NOT NULL CHECK (length(trim(caption)) > 0),
    model             TEXT,
    prompt_version    TEXT,
    result_key        TEXT NOT NULL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    latency_ms        INTEGER,
    created_at        TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (run_id, video_id, source)
);
CREATE INDEX captions_result_key ON captions (result_key);

-- One judged or computed score per caption, metric and sample.
CREATE TABLE scores (
    id             INTEGER PRIMARY KEY,
    caption_id     INTEGER NOT NULL REFERENCES captions(id) ON DELETE CASCADE,
    metric         TEXT NOT NULL,
    judge          TEXT NOT NULL DEFAULT '',
    prompt_version TEXT NOT NULL DEFAULT '',
    sample_index   INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL CHECK (status IN ('ok', 'parse_failed', 'failed')),
    value          DOUBLE PRECISION,
    raw_reply      TEXT,
    created_at     TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (caption_id, metric, judge, prompt_version, sample_index),
    CHECK (status <> 'ok' OR value IS NOT NULL)
);
