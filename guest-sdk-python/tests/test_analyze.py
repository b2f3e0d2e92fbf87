"""The analysis: which class, and its RPC surface from its type hints."""

import unittest

from wasmdo_py.analyze import AnalysisError, analyse, kebab
from wasmdo_py.generate import app_module, wit_world

SOURCE = '''
from typing import Optional
from workers import DurableObject

class Base(DurableObject):
    async def shared(self, n: int) -> int:
        return n

class Shop(Base):
    async def add(self, name: str, qty: float, tags: list[str], pair: tuple[bool, str], raw: bytes) -> list[str]:
        return tags
    async def maybe(self, n: Optional[int], m: "str | None" = None) -> int | None:
        return n
    async def untyped(self, value):
        return value
    async def any_union(self, value: int | str) -> int:
        return 1
    async def fetch(self, request):
        pass
    def _helper(self) -> int:
        return 1
    async def get_many(self, by: int = 1) -> None:
        pass
'''


class AnalyseTest(unittest.TestCase):
    def test_the_surface_comes_from_the_type_hints(self):
        s = analyse(SOURCE, "shop.py")
        self.assertEqual(s["class_name"], "Shop")
        self.assertEqual(s["interface"], "shop")
        by_name = {m["wit"]: m for m in s["methods"]}
        self.assertEqual(sorted(by_name), ["add", "get-many", "maybe", "shared"])
        add = by_name["add"]
        self.assertEqual([p["desc"]["k"] for p in add["params"]], ["string", "f64", "list", "tuple", "bytes"])
        self.assertEqual(add["result"], {"k": "list", "of": {"k": "string"}})
        maybe = by_name["maybe"]
        self.assertEqual(maybe["params"][0]["desc"], {"k": "option", "of": {"k": "s64"}})
        self.assertEqual(maybe["params"][1]["desc"], {"k": "option", "of": {"k": "string"}, "default": True})
        self.assertEqual(maybe["result"], {"k": "option", "of": {"k": "s64"}})
        # a default makes a parameter optional for callers
        self.assertEqual(by_name["get-many"]["params"][0]["desc"], {"k": "option", "of": {"k": "s64"}, "default": True})
        self.assertEqual(by_name["get-many"]["result"], {"k": "unit"})
        skipped = {x["name"]: x["why"] for x in s["skipped"]}
        self.assertEqual(sorted(skipped), ["any_union", "untyped"])
        self.assertIn("has no type hint", skipped["untyped"])
        self.assertIn("union", skipped["any_union"])

    def test_the_wit_and_the_app_module(self):
        s = analyse(SOURCE, "shop.py")
        wit = wit_world(s)
        self.assertIn("package py:shop;", wit)
        self.assertIn("%add: func(%name: string, %qty: f64, %tags: list<string>, %pair: tuple<bool, string>, %raw: list<u8>) -> result<list<string>, py-error>;", wit)
        self.assertIn("%get-many: func(%by: option<s64>) -> result<_, py-error>;", wit)
        self.assertIn("// note: `untyped` is not a typed RPC method", wit)
        self.assertIn("export wasmdo:object/dynamic-handler@0.1.0;", wit)
        app = app_module(s, "shop")
        self.assertIn("import shop as _user", app)
        self.assertIn("class Shop:", app)
        self.assertIn('    def get_many(self, by):\n        return _host.call("get-many", (by, ))', app)
        compile(app, "app.py", "exec")

    def test_which_class(self):
        two = "from workers import DurableObject\nclass A(DurableObject): pass\nclass B(DurableObject): pass\n"
        with self.assertRaisesRegex(AnalysisError, "name the class with --class .*A, B"):
            analyse(two, "two.py")
        self.assertEqual(analyse(two, "two.py", "B")["class_name"], "B")
        with self.assertRaisesRegex(AnalysisError, "does not extend DurableObject"):
            analyse("class C: pass\n", "c.py", "C")
        with self.assertRaisesRegex(AnalysisError, "defines no class Nope"):
            analyse(two, "two.py", "Nope")
        with self.assertRaisesRegex(AnalysisError, "bad.py:1"):
            analyse("class (:\n", "bad.py")

    def test_names_become_wit_identifiers(self):
        self.assertEqual(kebab("get_many"), "get-many")
        self.assertEqual(kebab("RateLimiter"), "rate-limiter")
        self.assertEqual(kebab("syncCount"), "sync-count")
        self.assertEqual(kebab("_x"), "x")


if __name__ == "__main__":
    unittest.main()
