-- which staff profile version (ca::StaffProfile) a certificate followed (issue #4).
ALTER TABLE certificates ADD COLUMN profile_version TEXT;
