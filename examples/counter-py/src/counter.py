"""A counter Durable Object in Python: one number in key-value storage behind typed RPC
(`increment`, `get`), a log of hits in SQL, and HTTP (`GET /` answers the count)."""

from workers import DurableObject, Response


class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.sql = ctx.storage.sql
        self.sql.exec("CREATE TABLE IF NOT EXISTS hits (n INTEGER)")

    async def increment(self, by: int = 1) -> int:
        total = (await self.ctx.storage.get("count") or 0) + by
        await self.ctx.storage.put("count", total)
        self.sql.exec("INSERT INTO hits (n) VALUES (?)", by)
        return total

    async def get(self) -> int:
        return await self.ctx.storage.get("count") or 0

    async def hits(self) -> int:
        return self.sql.exec("SELECT COUNT(*) AS n FROM hits").one()["n"]

    async def fetch(self, request):
        return Response(f"count {await self.ctx.storage.get('count') or 0}")
