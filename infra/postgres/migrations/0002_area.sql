-- Areas (cities) programs are held in: small reference data copied to every shard database.
CREATE TABLE IF NOT EXISTS area (
    id                 integer     PRIMARY KEY,
    name               text        NOT NULL,
    level              text        NOT NULL CHECK (level IN ('province', 'city', 'district')),
    parent_id          integer,
    aggregate_version  integer     NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS area_parent_idx ON area (parent_id);
