//! The object's key-value storage, typed with serde.
//!
//! The host stores plain bytes under string keys; this SDK encodes every value as **JSON**
//! (`serde_json`): `put("n", &5)` stores the one byte `5`, `put("s", "hi")` stores the four
//! bytes `"hi"` with their quotes. Objects written in other languages read the
//! same bytes, so keep to JSON when several SDKs share data, or use the raw
//! [`get_bytes`]/[`put_bytes`] to store bytes as they are.
//!
//! Every call runs inside the event's implicit transaction: if the event (an RPC call, a
//! request) fails or traps, all its writes are undone. [`transaction`] nests an explicit one.
//!
//! ```no_run
//! use wasmdo::storage::{self, ListOptions};
//!
//! # fn main() -> Result<(), wasmdo::Error> {
//! storage::put("user:1", &"ada")?;
//! let name: Option<String> = storage::get("user:1")?;
//! let users: Vec<(String, String)> = storage::list(ListOptions::new().prefix("user:").limit(10))?;
//! # let _ = (name, users);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::wasmdo::object::storage as wit;

/// The value stored under `key` decoded from JSON, or `None` if the key does not exist.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    get_bytes(key)?.map(|bytes| decode(key, &bytes)).transpose()
}

/// The raw bytes stored under `key`, or `None` if the key does not exist.
pub fn get_bytes(key: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(wit::get(key)?)
}

/// The entries that exist among `keys`, decoded from JSON; missing keys are left out.
///
/// ```no_run
/// # fn main() -> Result<(), wasmdo::Error> {
/// let found: std::collections::BTreeMap<String, i64> = wasmdo::storage::get_many(&["a", "b"])?;
/// # let _ = found;
/// # Ok(())
/// # }
/// ```
pub fn get_many<T: DeserializeOwned>(
    keys: &[impl AsRef<str>],
) -> Result<BTreeMap<String, T>, Error> {
    let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_owned()).collect();
    wit::get_many(&keys)?
        .into_iter()
        .map(|(key, bytes)| {
            let value = decode(&key, &bytes)?;
            Ok((key, value))
        })
        .collect()
}

/// Store `value`, encoded as JSON, under `key`, replacing any previous value.
///
/// [`Error::ValueTooLarge`] if key + encoded value exceed the host's per-entry limit.
pub fn put<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    put_bytes(key, &serde_json::to_vec(value)?)
}

/// Store `value` under `key` as it is, replacing any previous value.
pub fn put_bytes(key: &str, value: &[u8]) -> Result<(), Error> {
    Ok(wit::put(key, value)?)
}

/// Store every entry, each value encoded as JSON, atomically (all or none).
///
/// ```no_run
/// # fn main() -> Result<(), wasmdo::Error> {
/// wasmdo::storage::put_many([("a", 1), ("b", 2)])?;
/// # Ok(())
/// # }
/// ```
pub fn put_many<K, V, I>(entries: I) -> Result<(), Error>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Serialize,
{
    let entries = entries
        .into_iter()
        .map(|(k, v)| Ok((k.into(), serde_json::to_vec(&v)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(wit::put_many(&entries)?)
}

/// Remove `key`; `true` if it existed.
pub fn delete(key: &str) -> Result<bool, Error> {
    Ok(wit::delete(key)?)
}

/// Remove every key in `keys`; returns how many existed.
pub fn delete_many(keys: &[impl AsRef<str>]) -> Result<u32, Error> {
    let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_owned()).collect();
    Ok(wit::delete_many(&keys)?)
}

/// Entries matching `options`, in key order (or reverse order), values decoded from JSON.
pub fn list<T: DeserializeOwned>(options: ListOptions) -> Result<Vec<(String, T)>, Error> {
    wit::list(&options.into_wit())?
        .into_iter()
        .map(|(key, bytes)| {
            let value = decode(&key, &bytes)?;
            Ok((key, value))
        })
        .collect()
}

/// Remove every key-value entry **and every SQL table** of this object.
pub fn delete_all() -> Result<(), Error> {
    Ok(wit::delete_all()?)
}

/// The size of this object's database (KV and SQL together) in bytes.
pub fn database_size() -> Result<u64, Error> {
    Ok(wit::database_size()?)
}

/// Run `f` in a nested transaction: its writes are kept if it returns `Ok` and undone if it
/// returns `Err`. The kept writes still commit only with the event, so a later failure of the
/// event undoes them too. Transactions nest (savepoints).
///
/// ```no_run
/// use wasmdo::{Error, storage};
///
/// fn transfer(from: &str, to: &str, amount: i64) -> Result<(), Error> {
///     storage::transaction(|| {
///         let balance: i64 = storage::get(from)?.unwrap_or(0);
///         if balance < amount {
///             // Nothing written so far is kept.
///             return Err(Error::InvalidArgument(format!("{from} has only {balance}")));
///         }
///         storage::put(from, &(balance - amount))?;
///         let other: i64 = storage::get(to)?.unwrap_or(0);
///         storage::put(to, &(other + amount))
///     })
/// }
/// ```
pub fn transaction<R, E: From<Error>>(f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
    begin_transaction()?;
    match f() {
        Ok(value) => {
            commit_transaction()?;
            Ok(value)
        }
        Err(e) => {
            // `f`'s error says what went wrong; a failing rollback (only possible when the
            // backend itself fails) would hide it, and the event's own rollback still undoes
            // the writes when the event fails.
            let _ = rollback_transaction();
            Err(e)
        }
    }
}

/// Open a nested transaction and return its depth (1 for the outermost explicit one).
/// Prefer [`transaction`], which cannot leave one open.
pub fn begin_transaction() -> Result<u32, Error> {
    Ok(wit::begin_transaction()?)
}

/// Keep the writes of the innermost open transaction (they commit with the event);
/// [`Error::NoTransaction`] if none is open.
pub fn commit_transaction() -> Result<(), Error> {
    Ok(wit::commit_transaction()?)
}

/// Undo every write since the innermost [`begin_transaction`] and close it;
/// [`Error::NoTransaction`] if none is open.
pub fn rollback_transaction() -> Result<(), Error> {
    Ok(wit::rollback_transaction()?)
}

/// Which entries [`list`] returns. Bounds compare keys by their UTF-8 bytes.
///
/// ```
/// use wasmdo::storage::ListOptions;
///
/// let newest_ten = ListOptions::new().prefix("event:").limit(10).reverse();
/// # let _ = newest_ten;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    prefix: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<u32>,
    reverse: bool,
}

impl ListOptions {
    /// Every entry, in ascending key order.
    pub fn new() -> Self {
        ListOptions::default()
    }

    /// Only keys starting with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Only keys `>= start`.
    pub fn start(mut self, start: impl Into<String>) -> Self {
        self.start = Some(start.into());
        self
    }

    /// Only keys `< end`.
    pub fn end(mut self, end: impl Into<String>) -> Self {
        self.end = Some(end.into());
        self
    }

    /// At most `limit` entries.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Descending key order (the limit then keeps the last keys).
    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    fn into_wit(self) -> wit::ListOptions {
        wit::ListOptions {
            prefix: self.prefix,
            start: self.start,
            end: self.end,
            limit: self.limit,
            reverse: self.reverse,
        }
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::Serialization(format!(
            "value of key `{key}` is not the JSON expected: {e}"
        ))
    })
}
