-- Program categories (parent and child): reference data copied to every shard database.
CREATE TABLE IF NOT EXISTS category (
    id                 integer     PRIMARY KEY,
    parent_id          integer,
    name               text        NOT NULL,
    sort_order         integer     NOT NULL DEFAULT 0,
    aggregate_version  integer     NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS category_parent_idx ON category (parent_id);
