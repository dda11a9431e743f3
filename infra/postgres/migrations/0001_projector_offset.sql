-- Last Kafka offset each projector applied, per partition, written in the same
-- transaction as the projection itself: a redelivered event is recognised and skipped.
CREATE TABLE IF NOT EXISTS projector_offset (
    projector    text    NOT NULL,
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    last_offset  bigint  NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, topic, partition)
);
