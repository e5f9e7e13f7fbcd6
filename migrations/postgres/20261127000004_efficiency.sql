-- Token efficiency (METHOD.md section 2): per run, source and metric, captions cut into
-- their first k sentences, each prefix scored; the mean score against the mean length.
CREATE TABLE efficiency (
    run_id      BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    metric      TEXT NOT NULL,
    sentences   BIGINT NOT NULL,
    mean_tokens DOUBLE PRECISION NOT NULL,
    mean_score  DOUBLE PRECISION NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (run_id, source, metric, sentences)
);
