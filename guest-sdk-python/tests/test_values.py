"""The storage encoding, byte for byte what the JavaScript SDK writes (guest-sdk-js/runtime/values.js)."""

import datetime
import math
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "wasmdo_py" / "runtime"))

from wasmdo_runtime.values import DataCloneError, JsError, deserialize, serialize  # noqa: E402


class ValuesTest(unittest.TestCase):
    def test_json_values_are_their_json_text(self):
        self.assertEqual(serialize({"a": [1, "two", None, True, 1.5]}), b'{"a":[1,"two",null,true,1.5]}')
        self.assertEqual(serialize("é"), '"é"'.encode())
        self.assertEqual(deserialize(b'{"a":[1]}'), {"a": [1]})

    def test_other_values_are_tagged_as_javascript_tags_them(self):
        self.assertEqual(serialize(b"\x01\x02"), b'\x01["t","Uint8Array","AQI="]')
        self.assertEqual(serialize(2**64), b'\x01["i","18446744073709551616"]')
        self.assertEqual(serialize(math.nan), b'\x01["n","NaN"]')
        self.assertEqual(serialize((1, 2)), b'\x01["a",[1,2]]')
        self.assertEqual(serialize({1: "a"}), b'\x01["m",[[1,"a"]]]')
        when = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        self.assertEqual(serialize(when), b'\x01["d",1577836800000]')

    def test_values_round_trip(self):
        for value in [None, 0, -1.25, "x", [1, [2, {"k": b"v"}]], {"big": -(2**70)}, {1, 2}, {(1, 2): "t"}]:
            self.assertEqual(deserialize(serialize(value)), value)
        self.assertTrue(math.copysign(1, deserialize(serialize(-0.0))) < 0)

    def test_what_javascript_writes_reads_back(self):
        # undefined, a Date, a Set, an ArrayBuffer, an Error, a boxed value
        self.assertIsNone(deserialize(b'\x01["u"]'))
        self.assertEqual(deserialize(b'\x01["d",0]'), datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc))
        self.assertEqual(deserialize(b'\x01["s",["a"]]'), {"a"})
        self.assertEqual(deserialize(b'\x01["b","AQI="]'), b"\x01\x02")
        error = deserialize(b'\x01["e","RangeError","nope"]')
        self.assertIsInstance(error, JsError)
        self.assertEqual((error.name, error.message), ("RangeError", "nope"))
        self.assertEqual(deserialize(b'\x01["x",["i","5"]]'), 5)

    def test_what_cannot_be_stored_is_refused(self):
        with self.assertRaises(DataCloneError):
            serialize(object())
        cycle = []
        cycle.append(cycle)
        with self.assertRaises(DataCloneError):
            serialize(cycle)


if __name__ == "__main__":
    unittest.main()
