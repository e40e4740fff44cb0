"""Stores behind one interface: the embedded SQLite backend (default) and later Redis."""

from gateway.store._base import Store, TransactionSnapshot
from gateway.store._records import (
    AttemptRecord,
    DeadLetterFilter,
    DeliveryState,
    LeaseLost,
    OutboxRecord,
    ResourceRecord,
    ResourceTaken,
    TransactionRecord,
    TransactionState,
    WriteCondition,
    derive_state,
)
from gateway.store._redis import RedisStore
from gateway.store._sqlite import HUB_DATABASE, SqliteStore

__all__ = [
    "HUB_DATABASE",
    "AttemptRecord",
    "DeadLetterFilter",
    "DeliveryState",
    "LeaseLost",
    "OutboxRecord",
    "RedisStore",
    "ResourceRecord",
    "ResourceTaken",
    "SqliteStore",
    "Store",
    "TransactionRecord",
    "TransactionSnapshot",
    "TransactionState",
    "WriteCondition",
    "derive_state",
]
