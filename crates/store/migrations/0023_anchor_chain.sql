-- Issue #15: each audit anchor names the one before it (SM3 of its signed text and signature), so
-- deleting anchors together with the entries they cover leaves a gap `medsign audit verify`
-- sees; anchors written before this have none (NULL) and are checked as before.
ALTER TABLE audit_anchors ADD COLUMN prev TEXT;
