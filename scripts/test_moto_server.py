"""Unit tests of scripts/moto_server.py's idempotency-token enforcement.

Run from the repository root: `.venv/bin/python -m unittest discover -s scripts
-p 'test_moto_server.py'` (scripts/test does). The registry is tested alone
with a clock the test moves, then end to end: moto's server with the patch,
in this process, on a free loopback port, driven with real DynamoDB JSON
requests.
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
from moto_server import (  # noqa: E402
    IdempotentParameterMismatch,
    TokenRegistry,
    TransactionInProgress,
    canonical_parameters,
)


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


class EndToEndTest(unittest.TestCase):
    """moto's server with the patch, spoken to as the SDK does."""

    @classmethod
    def setUpClass(cls):
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        cls.clock = Clock()
        cls.registry = TokenRegistry(window_s=600, clock=cls.clock)
        moto_server._patch_tokens(cls.registry)
        cls.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        cls.server.start()
        host, port = cls.server.get_host_and_port()
        cls.url = f"http://{host}:{port}/"
        cls.call("CreateTable", {
            "TableName": "t",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        })

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    @classmethod
    def call(cls, op, body):
        request = urllib.request.Request(
            cls.url,
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


if __name__ == "__main__":
    unittest.main()
