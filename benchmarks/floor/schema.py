"""The floor's table, created and dropped by benchmarks/ingest.py (importable without the app)."""

TABLE = "bench_floor_event"


def create_table_sql(vendor: str) -> str:
    """What Django itself would create for ``RawEvent`` (bigint key, jsonb on PostgreSQL)."""
    if vendor == "postgresql":
        return (
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, payload jsonb NOT NULL)"
        )
    if vendor == "sqlite":
        return (
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id integer PRIMARY KEY AUTOINCREMENT, "
            "payload text NOT NULL CHECK (JSON_VALID(payload)))"
        )
    raise ValueError(f"the floor table has no DDL for the {vendor!r} database")
