"""wasmdo-py: Durable Objects in Python for wasmdo (``wasmdo-py build``)."""
