-- Issue #17 item 5: a two-party key certified by an outside CA. The certification request's
-- signed part (CertificationRequestInfo, hex) that phone and server are signing together for
-- this key; cleared once the certificate is issued.
ALTER TABLE split_keys ADD COLUMN csr_info TEXT;
