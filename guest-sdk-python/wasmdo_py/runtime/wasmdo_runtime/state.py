"""An object's state as Cloudflare's Python API gives it (``ctx``): its id, its storage — keys
and values (``get``/``put``/``delete``/``list``), SQL (``sql.exec``), its alarm — over the host's
``storage``, ``alarms`` and ``object`` interfaces. Every event runs in one transaction the host
opened: what an event writes commits with it, or rolls back if it fails.
"""

from componentize_py_types import Err
from wit_world.imports import alarms as host_alarms
from wit_world.imports import object as host_object
from wit_world.imports import storage as host_storage

from wasmdo_runtime import websockets
from wasmdo_runtime.namespace import DurableObjectId, DurableObjectNamespace
from wasmdo_runtime.types import wit_case
from wasmdo_runtime.values import deserialize, serialize

# the storage error cases, as the messages the other SDKs give
_MESSAGES = {
    "ValueTooLarge": lambda n: f"value too large: key + value exceed the {n}-byte limit",
    "QuotaExceeded": lambda _: "storage quota exceeded: the object's database is full",
    "StatementTooLarge": lambda n: f"SQL statement too large: the limit is {n} bytes",
    "TooManyParameters": lambda n: f"too many SQL parameters: the limit is {n}",
    "ResultTooLarge": lambda n: f"result too large: one call may return at most {n} bytes; narrow the query",
    "Sql": lambda m: m,
    "NoTransaction": lambda _: "no transaction is open",
    "InvalidArgument": lambda m: m,
    "Internal": lambda m: f"storage failed: {m}",
}


class StorageError(Exception):
    """A storage call the host refused; ``code`` is the WIT error case (``value-too-large``, …)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _host(f, *args):
    try:
        return f(*args)
    except Err as e:
        case, code = wit_case(e.value)
        value = getattr(e.value, "value", None)
        raise StorageError(code, _MESSAGES.get(case, lambda v: f"{code}: {v}")(value)) from None


def _sql_value(v):
    if v is None:
        return host_storage.SqlValue_Null()
    if isinstance(v, bool):
        return host_storage.SqlValue_Integer(int(v))
    if isinstance(v, int):
        return host_storage.SqlValue_Integer(v)
    if isinstance(v, float):
        return host_storage.SqlValue_Real(v)
    if isinstance(v, str):
        return host_storage.SqlValue_Text(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return host_storage.SqlValue_Blob(bytes(v))
    raise TypeError(f"a {type(v).__name__} cannot be a SQL parameter (int, float, str, bytes or None)")


def _py_value(v):
    return None if isinstance(v, host_storage.SqlValue_Null) else v.value


class SqlCursor:
    """The rows of one ``sql.exec``: iterate for dicts, or ``one()``, ``to_array()``, ``raw()``;
    ``column_names``, ``rows_read``, ``rows_written``."""

    def __init__(self, result):
        self.column_names = list(result.columns)
        self._rows = [[_py_value(v) for v in row] for row in result.rows]
        self.rows_read = result.rows_read
        self.rows_written = result.rows_written
        self.columnNames, self.rowsRead, self.rowsWritten = self.column_names, self.rows_read, self.rows_written

    def __iter__(self):
        return (dict(zip(self.column_names, row)) for row in self._rows)

    def to_array(self):
        return list(self)

    toArray = to_array

    def one(self):
        if len(self._rows) != 1:
            raise StorageError("sql", f"expected exactly one row, the query returned {len(self._rows)}")
        return dict(zip(self.column_names, self._rows[0]))

    def raw(self):
        return iter([list(row) for row in self._rows])


class SqlStorage:
    """``ctx.storage.sql``: the object's own SQLite database."""

    def exec(self, query, *bindings):
        return SqlCursor(_host(host_storage.exec, str(query), [_sql_value(b) for b in bindings]))

    @property
    def database_size(self):
        return host_storage.database_size()

    databaseSize = database_size


