"""Calls to other objects: ``env.COUNTER`` is Cloudflare's ``DurableObjectNamespace`` for each
binding the class was built with (``wasmdo-py build --binding COUNTER``; the host maps the
binding to a class in ``wasmdo.toml``'s ``[classes.<class>] bindings``).

``env.COUNTER.get_by_name("alice")`` (or ``get(id_from_name(…))``) is a stub: ``await
stub.increment(5)`` calls the method by name (dynamic RPC) with any storable values, whatever
the callee's language — a Python or JavaScript method gets exactly what was passed and the
caller exactly what it returned; a typed method of a Rust class gets its arguments through the
JSON mapping of its WIT types. ``await stub.fetch(url_or_request)`` reaches its ``fetch``.
A typed stub module (``wasmdo bindgen <class> --lang py-stub``) wraps a stub with the callee's
signatures, records as dataclasses and enums as ``Enum``s.

What the callee raised is raised here: an exception of the callee's name (``ValueError`` stays
``ValueError`` when it is a builtin, else a ``RemoteError`` carrying ``name``), or a
``MethodError`` carrying ``value`` — a typed method's own error value. A call that could not run
raises ``CallError`` with its ``kind`` (``unknown-binding``, ``callee-failed``, …).
"""

import builtins
import json

from componentize_py_types import Err, Ok
from wit_world.imports import dynamic as host_dynamic
from wit_world.imports import http_types
from wit_world.imports import objects as host_objects

from wasmdo_runtime.http import Request, Response
from wasmdo_runtime.types import Types, from_plain, to_plain, wit_case
from wasmdo_runtime.values import deserialize, serialize


class CallError(Exception):
    """A call that did not produce the callee's result. ``kind`` is the WIT case of
    ``call-error``; ``remote`` says the callee itself failed (its writes rolled back);
    ``retryable`` that a later try may succeed."""

    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.remote = kind == "callee-failed"
        self.retryable = kind == "unavailable"


class RemoteError(Exception):
    """What the callee raised or threw, when its name is no Python builtin exception."""

    def __init__(self, name, message):
        super().__init__(message)
        self.name = name

    def __str__(self):
        return f"{self.name}: {self.args[0]}"


class MethodError(Exception):
    """A typed method's own error (its ``result``'s ``err``); ``value`` is the error value."""

    def __init__(self, value):
        super().__init__(value if isinstance(value, str) else json.dumps(value))
        self.value = value


def _call_error(e):
    _, kind = wit_case(e.value)
    detail = e.value.value
    if isinstance(detail, host_objects.Failure):
        detail = f"{detail.kind}: {detail.message}"
    return CallError(kind, detail)


def _objects(f, *args):
    try:
        return f(*args)
    except Err as e:
        raise _call_error(e) from None


def raised(name, message):
    """The exception for what a callee threw: its builtin class if it names one, else a
    ``RemoteError`` (``MethodError`` for a typed method's own error)."""
    if name == "MethodError":
        try:
            return MethodError(json.loads(message))
        except ValueError:
            return MethodError(message)
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:
            pass
    return RemoteError(name, message)


class DurableObjectId:
    """The object's id: ``str(id)`` is its hex form; ``name`` the name it was reached by, if any."""

    def __init__(self, hex_id, name=None):
        self._hex = hex_id
        self.name = name

    def __str__(self):
        return self._hex

    def __repr__(self):
        return f"DurableObjectId({self._hex!r})"

    def to_string(self):
        return self._hex

    toString = to_string

    def equals(self, other):
        return str(other) == self._hex

    def __eq__(self, other):
        return isinstance(other, DurableObjectId) and str(other) == self._hex

    def __hash__(self):
        return hash(self._hex)


class DurableObjectStub:
    """An object of the bound class. Making it activates nothing; each call is an event of the
    callee (serialized with its others, its reply released after its commit)."""

    def __init__(self, binding, hex_id=None, name=None):
        self._binding = binding
        self._hex = hex_id
        self.name = name

    @property
    def id(self):
        if self._hex is None:
            self._hex = _objects(host_objects.id_from_name, self._binding, self.name)
        return DurableObjectId(self._hex, self.name)

    def __getattr__(self, method):
        if method.startswith("__"):
            raise AttributeError(method)

        async def call(*args):
            return self._call(method, list(args))

        call.__name__ = method
        return call

    # the classes a typed stub's descriptors name (its module's)
    _types = Types()

    def _typed(self, method, args, params, result, error, spelling):
        """A typed stub's call (``wasmdo bindgen --lang py-stub``): the arguments as the callee
        reads them (``spelling``: records keyed by WIT names, or camelCase for JavaScript), the
        result — and a typed method's own error, raised as ``MethodError`` — as the stub's
        classes."""
        plain = [to_plain(d, a, spelling) for d, a in zip(params, args)]
        # absent trailing options are left out, so the callee's defaults apply
        while plain and plain[-1] is None and params[len(plain) - 1]["k"] == "option":
            plain.pop()
        try:
            value = self._call(method, plain)
        except MethodError as e:
            if error is not None:
                e.value = from_plain(error, e.value, f"the error of {method}", self._types)
            raise
        return from_plain(result, value, f"the result of {method}", self._types)

    def _call(self, method, args):
        outcome = _objects(host_dynamic.call, self._binding, str(self.id), method, serialize(args))
        if isinstance(outcome, Ok):
            return deserialize(outcome.value)
        if isinstance(outcome, Err):
            outcome = outcome.value
        raise raised(outcome.name, outcome.message)

    async def fetch(self, request, method="GET", headers=None, body=None):
        """The callee's ``fetch``: a ``Request``, or a URL (its path is what the callee sees)."""
        if not isinstance(request, Request):
            request = Request(str(request), method, headers, body)
        url = request.url
        rest = url.split("://", 1)[-1]
        path_query = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        path, _, query = path_query.partition("?")
        record = http_types.Request(request.method, url, path, query.split("#")[0], request.headers.items(), await request.bytes())
        response = _objects(host_objects.fetch, self._binding, str(self.id), record)
        return Response(bytes(response.body), status=response.status, headers=list(response.headers))


class DurableObjectNamespace:
    """``env.BINDING``."""

    def __init__(self, binding, stub_class=DurableObjectStub):
        self._binding = binding
        self._stub_class = stub_class

    def id_from_name(self, name):
        return DurableObjectId(_objects(host_objects.id_from_name, self._binding, str(name)), str(name))

    def new_unique_id(self):
        return DurableObjectId(_objects(host_objects.new_unique_id, self._binding))

    def id_from_string(self, hex_id):
        return DurableObjectId(_objects(host_objects.id_from_string, self._binding, str(hex_id)))

    def get(self, object_id):
        name = object_id.name if isinstance(object_id, DurableObjectId) else None
        # check the id now, as Cloudflare's `get` does
        hex_id = _objects(host_objects.id_from_string, self._binding, str(object_id))
        return self._stub_class(self._binding, hex_id, name)

    def get_by_name(self, name):
        return self._stub_class(self._binding, None, str(name))

    idFromName, newUniqueId, idFromString, getByName = id_from_name, new_unique_id, id_from_string, get_by_name
