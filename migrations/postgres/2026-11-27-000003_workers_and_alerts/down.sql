DROP INDEX runs_created;
DROP INDEX runs_finished;
DROP TABLE alert_deliveries;
ALTER TABLE schedules DROP COLUMN no_success_alerted_at;
ALTER TABLE schedules DROP COLUMN alert_no_success_seconds;
ALTER TABLE schedules DROP COLUMN alert_webhook_url;
DROP TABLE workers;
