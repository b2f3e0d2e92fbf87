"""The typed values of RPC: the analysis's descriptors (see wasmdo_py/analyze.py) applied to
values crossing a call — componentize-py's WIT values to the method's own classes and back
(typed calls), plain values (dicts, strings) to the method's classes (calls by name), and a
typed stub's arguments to plain values spelled as its callee reads them.
"""

S64 = (-(2**63), 2**63 - 1)


class ResultTypeError(TypeError):
    pass


def type_name(v):
    return "None" if v is None else type(v).__name__


def _pascal(wit_name):
    return "".join(w.capitalize() for w in wit_name.split("-"))


def _snake(wit_name):
    return wit_name.replace("-", "_")


def _camel(name):
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def wit_case(value):
    """A value of a WIT variant as componentize-py gives it (``Error_NotUpgrade(…)``): its case's
    class name (``NotUpgrade``) and WIT name (``not-upgrade``)."""
    case = type(value).__name__.rpartition("_")[2]
    return case, "".join("-" + c.lower() if c.isupper() else c for c in case).lstrip("-")


class Types:
    """Where the classes behind a descriptor live: the user's (its dataclasses, TypedDicts and
    Enums, by name in the class's module) and componentize-py's (the WIT records and enums, by
    WIT name in the generated interface module)."""

    def __init__(self, user_module=None, wit_module=None):
        self.user_module = user_module
        self.wit_module = wit_module

    def user(self, desc):
        return getattr(self.user_module, desc["py"])

    def wit(self, desc):
        return getattr(self.wit_module, _pascal(desc["name"]))


def to_user(desc, v, types):
    """A typed call's argument (componentize-py's value of the WIT type) as the method's own."""
    kind = desc["k"]
    if kind == "option":
        return None if v is None else to_user(desc["of"], v, types)
    if kind == "list":
        return [to_user(desc["of"], x, types) for x in v]
    if kind == "tuple":
        return tuple(to_user(d, x, types) for d, x in zip(desc["of"], v))
    if kind == "record":
        values = {f["name"]: to_user(f["desc"], getattr(v, _snake(f["wit"])), types) for f in desc["fields"]}
        return values if desc["dict"] else types.user(desc)(**values)
    if kind == "enum":
        case = desc["cases"][v.value]
        return case["py"] if desc["py"] is None else types.user(desc)[case["py"]]
    return v


def to_plain(desc, v, spelling="wit"):
    """A typed stub's argument as the plain value its callee reads: a record as a dict keyed by
    its WIT field names (``spelling="camel"``: camelCase, for JavaScript callees), an enum
    member as its WIT case name."""
    kind = desc["k"]
    if v is None:
        return None
    if kind == "option":
        return to_plain(desc["of"], v, spelling)
    if kind == "list" and isinstance(v, (list, tuple)):
        return [to_plain(desc["of"], x, spelling) for x in v]
    if kind == "tuple" and isinstance(v, (list, tuple)):
        return [to_plain(d, x, spelling) for d, x in zip(desc["of"], v)]
    if kind == "record":
        get = v.get if isinstance(v, dict) else (lambda name: getattr(v, name, None))
        out = {}
        for f in desc["fields"]:
            key = _camel(f["name"]) if spelling == "camel" else f["wit"]
            out[key] = to_plain(f["desc"], get(f["name"]), spelling)
        return out
    if kind == "enum":
        for case in desc["cases"]:
            if v == case["py"] or getattr(v, "name", None) == case["py"] or v == case["wit"]:
                return case["wit"]
        raise TypeError(f"{v!r} is not one of {', '.join(repr(c['wit']) for c in desc['cases'])}")
    return v


