-- The work queue of `wolf worker` (DESIGN.md "Several machines"): one item per (run,
-- video), claimed under a lease. The lease's owner and expiry, and the earliest time a
-- retried item may be claimed again, are milliseconds of the database's clock. An item
-- is `done` when its video's captions and stage states are committed (by the lease
-- holder only; `commits` counts those commits), `quarantined` when its attempts reached
-- the limit, with the last error. The video's stages keep their states in `work_items`.
CREATE TABLE queue (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    video_id         INTEGER NOT NULL REFERENCES videos(id),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'quarantined')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_ms BIGINT,
    not_before_ms    BIGINT NOT NULL DEFAULT 0,
    commits          INTEGER NOT NULL DEFAULT 0,
    done_by          TEXT,
    error_kind       TEXT,
    error_message    TEXT,
    updated_at       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (run_id, video_id),
    CHECK (status <> 'running' OR (lease_owner IS NOT NULL AND lease_expires_ms IS NOT NULL))
);
CREATE INDEX queue_claim ON queue (status, run_id, not_before_ms);
CREATE INDEX queue_lease ON queue (lease_owner);
