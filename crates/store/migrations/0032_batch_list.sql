-- The console lists the newest batches of every app (GET /admin/v1/batches), each with its items
-- counted: the newest jobs are found by this index before their items are read.
CREATE INDEX batch_jobs_created ON batch_jobs (created_at);
