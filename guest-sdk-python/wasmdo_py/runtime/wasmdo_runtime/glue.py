"""The exports of a Python class's component — ``handler.init/fetch``, ``alarm-handler``,
``websocket-handler``, ``snapshot-handler``, ``dynamic-handler`` and one function per typed RPC
method — each converting between the host's values and the class's, and running the class's
``async`` methods to completion (storage calls finish at once, so nothing is left waiting).
"""

import urllib.parse

from componentize_py_types import Err
from wit_world.exports import dynamic_handler as host_dynamic
from wit_world.imports import dynamic as host_dynamic_types
from wit_world.imports import http_types

from wasmdo_runtime.state import DurableObjectState, env
from wasmdo_runtime.values import deserialize, serialize

# what Cloudflare never lets callers reach by RPC
HANDLERS = {"fetch", "alarm", "web_socket_message", "web_socket_close", "web_socket_error",
            "webSocketMessage", "webSocketClose", "webSocketError"}

S64 = (-(2**63), 2**63 - 1)


def run(value):
    """The result of ``value``, running it to completion if it is a coroutine."""
    if not hasattr(value, "send") or not hasattr(value, "throw"):
        return value
    try:
        value.send(None)
    except StopIteration as done:
        return done.value
    value.close()
    raise RuntimeError(
        "the method awaited something that waits (asyncio.sleep, a future…): inside an object "
        "only storage and the wasmdo API can be awaited, and they finish at once"
    )


def error_text(e):
    return f"{type(e).__name__}: {e}"


class ResultTypeError(TypeError):
    pass


def type_name(v):
    return "None" if v is None else type(v).__name__


def check(desc, v, path):
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
        return None if v is None else check(desc["of"], v, path)
    if kind == "list":
        if not isinstance(v, (list, tuple)):
            bad("a list")
        return [check(desc["of"], x, f"{path}[{i}]") for i, x in enumerate(v)]
    if kind == "tuple":
        if not isinstance(v, (list, tuple)) or len(v) != len(desc["of"]):
            bad(f"a tuple of {len(desc['of'])}")
        return tuple(check(d, x, f"{path}[{i}]") for i, (d, x) in enumerate(zip(desc["of"], v)))
    raise TypeError(f"unknown descriptor {kind}")


def rpc_callable(obj, name):
    """Whether callers may reach ``name`` by RPC: a public method of the class (or of the
    project's base classes), not a handler, not ``_private``."""
    from workers import DurableObject

    if name.startswith("_") or name in HANDLERS:
        return False
    for klass in type(obj).__mro__:
        if klass is DurableObject or klass is object:
            return False
        if name in vars(klass):
            return callable(vars(klass)[name])
    return False


class HostObject:
    """The host-facing side of the class ``cls``: ``methods`` are the typed RPC methods'
    descriptors by WIT name, ``error`` the interface's ``py-error`` record."""

    def __init__(self, cls, methods, error):
        self.cls = cls
        self.methods = methods
        self.error = error
        self.instance = None

    def live(self):
        if self.instance is None:
            raise RuntimeError(f"the {self.cls.__name__} object was not initialised")
        return self.instance

    # handler
    def init(self):
        try:
            self.instance = self.cls(DurableObjectState(), env())
        except Exception as e:
            self.instance = None
            raise Err(f"constructing {self.cls.__name__} failed: {error_text(e)}") from None

    def fetch(self, req):
        from workers import Request, Response

        try:
            obj = self.live()
            if not hasattr(obj, "fetch"):
                raise TypeError(f"{self.cls.__name__} has no fetch() method")
            # the object sees its own path: `/objects/room/a/x?y` arrives as `<origin>/x?y`
            url = urllib.parse.urljoin(req.url, req.path + (f"?{req.query}" if req.query else ""))
            request = Request(url, req.method, list(req.headers), bytes(req.body))
            response = run(obj.fetch(request))
            if not isinstance(response, Response):
                raise TypeError(f"{self.cls.__name__}.fetch returned {type_name(response)}, not a Response")
            return http_types.Response(response.status, response.headers.items(), response.body)
        except Err:
            raise
        except Exception as e:
            raise Err(error_text(e)) from None

    def alarm(self, info):
        try:
            obj = self.live()
            if hasattr(obj, "alarm"):
                run(obj.alarm({"retry_count": info.retry_count, "is_retry": info.is_retry}))
        except Exception as e:
            raise Err(error_text(e)) from None

    # typed RPC
    def call(self, wit_name, args):
        m = self.methods[wit_name]
        try:
            obj = self.live()
            py_args = list(args)
            # let default parameters apply: drop trailing arguments that are absent
            while py_args and py_args[-1] is None and m["params"][len(py_args) - 1].get("default"):
                py_args.pop()
            result = run(getattr(obj, m["name"])(*py_args))
        except Exception as e:
            raise Err(self.error(type(e).__name__, str(e))) from None
        try:
            return check(m["result"], result, f"the result of {self.cls.__name__}.{m['name']}")
        except ResultTypeError as e:
            raise Err(self.error("TypeError", str(e))) from None

    # dynamic RPC
    def call_dynamic(self, name, args):
        def threw(e):
            return Err(host_dynamic.DynamicError_Threw(host_dynamic_types.Thrown(type(e).__name__, str(e))))

        try:
            obj = self.live()
        except Exception as e:
            raise threw(e) from None
        if not rpc_callable(obj, name):
            raise Err(host_dynamic.DynamicError_UnknownMethod(
                f"{self.cls.__name__} has no method `{name}` that callers may reach"))
        try:
            values = deserialize(args)
        except Exception as e:
            raise Err(host_dynamic.DynamicError_BadArguments(f"the arguments are not encoded values: {e}")) from None
        if not isinstance(values, list):
            raise Err(host_dynamic.DynamicError_BadArguments("the arguments must be a list of values"))
        try:
            return serialize(run(getattr(obj, name)(*values)))
        except Exception as e:
            raise threw(e) from None

    # the host-facing classes componentize-py instantiates
    def exports(self):
        host = self

        class Handler:
            def init(self):
                host.init()

            def fetch(self, request):
                return host.fetch(request)

        class AlarmHandler:
            def alarm(self, info):
                host.alarm(info)

        class WebsocketHandler:
            def websocket_message(self, socket, message):
                pass

            def websocket_close(self, socket, code, reason, was_clean):
                pass

            def websocket_error(self, socket, error):
                pass

        class SnapshotHandler:
            def snapshot(self):
                return None

            def restore(self, state):
                raise Err("this class keeps no snapshot")

        class DynamicHandler:
            def call(self, method, args):
                return host.call_dynamic(method, args)

        return Handler, AlarmHandler, WebsocketHandler, SnapshotHandler, DynamicHandler
