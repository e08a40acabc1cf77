-- SQLite's migration of this name rebuilds its full-text name index without token positions.
-- PostgreSQL's name index is a GIN index, which keeps no positions: nothing to do here.
SELECT 1;
