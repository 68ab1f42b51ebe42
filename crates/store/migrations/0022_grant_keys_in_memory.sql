-- Issue #15: a grant key is no longer kept in the database (under the KEK, beside the server's
-- share d2): it lives only in the memory of the medsign instance that started the grant. Grants
-- whose key was stored end here, and their material is erased.
UPDATE grants SET state = 'expired', ended_at = COALESCE(ended_at, expires_at)
    WHERE state IN ('pending', 'active') AND grant_key_wrapped IS NOT NULL;
UPDATE grants SET grant_key_wrapped = NULL, share_sealed = NULL WHERE grant_key_wrapped IS NOT NULL;