class Storage:
    """``ctx.storage``: keys and values (any value the encoding holds), SQL, the alarm. The
    ``options`` Cloudflare's methods take (``allowConcurrency``, ``noCache``, …) are accepted and
    change nothing: every event already runs alone, and every write is durable before its reply."""

    def __init__(self):
        self.sql = SqlStorage()

    async def get(self, key_or_keys, options=None):
        if isinstance(key_or_keys, (list, tuple)):
            found = _host(host_storage.get_many, [str(k) for k in key_or_keys])
            return {k: deserialize(v) for k, v in found}
        raw = _host(host_storage.get, str(key_or_keys))
        return None if raw is None else deserialize(raw)

    async def put(self, key_or_entries, value=None, options=None):
        if isinstance(key_or_entries, dict):
            _host(host_storage.put_many, [(str(k), serialize(v)) for k, v in key_or_entries.items()])
        else:
            _host(host_storage.put, str(key_or_entries), serialize(value))

    async def delete(self, key_or_keys, options=None):
        if isinstance(key_or_keys, (list, tuple)):
            return _host(host_storage.delete_many, [str(k) for k in key_or_keys])
        return _host(host_storage.delete, str(key_or_keys))

    async def list(self, prefix=None, start=None, end=None, limit=None, reverse=False):
        # Cloudflare's options object works too: list({"prefix": "k", "limit": 10})
        if isinstance(prefix, dict):
            o = prefix
            prefix, start, end = o.get("prefix"), o.get("start"), o.get("end")
            limit, reverse = o.get("limit"), o.get("reverse", False)
        options = host_storage.ListOptions(prefix, start, end, limit, bool(reverse))
        return {k: deserialize(v) for k, v in _host(host_storage.list, options)}

    async def delete_all(self, options=None):
        _host(host_storage.delete_all)

    async def transaction(self, closure):
        """Runs ``await closure(txn)``; its writes commit if it returns and roll back if it
        raises or calls ``txn.rollback()``. Transactions nest."""
        _host(host_storage.begin_transaction)
        txn = Transaction(self)
        try:
            result = closure(txn)
            if hasattr(result, "__await__"):
                result = await result
        except BaseException:
            if not txn.rolled_back:
                _host(host_storage.rollback_transaction)
            raise
        if not txn.rolled_back:
            _host(host_storage.commit_transaction)
        return result

    def transaction_sync(self, closure):
        """Runs ``closure()`` (not async) in a nested transaction: committed if it returns,
        rolled back if it raises."""
        _host(host_storage.begin_transaction)
        try:
            result = closure()
        except BaseException:
            _host(host_storage.rollback_transaction)
            raise
        if hasattr(result, "__await__"):
            _host(host_storage.rollback_transaction)
            result.close()
            raise TypeError("transaction_sync: the callback must not be async (use transaction)")
        _host(host_storage.commit_transaction)
        return result

    async def sync(self):
        """Writes are durable when the event's reply leaves the host; nothing to wait for."""

    async def get_alarm(self, options=None):
        return host_alarms.get_alarm()

    async def set_alarm(self, scheduled_time, options=None):
        # milliseconds since the epoch, or a datetime
        if hasattr(scheduled_time, "timestamp"):
            scheduled_time = round(scheduled_time.timestamp() * 1000)
        host_alarms.set_alarm(int(scheduled_time))

    async def delete_alarm(self, options=None):
        host_alarms.delete_alarm()

    deleteAll, getAlarm, setAlarm, deleteAlarm = delete_all, get_alarm, set_alarm, delete_alarm
    transactionSync = transaction_sync


class Transaction:
    """The ``txn`` of ``storage.transaction(closure)``: the storage API and ``rollback()``."""

    def __init__(self, storage):
        self._storage = storage
        self.rolled_back = False

    def _live(self):
        if self.rolled_back:
            raise StorageError("no-transaction", "the transaction was rolled back")
        return self._storage

    def __getattr__(self, name):
        if name in ("get", "put", "delete", "list", "get_alarm", "set_alarm", "delete_alarm",
                    "getAlarm", "setAlarm", "deleteAlarm", "sql"):
            return getattr(self._live(), name)
        raise AttributeError(name)

    def rollback(self):
        """Undoes the transaction's writes now; its later storage calls fail."""
        if not self.rolled_back:
            _host(host_storage.rollback_transaction)
            self.rolled_back = True


class DurableObjectState:
    """``ctx``: the object's ``id``, ``storage`` and WebSockets."""

    def __init__(self):
        self.id = DurableObjectId(host_object.id(), host_object.name())
        self.storage = Storage()

    async def block_concurrency_while(self, callback):
        # events already run one at a time, each to completion
        return await callback()

    blockConcurrencyWhile = block_concurrency_while

    def wait_until(self, awaitable):
        # the event's coroutines finish before it ends
        pass

    waitUntil = wait_until

    # WebSockets (wasmdo_runtime.websockets)
    def accept_websocket(self, ws, tags=None):
        websockets.accept_websocket(ws, tags)

    def get_websockets(self, tag=None):
        return websockets.get_websockets(tag)

    def get_tags(self, ws):
        return websockets.get_tags(ws)

    def set_websocket_auto_response(self, pair=None):
        websockets.set_auto_response(pair)

    acceptWebSocket, getWebSockets, getTags = accept_websocket, get_websockets, get_tags
    setWebSocketAutoResponse = set_websocket_auto_response


def env(bindings=None):
    """The class's env vars (``wasmdo.toml``'s ``[classes.NAME] env``, wrangler ``vars``) and its
    bindings (``{env name: stub class}``, from the build), as attributes and as a mapping."""
    values = dict(host_object.env_vars())
    for name, stub_class in (bindings or {}).items():
        values[name] = DurableObjectNamespace(name, stub_class)
    return Env(values)


class Env(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"env has no {name!r}") from None
