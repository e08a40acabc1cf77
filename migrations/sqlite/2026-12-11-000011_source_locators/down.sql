ALTER TABLE sources DROP COLUMN locator;
