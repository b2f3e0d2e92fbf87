"""Which class of a module is the Durable Object, and its RPC surface from its type hints:
int → s64, float → f64, str → string, bool, bytes → list<u8>, list[T], tuple[A, B],
``T | None`` / ``Optional[T]`` → option<T>; a parameter with a default is optional. A public
method whose types are missing or have no WIT form is no typed function — callers still reach it
by name (dynamic RPC) — and the build says why.
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


def _desc(node, where):
    if node is None:
        raise Untyped(f"{where} has no type hint")
    if isinstance(node, ast.Constant) and node.value is None:
        return {"k": "unit"}
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _desc(ast.parse(node.value, mode="eval").body, where)
    if isinstance(node, ast.Name):
        if node.id in SCALARS:
            return dict(SCALARS[node.id])
        raise Untyped(f"{where} is `{node.id}`, which has no WIT form")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [node.left, node.right]
        nones = [p for p in parts if isinstance(p, ast.Constant) and p.value is None]
        if len(nones) == 1:
            other = parts[0] if parts[1] in nones else parts[1]
            return {"k": "option", "of": _desc(other, where)}
        raise Untyped(f"{where} is a union, which has no WIT form (only `T | None`)")
    if isinstance(node, ast.Subscript):
        base = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base in ("list", "List") and len(args) == 1:
            return {"k": "list", "of": _desc(args[0], where)}
        if base in ("tuple", "Tuple") and args and not any(isinstance(a, ast.Constant) and a.value is Ellipsis for a in args):
            return {"k": "tuple", "of": [_desc(a, where) for a in args]}
        if base == "Optional" and len(args) == 1:
            return {"k": "option", "of": _desc(args[0], where)}
        raise Untyped(f"{where} is `{ast.unparse(node)}`, which has no WIT form")
    raise Untyped(f"{where} is `{ast.unparse(node)}`, which has no WIT form")


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
    raise ValueError(k)


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


def analyse(source, path, class_name=None):
    """The class's surface: ``{"class_name", "interface", "methods": [...], "skipped": [...]}``."""
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
                methods.append(_method(node, class_name))
            except Untyped as why:
                skipped.append({"name": node.name, "why": str(why)})
    methods.sort(key=lambda m: m["wit"])
    return {"class_name": class_name, "interface": kebab(class_name), "methods": methods, "skipped": skipped}


def _method(node, class_name):
    args = node.args
    if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        raise Untyped(f"{class_name}.{node.name} takes *args, **kwargs or keyword-only parameters")
    params = args.args[1:]
    defaults = [None] * (len(params) - len(args.defaults)) + list(args.defaults)
    out = []
    for p, default in zip(params, defaults):
        d = _desc(p.annotation, f"parameter `{p.arg}` of {class_name}.{node.name}")
        if default is not None:
            # optional for callers; absent, the default applies
            d = {"k": "option", "of": d, "default": True} if d["k"] != "option" else {**d, "default": True}
        out.append({"name": p.arg, "wit": kebab(p.arg), "desc": d})
    result = _desc(node.returns, f"the result of {class_name}.{node.name}")
    return {"name": node.name, "wit": kebab(node.name), "params": out, "result": result}
