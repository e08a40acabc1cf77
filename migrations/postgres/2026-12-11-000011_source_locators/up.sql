-- How a source finds its file: JSON of `domain::locator::Locator`, tagged by "kind". Every
-- source made before this migration downloads its URL as it is, which is the "url" kind.
ALTER TABLE sources ADD COLUMN locator TEXT NOT NULL DEFAULT '{"kind":"url"}';
