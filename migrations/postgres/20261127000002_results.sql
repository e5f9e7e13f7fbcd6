-- Every stage's output, addressed by its content key: a hash of the video's sha256, the
-- stage, the model entry's identity, the prompt version, the sampling settings and the
-- keys of the stage's inputs. A key that is here is never computed again, whatever the
-- run: this is what makes reruns and resumes free. Only successful outputs land here.
CREATE TABLE results (
    key               TEXT PRIMARY KEY,
    stage             TEXT NOT NULL,
    value             TEXT NOT NULL,
    model             TEXT,
    prompt_version    TEXT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    latency_ms        BIGINT,
    created_at        TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
