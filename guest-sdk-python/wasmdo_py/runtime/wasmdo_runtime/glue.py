"""The exports of a Python class's component — ``handler.init/fetch``, ``alarm-handler``,
``websocket-handler``, ``snapshot-handler``, ``dynamic-handler`` and one function per typed RPC
method — each converting between the host's values and the class's, and running the class's
``async`` methods to completion (storage calls finish at once, so nothing is left waiting).
"""

import logging
import sys
import urllib.parse

from componentize_py_types import Err
from wit_world.exports import dynamic_handler as host_dynamic
from wit_world.imports import dynamic as host_dynamic_types
from wit_world.imports import http_types

from wasmdo_runtime import websockets
from wasmdo_runtime.http import Request, Response
from wasmdo_runtime.object import DurableObject
from wasmdo_runtime.state import DurableObjectState, env
from wasmdo_runtime.types import ResultTypeError, Types, check, from_plain, to_user, type_name
from wasmdo_runtime.values import deserialize, serialize

# `logging` is part of every class (bundled even when the class imports it only inside a
# method): records of INFO and above go to stderr, the object's log
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

# the class's WebSocket handlers, by event: the Python name, then Cloudflare's
SOCKET_HANDLERS = {
    "message": ("web_socket_message", "webSocketMessage"),
    "close": ("web_socket_close", "webSocketClose"),
    "error": ("web_socket_error", "webSocketError"),
}

# what Cloudflare never lets callers reach by RPC
HANDLERS = {"fetch", "alarm", *(name for names in SOCKET_HANDLERS.values() for name in names)}

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


def rpc_callable(obj, name):
    """Whether callers may reach ``name`` by RPC: a public method of the class (or of the
    project's base classes), not a handler, not ``_private``."""
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

    def __init__(self, cls, methods, error, bindings=None, types=None):
        self.cls = cls
        self.methods = methods
        self.by_name = {m["name"]: m for m in methods.values()}
        self.error = error
        self.bindings = bindings or {}
        self.types = types or Types()
        self.instance = None

    def live(self):
        if self.instance is None:
            raise RuntimeError(f"the {self.cls.__name__} object was not initialised")
        return self.instance

    # handler
    def init(self):
        try:
            self.instance = self.cls(DurableObjectState(), env(self.bindings))
        except Exception as e:
            self.instance = None
            raise Err(f"constructing {self.cls.__name__} failed: {error_text(e)}") from None

    def fetch(self, req):
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

    def socket_event(self, socket, event, *args):
        """A WebSocket event: to the listeners of a socket this instance accepted with
        ``accept()``, else to the class's handler (``web_socket_message``, …)."""
        try:
            obj = self.live()
            live = websockets.listened(socket)
            if live is not None:
                if event == "close":
                    websockets.forget(socket)
                make = {"message": websockets.MessageEvent, "close": websockets.CloseEvent,
                        "error": websockets.ErrorEvent}[event]
                for listener in list(live._listeners[event]):
                    run(listener(make(*args)))
                return
            handler = next((getattr(obj, n) for n in SOCKET_HANDLERS[event] if hasattr(obj, n)), None)
            if handler is None:
                if event == "message":
                    raise TypeError(f"{self.cls.__name__} has no web_socket_message handler for the socket's messages")
                return
            run(handler(websockets.WebSocket(socket), *args))
        except Exception as e:
            raise Err(error_text(e)) from None

    # typed RPC
    def call(self, wit_name, args):
        m = self.methods[wit_name]
        try:
            obj = self.live()
            py_args = [to_user(d, a, self.types) for d, a in zip(m["params"], args)]
            # let default parameters apply: drop trailing arguments that are absent
            while py_args and py_args[-1] is None and m["params"][len(py_args) - 1].get("default"):
                py_args.pop()
            result = run(getattr(obj, m["name"])(*py_args))
        except Exception as e:
            raise Err(self.error(type(e).__name__, str(e))) from None
        try:
            return check(m["result"], result, f"the result of {self.cls.__name__}.{m['name']}", self.types)
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
        typed = self.by_name.get(name)
        if typed is not None:
            # a typed method reached by name gets its records and enums as its own classes
            try:
                values = [from_plain(d, v, f"argument {i + 1}", self.types)
                          for i, (d, v) in enumerate(zip(typed["params"], values))] + values[len(typed["params"]):]
            except Exception as e:
                raise Err(host_dynamic.DynamicError_BadArguments(str(e))) from None
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
                host.socket_event(socket, "message", websockets.received(message))

            def websocket_close(self, socket, code, reason, was_clean):
                host.socket_event(socket, "close", code, reason, was_clean)

            def websocket_error(self, socket, error):
                host.socket_event(socket, "error", websockets.WebSocketError("error", error))

        class SnapshotHandler:
            def snapshot(self):
                return None

            def restore(self, state):
                raise Err("this class keeps no snapshot")

        class DynamicHandler:
            def call(self, method, args):
                return host.call_dynamic(method, args)

        return Handler, AlarmHandler, WebsocketHandler, SnapshotHandler, DynamicHandler
