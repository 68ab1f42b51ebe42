-- Issue #17 item 5: a two-party key certified by an outside CA. The certification request's
-- signed part (CertificationRequestInfo, hex) that phone and server are signing together for
-- this key, and the `r` of the server half's answer for it: only a signature completing that
-- answer finishes the request (an old signature over the same bytes does not). Both cleared when
-- the request is taken to the CA.
ALTER TABLE split_keys ADD COLUMN csr_info TEXT;
ALTER TABLE split_keys ADD COLUMN csr_r TEXT;
