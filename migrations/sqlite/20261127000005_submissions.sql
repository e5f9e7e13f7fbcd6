-- The leaderboard's submissions (serve mode): one row per uploaded caption file, valid
-- or not. A valid upload is stored as an imported entry (a run) in the same step and
-- waits here, `queued`, for the scorer; the leaderboard shows its entry once `scored`.
-- An invalid one keeps its reason and writes nothing else. The file itself is never
-- kept on disk: its size and checksum are.
CREATE TABLE submissions (
    id         INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    run_id     INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    status     TEXT NOT NULL CHECK (status IN ('invalid', 'queued', 'scoring', 'scored', 'failed', 'deleted')),
    error      TEXT,
    size_bytes BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX submissions_status ON submissions (status, id);

-- The leaderboard reads a video's captions and stage outputs across runs.
CREATE INDEX captions_video ON captions (video_id);
CREATE INDEX work_items_video ON work_items (video_id);
