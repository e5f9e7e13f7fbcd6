-- A dataset's root: the folder its videos' paths are relative to in exports (the folder
-- added, a manifest's folder, the shards' folder), as intake saw it; NULL for datasets
-- added before it was kept, whose exports keep their paths as stored.
ALTER TABLE datasets ADD COLUMN root TEXT;
