-- Issue #18 (R7.4.3, R7.4.4): a hospital system asks a doctor's phone for a real-name check or a
-- handwritten signature; the phone shows the task, and doing the thing completes it (a webhook
-- to the asking app's callback_url, queued in the same transaction).
CREATE TABLE user_tasks (
    id           TEXT PRIMARY KEY,
    employee_no  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    app_id       TEXT NOT NULL,
    callback_url TEXT,
    result       TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    done_at      TEXT
);
CREATE INDEX user_tasks_pending ON user_tasks (employee_no, kind, state);
