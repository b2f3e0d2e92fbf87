"""Which class of a module is the Durable Object, and its RPC surface from its type hints:
int → s64, float → f64, str → string, bool, bytes → list<u8>, list[T], tuple[A, B],
``T | None`` / ``Optional[T]`` → option<T>, a dataclass or TypedDict of the module → record,
an Enum of the module (its cases: the members' string values, else their names) or
``Literal["a", "b"]`` → enum; a parameter with a default is optional.
A public method whose types are missing or have no WIT form is no typed function — callers still
reach it by name (dynamic RPC) — and the build says why.

Descriptors (the analysis's output, read by the generated app module at run time):
``{"k": "s64"|"f64"|"string"|"bool"|"bytes"|"unit"}``, ``{"k": "option"|"list", "of": d}``,
``{"k": "tuple", "of": [d…]}``, ``{"k": "record", "name": wit, "py": class, "dict": bool,
"fields": [{"name", "wit", "desc"}…]}``, ``{"k": "enum", "name": wit, "py": class or None,
"cases": [{"wit", "py"}…]}`` (``py``: the member's name, or the Literal's string).
"""

import ast
import re

HANDLERS = {"fetch", "alarm", "web_socket_message", "web_socket_close", "web_socket_error",
            "webSocketMessage", "webSocketClose", "webSocketError"}

SCALARS = {"int": {"k": "s64"}, "float": {"k": "f64"}, "str": {"k": "string"},
           "bool": {"k": "bool"}, "bytes": {"k": "bytes"}}


class AnalysisError(Exception):
    pass


class Untyped(Exception):
    """A type with no WIT form: the method is reached by name only."""


def kebab(name):
    """A Python name as a WIT identifier: ``get_many`` → ``get-many``, ``RateLimiter`` →
    ``rate-limiter``."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", name).replace("_", "-").lower()
    words = re.sub(r"-+", "-", words).strip("-")
    if not words or not words[0].isalpha():
        words = "x-" + words
    return words


class Types:
    """The module's dataclasses, TypedDicts and Enums, and the WIT types made of them so far."""

    def __init__(self, tree):
        self.nodes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self.made = {}  # wit name → descriptor
        self.making = set()

    def record_or_enum(self, name, where):
        node = self.nodes.get(name)
        if node is None:
            return None
        bases = _bases(node)
        if any(b in ("Enum", "StrEnum", "IntEnum") for b in bases):
            cases = []
            for item in node.body:
                if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
                    member = item.targets[0].id
                    # a member is its string value on the wire (what storage and calls by name
                    # carry), else its name
                    value = item.value.value if isinstance(item.value, ast.Constant) and isinstance(item.value.value, str) else member
                    cases.append({"wit": kebab(value), "py": member})
            if len({c["wit"] for c in cases}) != len(cases):
                raise Untyped(f"{where} is the Enum `{name}`, whose values are not distinct as WIT names")
            if not cases:
                raise Untyped(f"{where} is the Enum `{name}`, which has no members")
            return self.add({"k": "enum", "name": kebab(name), "py": name, "cases": cases}, where)
        typed_dict = "TypedDict" in bases
        if not typed_dict and not any(_decorator_name(d) == "dataclass" for d in node.decorator_list):
            return None
        if name in self.making:
            raise Untyped(f"{where} is `{name}`, which contains itself: WIT records cannot")
        self.making.add(name)
        fields = []
        try:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    if ast.unparse(item.annotation).startswith(("ClassVar", "typing.ClassVar")):
                        continue
                    field = item.target.id
                    fields.append({"name": field, "wit": kebab(field),
                                   "desc": _desc(item.annotation, f"field `{field}` of {name}", self,
                                                 f"{kebab(name)}-{kebab(field)}")})
        finally:
            self.making.discard(name)
        if not fields:
            raise Untyped(f"{where} is `{name}`, which has no fields (a WIT record needs one)")
        return self.add({"k": "record", "name": kebab(name), "py": name, "dict": typed_dict, "fields": fields}, where)

    def literal(self, values, where, hint):
        if not values or not all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values):
            raise Untyped(f"{where} is a Literal of other than strings, which has no WIT form (Literal[\"a\", \"b\"] is an enum)")
        cases = [{"wit": kebab(v.value), "py": v.value} for v in values]
        if len({c["wit"] for c in cases}) != len(cases):
            raise Untyped(f"{where}: the Literal's strings are not distinct as WIT names")
        # the same Literal everywhere is one WIT enum, named where it is first used
        for made in self.made.values():
            if made["k"] == "enum" and made["py"] is None and made["cases"] == cases:
                return made
        return self.add({"k": "enum", "name": hint, "py": None, "cases": cases}, where)

    def add(self, desc, where):
        have = self.made.get(desc["name"])
        if have is not None and have != desc:
            raise Untyped(f"{where}: two different types would both be the WIT type `{desc['name']}`")
        self.made[desc["name"]] = desc
        return desc


