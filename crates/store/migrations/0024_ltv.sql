-- Issue #16: long-term validation. A PDF flow's PAdES level (B-T, B-LT, B-LTA; NULL: B-T or a
-- data flow); for B-LTA when its newest document timestamp's TSA certificate ends (the archive
-- job re-stamps before then; NULL: not computed yet) and the lease of the job instance that is
-- re-stamping it now (two instances never re-stamp the same document).
ALTER TABLE sign_flows ADD COLUMN pades_level TEXT;
ALTER TABLE sign_flows ADD COLUMN archive_due_at TEXT;
ALTER TABLE sign_flows ADD COLUMN archive_lease TEXT;
CREATE INDEX sign_flows_archive ON sign_flows (pades_level, archive_due_at);
