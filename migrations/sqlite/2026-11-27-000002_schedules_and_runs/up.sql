-- Schedules (what runs when, and how) and runs (every occurrence and what became of it).
-- UNIQUE (schedule_id, scheduled_for) makes each scheduled occurrence exactly-once; manual runs
-- have no scheduled_for and are never in conflict. Same tables and meaning as migrations/postgres.
-- An interval is anchored at start_at.

CREATE TABLE schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    task_kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    spec_kind TEXT NOT NULL CHECK (spec_kind IN ('cron', 'interval', 'once')),
    cron_expr TEXT,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    interval_seconds BIGINT,
    once_at TIMESTAMP,
    start_at TIMESTAMP,
    end_at TIMESTAMP,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    misfire_policy TEXT NOT NULL DEFAULT 'run_once' CHECK (misfire_policy IN ('skip', 'run_once', 'run_all')),
    misfire_grace_seconds BIGINT NOT NULL DEFAULT 300,
    overlap_policy TEXT NOT NULL DEFAULT 'forbid' CHECK (overlap_policy IN ('allow', 'forbid', 'replace')),
    jitter_seconds BIGINT NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    retry_backoff_seconds BIGINT NOT NULL DEFAULT 60,
    retry_backoff_max_seconds BIGINT NOT NULL DEFAULT 3600,
    timeout_seconds BIGINT,
    expires_seconds BIGINT,
    keep_succeeded INTEGER NOT NULL DEFAULT 100,
    keep_failed INTEGER NOT NULL DEFAULT 100,
    next_fire_at TIMESTAMP,
    spec_fingerprint TEXT NOT NULL DEFAULT '',
    last_fire_at TIMESTAMP,
    version BIGINT NOT NULL DEFAULT 0,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX schedules_due ON schedules (enabled, next_fire_at);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT REFERENCES schedules (id) ON DELETE SET NULL,
    schedule_name TEXT NOT NULL,
    task_kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    scheduled_for TIMESTAMP,
    trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'catch_up', 'retry')),
    triggered_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired')),
    attempt INTEGER NOT NULL DEFAULT 1,
    not_before TIMESTAMP NOT NULL,
    cancel_requested BOOLEAN NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat_at TIMESTAMP,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    error TEXT,
    log TEXT,
    stats TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (schedule_id, scheduled_for)
);
CREATE INDEX runs_dispatch ON runs (status, not_before);
CREATE INDEX runs_schedule ON runs (schedule_id, id);