def _decorator_name(node):
    node = node.func if isinstance(node, ast.Call) else node
    return node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)


def _desc(node, where, types, hint="value"):
    if node is None:
        raise Untyped(f"{where} has no type hint")
    if isinstance(node, ast.Constant) and node.value is None:
        return {"k": "unit"}
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _desc(ast.parse(node.value, mode="eval").body, where, types, hint)
    if isinstance(node, ast.Name):
        if node.id in SCALARS:
            return dict(SCALARS[node.id])
        made = types.record_or_enum(node.id, where)
        if made is not None:
            return made
        if node.id in _INSTEAD:
            raise Untyped(f"{where} is `{node.id}`, which has no WIT form{_instead(node.id)}")
        raise Untyped(f"{where} is `{node.id}`, which has no WIT form: write int, float, str, bool, bytes, "
                      "list/tuple/Optional of them, or a dataclass, TypedDict or Enum of the class's module")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [node.left, node.right]
        nones = [p for p in parts if isinstance(p, ast.Constant) and p.value is None]
        if len(nones) == 1:
            other = parts[0] if parts[1] in nones else parts[1]
            return {"k": "option", "of": _desc(other, where, types, hint)}
        raise Untyped(f"{where} is a union, which has no WIT form (only `T | None`)")
    if isinstance(node, ast.Subscript):
        base = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base in ("list", "List") and len(args) == 1:
            return {"k": "list", "of": _desc(args[0], where, types, hint)}
        if base in ("tuple", "Tuple") and args and not any(isinstance(a, ast.Constant) and a.value is Ellipsis for a in args):
            return {"k": "tuple", "of": [_desc(a, where, types, hint) for a in args]}
        if base == "Optional" and len(args) == 1:
            return {"k": "option", "of": _desc(args[0], where, types, hint)}
        if base == "Literal":
            return types.literal(args, where, hint)
        raise Untyped(f"{where} is `{ast.unparse(node)}`, which has no WIT form{_instead(base)}")
    raise Untyped(f"{where} is `{ast.unparse(node)}`, which has no WIT form")


# what to write instead of a type that has no WIT form
_INSTEAD = {
    "dict": "a dataclass or TypedDict of the class's module, or list[tuple[K, V]]",
    "Dict": "a dataclass or TypedDict of the class's module, or list[tuple[K, V]]",
    "Mapping": "a dataclass or TypedDict of the class's module, or list[tuple[K, V]]",
    "set": "list[T]",
    "frozenset": "list[T]",
    "Set": "list[T]",
    "Union": "T | None, or a dataclass with optional fields",
    "Sequence": "list[T]",
    "Iterable": "list[T]",
}


def _instead(base):
    return f": write {_INSTEAD[base]} instead" if base in _INSTEAD else ""


def _wit(desc):
    k = desc["k"]
    if k == "s64":
        return "s64"
    if k == "f64":
        return "f64"
    if k == "string":
        return "string"
    if k == "bool":
        return "bool"
    if k == "bytes":
        return "list<u8>"
    if k == "option":
        return f"option<{_wit(desc['of'])}>"
    if k == "list":
        return f"list<{_wit(desc['of'])}>"
    if k == "tuple":
        return f"tuple<{', '.join(_wit(d) for d in desc['of'])}>"
    if k in ("record", "enum"):
        return f"%{desc['name']}"
    raise ValueError(k)


def wit_definition(desc):
    """The WIT declaration of a record or enum descriptor."""
    if desc["k"] == "record":
        fields = ", ".join(f"%{f['wit']}: {_wit(f['desc'])}" for f in desc["fields"])
        return f"record %{desc['name']} {{ {fields} }}"
    return f"enum %{desc['name']} {{ {', '.join('%' + c['wit'] for c in desc['cases'])} }}"


