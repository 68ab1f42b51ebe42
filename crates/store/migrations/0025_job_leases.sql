-- Issue #17: several `medsign serve` instances on one PostgreSQL database. A job that must run on
-- one instance at a time (the daily certificate expiry job, the pending-timestamp job) takes its
-- lease here first: the row is updated only when the lease has run out or the instance already
-- holds it, so exactly one instance runs it per period; an instance that dies leaves a lease that
-- runs out.
CREATE TABLE job_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
);
