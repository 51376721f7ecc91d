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

Consumed capacity (on unless STREAMFOLD_MOTO_CAPACITY=off): moto answers a
constant or nothing. This launcher answers ConsumedCapacity on every
data-plane call that asks for it (ReturnConsumedCapacity TOTAL or INDEXES;
NONE or absent: no field, as DynamoDB) by DynamoDB's documented rules:

- item size: UTF-8 lengths of attribute names plus value sizes (strings in
  UTF-8 bytes, numbers 1 byte per two significant digits + 1, binary raw
  bytes, null and boolean 1, lists and maps 3 + 1 per element, sets the sum
  of their elements);
- PutItem, UpdateItem, DeleteItem and each BatchWriteItem request: 1 write
  unit per KB of the larger of the item before and after, at least 1;
  TransactWriteItems: twice that per action, a ConditionCheck as a write of
  the item it checks; a repeated ClientRequestToken answers the transactional
  read of its items instead;
- each secondary index whose entry changes: 1 write per KB of the entry put
  or removed, two when its key changes, one when only projected attributes
  do, nothing when the entry stays as it was (reported per index under
  GlobalSecondaryIndexes / LocalSecondaryIndexes with INDEXES);
- GetItem and BatchGetItem per item, Query and Scan for the sum of the items
  read (before any filter, whatever the projection) per request: 4 KB
  units, 0.5 eventually consistent, 1 strongly, 2 transactional
  (TransactGetItems); a miss costs one unit; a Query or Scan on an index is
  charged to the index.

A request that fails (a condition not met, a cancelled transaction) answers
no capacity, as DynamoDB does. GET /_streamfold/capacity answers every unit
consumed since start, per table and index, asked for or not, with what
DynamoDB bills for failed conditional writes (`failed_write`); DELETE on it
resets. The rules and their sources are in the section "consumed capacity"
below and in docs/testing.md ("The local endpoint's consumed capacity").

