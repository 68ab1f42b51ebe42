-- The console lists every app's flows newest first (GET /admin/v1/sign-flows); the existing index
-- leads with app_id.
CREATE INDEX sign_flows_created ON sign_flows (created_at);
CREATE INDEX flow_signers_subject ON flow_signers (subject_ref);
-- The console's dashboard counts signatures per day.
CREATE INDEX flow_signers_signed ON flow_signers (signed_at);
