-- An answer of the phone's server half looks its round up by id and device, without the prepared
-- PDF (issue #20). SQLite stores that PDF in the row before `expires_at`, so reading the row meant
-- walking every overflow page of the PDF (up to 2,000 for an 8 MB upload). This index holds every
-- column the lookup reads: the row itself is never touched.
CREATE INDEX sign_rounds_lookup ON sign_rounds
    (id, device_id, flow_id, signer_idx, key_id, cert_serial, e_hex, state, signing_time, expires_at);
