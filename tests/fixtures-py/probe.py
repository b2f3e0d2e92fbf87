"""A Python class that exercises guest-sdk-python through the real host: typed RPC of every
supported type, errors raised by methods, methods reached by name only (dynamic RPC), the
key-value API and its value encoding (shared with the JavaScript and Rust SDKs), SQL cursors,
alarms, env vars and fetch."""

import json
from dataclasses import dataclass
from enum import Enum
from typing import Literal, TypedDict

from wit_world.imports import storage as host_storage
from workers import DurableObject, Response


class Shade(Enum):
    LIGHT = "light"
    DARK_GREY = "dark"


@dataclass
class Point:
    x: int
    y: int
    label: str | None = None


class Box(TypedDict):
    corner: Point
    shade: Shade


class Base(DurableObject):
    """A base class of the project's own: its public methods are the object's too."""

    async def hello(self, who: str) -> str:
        return f"hello {who}"


class Probe(Base):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.activations = 0
        ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT, score REAL)")

    async def echo(self, n: int, x: float, s: str, b: bool, raw: bytes, items: list[str],
                   pair: tuple[int, str], maybe: str | None) -> tuple[int, float, str, bool, bytes, list[str], tuple[int, str], str | None]:
        return (n, x, s, b, raw, items, pair, maybe)

    async def shapes(self, p: Point, box: Box, mode: Literal["fast", "slow-ish"],
                     shades: list[Shade]) -> tuple[Point, Box, Literal["fast", "slow-ish"], list[Shade]]:
        return (Point(p.x + 1, p.y + 1, p.label), box, mode, shades)

    async def kinds(self, p: Point, box: Box, mode: Literal["fast", "slow-ish"], shade: Shade) -> list[str]:
        # what the method receives: its own classes, whether called typed or by name
        return [type(p).__name__, type(box).__name__, type(box["corner"]).__name__, repr(mode), repr(shade)]

    async def bad_shade(self) -> Shade:
        return "dark"  # a string, not a Shade: the caller gets a TypeError

    async def defaults(self, a: str, b: int = 7) -> str:
        return f"{a},{b}"

    async def wrong_result(self) -> int:
        return "not an int"  # the signature says int: the caller gets a TypeError

    async def fail(self, kind: str) -> int:
        if kind == "value":
            raise ValueError("bad value")
        raise KeyError(kind)

    # untyped: no typed function, reached by name (dynamic RPC) with any storable values
    async def anything(self, value):
        return {"got": value, "type": type(value).__name__}

    def _private(self) -> int:
        return 1

    async def remember(self, key: str, value: str) -> None:
        await self.ctx.storage.put(key, json.loads(value))

    async def recall(self, key: str) -> str:
        return json.dumps(await self.ctx.storage.get(key))

    async def stored_bytes(self, key: str) -> bytes | None:
        # what the host keeps for the key: the encoding every SDK reads
        return host_storage.get(key)

    async def kv(self) -> str:
        s = self.ctx.storage
        await s.put({"k1": 1, "k2": [True, None], "k3": b"\x01\x02", "big": 2**64})
        listed = await s.list(prefix="k")
        # Cloudflare's options object, and options that change nothing here
        first_two = await s.list({"prefix": "k", "limit": 2})
        await s.put("k1", 1, {"allowUnconfirmed": True})
        many = await s.get(["k1", "k3", "nope"])
        deleted = await s.delete(["k1", "nope"])
        big = await s.get("big")
        return json.dumps({
            "listed": sorted(listed),
            "first_two": list(first_two),
            "k2": listed["k2"],
            "k3": list(many["k3"]),
            "missing": "nope" in many,
            "deleted": deleted,
            "big": str(big),
            "after": sorted(await s.list()),
        })

    async def note(self, body: str, score: float) -> int:
        cursor = self.ctx.storage.sql.exec("INSERT INTO notes (body, score) VALUES (?, ?)", body, score)
        return cursor.rows_written

    async def notes(self) -> list[tuple[int, str, float]]:
        rows = self.ctx.storage.sql.exec("SELECT id, body, score FROM notes ORDER BY id")
        return [(r["id"], r["body"], r["score"]) for r in rows]

    async def bad_sql(self) -> str:
        try:
            self.ctx.storage.sql.exec("SELECT * FROM nowhere")
            return "no error"
        except Exception as e:
            return f"{type(e).__name__} {e.code}"

    async def arm(self, after_ms: int) -> None:
        import time

        await self.ctx.storage.set_alarm(int(time.time() * 1000) + after_ms)

    async def alarm(self, info=None):
        fired = (await self.ctx.storage.get("fired") or 0) + 1
        await self.ctx.storage.put("fired", fired)

    async def fired(self) -> int:
        return await self.ctx.storage.get("fired") or 0

    async def who(self) -> tuple[str, str | None, str | None]:
        return (str(self.ctx.id), self.ctx.id.name, self.env.get("GREETING"))

    async def count_activation(self) -> int:
        self.activations += 1
        return self.activations

    async def transactions(self) -> list[str]:
        s = self.ctx.storage
        await s.put("t", 0)
        await s.transaction(lambda txn: txn.put("t", 1))

        async def fails(txn):
            await txn.put("t", 2)
            raise ValueError("no")

        try:
            await s.transaction(fails)
        except ValueError:
            pass

        async def rolls_back(txn):
            await txn.put("t", 3)
            txn.rollback()
            return "rolled back"

        outcome = await s.transaction(rolls_back)

        def insert(fail):
            s.sql.exec("INSERT INTO notes (body, score) VALUES ('txn', 0)")
            if fail:
                raise KeyError("undone")

        s.transaction_sync(lambda: insert(False))
        try:
            s.transaction_sync(lambda: insert(True))
        except KeyError:
            pass
        count = s.sql.exec("SELECT count(*) AS n FROM notes WHERE body = 'txn'").one()["n"]
        return [str(await s.get("t")), outcome, str(count)]

    async def log(self, message: str) -> None:
        import logging

        print(f"printed {message}")
        logging.getLogger("probe").warning("logged %s", message)

    # runaway guests: each is stopped by a limit, and the object goes on
    async def spin(self) -> int:
        i = 0
        while True:
            i += 1

    async def allocate(self, mb: int) -> int:
        self.hoard = [bytearray(b"x" * (1 << 20)) for _ in range(mb)]
        return len(self.hoard)

    async def recurse(self, depth: int) -> int:
        def down(n):
            return 0 if n == 0 else 1 + down(n - 1)

        return down(depth)

    async def fetch(self, request):
        if request.method == "POST":
            body = await request.json()
            return Response.json({"path": request.url, "echo": body}, status=201)
        return Response(f"{request.method} {request.url}", headers={"x-probe": "yes"})
