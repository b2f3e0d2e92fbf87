// Routes `/objects/chatroom-js/{room}/{path}` to the room object's fetch with the path below
// the object, as wasmdo's gateway does (examples/chatroom-js expects `/join?name=…`).
export { ChatRoomJs } from "./chatroom.js";

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const match = /^\/objects\/chatroom-js\/([^/]+)(\/.*)$/.exec(url.pathname);
    if (!match) return new Response("not found", { status: 404 });
    const [, room, rest] = match;
    const inner = new Request(new URL(rest + url.search, url.origin), request);
    return env.ROOMS.getByName(decodeURIComponent(room)).fetch(inner);
  },
};
