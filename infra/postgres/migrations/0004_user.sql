-- Users, by user id. Personal data is stored encrypted (*_cipher) and looked up by a keyed
-- hash (*_blind); the password only as an argon2id hash.
CREATE TABLE IF NOT EXISTS {user} (
    id                   bigint      PRIMARY KEY,
    nickname             text,
    mobile_cipher        bytea       NOT NULL,
    mobile_blind         bytea       NOT NULL,
    email_cipher         bytea,
    email_blind          bytea,
    password_hash        text        NOT NULL,
    real_name_cipher     bytea,
    id_number_cipher     bytea,
    id_number_blind      bytea,
    real_name_verified   boolean     NOT NULL DEFAULT false,
    gender               smallint,
    status               text        NOT NULL DEFAULT 'active',
    aggregate_version    integer     NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
