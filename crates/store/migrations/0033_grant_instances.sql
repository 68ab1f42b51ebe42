-- Session grants across instances (issue #17): each medsign process holds an ephemeral SM2 key in
-- memory only and publishes its public half here; a grant's key is sealed to the key of every
-- instance seen lately, so any of them can use the grant, and a copy of the database — which holds
-- none of those private keys — still opens none of it. An instance's public key is attested under
-- the KEK (SM4-GCM, bound to its id), so a database writer without the KEK cannot swap in a key of
-- their own.
CREATE TABLE instance_keys (
    instance_id TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    attestation TEXT NOT NULL,
    seen_at     TEXT NOT NULL
);
CREATE TABLE grant_keys_sealed (
    grant_id    TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    PRIMARY KEY (grant_id, instance_id)
);
