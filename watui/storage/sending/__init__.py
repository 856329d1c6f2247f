"""The send queue's hot path: claim due rows, write a batch of outcomes.

Apart from the rest of storage because these run for every message at 1,000 msg/s: each
database has its own way to do them in few round trips (``portable_batches``,
``sqlite_batches``, ``postgres_batches``), chosen once per database by ``storage.dialects``.
"""
