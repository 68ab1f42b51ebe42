-- Issue #18: a person of the console may log in by scanning a QR code with the medsign phone app
-- of the staff member an administrator linked to their account (employee_no, one account per
-- staff member) — with the very phone that was bound when the link was made (device_id): binding
-- another phone to that staff number, which activation codes allow apps and operators, does not
-- carry the console login over. The browser that asked holds a secret (an HttpOnly cookie; its SM3 is stored):
-- seeing the QR code, or the ticket id, is not enough to collect the session.
ALTER TABLE console_people ADD COLUMN employee_no TEXT;
ALTER TABLE console_people ADD COLUMN device_id TEXT;
CREATE UNIQUE INDEX console_people_employee ON console_people (employee_no);
CREATE TABLE console_qr_logins (
    ticket_id    TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    used         BIGINT NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);
