"""Unit tests of scripts/moto_server.py: idempotency-token enforcement and
consumed capacity.

Run from the repository root: `.venv/bin/python -m unittest discover -s scripts
-p 'test_moto_server.py'` (scripts/test does). The registry is tested alone
with a clock the test moves, the capacity rules as pure functions against the
worked examples of the DynamoDB Developer Guide (each test names its page),
then both end to end: moto's server with the patches, in this process, on a
free loopback port, driven with real DynamoDB JSON requests.
"""

import json
import os
import sys
import threading
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moto_server  # noqa: E402
from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: E402
from moto_server import (  # noqa: E402
    EVENTUAL,
    STRONG,
    TRANSACTIONAL,
    Consumed,
    IdempotentParameterMismatch,
    IndexSpec,
    TokenRegistry,
    TransactionInProgress,
    batch_read_units,
    canonical_parameters,
    index_entry,
    index_write_units,
    item_size,
    item_view,
    number_size,
    query_read_units,
    read_units,
    table_write_units,
    value_size,
    write_units,
)

SIZES_PAGE = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html"
UNITS_PAGE = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html"
GSI_PAGE = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html"
TXN_PAGE = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class RegistryTest(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.registry = TokenRegistry(window_s=600, clock=self.clock)
        self.applied = []

    def apply(self, answer):
        def run():
            self.applied.append(answer)
            return answer

        return run

    def test_same_token_same_parameters_is_answered_without_applying(self):
        self.assertEqual(self.registry.run("s", "t", "p", self.apply("a1")), "a1")
        self.clock.now += 599
        self.assertEqual(self.registry.run("s", "t", "p", self.apply("a2")), "a1")
        self.assertEqual(self.applied, ["a1"])

    def test_same_token_other_parameters_is_a_mismatch(self):
        self.registry.run("s", "t", "p", self.apply("a1"))
        with self.assertRaises(IdempotentParameterMismatch):
            self.registry.run("s", "t", "q", self.apply("a2"))
        self.assertEqual(self.applied, ["a1"])

    def test_after_the_window_the_token_is_new(self):
        self.registry.run("s", "t", "p", self.apply("a1"))
        self.clock.now += 600
        self.assertEqual(self.registry.run("s", "t", "q", self.apply("a2")), "a2")
        self.assertEqual(self.applied, ["a1", "a2"])
        self.assertEqual(len(self.registry), 1)

    def test_a_failed_call_records_nothing(self):
        def fail():
            raise ValueError("cancelled")

        with self.assertRaises(ValueError):
            self.registry.run("s", "t", "p", fail)
        self.assertEqual(self.registry.run("s", "t", "q", self.apply("a")), "a")

    def test_tokens_are_per_scope(self):
        self.registry.run("account-1", "t", "p", self.apply("a1"))
        self.assertEqual(self.registry.run("account-2", "t", "q", self.apply("a2")), "a2")

    def test_a_running_call_makes_the_next_one_wait_in_vain(self):
        started, release = threading.Event(), threading.Event()

        def slow():
            started.set()
            release.wait(5)
            return "slow"

        result = {}
        first = threading.Thread(target=lambda: result.update(a=self.registry.run("s", "t", "p", slow)))
        first.start()
        self.assertTrue(started.wait(5))
        with self.assertRaises(TransactionInProgress):
            self.registry.run("s", "t", "p", self.apply("second"))
        release.set()
        first.join(5)
        self.assertEqual(result["a"], "slow")
        self.assertEqual(self.registry.run("s", "t", "p", self.apply("third")), "slow")
        self.assertEqual(self.applied, [])

    def test_parameters_compare_whatever_the_order_of_map_entries(self):
        a = {"ClientRequestToken": "x", "TransactItems": [{"Put": {"Item": {"a": 1, "b": 2}}}]}
        b = {"TransactItems": [{"Put": {"Item": {"b": 2, "a": 1}}}], "ClientRequestToken": "y"}
        self.assertEqual(canonical_parameters(a), canonical_parameters(b))
        c = {"TransactItems": [{"Put": {"Item": {"b": 3, "a": 1}}}]}
        self.assertNotEqual(canonical_parameters(a), canonical_parameters(c))


def call(url, op, body):
    """One DynamoDB JSON request, as the SDK sends it: (HTTP status, answer)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"DynamoDB_20120810.{op}",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


class ServerTest(unittest.TestCase):
    """moto's server, in this process on a free loopback port, after
    `patch()`; `prepare()` then creates what the tests need."""

    @classmethod
    def setUpClass(cls):
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        cls.patch()
        cls.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        cls.server.start()
        host, port = cls.server.get_host_and_port()
        cls.url = f"http://{host}:{port}/"
        cls.prepare()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    @classmethod
    def call(cls, op, body):
        return call(cls.url, op, body)


class EndToEndTest(ServerTest):
    """moto's server with the patch, spoken to as the SDK does."""

    @classmethod
    def patch(cls):
        cls.clock = Clock()
        cls.registry = TokenRegistry(window_s=600, clock=cls.clock)
        moto_server._patch_tokens(cls.registry)

    @classmethod
    def prepare(cls):
        cls.call("CreateTable", {
            "TableName": "t",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        })

    def add(self, token, pk, n):
        return self.call("TransactWriteItems", {
            "ClientRequestToken": token,
            "TransactItems": [{"Update": {
                "TableName": "t",
                "Key": {"pk": {"S": pk}},
                "UpdateExpression": "ADD n :n",
                "ExpressionAttributeValues": {":n": {"N": str(n)}},
            }}],
        })

    def n(self, pk):
        _, out = self.call("GetItem", {"TableName": "t", "Key": {"pk": {"S": pk}}, "ConsistentRead": True})
        return int(out.get("Item", {}).get("n", {}).get("N", "0"))

    def test_a_repeated_token_is_not_applied_twice(self):
        self.assertEqual(self.add("tok-a", "a", 1)[0], 200)
        self.assertEqual(self.add("tok-a", "a", 1)[0], 200)
        self.assertEqual(self.n("a"), 1)
        # Without a token every call applies.
        body = {"TransactItems": [{"Update": {
            "TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "ADD n :n",
            "ExpressionAttributeValues": {":n": {"N": "1"}},
        }}]}
        self.call("TransactWriteItems", body)
        self.call("TransactWriteItems", body)
        self.assertEqual(self.n("a"), 3)

    def test_a_mismatch_is_an_error_the_sdk_recognises(self):
        self.assertEqual(self.add("tok-b", "b", 1)[0], 200)
        status, out = self.add("tok-b", "b", 2)
        self.assertEqual(status, 400)
        self.assertTrue(out.get("__type", "").endswith("#IdempotentParameterMismatchException"), out)
        self.assertEqual(self.n("b"), 1)

    def test_the_window_ends(self):
        self.assertEqual(self.add("tok-c", "c", 1)[0], 200)
        self.clock.now += 601
        self.assertEqual(self.add("tok-c", "c", 1)[0], 200)
        self.assertEqual(self.n("c"), 2)


def padded(size, **attrs):
    """An item of exactly `size` bytes: `attrs` plus a string `p` filling the rest."""
    item = dict(attrs)
    rest = size - item_size(item) - 1  # the name "p"
    assert rest >= 0, "attrs alone exceed the size"
    item["p"] = {"S": "x" * rest}
    assert item_size(item) == size
    return item


class ItemSizeTest(unittest.TestCase):
    """Item sizes as DynamoDB computes them ("DynamoDB item sizes and
    formats", SIZES_PAGE): the sum of the UTF-8 lengths of the attribute
    names and the sizes of the values."""

    def test_strings_count_utf8_bytes_of_name_and_value(self):
        """"The size of a string is (number of UTF-8-encoded bytes of
        attribute name) + (number of UTF-8-encoded bytes)"."""
        self.assertEqual(item_size({"name": {"S": "abc"}}), 4 + 3)
        self.assertEqual(item_size({"né": {"S": "€uro"}}), 3 + 6)
        self.assertEqual(item_size({"s": {"S": ""}}), 1)

    def test_numbers_one_byte_per_two_significant_digits_plus_one(self):
        """"Leading and trailing zeroes are trimmed. The size of a number is
        approximately (...) + (1 byte per two significant digits) + (1 byte)"."""
        self.assertEqual(number_size("7"), 2)
        self.assertEqual(number_size("12"), 2)
        self.assertEqual(number_size("123"), 3)
        self.assertEqual(number_size("12345"), 4)
        self.assertEqual(number_size("1733097600000"), 5)  # 17330976: 8 digits
        self.assertEqual(number_size("000120.0500"), 4)  # 12005: 5 digits
        self.assertEqual(number_size("-0.001"), 2)
        self.assertEqual(number_size("0"), 1)
        self.assertEqual(number_size("1E+3"), 2)
        self.assertEqual(number_size("9" * 38), 20)
        self.assertEqual(item_size({"n": {"N": "42"}}), 1 + 2)

    def test_binary_counts_raw_bytes_not_base64(self):
        """"A binary value must be encoded in base64 format before it can be
        sent to DynamoDB, but the value's raw byte length is used"."""
        self.assertEqual(value_size({"B": "AAECAwQ="}), 5)
        self.assertEqual(value_size({"B": b"\x00\x01\x02"}), 3)

    def test_null_and_boolean_one_byte(self):
        """"The size of a null attribute or a Boolean attribute is (...) + (1 byte)"."""
        self.assertEqual(item_size({"ok": {"BOOL": True}, "no": {"NULL": True}}), 2 + 1 + 2 + 1)

    def test_lists_and_maps_three_bytes_plus_one_per_element(self):
        """"An attribute of type List or Map requires 3 bytes of overhead,
        regardless of its contents ... The size of an empty List or Map is
        (...) + (3 bytes)"; "Each List or Map element also requires 1 byte of
        overhead"."""
        self.assertEqual(item_size({"l": {"L": []}}), 1 + 3)
        self.assertEqual(item_size({"m": {"M": {}}}), 1 + 3)
        self.assertEqual(value_size({"L": [{"S": "ab"}, {"N": "1"}]}), 3 + (2 + 1) + (2 + 1))
        self.assertEqual(value_size({"M": {"k": {"S": "v"}, "kk": {"BOOL": False}}}), 3 + (1 + 1 + 1) + (2 + 1 + 1))
        nested = {"M": {"l": {"L": [{"M": {}}]}}}
        self.assertEqual(value_size(nested), 3 + (1 + (3 + (3 + 1)) + 1))

    def test_sets_are_the_sum_of_their_elements(self):
        """Sets: the sum of the sizes of their elements, each sized as a
        value of the set's type (names and values are all an item's size is
        made of; sets carry no list or map overhead)."""
        self.assertEqual(value_size({"SS": ["a", "bc", "déf"]}), 1 + 2 + 4)
        self.assertEqual(value_size({"NS": ["1", "22", "333"]}), 2 + 2 + 3)
        self.assertEqual(value_size({"BS": ["AA==", "AAE="]}), 1 + 2)

    def test_moto_values_size_like_their_json(self):
        from moto.dynamodb.models.dynamo_type import Item

        attrs = {
            "pk": {"S": "GRP#u"}, "n": {"N": "12345"}, "l": {"L": [{"S": "a"}]},
            "m": {"M": {"k": {"SS": ["x", "yy"]}}}, "b": {"BOOL": True},
        }
        item = Item(DynamoType({"S": "GRP#u"}), None, attrs)
        self.assertEqual(item_size(item.attrs), item_size(attrs))


class ReadUnitsTest(unittest.TestCase):
    """Read units ("DynamoDB read and write operations", UNITS_PAGE)."""

    def test_getitem_rounds_up_to_4kb(self):
        """"if you read an item that is 3.5 KB, DynamoDB rounds the item size
        to 4 KB. If you read an item of 10 KB, DynamoDB rounds the item size to
        12 KB"; strongly consistent 1 per 4 KB, eventually consistent half."""
        self.assertEqual(read_units(3584, STRONG), 1.0)
        self.assertEqual(read_units(3584, EVENTUAL), 0.5)
        self.assertEqual(read_units(10 * 1024, STRONG), 3.0)
        self.assertEqual(read_units(10 * 1024, EVENTUAL), 1.5)

    def test_an_8kb_item_by_consistency(self):
        """"if your item size is 8 KB, you require 2 read units to sustain one
        strongly consistent read. You'll require 1 read unit if you choose
        eventually consistent reads or 4 read units for a transactional read"."""
        size = 8 * 1024
        self.assertEqual(read_units(size, STRONG), 2.0)
        self.assertEqual(read_units(size, EVENTUAL), 1.0)
        self.assertEqual(read_units(size, TRANSACTIONAL), 4.0)

    def test_a_3500_byte_item_costs_as_4kb(self):
        """"reading a 3,500-byte item consumes the same throughput as reading a 4 KB item"."""
        self.assertEqual(read_units(3500, STRONG), read_units(4096, STRONG))

    def test_an_item_not_found_still_costs(self):
        """"If you perform a read operation on an item that doesn't exist,
        DynamoDB will still consume read throughput": 1 strongly, 0.5
        eventually consistent (and 2 for a transactional Get)."""
        self.assertEqual(read_units(0, STRONG), 1.0)
        self.assertEqual(read_units(0, EVENTUAL), 0.5)
        self.assertEqual(read_units(0, TRANSACTIONAL), 2.0)

    def test_batchgetitem_rounds_each_item(self):
        """"if BatchGetItem reads a 1.5 KB item and a 6.5 KB item, DynamoDB
        calculates the size as 12 KB (4 KB + 8 KB), not 8 KB"."""
        self.assertEqual(batch_read_units([1536, 6656], STRONG), 3.0)
        self.assertEqual(batch_read_units([1536, 6656], EVENTUAL), 1.5)

    def test_query_rounds_the_sum_once(self):
        """"suppose your query returns 10 items whose combined size is 40.8 KB.
        DynamoDB rounds the item size for the operation to 44 KB. If a query
        returns 1500 items of 64 bytes each, the cumulative size is 96 KB"."""
        sizes = [4178] * 9 + [40.8 * 1024 - 9 * 4178]
        self.assertEqual(query_read_units([int(s) for s in sizes], STRONG), 11.0)
        self.assertEqual(query_read_units([64] * 1500, STRONG), 24.0)  # 96 KB / 4 KB

    def test_eventually_consistent_80kb(self):
        """"For an eventually consistent read, if the total item size is 80 KB,
        the operation consumes only 10 capacity units"."""
        self.assertEqual(query_read_units([80 * 1024], EVENTUAL), 10.0)

    def test_gsi_query_example(self):
        """GSI_PAGE, "Read capacity units": 8 index items of 2000 bytes =
        16,000 bytes, rounded up to 16 KB; "Since global secondary index
        queries are eventually consistent, the total cost is 0.5 × (16 KB /
        4 KB), or 2 read capacity units"."""
        self.assertEqual(query_read_units([2000] * 8, EVENTUAL), 2.0)

    def test_transactional_reads_of_three_500_byte_items(self):
        """TXN_PAGE, "Capacity management for transactions": a read
        transaction of three 500-byte items needs six read capacity units."""
        self.assertEqual(sum(read_units(500, TRANSACTIONAL) for _ in range(3)), 6.0)


class WriteUnitsTest(unittest.TestCase):
    """Write units ("DynamoDB read and write operations", UNITS_PAGE)."""

    def test_rounds_up_to_1kb(self):
        """"if you put or delete an item of 1.6 KB, DynamoDB rounds the item
        size up to 2 KB"; "writing a 500-byte item consumes the same throughput
        as writing a 1 KB item"."""
        self.assertEqual(write_units(int(1.6 * 1024)), 2)
        self.assertEqual(write_units(500), 1)
        self.assertEqual(write_units(1024), 1)
        self.assertEqual(write_units(1025), 2)

    def test_put_and_update_take_the_larger_of_before_and_after(self):
        """PutItem: "the item size that matters is the larger of the two";
        UpdateItem: "The provisioned throughput consumed reflects the larger
        of these item sizes"; DeleteItem: "based on the size of the deleted
        item"; a new item or a delete of nothing: at least 1."""
        small, large = item_view(padded(300)), item_view(padded(2500))
        self.assertEqual(table_write_units(large, small), 3)
        self.assertEqual(table_write_units(small, large), 3)
        self.assertEqual(table_write_units(large, None), 3)
        self.assertEqual(table_write_units(None, small), 1)
        self.assertEqual(table_write_units(None, None), 1)

    def test_batchwriteitem_rounds_each_item(self):
        """"if BatchWriteItem writes a 500 byte item and a 3.5 KB item,
        DynamoDB calculates the size as 5 KB (1 KB + 4 KB), not 4 KB"."""
        self.assertEqual(
            table_write_units(None, item_view(padded(500))) + table_write_units(None, item_view(padded(3584))),
            5,
        )

    def test_transactional_writes_of_three_500_byte_items(self):
        """TXN_PAGE: "each transaction writes three 500-byte items ... Each
        item requires two write capacity units (WCUs): one to prepare the
        transaction and one to commit the transaction ... six WCUs"."""
        self.assertEqual(sum(2 * table_write_units(None, item_view(padded(500))) for _ in range(3)), 6)


GSI1 = IndexSpec("gsi1", "GSI", ("gsi1pk", "gsi1sk"), "ALL", ())
KEYS = IndexSpec("bykind", "GSI", ("kind",), "KEYS_ONLY", ())
INCL = IndexSpec("lsi", "LSI", ("pk", "at"), "INCLUDE", ("title",))
TABLE_KEYS = ("pk", "sk")


def view(attrs):
    return item_view(attrs, (GSI1, KEYS, INCL), TABLE_KEYS)


class IndexWriteUnitsTest(unittest.TestCase):
    """GSI_PAGE, "Write capacity units" (the same rules hold for local
    secondary indexes): each bullet of the page is one test."""

    base = {"pk": {"S": "P"}, "sk": {"S": "S"}}

    def test_a_new_entry_is_one_write(self):
        """"If you write a new item to the table that defines an indexed
        attribute, or you update an existing item to define a previously
        undefined indexed attribute, one write operation is required to put
        the item into the index"."""
        item = dict(self.base, gsi1pk={"S": "a"}, gsi1sk={"S": "1"})
        self.assertEqual(index_write_units(None, view(item), GSI1), 1)
        self.assertEqual(index_write_units(view(self.base), view(item), GSI1), 1)

    def test_a_changed_index_key_is_a_delete_and_a_put(self):
        """"If an update to the table changes the value of an indexed key
        attribute (from A to B), two writes are required"."""
        a = dict(self.base, gsi1pk={"S": "a"}, gsi1sk={"S": "1"})
        b = dict(a, gsi1sk={"S": "2"})
        self.assertEqual(index_write_units(view(a), view(b), GSI1), 2)

    def test_a_removed_index_attribute_is_one_write(self):
        """"If an item was present in the index, but a write to the table
        caused the indexed attribute to be deleted, one write is required to
        delete the old item projection from the index"; so is the delete of
        the item."""
        a = dict(self.base, gsi1pk={"S": "a"}, gsi1sk={"S": "1"})
        self.assertEqual(index_write_units(view(a), view(self.base), GSI1), 1)
        self.assertEqual(index_write_units(view(a), None, GSI1), 1)

    def test_an_item_never_in_the_index_costs_it_nothing(self):
        """"If an item is not present in the index before or after the item is
        updated, there is no additional write cost for the index" (the GSI
        needs both its key attributes)."""
        only_pk = dict(self.base, gsi1pk={"S": "a"})
        self.assertEqual(index_write_units(view(self.base), view(only_pk), GSI1), 0)
        self.assertEqual(index_write_units(None, view(only_pk), GSI1), 0)

    def test_changed_projected_attributes_are_one_write(self):
        """"If an update to the table only changes the value of projected
        attributes ... but does not change the value of any indexed key
        attribute, then one write is required"."""
        a = dict(self.base, gsi1pk={"S": "a"}, gsi1sk={"S": "1"}, text={"S": "hello"})
        b = dict(a, text={"S": "hello!"})
        self.assertEqual(index_write_units(view(a), view(b), GSI1), 1)

    def test_an_unprojected_change_or_an_identical_write_costs_the_index_nothing(self):
        """"if a write to a table does not require a global secondary index
        update, then no write capacity is consumed from the index"."""
        a = dict(self.base, kind={"S": "k"}, at={"S": "t"}, title={"S": "x"}, text={"S": "1"})
        b = dict(a, text={"S": "2"})
        self.assertEqual(index_write_units(view(a), view(b), KEYS), 0)
        self.assertEqual(index_write_units(view(a), view(b), INCL), 0)
        self.assertEqual(index_write_units(view(a), view(dict(a)), GSI1), 0)
        self.assertEqual(index_write_units(view(a), view(dict(a, title={"S": "y"})), INCL), 1)
        # Numbers compare by value, sets whatever their order.
        c = dict(self.base, gsi1pk={"S": "a"}, gsi1sk={"S": "1"}, n={"N": "1.50"}, s={"SS": ["x", "y"]})
        d = dict(c, n={"N": "1.5"}, s={"SS": ["y", "x"]})
        self.assertEqual(index_write_units(view(c), view(d), GSI1), 0)

    def test_larger_entries_take_more_units(self):
        """"Larger index entries will require additional write capacity
        units": each index write in 1 KB units of the entry it writes (a
        KEYS_ONLY entry is small however large the item)."""
        big = padded(2500, **self.base, gsi1pk={"S": "a"}, gsi1sk={"S": "1"}, kind={"S": "k"})
        self.assertEqual(index_write_units(None, view(big), GSI1), 3)
        self.assertEqual(index_write_units(None, view(big), KEYS), 1)
        moved = dict(big, gsi1sk={"S": "2"})
        self.assertEqual(index_write_units(view(big), view(moved), GSI1), 6)

    def test_projections(self):
        item = dict(self.base, kind={"S": "k"}, at={"S": "t"}, title={"S": "x"}, text={"S": "1"})
        self.assertEqual(set(index_entry(item, KEYS, TABLE_KEYS)), {"pk", "sk", "kind"})
        self.assertEqual(set(index_entry(item, INCL, TABLE_KEYS)), {"pk", "sk", "at", "title"})
        self.assertIsNone(index_entry(item, GSI1, TABLE_KEYS))


class ConsumedShapeTest(unittest.TestCase):
    """The ConsumedCapacity object as DynamoDB answers it
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ConsumedCapacity.html)."""

    def test_total_and_indexes(self):
        c = Consumed("t")
        c.add_table(write=2)
        c.add_index("gsi1", "GSI", write=1)
        c.add_index("lsi", "LSI", write=1)
        c.add_index("gsi2", "GSI", write=0)
        self.assertEqual(c.to_json("TOTAL"), {"TableName": "t", "CapacityUnits": 4.0})
        self.assertEqual(c.to_json("INDEXES"), {
            "TableName": "t", "CapacityUnits": 4.0, "Table": {"CapacityUnits": 2.0},
            "GlobalSecondaryIndexes": {"gsi1": {"CapacityUnits": 1.0}},
            "LocalSecondaryIndexes": {"lsi": {"CapacityUnits": 1.0}},
        })

    def test_transactions_split_read_and_write(self):
        c = Consumed("t")
        c.add_table(write=4)
        c.add_index("gsi1", "GSI", write=1)
        self.assertEqual(c.to_json("INDEXES", split=True), {
            "TableName": "t", "CapacityUnits": 5.0, "WriteCapacityUnits": 5.0,
            "Table": {"CapacityUnits": 4.0, "WriteCapacityUnits": 4.0},
            "GlobalSecondaryIndexes": {"gsi1": {"CapacityUnits": 1.0, "WriteCapacityUnits": 1.0}},
        })


class CapacityEndToEndTest(ServerTest):
    """ConsumedCapacity through moto's server with every patch, on a table
    shaped like schemas/table.json (gsi1 and gsi2 projecting ALL) plus a local
    secondary index projecting KEYS_ONLY."""

    @classmethod
    def patch(cls):
        moto_server._patch()  # as scripts/test runs it: STREAMFOLD_MOTO_TXN=items
        moto_server._patch_capacity()
        moto_server._patch_tokens(TokenRegistry(window_s=600))

    @classmethod
    def prepare(cls):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, "schemas", "table.json")) as f:
            schema = json.load(f)
        body = {k: schema[k] for k in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode")}
        body["AttributeDefinitions"] = body["AttributeDefinitions"] + [{"AttributeName": "lsk", "AttributeType": "S"}]
        body["LocalSecondaryIndexes"] = [{
            "IndexName": "lsi1",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "lsk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }]
        status, out = cls.call("CreateTable", dict(body, TableName="cap"))
        assert status == 200, out

    def ok(self, op, body):
        status, out = self.call(op, body)
        self.assertEqual(status, 200, out)
        return out

    @staticmethod
    def key(pk, sk="1"):
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def put(self, item, mode="INDEXES", **extra):
        return self.ok("PutItem", dict(TableName="cap", Item=item, ReturnConsumedCapacity=mode, **extra))

    def test_no_capacity_unless_asked(self):
        item = dict(self.key("none"), gsi1pk={"S": "g"}, gsi1sk={"S": "1"})
        self.assertNotIn("ConsumedCapacity", self.ok("PutItem", {"TableName": "cap", "Item": item}))
        self.assertNotIn("ConsumedCapacity", self.put(item, mode="NONE"))
        for op, body in (
            ("GetItem", {"Key": self.key("none")}),
            ("Query", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "none"}}}),
            ("Scan", {}),
            ("DeleteItem", {"Key": self.key("none")}),
        ):
            self.assertNotIn("ConsumedCapacity", self.ok(op, dict(body, TableName="cap")), op)
        for op, body in (
            ("BatchWriteItem", {"RequestItems": {"cap": [{"PutRequest": {"Item": self.key("none")}}]}}),
            ("BatchGetItem", {"RequestItems": {"cap": {"Keys": [self.key("none")]}}}),
            ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": "cap", "Item": self.key("none", "2")}}]}),
            ("TransactGetItems", {"TransactItems": [{"Get": {"TableName": "cap", "Key": self.key("none")}}]}),
        ):
            self.assertNotIn("ConsumedCapacity", self.ok(op, body), op)

    def test_put_update_delete_with_indexes(self):
        """A 2.5 KB item into gsi1: 3 + 3; its gsi1 key moved: 3 + 6; a
        projected attribute changed: 3 + 3; rewritten identically: 3 alone;
        moved out of gsi1 into gsi2: 3 + 3 + 3; deleted: 3 + 3."""
        item = padded(2500, **self.key("w"), gsi1pk={"S": "g"}, gsi1sk={"S": "1"})
        out = self.put(item)["ConsumedCapacity"]
        self.assertEqual(out, {"TableName": "cap", "CapacityUnits": 6.0, "Table": {"CapacityUnits": 3.0},
                               "GlobalSecondaryIndexes": {"gsi1": {"CapacityUnits": 3.0}}})
        self.assertEqual(self.put(item, mode="TOTAL")["ConsumedCapacity"], {"TableName": "cap", "CapacityUnits": 3.0})

        def update(expression, values):
            return self.ok("UpdateItem", {
                "TableName": "cap", "Key": self.key("w"), "UpdateExpression": expression,
                "ExpressionAttributeValues": values, "ReturnConsumedCapacity": "INDEXES",
            })["ConsumedCapacity"]

        out = update("SET gsi1sk = :v", {":v": {"S": "2"}})
        self.assertEqual(out["GlobalSecondaryIndexes"], {"gsi1": {"CapacityUnits": 6.0}})
        self.assertEqual(out["CapacityUnits"], 9.0)
        out = update("SET extra = :v", {":v": {"N": "1"}})
        self.assertEqual(out["GlobalSecondaryIndexes"], {"gsi1": {"CapacityUnits": 3.0}})
        out = update("SET extra = :v", {":v": {"N": "1"}})
        self.assertEqual(out, {"TableName": "cap", "CapacityUnits": 3.0, "Table": {"CapacityUnits": 3.0}})
        out = update("REMOVE gsi1pk SET gsi2pk = :a, gsi2sk = :b", {":a": {"S": "h"}, ":b": {"S": "1"}})
        self.assertEqual(out["GlobalSecondaryIndexes"], {"gsi1": {"CapacityUnits": 3.0}, "gsi2": {"CapacityUnits": 3.0}})
        out = self.ok("DeleteItem", {"TableName": "cap", "Key": self.key("w"), "ReturnConsumedCapacity": "INDEXES"})
        self.assertEqual(out["ConsumedCapacity"], {"TableName": "cap", "CapacityUnits": 6.0, "Table": {"CapacityUnits": 3.0},
                                                   "GlobalSecondaryIndexes": {"gsi2": {"CapacityUnits": 3.0}}})
        out = self.ok("DeleteItem", {"TableName": "cap", "Key": self.key("w"), "ReturnConsumedCapacity": "INDEXES"})
        self.assertEqual(out["ConsumedCapacity"]["CapacityUnits"], 1.0)

    def test_local_secondary_index(self):
        """The LSI projects KEYS_ONLY: a new entry is one small write, a change
        of an unprojected attribute none."""
        item = padded(3000, **self.key("l"), lsk={"S": "a"})
        out = self.put(item)["ConsumedCapacity"]
        self.assertEqual(out["LocalSecondaryIndexes"], {"lsi1": {"CapacityUnits": 1.0}})
        self.assertEqual(out["CapacityUnits"], 4.0)
        out = self.put(dict(item, p={"S": "y"}))["ConsumedCapacity"]
        self.assertNotIn("LocalSecondaryIndexes", out)

    def test_reads(self):
        """GetItem of a 5000-byte item: 2 units of 4 KB (1.0 eventually
        consistent, 2.0 strongly); not found: 0.5. Query reads before the
        filter: three 2000-byte items, none returned, 6000 bytes = 2 units."""
        self.put(padded(5000, **self.key("r")))
        get = {"TableName": "cap", "Key": self.key("r"), "ReturnConsumedCapacity": "INDEXES"}
        self.assertEqual(self.ok("GetItem", get)["ConsumedCapacity"],
                         {"TableName": "cap", "CapacityUnits": 1.0, "Table": {"CapacityUnits": 1.0}})
        self.assertEqual(self.ok("GetItem", dict(get, ConsistentRead=True))["ConsumedCapacity"]["CapacityUnits"], 2.0)
        self.assertEqual(self.ok("GetItem", dict(get, Key=self.key("absent")))["ConsumedCapacity"]["CapacityUnits"], 0.5)
        projected = dict(get, ProjectionExpression="pk")
        self.assertEqual(self.ok("GetItem", projected)["ConsumedCapacity"]["CapacityUnits"], 1.0)

        for sk in "123":
            self.put(padded(2000, **self.key("q", sk), gsi1pk={"S": "qq"}, gsi1sk={"S": sk}))
        query = {
            "TableName": "cap", "KeyConditionExpression": "pk = :p", "FilterExpression": "sk = :none",
            "ExpressionAttributeValues": {":p": {"S": "q"}, ":none": {"S": "none"}},
            "ReturnConsumedCapacity": "INDEXES", "ConsistentRead": True,
        }
        out = self.ok("Query", query)
        self.assertEqual(out["Count"], 0)
        self.assertEqual(out["ConsumedCapacity"], {"TableName": "cap", "CapacityUnits": 2.0, "Table": {"CapacityUnits": 2.0}})
        out = self.ok("Query", dict(query, Limit=1))
        self.assertEqual(out["ConsumedCapacity"]["CapacityUnits"], 1.0)
        unfiltered = {k: v for k, v in query.items() if k != "FilterExpression"}
        unfiltered["ExpressionAttributeValues"] = {":p": {"S": "q"}}
        out = self.ok("Query", dict(unfiltered, Select="COUNT"))
        self.assertEqual((out["Count"], out["ConsumedCapacity"]["CapacityUnits"]), (3, 2.0))
        out = self.ok("Query", dict(unfiltered, ProjectionExpression="sk"))
        self.assertEqual(out["Items"], [{"sk": {"S": sk}} for sk in "123"])
        self.assertEqual(out["ConsumedCapacity"]["CapacityUnits"], 2.0)
        out = self.ok("Scan", {"TableName": "cap", "FilterExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "q"}},
                               "ReturnConsumedCapacity": "TOTAL"})
        self.assertEqual(out["Count"], 3)
        self.assertGreaterEqual(out["ConsumedCapacity"]["CapacityUnits"], 1.0)  # every item of the table
        out = self.ok("Query", {
            "TableName": "cap", "IndexName": "gsi1", "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "qq"}}, "ReturnConsumedCapacity": "INDEXES",
        })
        self.assertEqual(out["Count"], 3)
        self.assertEqual(out["ConsumedCapacity"]["CapacityUnits"], 1.0)
        self.assertEqual(out["ConsumedCapacity"]["GlobalSecondaryIndexes"], {"gsi1": {"CapacityUnits": 1.0}})

    def test_batches(self):
        """BatchWriteItem: per table, each request rounded on its own (500
        bytes + 3.5 KB = 5); BatchGetItem: each item rounded on its own, a
        missing key still costs."""
        out = self.ok("BatchWriteItem", {"RequestItems": {"cap": [
            {"PutRequest": {"Item": padded(500, **self.key("b1"))}},
            {"PutRequest": {"Item": padded(3584, **self.key("b2"), gsi1pk={"S": "b"}, gsi1sk={"S": "2"})}},
        ]}, "ReturnConsumedCapacity": "INDEXES"})
        self.assertEqual(out["ConsumedCapacity"], [{
            "TableName": "cap", "CapacityUnits": 9.0, "Table": {"CapacityUnits": 5.0},
            "GlobalSecondaryIndexes": {"gsi1": {"CapacityUnits": 4.0}},
        }])
        out = self.ok("BatchGetItem", {"RequestItems": {"cap": {
            "Keys": [self.key("b1"), self.key("b2"), self.key("b-absent")], "ConsistentRead": True,
        }}, "ReturnConsumedCapacity": "TOTAL"})
        self.assertEqual(out["ConsumedCapacity"], [{"TableName": "cap", "CapacityUnits": 3.0}])

    def test_a_failed_write_answers_the_error_alone(self):
        """A condition not met is DynamoDB's error, with no ConsumedCapacity
        (an error carries none), and writes nothing; so is a cancelled
        transaction."""
        item = padded(1500, **self.key("f"), gsi1pk={"S": "f"}, gsi1sk={"S": "1"})
        self.put(item)
        status, out = self.call("PutItem", {
            "TableName": "cap", "Item": dict(item, p={"S": "changed"}), "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnConsumedCapacity": "INDEXES",
        })
        self.assertEqual(status, 400)
        self.assertTrue(out.get("__type", "").endswith("#ConditionalCheckFailedException"), out)
        self.assertNotIn("ConsumedCapacity", out)
        status, out = self.call("TransactWriteItems", {"TransactItems": [
            {"Put": {"TableName": "cap", "Item": dict(item, p={"S": "changed"}), "ConditionExpression": "attribute_not_exists(pk)"}},
        ], "ReturnConsumedCapacity": "INDEXES"})
        self.assertEqual(status, 400)
        self.assertTrue(out.get("__type", "").endswith("#TransactionCanceledException"), out)
        got = self.ok("GetItem", {"TableName": "cap", "Key": self.key("f"), "ConsistentRead": True})
        self.assertEqual(got["Item"]["p"], item["p"])

    def test_one_answer_per_table(self):
        """Batches and transactions over two tables answer one ConsumedCapacity per table."""
        self.ok("CreateTable", {
            "TableName": "cap2", "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST",
        })
        out = self.ok("BatchWriteItem", {"RequestItems": {
            "cap": [{"PutRequest": {"Item": self.key("two")}}],
            "cap2": [{"PutRequest": {"Item": padded(1500, id={"S": "a"})}}, {"DeleteRequest": {"Key": {"id": {"S": "b"}}}}],
        }, "ReturnConsumedCapacity": "TOTAL"})
        self.assertEqual(sorted((c["TableName"], c["CapacityUnits"]) for c in out["ConsumedCapacity"]),
                         [("cap", 1.0), ("cap2", 3.0)])
        out = self.ok("TransactWriteItems", {"TransactItems": [
            {"Put": {"TableName": "cap", "Item": self.key("two", "2")}},
            {"Put": {"TableName": "cap2", "Item": {"id": {"S": "c"}}}},
        ], "ReturnConsumedCapacity": "TOTAL"})
        self.assertEqual(sorted((c["TableName"], c["WriteCapacityUnits"]) for c in out["ConsumedCapacity"]),
                         [("cap", 2.0), ("cap2", 2.0)])

    def meter(self, method="GET"):
        request = urllib.request.Request(self.url.rstrip("/") + moto_server.METER_PATH, method=method)
        with urllib.request.urlopen(request, timeout=10) as r:
            self.assertEqual(r.headers["Content-Type"], "application/json")
            return json.loads(r.read())

    def test_the_meter_counts_everything_failed_conditional_writes_included(self):
        """GET /_streamfold/capacity: every unit consumed since the start or
        the last DELETE, asked for or not; a conditional write whose condition
        failed as DynamoDB bills it (CapacityUnitCalculations: "If the item
        exists, the number of write capacity units consumed depends on the size
        of the item ... If the item does not exist, DynamoDB will consume one
        write capacity unit")."""
        self.ok("CreateTable", {
            "TableName": "metered", "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST",
        })
        self.meter("DELETE")
        self.ok("PutItem", {"TableName": "metered", "Item": padded(2500, id={"S": "a"})})
        self.ok("GetItem", {"TableName": "metered", "Key": {"id": {"S": "a"}}, "ConsistentRead": True})
        for key in ("a", "absent"):
            status, _ = self.call("UpdateItem", {
                "TableName": "metered", "Key": {"id": {"S": key}}, "UpdateExpression": "SET v = :v",
                "ConditionExpression": "attribute_exists(nope)", "ExpressionAttributeValues": {":v": {"N": "1"}},
            })
            self.assertEqual(status, 400)
        self.put(padded(1500, **self.key("m"), gsi1pk={"S": "m"}, gsi1sk={"S": "1"}), mode="NONE")
        tables = self.meter()["tables"]
        self.assertEqual(tables["metered"], {"read": 1.0, "write": 3.0, "failed_write": 4.0, "indexes": {}})
        self.assertEqual(tables["cap"]["indexes"], {"gsi1": {"read": 0.0, "write": 2.0}})
        self.assertEqual(self.meter("DELETE"), {"tables": {}})

    def test_transactions(self):
        """Every action twice (a ConditionCheck as a write of the item it
        checks), index writes once; TransactGetItems twice per item, a miss
        included; a repeated token answers the items' read, not the write
        (TransactWriteItems, ClientRequestToken)."""
        self.put(padded(1500, **self.key("t-old"), gsi1pk={"S": "t"}, gsi1sk={"S": "1"}))
        self.put(padded(100, **self.key("t-check")))
        body = {"TransactItems": [
            {"Put": {"TableName": "cap", "Item": padded(600, **self.key("t-new"), gsi1pk={"S": "t"}, gsi1sk={"S": "2"})}},
            {"Delete": {"TableName": "cap", "Key": self.key("t-old")}},
            {"ConditionCheck": {"TableName": "cap", "Key": self.key("t-check"), "ConditionExpression": "attribute_exists(pk)"}},
            {"Update": {"TableName": "cap", "Key": self.key("t-count"), "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        ], "ReturnConsumedCapacity": "INDEXES", "ClientRequestToken": "capacity-1"}
        # Table: 2 x (1 + 2 + 1 + 1) = 10; gsi1: the new entry 1, the old one 2.
        first = self.ok("TransactWriteItems", body)["ConsumedCapacity"]
        self.assertEqual(first, [{
            "TableName": "cap", "CapacityUnits": 13.0, "WriteCapacityUnits": 13.0,
            "Table": {"CapacityUnits": 10.0, "WriteCapacityUnits": 10.0},
            "GlobalSecondaryIndexes": {"gsi1": {"CapacityUnits": 3.0, "WriteCapacityUnits": 3.0}},
        }])
        # The replay: each item read transactionally (2 per 4 KB, a missing one too).
        again = self.ok("TransactWriteItems", body)["ConsumedCapacity"]
        self.assertEqual(again, [{
            "TableName": "cap", "CapacityUnits": 8.0, "ReadCapacityUnits": 8.0,
            "Table": {"CapacityUnits": 8.0, "ReadCapacityUnits": 8.0},
        }])
        self.assertEqual(self.ok("TransactWriteItems", body)["ConsumedCapacity"], again)
        out = self.ok("TransactGetItems", {"TransactItems": [
            {"Get": {"TableName": "cap", "Key": self.key("t-new")}},
            {"Get": {"TableName": "cap", "Key": self.key("t-old")}},
        ], "ReturnConsumedCapacity": "TOTAL"})
        self.assertEqual(out["ConsumedCapacity"], [{"TableName": "cap", "CapacityUnits": 4.0, "ReadCapacityUnits": 4.0}])


if __name__ == "__main__":
    unittest.main()
