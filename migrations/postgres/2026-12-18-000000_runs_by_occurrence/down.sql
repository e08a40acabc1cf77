DROP INDEX runs_occurrences;
