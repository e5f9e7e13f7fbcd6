-- A video's metadata from its manifest: the columns that no mapping names (a JSON object,
-- or NULL), kept so that nothing of the user's row is lost.
ALTER TABLE videos ADD COLUMN metadata TEXT;
