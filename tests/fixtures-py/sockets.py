"""A Python class holding WebSockets: hibernatable ones (``ctx.accept_websocket`` with tags and
attachments, the ``web_socket_*`` handlers, broadcast through ``ctx.get_websockets``, the auto
response) and one on the standard API (``server.accept()`` with listeners)."""

import json

from workers import DurableObject, Response, WebSocketPair, WebSocketRequestResponsePair


class Sockets(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.activations = (ctx.storage.sql.exec("SELECT 1 AS one").one()["one"])

    async def fetch(self, request):
        if request.headers.get("upgrade") != "websocket":
            return Response("expected a WebSocket upgrade", status=426)
        name = request.url.split("name=", 1)[1] if "name=" in request.url else "anon"
        client, server = WebSocketPair()
        if request.url.split("?")[0].endswith("/standard"):
            server.accept()

            def on_message(event):
                server.send(f"standard: {event.data}")

            server.add_event_listener("message", on_message)
            return Response(None, status=101, web_socket=client)
        self.ctx.accept_websocket(server, ["room", f"user:{name}"])
        server.serialize_attachment({"name": name, "joined": len(self.ctx.get_websockets())})
        server.send(f"welcome {name}")
        return Response(None, status=101, web_socket=client)

    async def web_socket_message(self, ws, message):
        me = ws.deserialize_attachment()
        if isinstance(message, bytes):
            ws.send(message[::-1])
        elif message == "who":
            ws.send(json.dumps(me))
        elif message == "tags":
            ws.send(json.dumps(self.ctx.get_tags(ws)))
        elif message == "count":
            ws.send(str(len(self.ctx.get_websockets("room"))))
        elif message == "bye":
            ws.close(4000, "bye")
        elif message == "boom":
            raise RuntimeError("the handler failed")
        else:
            for other in self.ctx.get_websockets():
                other.send(f"{me['name']}: {message}")

    async def web_socket_close(self, ws, code, reason, was_clean):
        closed = await self.ctx.storage.get("closed") or []
        closed.append(f"{ws.deserialize_attachment()['name']} {code} {reason} {was_clean}")
        await self.ctx.storage.put("closed", closed)

    async def closed(self) -> list[str]:
        return await self.ctx.storage.get("closed") or []

    async def auto(self, request: str, response: str) -> None:
        self.ctx.set_websocket_auto_response(WebSocketRequestResponsePair(request, response))

    async def sockets(self) -> int:
        return len(self.ctx.get_websockets())
