"""wasmdo's Python runtime: the host-facing glue of a class (``glue``), the object's state and
storage (``state``) and the storage value encoding (``values``)."""
