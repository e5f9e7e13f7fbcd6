-- An entry's metadata (`wolf import --meta key=value`, the submission form's optional
-- fields): who submitted it, the model and its size, a link to code or a paper, a
-- licence. Shown on the leaderboard's index and entry pages; gone with the run.
CREATE TABLE entry_meta (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
