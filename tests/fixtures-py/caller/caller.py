"""A Python class calling other classes by name through ``env``: a Rust class (its typed
methods, values in the JSON mapping of their WIT types), a JavaScript class and a Python class
(values exactly as passed and returned), their errors raised here, ``fetch`` to another object,
and call errors (unknown methods, bindings, ids)."""

from workers import CallError, DurableObject, MethodError, RemoteError


def caught(e):
    kind = getattr(e, "kind", None) or getattr(e, "name", None) or type(e).__name__
    return {"class": type(e).__name__, "kind": kind, "message": str(e), "value": getattr(e, "value", None)}


class Caller(DurableObject):
    # untyped methods: reached by name, with any storable values
    async def call(self, binding, name, method, args):
        try:
            stub = getattr(self.env, binding).get_by_name(name)
            return {"ok": await getattr(stub, method)(*args)}
        except (CallError, MethodError, RemoteError, Exception) as e:
            return {"raised": caught(e)}

    async def ids(self, binding, name):
        ns = getattr(self.env, binding)
        by_name = ns.id_from_name(name)
        same = ns.id_from_string(str(by_name))
        unique = ns.new_unique_id()
        return [str(by_name) == str(same), by_name.name, len(str(unique)), str(ns.get_by_name(name).id) == str(by_name)]

    async def fetch_other(self, binding: str, name: str, path: str) -> str:
        stub = getattr(self.env, binding).get_by_name(name)
        response = await stub.fetch(f"https://other.example{path}")
        return f"{response.status} {await response.text()}"

    async def bad_id(self, binding: str) -> str:
        try:
            getattr(self.env, binding).get("not-an-id")
            return "accepted"
        except CallError as e:
            return e.kind

    async def then_fail(self, binding: str, name: str) -> int:
        # the caller's own write rolls back when it fails after the call
        await self.ctx.storage.put("before", 1)
        await getattr(self.env, binding).get_by_name(name).remember("k", '"written by the callee"')
        raise ValueError("the caller failed after the call")

    async def before(self) -> bool:
        return await self.ctx.storage.get("before") is not None
