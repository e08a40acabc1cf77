-- An API token may expire: after `expires_at` (UTC) it is refused like a revoked one. NULL
-- means it never expires, which is what every token made before this migration keeps.
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMP;
