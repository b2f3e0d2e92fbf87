"""WebSockets in Cloudflare's Python shape, over the host's ``websockets`` interface.

The hibernatable API: ``fetch`` makes a ``WebSocketPair``, accepts its server end with
``self.ctx.accept_websocket(server, tags)`` and answers ``Response(None, status=101,
web_socket=client)``; messages, closes and errors then arrive at the class's
``web_socket_message(ws, message)`` / ``web_socket_close(ws, code, reason, was_clean)`` /
``web_socket_error(ws, error)`` (Cloudflare's camelCase names work too), even after the object
hibernated. The host holds the sockets: a ``WebSocket`` is only its id, so two objects for the
same socket are equal, and one kept across hibernation (in a snapshot, say) stays usable.

The standard API — ``server.accept()`` and ``add_event_listener("message", fn)`` — keeps the
socket with the instance instead: the object neither hibernates nor is evicted for being idle
while it is open, and the socket is closed (1001) if the instance goes.
"""

from componentize_py_types import Err
from wit_world.imports import websockets as host

from wasmdo_runtime.types import wit_case
from wasmdo_runtime.values import deserialize, serialize

_EVENTS = ("message", "close", "error")


class WebSocketError(Exception):
    """A WebSocket call the host refused; ``code`` is the WIT error case (``unknown-socket``, …)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _messages(case, value):
    return {
        "NotUpgrade": lambda: f"no WebSocket upgrade to accept: {value}",
        "UnknownSocket": lambda: f"the WebSocket {value} is closed or unknown",
        "TooManySockets": lambda: f"the object holds the maximum of {value} WebSockets",
        "InvalidTags": lambda: f"invalid tags: {value}",
        "AttachmentTooLarge": lambda: f"the attachment is over the {value}-byte limit",
        "MessageTooLarge": lambda: f"the message is over the {value}-byte limit",
        "InvalidClose": lambda: f"invalid close: {value}",
    }.get(case, lambda: f"{case}: {value}")()


def _call(f, *args):
    try:
        return f(*args)
    except Err as e:
        case, code = wit_case(e.value)
        raise WebSocketError(code, _messages(case, getattr(e.value, "value", None))) from None


# the in-memory sockets of this instance (the standard API), by id, with their listeners
_live = {}


class WebSocket:
    """One end of a WebSocket. The server end is the object's once accepted; the client end only
    goes into the 101 ``Response``."""

    READY_STATE_CONNECTING, READY_STATE_OPEN, READY_STATE_CLOSING, READY_STATE_CLOSED = 0, 1, 2, 3

    def __init__(self, socket_id=None, role="server"):
        self._id = socket_id
        self._role = role
        self._listeners = {event: [] for event in _EVENTS}

    def __repr__(self):
        return f"WebSocket({self._id if self._id is not None else 'not accepted'})"

    def __eq__(self, other):
        return isinstance(other, WebSocket) and self._id is not None and other._id == self._id

    def __hash__(self):
        return hash(("ws", self._id))

    def _socket(self):
        if self._id is None:
            what = "the client end of a WebSocketPair belongs in the 101 Response" if self._role == "client" else "accept it first (ctx.accept_websocket(ws) or ws.accept())"
            raise WebSocketError("unknown-socket", f"this WebSocket is not connected: {what}")
        return self._id

    # sending and closing
    def send(self, message):
        if isinstance(message, str):
            m = host.Message_Text(message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            m = host.Message_Binary(bytes(message))
        else:
            raise TypeError(f"a WebSocket sends str or bytes, not {type(message).__name__}")
        _call(host.send, self._socket(), m)

    def close(self, code=1000, reason=""):
        _call(host.close, self._socket(), int(code), str(reason or ""))

    # what survives hibernation with the socket
    def serialize_attachment(self, value):
        _call(host.set_attachment, self._socket(), b"" if value is None else serialize(value))

    def deserialize_attachment(self):
        raw = _call(host.attachment, self._socket())
        return None if not raw else deserialize(raw)

    serializeAttachment, deserializeAttachment = serialize_attachment, deserialize_attachment

    # the standard API
    def accept(self):
        """Accepts the upgrade ``fetch`` is handling for this instance alone (no hibernation)."""
        if self._role == "client":
            raise WebSocketError("not-upgrade", "accept() the server end of the WebSocketPair, not the client end")
        self._id = _call(host.accept_in_memory)
        _live[self._id] = self

    def add_event_listener(self, event, listener):
        if event not in _EVENTS:
            raise ValueError(f"a WebSocket has no {event!r} event (message, close or error)")
        self._listeners[event].append(listener)

    def remove_event_listener(self, event, listener):
        if listener in self._listeners.get(event, []):
            self._listeners[event].remove(listener)

    addEventListener, removeEventListener = add_event_listener, remove_event_listener


class MessageEvent:
    def __init__(self, data):
        self.data = data
        self.type = "message"


class CloseEvent:
    def __init__(self, code, reason, was_clean):
        self.code, self.reason, self.was_clean, self.wasClean = code, reason, was_clean, was_clean
        self.type = "close"


class ErrorEvent:
    def __init__(self, error):
        self.error = error
        self.message = str(error)
        self.type = "error"


def listened(socket_id):
    """The in-memory socket ``socket_id`` if this instance accepted it with ``accept()``."""
    return _live.get(socket_id)


def forget(socket_id):
    _live.pop(socket_id, None)


class WebSocketPair:
    """``client, server = WebSocketPair()``; also ``WebSocketPair.new().object_values()`` and
    ``pair[0]``/``pair[1]`` as Cloudflare's Python examples write it."""

    def __init__(self):
        self.client = WebSocket(role="client")
        self.server = WebSocket(role="server")

    @classmethod
    def new(cls):
        return cls()

    def object_values(self):
        return (self.client, self.server)

    def __iter__(self):
        return iter((self.client, self.server))

    def __getitem__(self, i):
        return (self.client, self.server)[i]


class WebSocketRequestResponsePair:
    """A request text the host answers with ``response`` without waking the object."""

    def __init__(self, request, response):
        self.request, self.response = str(request), str(response)

    @classmethod
    def new(cls, request, response):
        return cls(request, response)


def accept_websocket(ws, tags=None):
    if not isinstance(ws, WebSocket) or ws._role == "client":
        raise TypeError("accept_websocket takes the server end of a WebSocketPair")
    ws._id = _call(host.accept, [str(t) for t in (tags or [])])


def get_websockets(tag=None):
    return [WebSocket(i) for i in host.sockets(None if tag is None else str(tag))]


def get_tags(ws):
    return _call(host.tags, ws._socket())


def set_auto_response(pair=None):
    host.set_auto_response(None if pair is None else (pair.request, pair.response))


def received(message):
    return message.value if isinstance(message, host.Message_Text) else bytes(message.value)
