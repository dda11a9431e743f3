"""PostgreSQL: a pool per shard database, migrations, and projector offset tracking."""
