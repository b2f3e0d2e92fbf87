"""HTTP in Cloudflare's Python shape: ``Headers``, the ``Request`` an object's ``fetch``
handles (and a stub's ``fetch`` sends), and the ``Response`` it answers."""

import json as _json


class Headers:
    """Case-insensitive HTTP headers; ``get`` gives every value of a name joined by ``, ``."""

    def __init__(self, init=None):
        self._items = []
        if isinstance(init, Headers):
            self._items = list(init._items)
        elif isinstance(init, dict):
            self._items = [(str(k).lower(), str(v)) for k, v in init.items()]
        elif init:
            self._items = [(str(k).lower(), str(v)) for k, v in init]

    def get(self, name, default=None):
        values = [v for k, v in self._items if k == name.lower()]
        return ", ".join(values) if values else default

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name):
        return any(k == name.lower() for k, _ in self._items)

    def set(self, name, value):
        self._items = [(k, v) for k, v in self._items if k != name.lower()]
        self._items.append((name.lower(), str(value)))

    __setitem__ = set

    def append(self, name, value):
        self._items.append((name.lower(), str(value)))

    def items(self):
        return list(self._items)

    def __iter__(self):
        return iter(self._items)


class Request:
    """The request ``fetch`` handles: ``method``, ``url``, ``headers``, and its body through
    ``await request.text()`` / ``json()`` / ``bytes()``."""

    def __init__(self, url, method="GET", headers=None, body=b""):
        self.url = url
        self.method = method
        self.headers = Headers(headers)
        self._body = bytes(body or b"")

    async def bytes(self):
        return self._body

    async def text(self):
        return self._body.decode()

    async def json(self):
        return _json.loads(self._body.decode())


class Response:
    """An HTTP response: ``Response("hi", status=200, headers={...})``, or
    ``Response.json(value)``."""

    def __init__(self, body=None, status=200, headers=None, status_text=None, web_socket=None, webSocket=None):
        if body is None:
            self.body = b""
        elif isinstance(body, (bytes, bytearray, memoryview)):
            self.body = bytes(body)
        else:
            self.body = str(body).encode()
        self.status = int(status)
        # the client end of an accepted WebSocketPair: the host switches the connection (101)
        self.web_socket = web_socket or webSocket
        if self.web_socket is not None and self.status == 200:
            self.status = 101
        self.headers = Headers(headers)
        if body is not None and isinstance(body, str) and "content-type" not in self.headers:
            self.headers.set("content-type", "text/plain;charset=UTF-8")

    @classmethod
    def json(cls, data, status=200, headers=None):
        response = cls(_json.dumps(data), status=status, headers=headers)
        response.headers.set("content-type", "application/json")
        return response

    async def text(self):
        return self.body.decode()
