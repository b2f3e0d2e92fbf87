"""Storage values: the bytes behind ``ctx.storage.put(key, value)``, the same encoding as the
JavaScript and Rust SDKs (guest-sdk-js/runtime/values.js), so objects of any language read
each other's data.

A value JSON holds exactly is stored as its UTF-8 JSON text. Anything else is byte 0x01
followed by a tagged JSON tree:

    None, str, bool, int within ±2**53, finite float  → themselves (JSON)
    list / tuple                                         → ["a", [items…]]
    dict with str keys                                   → ["o", {key: value…}]
    dict with other keys                                 → ["m", [[k, v]…]]
    dataclass instance                                   → as the dict of its fields
    Enum member                                          → as its value
    set / frozenset                                      → ["s", [v…]]
    int beyond ±2**53                                    → ["i", "123"] (a JS bigint)
    NaN / inf / -inf / -0.0                              → ["n", "NaN" | "Infinity" | "-Infinity" | "-0"]
    bytes / bytearray                                    → ["t", "Uint8Array", base64]
    datetime (aware or UTC)                              → ["d", epoch ms]
    JsError                                              → ["e", name, message]

Read back, JavaScript's ``undefined`` is ``None``, an ArrayBuffer or any typed array is
``bytes``, a RegExp its source text, a boxed value its inner value.
"""

import base64
import dataclasses
import datetime
import enum
import json
import math

EXTENDED = 0x01
SAFE_INTEGER = 2**53 - 1


class DataCloneError(TypeError):
    """A value the encoding cannot hold (a function, an object of a class, a cycle…)."""


class JsError(Exception):
    """An error value as JavaScript stores it: a name (``TypeError``, …) and a message."""

    def __init__(self, name, message):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def serialize(value):
    """The bytes stored for ``value``."""
    if _is_plain_json(value, set()):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return bytes([EXTENDED]) + json.dumps(_tag(value, set()), ensure_ascii=False, separators=(",", ":")).encode()


def deserialize(data):
    """The value ``serialize`` (or any SDK storing JSON) wrote."""
    data = bytes(data)
    if data[:1] == bytes([EXTENDED]):
        return _untag(json.loads(data[1:].decode()))
    return json.loads(data.decode())


def _is_plain_json(value, seen):
    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, int):
        return abs(value) <= SAFE_INTEGER
    if isinstance(value, float):
        return math.isfinite(value) and not (value == 0 and math.copysign(1, value) < 0)
    if isinstance(value, list):
        return _descend(value, seen, lambda: all(_is_plain_json(v, seen) for v in value))
    if type(value) is dict:
        return _descend(
            value,
            seen,
            lambda: all(isinstance(k, str) and _is_plain_json(v, seen) for k, v in value.items()),
        )
    return False


def _descend(value, seen, check):
    if id(value) in seen:
        raise DataCloneError("a value refers to itself (a cycle): it cannot be stored")
    seen.add(id(value))
    try:
        return check()
    finally:
        seen.discard(id(value))


def _tag(value, seen):
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if abs(value) <= SAFE_INTEGER else ["i", str(value)]
    if isinstance(value, float):
        if math.isnan(value):
            return ["n", "NaN"]
        if math.isinf(value):
            return ["n", "Infinity" if value > 0 else "-Infinity"]
        if value == 0 and math.copysign(1, value) < 0:
            return ["n", "-0"]
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ["t", "Uint8Array", base64.b64encode(bytes(value)).decode()]
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return ["d", round(value.timestamp() * 1000)]
    if isinstance(value, JsError):
        return ["e", value.name, value.message]
    if isinstance(value, (list, tuple)):
        return _descend(value, seen, lambda: ["a", [_tag(v, seen) for v in value]])
    if isinstance(value, (set, frozenset)):
        return _descend(value, seen, lambda: ["s", [_tag(v, seen) for v in value]])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # a dataclass instance is stored as the dict of its fields (read back as a dict)
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _descend(value, seen, lambda: ["o", {k: _tag(v, seen) for k, v in fields.items()}])
    if isinstance(value, enum.Enum):
        return _tag(value.value, seen)
    if type(value) is dict:
        if all(isinstance(k, str) for k in value):
            return _descend(value, seen, lambda: ["o", {k: _tag(v, seen) for k, v in value.items()}])
        return _descend(value, seen, lambda: ["m", [[_tag(k, seen), _tag(v, seen)] for k, v in value.items()]])
    raise DataCloneError(f"a {type(value).__name__} cannot be stored (store its fields as a dict)")


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, set):
        return frozenset(value)
    return value


def _untag(tree):
    if not isinstance(tree, list):
        return tree
    kind = tree[0] if tree else None
    if kind == "a":
        return [_untag(v) for v in tree[1]]
    if kind == "o":
        return {k: _untag(v) for k, v in tree[1].items()}
    if kind == "u":
        return None
    if kind == "n":
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}[tree[1]]
    if kind == "i":
        return int(tree[1])
    if kind == "d":
        if tree[1] is None:
            return None
        return datetime.datetime.fromtimestamp(tree[1] / 1000, tz=datetime.timezone.utc)
    if kind == "m":
        return {_hashable(_untag(k)): _untag(v) for k, v in tree[1]}
    if kind == "s":
        return {_hashable(_untag(v)) for v in tree[1]}
    if kind == "b":
        return base64.b64decode(tree[1])
    if kind == "t":
        return base64.b64decode(tree[2])
    if kind == "r":
        return tree[1]
    if kind == "e":
        return JsError(tree[1], tree[2])
    if kind == "x":
        return _untag(tree[1])
    raise ValueError(f"not a stored value: unknown tag {kind!r}")
