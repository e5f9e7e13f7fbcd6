-- Judge replies, addressed by (candidate hash, reference hash, judge identity, prompt
-- version, mode, sample index) hashed into one key: rescoring costs nothing. A listwise
-- judgement holds the whole call's reply; each candidate's scores go to `scores`.
CREATE TABLE judgements (
    key        TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('ok', 'parse_failed', 'failed')),
    reply      TEXT,
    attempts   BIGINT NOT NULL DEFAULT 1,
    error      TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
