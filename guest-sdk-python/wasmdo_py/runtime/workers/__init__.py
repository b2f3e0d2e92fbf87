"""Cloudflare's Python Workers API for Durable Objects (``from workers import DurableObject,
Response``), over wasmdo's host interfaces. Storage calls are synchronous underneath (the
object's SQLite database is local), so the ``async`` methods finish at once; ``await`` them as
on Cloudflare.
"""

from wasmdo_runtime.http import Headers, Request, Response
from wasmdo_runtime.namespace import (
    CallError,
    DurableObjectId,
    DurableObjectNamespace,
    DurableObjectStub,
    MethodError,
    RemoteError,
)
from wasmdo_runtime.object import DurableObject
from wasmdo_runtime.state import DurableObjectState, StorageError
from wasmdo_runtime.values import DataCloneError, JsError
from wasmdo_runtime.websockets import WebSocket, WebSocketError, WebSocketPair, WebSocketRequestResponsePair

__all__ = [
    "DurableObject",
    "DurableObjectState",
    "DurableObjectId",
    "Headers",
    "Request",
    "Response",
    "StorageError",
    "JsError",
    "DataCloneError",
    "DurableObjectNamespace",
    "DurableObjectStub",
    "CallError",
    "RemoteError",
    "MethodError",
    "WebSocket",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "WebSocketError",
]
