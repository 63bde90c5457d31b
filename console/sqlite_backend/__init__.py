"""The SQLite database backend of the embedded default (see ``base.py``)."""

# The connection options the settings give this backend. WAL lets the web server read
# while the worker writes; IMMEDIATE transactions take the write lock up front;
# synchronous=NORMAL leaves the fsync to WAL checkpoints, and those run after a commit
# has let the next writer in (wal_autocheckpoint=0: see ``base.py``).
OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; "
        "PRAGMA wal_autocheckpoint=0;"
    ),
}
