"""Read queries, one function per access path, each routed to exactly one shard table.

A query that must visit every shard is a deliberate exception and says so in its name
(``full_route_…``). Rows come back as frozen dataclasses whose fields are the column names.
"""
