-- Which metric a recaption round's held-out score is: truth_f1 where the held-out set has
-- truth, else embed_sim (NULL for rounds recorded before: embed_sim).
ALTER TABLE recaption_rounds ADD COLUMN heldout_metric TEXT;
