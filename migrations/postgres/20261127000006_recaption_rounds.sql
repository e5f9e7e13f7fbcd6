-- The recaption loop's rounds (`wolf recaption loop`), for the leaderboard: each
-- round's captioner, caption count and mean length, and its held-out score. The
-- round's own files (caption files, log, statistics) stay in the loop's folder.
CREATE TABLE recaption_rounds (
    loop_name       TEXT NOT NULL,
    round           BIGINT NOT NULL,
    captioner       TEXT NOT NULL,
    captions        BIGINT NOT NULL,
    mean_words      DOUBLE PRECISION,
    heldout_dataset TEXT,
    heldout_score   DOUBLE PRECISION,
    stats           TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (loop_name, round)
);