def wit_type(desc):
    return _wit(desc)


def _bases(cls):
    return [b.id if isinstance(b, ast.Name) else getattr(b, "attr", None) for b in cls.bases]


def _is_durable_object(name, classes, seen=()):
    if name == "DurableObject":
        return True
    cls = classes.get(name)
    if cls is None or name in seen:
        return False
    return any(_is_durable_object(b, classes, seen + (name,)) for b in _bases(cls) if b)


def analyse(source, path, class_name=None, strict=False):
    """The class's surface: ``{"class_name", "interface", "methods": [...], "skipped": [...],
    "types": [...]}``. ``strict``: a public method without a typed form is an error, not a
    method reached by name only."""
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise AnalysisError(f"{path}:{e.lineno}: {e.msg}") from None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    durable = [n for n in classes if _is_durable_object(n, classes) and n != "DurableObject"]
    if class_name is None:
        # the classes no other durable class of the module extends
        leaves = [n for n in durable if not any(n in _bases(classes[o]) for o in durable)]
        if len(leaves) != 1:
            found = ", ".join(leaves) or "none"
            raise AnalysisError(
                f"{path}: name the class with --class (Durable Object classes found: {found}); "
                "a Durable Object class extends `workers.DurableObject`"
            )
        class_name = leaves[0]
    if class_name not in classes:
        raise AnalysisError(f"{path} defines no class {class_name}")
    if class_name not in durable:
        raise AnalysisError(f"{path}: {class_name} does not extend DurableObject (`from workers import DurableObject`)")

    types = Types(tree)
    methods, skipped, seen = [], [], set()
    chain, name = [], class_name
    while name in classes and name not in chain:
        chain.append(name)
        name = next((b for b in _bases(classes[name]) if b in classes), None)
    for cname in chain:
        for node in classes[cname].body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if node.name in seen or node.name.startswith("_") or node.name in HANDLERS:
                continue
            seen.add(node.name)
            try:
                methods.append(_method(node, class_name, types))
            except Untyped as why:
                skipped.append({"name": node.name, "why": str(why), "line": node.lineno})
    if strict and skipped:
        raise AnalysisError("\n".join(
            f"{path}:{s['line']}: {class_name}.{s['name']} has no typed RPC form ({s['why']}); "
            "type it, or build without --strict to let callers reach it by name"
            for s in skipped))
    methods.sort(key=lambda m: m["wit"])
    interface = kebab(class_name)
    # only the types of the methods kept (a skipped method may have made some)
    used = {}
    for m in methods:
        for d in [p["desc"] for p in m["params"]] + [m["result"]]:
            _collect(d, used)
    for name in used:
        if name in (interface, "py-error"):
            raise AnalysisError(f"{path}: the type `{name}` has the name of the class's interface or of its error record; rename it")
    return {"class_name": class_name, "interface": interface, "methods": methods, "skipped": skipped,
            "types": list(used.values())}


def _collect(desc, into):
    """The records and enums inside ``desc``, each after the ones it contains."""
    k = desc["k"]
    if k in ("option", "list"):
        _collect(desc["of"], into)
    elif k == "tuple":
        for d in desc["of"]:
            _collect(d, into)
    elif k == "record":
        for f in desc["fields"]:
            _collect(f["desc"], into)
    if k in ("record", "enum"):
        into.setdefault(desc["name"], desc)


def _method(node, class_name, types):
    args = node.args
    if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        raise Untyped(f"{class_name}.{node.name} takes *args, **kwargs or keyword-only parameters")
    params = args.args[1:]
    defaults = [None] * (len(params) - len(args.defaults)) + list(args.defaults)
    out = []
    for p, default in zip(params, defaults):
        d = _desc(p.annotation, f"parameter `{p.arg}` of {class_name}.{node.name}", types,
                  f"{kebab(node.name)}-{kebab(p.arg)}")
        if default is not None:
            # optional for callers; absent, the default applies
            d = {"k": "option", "of": d, "default": True} if d["k"] != "option" else {**d, "default": True}
        out.append({"name": p.arg, "wit": kebab(p.arg), "desc": d})
    result = _desc(node.returns, f"the result of {class_name}.{node.name}", types, f"{kebab(node.name)}-result")
    return {"name": node.name, "wit": kebab(node.name), "params": out, "result": result}
