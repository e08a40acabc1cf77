-- Task routing: a schedule names the queue its runs go to, and each run keeps the queue it was
-- sent to (retries and re-pushes use it). Workers take runs from the queues they listen on.
ALTER TABLE schedules ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE runs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
