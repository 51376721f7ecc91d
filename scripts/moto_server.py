"""The pinned moto server, with one change to how DynamoDB transactions roll back.

moto 5.2.5's TransactWriteItems deep-copies the *whole table* once per action
before it runs the actions (100 copies of the table for a 100-action
transaction), so that it can swap the copy back in when an action fails. On a
table of tens of thousands of items that costs seconds and gigabytes per
request, and a benchmark at realistic scale runs out of memory.

With STREAMFOLD_MOTO_TXN=items (scripts/endpoint sets it), this launcher keeps
moto's transaction code and semantics but snapshots only the items the
transaction touches (and the length of the table's stream), under one lock that
all DynamoDB writes take, and restores exactly those on failure:

- all or nothing: a cancelled transaction leaves every touched item as it was
  and no stream record behind;
- nothing else is affected: moto's swap-the-table rollback also undid writes
  that other requests made meanwhile; this one cannot, since writes wait for
  the lock.

Anything else is moto as pinned. Without the variable this is plain moto_server.
"""

import copy
import os
import sys
import threading

from moto.dynamodb import models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table


class _TablesAreNotCopied:
    """Stands in for the `copy` module inside moto.dynamodb.models.

    Only moto's transaction rollback deep-copies a Table there; that copy is
    replaced by the item snapshots below. Every other deep copy is real.
    """

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(obj, memo=None):
        if isinstance(obj, Table):
            return obj
        return copy.deepcopy(obj, memo)


_WRITES = threading.RLock()


def _key_of(table, op):
    """The (hash, range) DynamoTypes an action targets, or None when malformed
    (moto itself then rejects the action)."""
    try:
        attrs = op["Key"] if "Key" in op else op["Item"]
        hash_value = DynamoType(attrs[table.hash_key_attr])
        range_value = None
        if table.range_key_attr is not None:
            range_value = DynamoType(attrs[table.range_key_attr])
        return hash_value, range_value
    except (KeyError, TypeError, AttributeError):
        return None


def _snapshot(backend, transact_items):
    items = []
    streams = {}
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
        except (StopIteration, AttributeError):
            continue
        if table is None:
            continue
        key = _key_of(table, op)
        if key is None:
            continue
        current = table.get_item(*key)
        items.append((table, key, copy.deepcopy(current) if current is not None else None))
        if table.stream_shard is not None and table.name not in streams:
            streams[table.name] = (table.stream_shard, len(table.stream_shard.items))
    return items, streams


def _restore(items, streams):
    for table, (hash_value, range_value), old in reversed(items):
        if range_value is not None:
            if old is None:
                table.items[hash_value].pop(range_value, None)
                if not table.items[hash_value]:
                    table.items.pop(hash_value, None)
            else:
                table.items[hash_value][range_value] = old
        elif old is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = old
    for shard, length in streams.values():
        del shard.items[length:]


def _locked(method):
    def run(self, *args, **kwargs):
        with _WRITES:
            return method(self, *args, **kwargs)

    run.__name__ = method.__name__
    return run


def _patch():
    models.copy = _TablesAreNotCopied()
    transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        with _WRITES:
            items, streams = _snapshot(self, transact_items)
            try:
                return transact(self, transact_items)
            except Exception:
                _restore(items, streams)
                raise

    DynamoDBBackend.transact_write_items = transact_write_items
    for name in ("put_item", "update_item", "delete_item"):
        setattr(DynamoDBBackend, name, _locked(getattr(DynamoDBBackend, name)))


if __name__ == "__main__":
    if os.environ.get("STREAMFOLD_MOTO_TXN") == "items":
        _patch()
    from moto.server import main

    sys.exit(main())
