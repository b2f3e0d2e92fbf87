"""A moderator, one object per author: may this author post this text now?

It refuses text with a banned word, asks the author's rate limiter (TypeScript,
examples/rate-limiter-js, bound as LIMITER) for a token, and counts refusals of every author in
one Rust counter (examples/counter, bound as COUNTER). Both are called through typed stubs that
`wasmdo bindgen <class> --lang py-stub` wrote into stubs/: `Decision` is the limiter's record.
examples/room-js calls `review` before it posts a message.
"""

from dataclasses import dataclass
from typing import Literal

from stubs.counter import CounterStub
from stubs.limiter import Decision, LimiterStub
from workers import DurableObject, Response

BANNED = {"spam", "scam"}


@dataclass
class Verdict:
    allowed: bool
    # why not: "banned-word" or "rate-limited"; "ok" when allowed
    reason: Literal["ok", "banned-word", "rate-limited"]
    # how many more messages the author may post right now
    remaining: int


class Moderator(DurableObject):
    async def review(self, text: str) -> Verdict:
        if BANNED & set(text.lower().split()):
            return await self._refuse("banned-word", 0)
        limiter: LimiterStub = self.env.LIMITER.get_by_name(self.ctx.id.name or str(self.ctx.id))
        decision: Decision = await limiter.take()
        if not decision.allowed:
            return await self._refuse("rate-limited", 0)
        return Verdict(True, "ok", int(decision.remaining))

    async def refusals(self) -> int:
        """This author's refused messages."""
        return await self.ctx.storage.get("refusals") or 0

    async def fetch(self, request):
        counter: CounterStub = self.env.COUNTER.get_by_name("refusals")
        return Response(f"{await self.refusals()} refused here, {await counter.get()} in all")

    async def _refuse(self, reason, remaining):
        await self.ctx.storage.put("refusals", await self.refusals() + 1)
        await self.env.COUNTER.get_by_name("refusals").increment(1)
        return Verdict(False, reason, remaining)