Anything else is moto as pinned. With STREAMFOLD_MOTO_TXN unset,
STREAMFOLD_MOTO_TOKENS=off and STREAMFOLD_MOTO_CAPACITY=off this is plain
moto_server.
"""

import base64
import binascii
import collections
import copy
import decimal
import functools
import hashlib
import inspect
import json
import os
import sys
import threading
import time

from moto.core.responses import ActionResult
from moto.dynamodb import models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication


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


# ---- consumed capacity -------------------------------------------------------
#
# DynamoDB's documented rules, as pure functions of DynamoDB JSON attribute
# values (moto's DynamoType values are read the same way), then the handler
# wrappers that answer ConsumedCapacity with them.
#
# Item sizes: "Item sizes and formats",
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
# Units: "Read and write operations",
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html
# Indexes: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes
# Transactions: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096

EVENTUAL = "eventual"
STRONG = "strong"
TRANSACTIONAL = "transactional"
_READ_FACTOR = {EVENTUAL: 0.5, STRONG: 1.0, TRANSACTIONAL: 2.0}


def _type_and_value(av):
    """(type, value) of a DynamoDB JSON attribute value or a moto DynamoType."""
    if isinstance(av, DynamoType):
        return av.type, av.value
    if isinstance(av, dict) and len(av) == 1:
        return next(iter(av.items()))
    raise ValueError("not an attribute value")


def utf8_size(text):
    if isinstance(text, (bytes, bytearray)):
        return len(text)
    return len(str(text).encode("utf-8"))


def number_size(text):
    """1 byte per two significant digits, plus 1 byte; leading and trailing
    zeroes are trimmed (a number has up to 38 significant digits)."""
    try:
        digits = decimal.Decimal(str(text).strip()).as_tuple().digits
    except (decimal.InvalidOperation, ValueError):
        return utf8_size(text)
    significant = "".join(str(d) for d in digits).strip("0")
    return (len(significant) + 1) // 2 + 1


def binary_size(value):
    """The raw byte length; the wire carries base64, which is decoded first."""
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return utf8_size(value)


def value_size(av):
    """The size of an attribute value without its name."""
    kind, value = _type_and_value(av)
    if kind == "S":
        return utf8_size(value)
    if kind == "N":
        return number_size(value)
    if kind == "B":
        return binary_size(value)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        # 3 bytes for the list, 1 byte per element.
        return 3 + sum(value_size(v) + 1 for v in value)
    if kind == "M":
        # 3 bytes for the map, per entry its name, its value and 1 byte.
        return 3 + sum(utf8_size(k) + value_size(v) + 1 for k, v in value.items())
    if kind == "SS":
        return sum(utf8_size(v) for v in value)
    if kind == "NS":
        return sum(number_size(v) for v in value)
    if kind == "BS":
        return sum(binary_size(v) for v in value)
    return utf8_size(json.dumps(value, default=str))


def item_size(attrs):
    """The sum of the lengths of the attribute names and values."""
    return sum(utf8_size(name) + value_size(av) for name, av in attrs.items())


def write_units(size):
    """1 write unit per 1 KB, rounded up, at least 1."""
    return max(1, -(-int(size) // WRITE_UNIT_BYTES))


def read_units(size, consistency=EVENTUAL):
    """4 KB units, rounded up, at least one (an item not found still costs
    one): 0.5 each eventually consistent, 1 strongly consistent, 2
    transactional."""
    return max(1, -(-int(size) // READ_UNIT_BYTES)) * _READ_FACTOR[consistency]


def query_read_units(sizes, consistency=EVENTUAL):
    """Query and Scan: the items read (before any filter, whatever is
    projected) are summed and rounded up to 4 KB once per request."""
    return read_units(sum(sizes), consistency)


def batch_read_units(sizes, consistency=EVENTUAL):
    """BatchGetItem: each item rounded up to 4 KB on its own, then summed."""
    return sum(read_units(s, consistency) for s in sizes)


def _canonical(av):
    """A comparable form of an attribute value (number spelling and set order
    do not matter)."""
    kind, value = _type_and_value(av)
    if kind == "N":
        try:
            return kind, str(decimal.Decimal(str(value)).normalize())
        except (decimal.InvalidOperation, ValueError):
            return kind, str(value)
    if kind == "B":
        return kind, binary_size(value), str(value)
    if kind in ("SS", "BS"):
        return kind, tuple(sorted(str(v) for v in value))
    if kind == "NS":
        return kind, tuple(sorted(_canonical({"N": v})[1] for v in value))
    if kind == "L":
        return kind, tuple(_canonical(v) for v in value)
    if kind == "M":
        return kind, tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    return kind, str(value)


IndexSpec = collections.namedtuple("IndexSpec", "name kind keys projection non_key")
"""A secondary index as capacity sees it: kind "GSI" or "LSI", its key
attribute names, its ProjectionType and NonKeyAttributes."""


def index_spec(raw, kind):
    """An IndexSpec from a CreateTable/DescribeTable index description."""
    projection = raw.get("Projection") or {}
    return IndexSpec(
        raw["IndexName"],
        kind,
        tuple(k["AttributeName"] for k in raw["KeySchema"]),
        projection.get("ProjectionType", "ALL"),
        tuple(projection.get("NonKeyAttributes", ())),
    )


def index_entry(attrs, spec, table_keys):
    """The item as the index stores it, or None when it is not in the index
    (an item lacking one of the index's key attributes is not)."""
    if attrs is None or any(k not in attrs for k in spec.keys):
        return None
    if spec.projection == "ALL":
        return dict(attrs)
    names = set(table_keys) | set(spec.keys)
    if spec.projection == "INCLUDE":
        names |= set(spec.non_key)
    return {n: av for n, av in attrs.items() if n in names}


View = collections.namedtuple("View", "size entries")
"""What billing needs of one stored item: its size, and per index name
(index keys, whole entry, entry size) or None."""


def item_view(attrs, specs=(), table_keys=()):
    """The View of an item (attribute name -> value), None for no item."""
    if attrs is None:
        return None
    canonical = {n: _canonical(av) for n, av in attrs.items()}
    size = item_size(attrs)
    everything = None  # the whole item, shared by every ALL index
    entries = {}
    for spec in specs:
        entry = index_entry(attrs, spec, table_keys)
        if entry is None:
            entries[spec.name] = None
            continue
        keys = tuple(canonical[k] for k in spec.keys)
        if spec.projection == "ALL":
            if everything is None:
                everything = tuple(sorted(canonical.items()))
            entries[spec.name] = (keys, everything, size)
        else:
            entries[spec.name] = (keys, tuple(sorted((n, canonical[n]) for n in entry)), item_size(entry))
    return View(size, entries)


def table_write_units(before, after):
    """PutItem, UpdateItem, DeleteItem and each BatchWriteItem request: the
    larger of the item before and after, in 1 KB units, at least 1 (a delete
    of nothing, a put of a new item)."""
    sizes = [v.size for v in (before, after) if v is not None]
    return write_units(max(sizes, default=0))


def index_write_units(before, after, spec):
    """The writes one secondary index takes for a change of one item:
    a new entry: 1 write of the entry; a removed entry: 1 write of the old
    entry; an entry whose index key changed: a delete and a put; an entry
    whose projected attributes changed: 1 write of the larger; no change (or
    never in the index): nothing. Each write in 1 KB units of its entry."""
    old = before.entries.get(spec.name) if before is not None else None
    new = after.entries.get(spec.name) if after is not None else None
    if old is None and new is None:
        return 0
    if old is None:
        return write_units(new[2])
    if new is None:
        return write_units(old[2])
    if old[0] != new[0]:
        return write_units(old[2]) + write_units(new[2])
    if old[1] == new[1]:
        return 0
    return write_units(max(old[2], new[2]))


class Consumed:
    """The capacity one request consumed on one table and its indexes, shaped
    as DynamoDB answers it."""

    def __init__(self, table_name):
        self.table_name = table_name
        self.table = [0.0, 0.0]  # read, write
        self.indexes = {}  # name -> [kind, read, write]

    def add_table(self, read=0.0, write=0.0):
        self.table[0] += read
        self.table[1] += write

    def add_index(self, spec_or_name, kind, read=0.0, write=0.0):
        name = getattr(spec_or_name, "name", spec_or_name)
        arm = self.indexes.setdefault(name, [kind, 0.0, 0.0])
        arm[1] += read
        arm[2] += write

    def totals(self):
        read = self.table[0] + sum(a[1] for a in self.indexes.values())
        write = self.table[1] + sum(a[2] for a in self.indexes.values())
        return read, write

    def to_json(self, mode, split=False):
        """TOTAL: TableName and CapacityUnits; INDEXES adds Table and, per
        index that consumed anything, GlobalSecondaryIndexes or
        LocalSecondaryIndexes. `split` (transactions) adds
        ReadCapacityUnits/WriteCapacityUnits to each part, as DynamoDB does
        there."""

        def part(read, write):
            out = {"CapacityUnits": float(read + write)}
            if split:
                if read:
                    out["ReadCapacityUnits"] = float(read)
                if write:
                    out["WriteCapacityUnits"] = float(write)
            return out

        read, write = self.totals()
        out = {"TableName": self.table_name}
        out.update(part(read, write))
        if mode == "INDEXES":
            out["Table"] = part(self.table[0], self.table[1])
            for kind, key in (("GSI", "GlobalSecondaryIndexes"), ("LSI", "LocalSecondaryIndexes")):
                arms = {
                    name: part(r, w)
                    for name, (k, r, w) in self.indexes.items()
                    if k == kind and (r or w)
                }
                if arms:
                    out[key] = arms
        return out


def capacity_mode(body):
    mode = body.get("ReturnConsumedCapacity") if isinstance(body, dict) else None
    return mode if mode in ("TOTAL", "INDEXES") else None


# ---- consumed capacity: moto's handler -----------------------------------------

_LOCAL = threading.local()


def _specs(table):
    specs = []
    for kind, indexes in (("GSI", table.global_indexes), ("LSI", table.indexes)):
        for index in indexes or ():
            projection = index.projection or {}
            specs.append(IndexSpec(
                index.name,
                kind,
                tuple(index.schema_key_attrs),
                projection.get("ProjectionType", "ALL"),
                tuple(projection.get("NonKeyAttributes", ())),
            ))
    return specs


class _Target:
    """One item a request writes or reads, resolved before moto runs."""

    def __init__(self, backend, table_name, op):
        self.table_name = table_name
        self.table = backend.tables.get(table_name)
        self.key = _key_of(self.table, op) if self.table is not None else None
        self.specs = _specs(self.table) if self.table is not None else []

    def attrs(self):
        if self.key is None:
            return None
        try:
            item = self.table.get_item(*self.key)
        except Exception:
            return None
        return item.attrs if item is not None else None

    def view(self):
        return item_view(self.attrs(), self.specs, self.table.table_key_attrs if self.table is not None else ())

    def size(self):
        attrs = self.attrs()
        return item_size(attrs) if attrs is not None else 0


class CapacityMeter:
    """Every unit the endpoint consumed since it started (or was reset), per
    table and index, read and write, whether or not the requests asked for
    ConsumedCapacity; `failed_write` counts what DynamoDB bills for a
    conditional write whose condition failed, which no answer can report.
    GET /_streamfold/capacity answers `snapshot()`, DELETE resets it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tables = {}

    def _table(self, name):
        return self._tables.setdefault(name, {"read": 0.0, "write": 0.0, "failed_write": 0.0, "indexes": {}})

    def add(self, consumed):
        with self._lock:
            table = self._table(consumed.table_name)
            table["read"] += consumed.table[0]
            table["write"] += consumed.table[1]
            for name, (_, read, write) in consumed.indexes.items():
                if read or write:
                    arm = table["indexes"].setdefault(name, {"read": 0.0, "write": 0.0})
                    arm["read"] += read
                    arm["write"] += write

    def add_failed_write(self, table_name, units):
        with self._lock:
            self._table(table_name)["failed_write"] += units

    def snapshot(self):
        with self._lock:
            return {"tables": copy.deepcopy(self._tables)}

    def reset(self):
        with self._lock:
            self._tables.clear()


METER = CapacityMeter()
METER_PATH = "/_streamfold/capacity"


def _answer(result, consumed, body, shape):
    """Meter what was consumed, then answer it as the request asked: `shape`
    "one" object (single-item operations), a "list" per table (batches), or a
    list with read and write "split" (transactions); nothing unless asked."""
    for c in consumed:
        METER.add(c)
    mode = capacity_mode(body)
    out = getattr(result, "result", None)
    if not isinstance(out, dict):
        return result
    out.pop("ConsumedCapacityUnits", None)
    if mode is None:
        out.pop("ConsumedCapacity", None)
    elif shape == "one":
        out["ConsumedCapacity"] = consumed[0].to_json(mode)
    else:
        out["ConsumedCapacity"] = [c.to_json(mode, split=shape == "split") for c in consumed]
    return result


def _per_table(pairs, charge):
    """Consumed per table, in the order tables first appear: `charge(consumed,
    *rest)` for each (table name, *rest) of `pairs`."""
    per_table = {}
    for table_name, *rest in pairs:
        charge(per_table.setdefault(table_name, Consumed(table_name)), *rest)
    return list(per_table.values())


def _charge_write(consumed, target, before, after, _action=None, factor=1):
    consumed.add_table(write=factor * table_write_units(before, after))
    for spec in target.specs:
        units = index_write_units(before, after, spec)
        if units:
            consumed.add_index(spec, spec.kind, write=units)


def _writes(targets_of, charge=_charge_write, shape="list"):
    """A write handler: the items `targets_of(handler)` names, as (action,
    target), are viewed before and after moto runs (under the write lock),
    and each change charged by `charge(consumed, target, before, after,
    action)` to its table. A single-item write whose condition failed is
    metered as DynamoDB bills it: the existing item's size, at least 1
    (CapacityUnitCalculations: "If the expression evaluates to false, DynamoDB
    still consumes write capacity units from the table")."""
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    def wrap(original):
        @functools.wraps(original)
        def run(self):
            with _WRITES:
                targets = targets_of(self)
                before = [t.view() for _, t in targets]
                try:
                    result = original(self)
                except ConditionalCheckFailed:
                    if shape == "one" and targets:
                        METER.add_failed_write(targets[0][1].table_name, table_write_units(before[0], None))
                    raise
                after = [t.view() for _, t in targets]
            pairs = [(t.table_name, t, old, new, action) for (action, t), old, new in zip(targets, before, after)]
            return _answer(result, _per_table(pairs, charge), self.body, shape)

        return run

    return wrap


def _single_target(handler):
    return [("Write", _Target(handler.dynamodb_backend, handler.body.get("TableName"), handler.body))]


def _batch_targets(handler):
    targets = []
    for table_name, entries in (handler.body.get("RequestItems") or {}).items():
        for entry in entries or ():
            op = (entry.get("PutRequest") or entry.get("DeleteRequest") or {}) if isinstance(entry, dict) else {}
            targets.append(("Write", _Target(handler.dynamodb_backend, table_name, op)))
    return targets


def _transact_targets(handler):
    targets = []
    for entry in handler.body.get("TransactItems") or ():
        try:
            action, op = next(iter(entry.items()))
        except (StopIteration, AttributeError):
            continue
        if isinstance(op, dict):
            targets.append((action, _Target(handler.dynamodb_backend, op.get("TableName"), op)))
    return targets


def _charge_transact(consumed, target, before, after, action):
    """Each action twice its single-item write (prepare and commit), a
    ConditionCheck too (billed as a write of the item it checks); index
    writes once, when the change reaches the index."""
    if action == "ConditionCheck":
        consumed.add_table(write=2 * table_write_units(before, None))
    else:
        _charge_write(consumed, target, before, after, factor=2)


_single_write = _writes(_single_target, shape="one")
_batch_write = _writes(_batch_targets)
_transact_write = _writes(_transact_targets, _charge_transact, shape="split")


def _charge_read(consumed, size, consistency):
    consumed.add_table(read=read_units(size, consistency))


def _transactional_reads(handler):
    """Per table, each item of the request's TransactItems read
    transactionally, as it is now (2 units per 4 KB, a miss included)."""
    pairs = [(t.table_name, t.size(), TRANSACTIONAL) for _, t in _transact_targets(handler)]
    return _per_table(pairs, _charge_read)


def transact_replay_capacity(handler, answer):
    """A repeated token's answer: "subsequent TransactWriteItems calls with
    the same client token return the number of read capacity units consumed
    in reading the item" (TransactWriteItems, ClientRequestToken): each item
    read transactionally. The first call's stored answer is left as it was."""
    body = answer.result if isinstance(getattr(answer, "result", None), dict) else {}
    replay = ActionResult({k: v for k, v in body.items() if k != "ConsumedCapacity"})
    return _answer(replay, _transactional_reads(handler), handler.body, "split")


def _read_after(charge, shape="list"):
    """A read handler: moto answers, then `charge(handler, answer)` gives
    what it consumed, per table."""

    def wrap(original):
        @functools.wraps(original)
        def run(self):
            result = original(self)
            return _answer(result, charge(self, result), self.body, shape)

        return run

    return wrap


def _consistency(request):
    return STRONG if request.get("ConsistentRead") else EVENTUAL


def _get_item_charge(handler, _answer):
    name = handler.body.get("TableName")
    size = _Target(handler.dynamodb_backend, name, handler.body).size()
    return _per_table([(name, size, _consistency(handler.body))], _charge_read)


def _unprocessed(result, table_name):
    body = getattr(result, "result", None)
    keys = ((body or {}).get("UnprocessedKeys") or {}).get(table_name, {}).get("Keys") or []
    return [canonical_parameters(k) for k in keys]


def _batch_get_charge(handler, answer):
    pairs = []
    for table_name, request in (handler.body.get("RequestItems") or {}).items():
        skipped = _unprocessed(answer, table_name)
        pairs.append((table_name,) + tuple(
            (_Target(handler.dynamodb_backend, table_name, {"Key": key}).size(), _consistency(request))
            for key in request.get("Keys") or ()
            if canonical_parameters(key) not in skipped
        ))

    def charge(consumed, *reads):
        for size, consistency in reads:
            _charge_read(consumed, size, consistency)

    return _per_table(pairs, charge)


_get_item = _read_after(_get_item_charge, shape="one")
_batch_get = _read_after(_batch_get_charge)
_transact_get = _read_after(lambda handler, _answer: _transactional_reads(handler), shape="split")


def _read_many(original):
    """Query and Scan: moto's table reads record the sizes of what they read
    (below); the request is charged once for their sum, to the index when it
    names one (a GSI is read eventually consistently)."""

    @functools.wraps(original)
    def run(self):
        _LOCAL.read_sizes = sizes = []
        try:
            result = original(self)
        finally:
            _LOCAL.read_sizes = None
        name = self.body.get("TableName")
        index_name = self.body.get("IndexName")
        units = query_read_units(sizes, _consistency(self.body))
        consumed = Consumed(name)
        if index_name:
            table = self.dynamodb_backend.tables.get(name)
            kinds = {s.name: s.kind for s in _specs(table)} if table is not None else {}
            consumed.add_index(index_name, kinds.get(index_name, "GSI"), read=units)
        else:
            consumed.add_table(read=units)
        return _answer(result, [consumed], self.body, "one")

    return run


def _metered(original, filter_arg, projection_arg):
    """Table.query/Table.scan, run without the filter and the projection so
    that the items read can be measured, then filtered and projected as moto
    does (filter first, then projection)."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def run(*args, **kwargs):
        sizes = getattr(_LOCAL, "read_sizes", None)
        if sizes is None:
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        arguments = bound.arguments
        condition = arguments.get(filter_arg)
        projection = arguments.get(projection_arg)
        arguments[filter_arg] = None
        arguments[projection_arg] = None
        items, scanned, last = original(*bound.args, **bound.kwargs)
        sizes.extend(item_size(i.attrs) for i in items)
        if condition is not None:
            items = [i for i in items if condition.expr(i)]
        if projection:
            items = [i.project(projection) for i in items]
        return items, scanned, last

    return run


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


_TRANSACT = {"moto": None, "capacity": None, "registry": None}


def _transact_write_items(self):
    """DynamoHandler.transact_write_items once patched: moto's (or the
    capacity wrapper around it), behind the token registry when tokens are
    enforced. Either patch may come first."""
    from moto.dynamodb.exceptions import DynamodbException, ERROR_TYPE_PREFIX

    inner = _TRANSACT["capacity"] or _TRANSACT["moto"]
    registry = _TRANSACT["registry"]
    body = self.body if isinstance(self.body, dict) else {}
    token = body.get("ClientRequestToken")
    if registry is None or not token:
        return inner(self)
    scope = (getattr(self, "current_account", ""), getattr(self, "region", ""))
    applied = []

    def apply():
        applied.append(True)
        return inner(self)

    try:
        answer = registry.run(scope, token, canonical_parameters(body), apply)
    except IdempotentParameterMismatch as e:
        raise DynamodbException(ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException", str(e)) from None
    except TransactionInProgress as e:
        raise DynamodbException(ERROR_TYPE_PREFIX + "TransactionInProgressException", str(e)) from None
    if not applied and _TRANSACT["capacity"] is not None:
        return transact_replay_capacity(self, answer)
    return answer


def _own_transact():
    from moto.dynamodb.responses import DynamoHandler

    if _TRANSACT["moto"] is None:
        _TRANSACT["moto"] = DynamoHandler.transact_write_items
        DynamoHandler.transact_write_items = _transact_write_items


def _patch_tokens(registry):
    _own_transact()
    _TRANSACT["registry"] = registry


_CAPACITY_WRAPPERS = {
    "put_item": _single_write,
    "update_item": _single_write,
    "delete_item": _single_write,
    "batch_write_item": _batch_write,
    "get_item": _get_item,
    "batch_get_item": _batch_get,
    "transact_get_items": _transact_get,
    "query": _read_many,
    "scan": _read_many,
}


def _patch_capacity():
    """Every data-plane answer carries ConsumedCapacity by DynamoDB's rules
    when the request asks for it, and none when it does not."""
    from moto.dynamodb.responses import DynamoHandler

    if _TRANSACT["capacity"] is not None:
        return
    for name, wrap in _CAPACITY_WRAPPERS.items():
        setattr(DynamoHandler, name, wrap(getattr(DynamoHandler, name)))
    Table.query = _metered(Table.query, "filter_expression", "projection_expressions")
    Table.scan = _metered(Table.scan, "filter_expression", "projection_expression")
    _own_transact()
    _TRANSACT["capacity"] = _transact_write(_TRANSACT["moto"])
    dispatch = DomainDispatcherApplication.__call__

    def call(app, environ, start_response):
        if environ.get("PATH_INFO") != METER_PATH:
            return dispatch(app, environ, start_response)
        if environ.get("REQUEST_METHOD") == "DELETE":
            METER.reset()
        body = json.dumps(METER.snapshot(), sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    DomainDispatcherApplication.__call__ = call


def capacity_enabled():
    return os.environ.get("STREAMFOLD_MOTO_CAPACITY", "on").lower() not in ("off", "0", "no", "false")


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
    if capacity_enabled():
        _patch_capacity()
    if tokens_enforced():
        _patch_tokens(TokenRegistry(window_s=token_window_s()))
    from moto.server import main

    sys.exit(main())