def from_plain(desc, v, path, types):
    """An argument of a call by name (a plain value: dicts, strings…) as the typed method's own:
    a record from a dict keyed by its field names (Python's, WIT's or camelCase), an enum from
    its value or case name; everything else as it is."""
    kind = desc["k"]
    if kind == "option":
        return None if v is None else from_plain(desc["of"], v, path, types)
    if kind == "bytes" and isinstance(v, list):
        return bytes(v)
    if kind == "list" and isinstance(v, (list, tuple)):
        return [from_plain(desc["of"], x, f"{path}[{i}]", types) for i, x in enumerate(v)]
    if kind == "tuple" and isinstance(v, (list, tuple)):
        return tuple(from_plain(d, x, f"{path}[{i}]", types) for i, (d, x) in enumerate(zip(desc["of"], v)))
    if kind == "record":
        if not desc["dict"] and isinstance(v, types.user(desc)):
            return v
        if not isinstance(v, dict):
            raise TypeError(f"{path} is {type_name(v)}, but the signature says {desc['py']} (a dict of its fields)")
        values = {}
        for f in desc["fields"]:
            key = next((k for k in (f["name"], f["wit"], _camel(f["name"])) if k in v), None)
            if key is None and f["desc"]["k"] != "option":
                raise TypeError(f"{path} has no field `{f['name']}`")
            values[f["name"]] = None if key is None else from_plain(f["desc"], v[key], f"{path}.{f['name']}", types)
        return values if desc["dict"] else types.user(desc)(**values)
    if kind == "enum":
        for case in desc["cases"]:
            if v in (case["py"], case["wit"]) or (desc["py"] is not None and v == types.user(desc)[case["py"]].value):
                return case["py"] if desc["py"] is None else types.user(desc)[case["py"]]
            if desc["py"] is not None and v is types.user(desc)[case["py"]]:
                return v
        raise TypeError(f"{path} is {v!r}, not one of {', '.join(repr(c['py']) for c in desc['cases'])}")
    return v


def check(desc, v, path, types=None):
    """``v`` as the WIT value of ``desc`` (the analysis's descriptor), or ResultTypeError."""
    kind = desc["k"]

    def bad(expected):
        raise ResultTypeError(f"{path} is {type_name(v)}, but the signature says {expected}")

    if kind == "unit":
        return None
    if kind == "s64":
        if isinstance(v, bool) or not isinstance(v, int) or not S64[0] <= v <= S64[1]:
            bad("int (a 64-bit integer)")
        return v
    if kind == "f64":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            bad("float")
        return float(v)
    if kind == "string":
        return v if isinstance(v, str) else bad("str")
    if kind == "bool":
        return v if isinstance(v, bool) else bad("bool")
    if kind == "bytes":
        return bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else bad("bytes")
    if kind == "option":
        return None if v is None else check(desc["of"], v, path, types)
    if kind == "list":
        if not isinstance(v, (list, tuple)):
            bad("a list")
        return [check(desc["of"], x, f"{path}[{i}]", types) for i, x in enumerate(v)]
    if kind == "tuple":
        if not isinstance(v, (list, tuple)) or len(v) != len(desc["of"]):
            bad(f"a tuple of {len(desc['of'])}")
        return tuple(check(d, x, f"{path}[{i}]", types) for i, (d, x) in enumerate(zip(desc["of"], v)))
    if kind == "record":
        if desc["dict"] or isinstance(v, dict):
            if not isinstance(v, dict):
                bad(f"{desc['py']} (a dict)")
            get = v.get
        elif isinstance(v, types.user(desc)):
            def get(name):
                return getattr(v, name)
        else:
            bad(desc["py"])
        fields = {}
        for f in desc["fields"]:
            value = get(f["name"])
            if value is None and f["desc"]["k"] != "option":
                bad(f"{desc['py']} with a field `{f['name']}`")
            fields[_snake(f["wit"])] = check(f["desc"], value, f"{path}.{f['name']}", types)
        return types.wit(desc)(**fields)
    if kind == "enum":
        for i, case in enumerate(desc["cases"]):
            if (v == case["py"]) if desc["py"] is None else (v is types.user(desc)[case["py"]]):
                return types.wit(desc)(i)
        bad(" or ".join(repr(c["py"]) for c in desc["cases"]) if desc["py"] is None else f"a member of {desc['py']}")
    raise TypeError(f"unknown descriptor {kind}")
