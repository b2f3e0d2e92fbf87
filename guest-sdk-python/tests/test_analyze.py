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


TYPES = '''
from dataclasses import dataclass
from enum import Enum
from typing import Literal, TypedDict
from workers import DurableObject

class Color(Enum):
    RED = "red"
    DARK_GREEN = "green"
    BLUE = 3

@dataclass
class Point:
    x: int
    label: str | None = None

class Box(TypedDict):
    corner: Point
    color: Color

@dataclass
class Node:
    next: "Node | None"

class Shapes(DurableObject):
    async def f(self, p: Point, b: Box, mode: Literal["fast", "slow"]) -> list[Point]:
        return [p]
    async def g(self, again: Literal["fast", "slow"]) -> Literal["a", "b-c"]:
        return "a"
    async def linked(self, n: Node) -> None:
        pass
'''


class RecordsAndEnums(unittest.TestCase):
    def setUp(self):
        self.surface = analyse(TYPES, "shapes.py")
        self.wit = wit_world(self.surface)

    def test_dataclasses_typeddicts_enums_and_literals_are_declared_once(self):
        for line in [
            "record %point { %x: s64, %label: option<string> }",
            "enum %color { %red, %green, %blue }",
            "record %box { %corner: %point, %color: %color }",
            "enum %f-mode { %fast, %slow }",
            "enum %g-result { %a, %b-c }",
            "%f: func(%p: %point, %b: %box, %mode: %f-mode) -> result<list<%point>, py-error>;",
            "%g: func(%again: %f-mode) -> result<%g-result, py-error>;",
        ]:
            self.assertIn(line, self.wit)
        self.assertEqual(self.wit.count("record %point"), 1)

    def test_a_record_containing_itself_is_reached_by_name(self):
        skipped = {s["name"]: s["why"] for s in self.surface["skipped"]}
        self.assertIn("contains itself", skipped["linked"])

    def test_descriptors_name_the_module_classes(self):
        f = next(m for m in self.surface["methods"] if m["name"] == "f")
        box = f["params"][1]["desc"]
        self.assertEqual((box["k"], box["py"], box["dict"]), ("record", "Box", True))
        color = box["fields"][1]["desc"]
        self.assertEqual([c["py"] for c in color["cases"]], ["RED", "DARK_GREEN", "BLUE"])


UNSUPPORTED = """from workers import DurableObject

class Shop(DurableObject):
    async def totals(self, by_item: dict[str, int]) -> int:
        return 1

    async def tags(self) -> set[str]:
        return set()

    async def thing(self, x: object) -> int:
        return 1
"""


class BuildErrors(unittest.TestCase):
    def test_an_unsupported_annotation_says_where_and_what_to_write(self):
        skipped = {s["name"]: s for s in analyse(UNSUPPORTED, "shop.py")["skipped"]}
        self.assertEqual(skipped["totals"]["line"], 4)
        self.assertIn("`dict[str, int]`", skipped["totals"]["why"])
        self.assertIn("write a dataclass or TypedDict of the class's module, or list[tuple[K, V]] instead", skipped["totals"]["why"])
        self.assertIn("write list[T] instead", skipped["tags"]["why"])
        self.assertIn("write int, float, str", skipped["thing"]["why"])

    def test_strict_makes_every_untyped_method_an_error_with_its_line(self):
        with self.assertRaises(AnalysisError) as e:
            analyse(UNSUPPORTED, "shop.py", strict=True)
        message = str(e.exception)
        self.assertIn("shop.py:4: Shop.totals has no typed RPC form", message)
        self.assertIn("shop.py:7: Shop.tags", message)
        self.assertIn("build without --strict", message)

    def test_the_command_reports_a_syntax_error_with_file_and_line(self):
        import contextlib
        import io
        import tempfile
        from pathlib import Path

        from wasmdo_py.cli import main

        with tempfile.TemporaryDirectory() as d:
            bad = Path(d) / "bad.py"
            bad.write_text("from workers import DurableObject\n\nclass A(DurableObject)\n    pass\n")
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = main(["build", str(bad), "-o", str(Path(d) / "out.wasm")])
            self.assertEqual(status, 1)
            self.assertIn(f"{bad}:3: expected ':'", err.getvalue())
            self.assertFalse((Path(d) / "out.wasm").exists())


if __name__ == "__main__":
    unittest.main()
