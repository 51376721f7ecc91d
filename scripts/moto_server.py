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

Idempotency tokens (on unless STREAMFOLD_MOTO_TOKENS=off): moto accepts a
TransactWriteItems ClientRequestToken and forgets it. This launcher gives it
DynamoDB's meaning, per account and region:

- the first successful call with a token records its parameters (the whole
  request but the token) and the time;
- the same token with identical parameters within the window returns the
  first call's answer *without applying anything*;
- the same token with other parameters within the window fails with
  IdempotentParameterMismatchException (HTTP 400);
- while a call with the token is still running, another one fails with
  TransactionInProgressException (HTTP 400);
- a failed call records nothing; after the window the token is new again.

STREAMFOLD_MOTO_TOKEN_WINDOW_S sets the window (600 seconds, DynamoDB's 10
minutes, by default; tests set it short instead of waiting).

Anything else is moto as pinned. With STREAMFOLD_MOTO_TXN unset and
STREAMFOLD_MOTO_TOKENS=off this is plain moto_server.
"""

import collections
import copy
import hashlib
import json
import os
import sys
import threading
import time

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


# ---- idempotency tokens ------------------------------------------------------

TOKEN_WINDOW_S = 600.0


class IdempotentParameterMismatch(Exception):
    """The token was used, within the window, with other parameters."""


class TransactionInProgress(Exception):
    """A call with the token is still running."""


class TokenRegistry:
    """DynamoDB's ClientRequestToken semantics for TransactWriteItems.

    `run(scope, token, params, apply)` calls `apply()` at most once per token
    and window: per (scope, token) it keeps the parameters and the answer of
    the first successful call and the time it finished. `clock` and
    `window_s` are there for tests.
    """

    def __init__(self, window_s=TOKEN_WINDOW_S, clock=time.monotonic):
        self.window_s = float(window_s)
        self.clock = clock
        self._lock = threading.Lock()
        self._done = {}  # (scope, token) -> (digest of params, answer, finished at)
        self._order = collections.deque()  # (finished at, key), oldest first
        self._running = set()  # (scope, token)

    def run(self, scope, token, params, apply):
        key = (scope, token)
        params = hashlib.sha256(params.encode()).digest()
        with self._lock:
            self._expire()
            if key in self._running:
                raise TransactionInProgress(
                    "A transaction with the given request token is already in progress."
                )
            done = self._done.get(key)
            if done is not None:
                if done[0] == params:
                    return done[1]
                raise IdempotentParameterMismatch(
                    "The request uses the same client token as a previous, but non-identical request."
                )
            self._running.add(key)
        try:
            answer = apply()
        except BaseException:
            with self._lock:
                self._running.discard(key)
            raise
        with self._lock:
            self._running.discard(key)
            at = self.clock()
            self._done[key] = (params, answer, at)
            self._order.append((at, key))
        return answer

    def _expire(self):
        now = self.clock()
        while self._order and now - self._order[0][0] >= self.window_s:
            at, key = self._order.popleft()
            done = self._done.get(key)
            if done is not None and done[2] == at:
                del self._done[key]

    def __len__(self):
        with self._lock:
            self._expire()
            return len(self._done)


def canonical_parameters(body):
    """The request's parameters but the token, in one canonical text (the
    SDK may send a map's entries in any order)."""
    rest = {k: v for k, v in body.items() if k != "ClientRequestToken"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"))


def _patch_tokens(registry):
    from moto.dynamodb.exceptions import DynamodbException, ERROR_TYPE_PREFIX
    from moto.dynamodb.responses import DynamoHandler

    def error(name, message):
        return DynamodbException(ERROR_TYPE_PREFIX + name, message)

    transact = DynamoHandler.transact_write_items

    def transact_write_items(self):
        body = self.body if isinstance(self.body, dict) else {}
        token = body.get("ClientRequestToken")
        if not token:
            return transact(self)
        scope = (getattr(self, "current_account", ""), getattr(self, "region", ""))
        try:
            return registry.run(scope, token, canonical_parameters(body), lambda: transact(self))
        except IdempotentParameterMismatch as e:
            raise error("IdempotentParameterMismatchException", str(e)) from None
        except TransactionInProgress as e:
            raise error("TransactionInProgressException", str(e)) from None

    DynamoHandler.transact_write_items = transact_write_items


def tokens_enforced():
    return os.environ.get("STREAMFOLD_MOTO_TOKENS", "on").lower() not in ("off", "0", "no", "false")


def token_window_s():
    raw = os.environ.get("STREAMFOLD_MOTO_TOKEN_WINDOW_S", "")
    try:
        return float(raw) if raw else TOKEN_WINDOW_S
    except ValueError:
        sys.exit(f"STREAMFOLD_MOTO_TOKEN_WINDOW_S={raw!r} is not a number of seconds")


if __name__ == "__main__":
    if os.environ.get("STREAMFOLD_MOTO_TXN") == "items":
        _patch()
    if tokens_enforced():
        _patch_tokens(TokenRegistry(window_s=token_window_s()))
    from moto.server import main

    sys.exit(main())
