-- Issue #7: scan-to-login (R2.5, R3.3). A PC page shows a login ticket's QR; the phone that scans it
-- co-signs a login assertion (a one-signer data flow), and the ticket then carries that signature.
CREATE TABLE login_tickets (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL,
    system      TEXT NOT NULL,
    challenge   TEXT NOT NULL,
    state       TEXT NOT NULL,
    employee_no TEXT,
    device_id   TEXT,
    flow_id     TEXT,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX login_tickets_flow ON login_tickets (flow_id);
