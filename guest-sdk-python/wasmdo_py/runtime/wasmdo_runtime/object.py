"""The base class of every Python Durable Object."""


class DurableObject:
    """Base class of a Durable Object: ``ctx`` (the object's state: storage, id) and ``env``."""

    def __init__(self, ctx, env):
        self.ctx = ctx
        self.env = env
