//! The key-value operations: `get`, `get_many`, `put`, `put_many`, `delete`, `delete_many`,
//! `list` and `delete_all`, over the `_cf_KV` table (created on the first write), and the helpers
//! that turn `list` options into an index range.

use std::mem::size_of;

use rusqlite::types::{ToSql, ValueRef};

use super::file::table_exists;
use super::{Budget, Db, Entry, ListOptions, SqliteStorage, StorageError};

/// The key-value table. Cloudflare's name, so tooling that inspects an exported database finds the
/// entries where it expects them. `WITHOUT ROWID`: the key is the B-tree key, ordered by the BINARY
/// collation, i.e. by UTF-8 bytes, which is the order `list` promises.
const KV_TABLE: &str = "_cf_KV";
const CREATE_KV_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID";

impl SqliteStorage {
    /// The value stored under `key`, or `None` if the key does not exist.
    pub(crate) fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if self.absent() {
            return Ok(None);
        }
        self.run(|db| db.get(key))
    }

    /// The entries that exist among `keys`, in key order, each once; missing keys are left out.
    pub(crate) fn get_many(&mut self, keys: &[String]) -> Result<Vec<Entry>, StorageError> {
        if self.absent() {
            return Ok(Vec::new());
        }
        self.run(|db| db.get_many(keys))
    }

    /// Stores `value` under `key`, replacing any previous value. `ValueTooLarge` if key + value
    /// exceed the entry limit. Any string is a valid key, the empty one included.
    pub(crate) fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.check_entry(key, value)?;
        self.run(|db| {
            db.atomic(|db| {
                db.ensure_kv_table()?;
                db.put(key, value)?;
                db.check_quota()
            })
        })
    }

    /// Stores every entry, or none: every size is checked before anything is written, and the
    /// writes share one savepoint. Later entries win over earlier ones with the same key.
    pub(crate) fn put_many(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        for (key, value) in entries {
            self.check_entry(key, value)?;
        }
        self.run(|db| {
            db.atomic(|db| {
                db.ensure_kv_table()?;
                entries
                    .iter()
                    .try_for_each(|(key, value)| db.put(key, value))?;
                db.check_quota()
            })
        })
    }

    /// Removes `key`; `true` if it existed.
    pub(crate) fn delete(&mut self, key: &str) -> Result<bool, StorageError> {
        self.run(|db| db.delete(key).map(|n| n > 0))
    }

    /// Removes every key in `keys` (all or none); returns how many distinct keys existed.
    pub(crate) fn delete_many(&mut self, keys: &[String]) -> Result<u32, StorageError> {
        self.run(|db| {
            db.atomic(|db| {
                let mut removed: u64 = 0;
                for key in sorted_unique(keys) {
                    removed += db.delete(key)?;
                }
                Ok(u32::try_from(removed).unwrap_or(u32::MAX))
            })
        })
    }

    /// Entries in key order (descending if `reverse`) that match every given bound. A `limit` of
    /// zero is `InvalidArgument` (Cloudflare requires a positive limit too).
    pub(crate) fn list(&mut self, options: &ListOptions) -> Result<Vec<Entry>, StorageError> {
        if options.limit == Some(0) {
            return Err(StorageError::InvalidArgument(
                "list: limit must be positive".into(),
            ));
        }
        if self.absent() {
            return Ok(Vec::new());
        }
        self.run(|db| db.list(options))
    }

    /// Removes every KV entry and every table, index, view and trigger of this object, inside the
    /// event's transaction like any other write (an event that fails after it undoes it).
    pub(crate) fn delete_all(&mut self) -> Result<(), StorageError> {
        // the alarm lives in a table of this database: it goes too
        self.alarm_touched = true;
        self.run(|db| db.atomic(Db::delete_all))
    }

    fn check_entry(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let size = key.len() as u64 + value.len() as u64;
        if size > self.limits.max_entry_bytes {
            return Err(StorageError::ValueTooLarge(self.limits.max_entry_bytes));
        }
        Ok(())
    }
}

impl Db<'_> {
    fn ensure_kv_table(&mut self) -> Result<(), StorageError> {
        if !*self.kv_ready {
            self.control(CREATE_KV_TABLE)?;
            *self.kv_ready = true;
        }
        Ok(())
    }

    /// Whether `_cf_KV` exists; reads of a database that never stored a KV entry see it empty.
    fn kv_exists(&mut self) -> Result<bool, StorageError> {
        if !*self.kv_ready {
            let found = table_exists(self.conn, KV_TABLE).map_err(|e| self.err(e))?;
            *self.kv_ready = found;
        }
        Ok(*self.kv_ready)
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if !self.kv_exists()? {
            return Ok(None);
        }
        let mut budget = Budget::new(self.limits.max_result_bytes);
        self.get_entry(key, &mut budget)
    }

    fn get_entry(&self, key: &str, budget: &mut Budget) -> Result<Option<Vec<u8>>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM _cf_KV WHERE key = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([key]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(row) => {
                let value = row.get_ref(0).map_err(|e| self.err(e))?;
                kv_value(value, budget).map(Some)
            }
        }
    }

    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Entry>, StorageError> {
        if !self.kv_exists()? {
            return Ok(Vec::new());
        }
        let mut budget = Budget::new(self.limits.max_result_bytes);
        let mut entries = Vec::new();
        for key in sorted_unique(keys) {
            // Charge the key before copying the value: both end up in the result.
            budget.charge(size_of::<Entry>() + key.len())?;
            if let Some(value) = self.get_entry(key, &mut budget)? {
                entries.push((key.to_owned(), value));
            }
        }
        Ok(entries)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.conn
            .prepare_cached(
                "INSERT INTO _cf_KV (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute((key, value)))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes `key`; returns how many rows went (0 or 1).
    fn delete(&mut self, key: &str) -> Result<u64, StorageError> {
        if !self.kv_exists()? {
            return Ok(0);
        }
        let removed = self
            .conn
            .prepare_cached("DELETE FROM _cf_KV WHERE key = ?1")
            .and_then(|mut stmt| stmt.execute([key]))
            .map_err(|e| self.err(e))?;
        Ok(removed as u64)
    }

    fn list(&mut self, options: &ListOptions) -> Result<Vec<Entry>, StorageError> {
        if !self.kv_exists()? {
            return Ok(Vec::new());
        }
        let (lower, upper) = key_range(options);
        let sql = list_sql(lower.is_some(), upper.is_some(), options.reverse);
        let limit = options.limit.map_or(-1, i64::from);
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(3);
        if let Some(lower) = &lower {
            params.push(lower);
        }
        if let Some(upper) = &upper {
            params.push(upper);
        }
        params.push(&limit);

        let mut budget = Budget::new(self.limits.max_result_bytes);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query(params.as_slice()).map_err(|e| self.err(e))?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let key = row.get_ref(0).map_err(|e| self.err(e))?;
            let ValueRef::Text(key) = key else {
                return Err(StorageError::Internal(format!(
                    "{KV_TABLE} holds a non-text key"
                )));
            };
            budget.charge(size_of::<Entry>() + key.len())?;
            let key = String::from_utf8_lossy(key).into_owned();
            let value = kv_value(row.get_ref(1).map_err(|e| self.err(e))?, &mut budget)?;
            entries.push((key, value));
        }
        Ok(entries)
    }

    /// Drops every schema object but SQLite's own (`sqlite_*`), `_cf_KV` included.
    fn delete_all(&mut self) -> Result<(), StorageError> {
        let mut objects: Vec<(u8, &str, String)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT type, name, coalesce(sql, '') LIKE 'CREATE VIRTUAL TABLE%' \
                     FROM sqlite_master \
                     WHERE type IN ('trigger', 'view', 'table') \
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                     AND name <> '_wasmdo_commit'",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, bool>(2)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.err(e))?;
            rows.into_iter()
                .map(
                    |(kind, name, is_virtual)| match (kind.as_str(), is_virtual) {
                        // Triggers and views first (nothing depends on them), virtual tables before
                        // ordinary ones (dropping one drops its shadow tables, which defensive mode
                        // forbids dropping directly).
                        ("trigger", _) => (0, "TRIGGER", name),
                        ("view", _) => (1, "VIEW", name),
                        (_, true) => (2, "TABLE", name),
                        _ => (3, "TABLE", name),
                    },
                )
                .collect()
        };
        objects.sort();
        // Dropping a parent table before its children would violate immediate foreign keys;
        // deferred, the violations disappear with the children before anything checks them.
        self.control("PRAGMA defer_foreign_keys = ON")?;
        for (_, kind, name) in &objects {
            self.control(&format!("DROP {kind} IF EXISTS {}", quote_identifier(name)))?;
        }
        self.control("PRAGMA defer_foreign_keys = OFF")?;
        *self.kv_ready = false;
        Ok(())
    }
}

/// Copies a `_cf_KV` value out of SQLite, charging it first.
fn kv_value(value: ValueRef<'_>, budget: &mut Budget) -> Result<Vec<u8>, StorageError> {
    match value {
        ValueRef::Blob(bytes) => {
            budget.charge(bytes.len())?;
            Ok(bytes.to_vec())
        }
        other => Err(StorageError::Internal(format!(
            "{KV_TABLE} holds a {} value",
            other.data_type()
        ))),
    }
}

/// `keys` sorted by UTF-8 bytes (Rust's `str` order), each once.
fn sorted_unique(keys: &[String]) -> Vec<&str> {
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The half-open key range `[lower, upper)` selected by `options`; `None` is unbounded.
fn key_range(options: &ListOptions) -> (Option<String>, Option<String>) {
    let lower = [options.start.as_deref(), options.prefix.as_deref()]
        .into_iter()
        .flatten()
        .max()
        .map(str::to_owned);
    let prefix_end = options.prefix.as_deref().and_then(prefix_successor);
    let upper = [options.end.clone(), prefix_end]
        .into_iter()
        .flatten()
        .min();
    (lower, upper)
}

/// The smallest string above every string that starts with `prefix`, or `None` if there is none
/// (`prefix` is empty or all U+10FFFF). UTF-8 byte order is code point order, so the answer is
/// `prefix` with its last incrementable code point incremented and what follows dropped; the
/// range `[prefix, successor)` is then exactly the strings starting with `prefix`, and it is an
/// index range (unlike `substr(key, …) = prefix`).
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            char::MAX => None,
            // The surrogates are not code points of any string.
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The `list` query for a shape of bounds; parameters are lower, upper (those present) and the
/// limit (-1 for none).
fn list_sql(lower: bool, upper: bool, reverse: bool) -> String {
    let mut sql = String::from("SELECT key, value FROM _cf_KV");
    let mut index = 1;
    let mut conditions = Vec::new();
    if lower {
        conditions.push(format!("key >= ?{index}"));
        index += 1;
    }
    if upper {
        conditions.push(format!("key < ?{index}"));
        index += 1;
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let order = if reverse { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY key {order} LIMIT ?{index}"));
    sql
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::StorageLimits;
    use crate::storage::sqlite::test_support::*;

    #[test]
    fn kv_round_trip() {
        let (_dir, mut s) = storage();
        assert_eq!(s.get("k").unwrap(), None);
        s.put("k", b"one").unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"one".to_vec()));
        s.put("k", b"two").unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"two".to_vec()));
        s.put("", b"").unwrap();
        assert_eq!(s.get("").unwrap(), Some(Vec::new()));
        assert!(s.delete("k").unwrap());
        assert!(!s.delete("k").unwrap());
        assert_eq!(s.get("k").unwrap(), None);
    }

    #[test]
    fn reads_and_deletes_of_a_fresh_database_see_it_empty() {
        let (_dir, mut s) = storage();
        assert_eq!(s.get_many(&strings(&["a"])).unwrap(), vec![]);
        assert_eq!(s.list(&ListOptions::default()).unwrap(), vec![]);
        assert!(!s.delete("a").unwrap());
        assert_eq!(s.delete_many(&strings(&["a", "b"])).unwrap(), 0);
    }

    #[test]
    fn get_many_returns_existing_entries_in_key_order() {
        let (_dir, mut s) = storage();
        s.put_many(&[("b".into(), b"2".to_vec()), ("a".into(), b"1".to_vec())])
            .unwrap();
        let got = s.get_many(&strings(&["missing", "b", "a", "b"])).unwrap();
        assert_eq!(
            got,
            vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
        );
    }

    #[test]
    fn delete_many_counts_keys_that_existed() {
        let (_dir, mut s) = storage();
        for k in ["a", "b", "c"] {
            s.put(k, b"v").unwrap();
        }
        assert_eq!(s.delete_many(&strings(&["a", "c", "c", "zz"])).unwrap(), 2);
        assert_eq!(keys(&s.list(&ListOptions::default()).unwrap()), ["b"]);
    }

    #[test]
    fn list_applies_prefix_bounds_limit_and_order() {
        let (_dir, mut s) = storage();
        for k in ["a", "ab", "abc", "abd", "ac", "b", "é"] {
            s.put(k, k.as_bytes()).unwrap();
        }
        let list = |s: &mut SqliteStorage, o: ListOptions| keys(&s.list(&o).unwrap()).join(",");
        assert_eq!(list(&mut s, ListOptions::default()), "a,ab,abc,abd,ac,b,é");
        let prefix = || ListOptions {
            prefix: Some("ab".into()),
            ..Default::default()
        };
        assert_eq!(list(&mut s, prefix()), "ab,abc,abd");
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    reverse: true,
                    limit: Some(2),
                    ..prefix()
                }
            ),
            "abd,abc"
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    start: Some("abc".into()),
                    ..prefix()
                }
            ),
            "abc,abd"
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    end: Some("abd".into()),
                    ..prefix()
                }
            ),
            "ab,abc"
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    start: Some("ab".into()),
                    end: Some("b".into()),
                    ..Default::default()
                }
            ),
            "ab,abc,abd,ac"
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    start: Some("b".into()),
                    end: Some("a".into()),
                    ..Default::default()
                }
            ),
            ""
        );
        assert_eq!(
            list(
                &mut s,
                ListOptions {
                    limit: Some(1),
                    reverse: true,
                    ..Default::default()
                }
            ),
            "é"
        );
        let zero = s.list(&ListOptions {
            limit: Some(0),
            ..Default::default()
        });
        assert!(
            matches!(zero, Err(StorageError::InvalidArgument(_))),
            "{zero:?}"
        );
    }

    #[test]
    fn list_prefix_ending_in_high_code_points() {
        let (_dir, mut s) = storage();
        let all = [
            "a\u{D7FF}",
            "a\u{D7FF}x",
            "a\u{E000}",
            "a\u{FFFF}",
            "a\u{FFFF}z",
            "a\u{10000}",
            "a\u{10FFFF}",
            "a\u{10FFFF}\u{10FFFF}",
            "b",
            "\u{10FFFF}",
            "\u{10FFFF}a",
        ];
        for k in all {
            s.put(k, b"").unwrap();
        }
        let with_prefix = |s: &mut SqliteStorage, p: &str| {
            let got = s
                .list(&ListOptions {
                    prefix: Some(p.into()),
                    ..Default::default()
                })
                .unwrap();
            let expected: Vec<&str> = all.iter().copied().filter(|k| k.starts_with(p)).collect();
            assert_eq!(keys(&got), expected, "prefix {p:?}");
        };
        for p in [
            "a\u{D7FF}",
            "a\u{FFFF}",
            "a\u{10FFFF}",
            "\u{10FFFF}",
            "a",
            "",
        ] {
            with_prefix(&mut s, p);
        }
        assert_eq!(
            prefix_successor("a\u{10FFFF}\u{10FFFF}").as_deref(),
            Some("b")
        );
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
    }

    #[test]
    fn list_uses_the_primary_key_index() {
        let (_dir, mut s) = storage();
        s.put("a", b"").unwrap();
        let conn = s.conn.as_ref().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                list_sql(true, true, true)
            ))
            .unwrap()
            .query_map(("a", "b", -1), |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.starts_with("SEARCH")), "{plan:?}");
    }

    #[test]
    fn oversized_entries_are_refused_and_put_many_writes_nothing() {
        let limits = StorageLimits {
            max_entry_bytes: 10,
            ..Default::default()
        };
        let (_dir, mut s) = storage_with(limits);
        s.put("key", b"1234567").unwrap();
        assert_eq!(
            s.put("key", b"12345678"),
            Err(StorageError::ValueTooLarge(10))
        );
        let entries = vec![
            ("a".to_owned(), b"ok".to_vec()),
            ("b".to_owned(), vec![0; 10]),
        ];
        assert_eq!(s.put_many(&entries), Err(StorageError::ValueTooLarge(10)));
        assert_eq!(s.get("a").unwrap(), None);
        // A row built by SQL is bounded by the same limit (SQLITE_LIMIT_LENGTH).
        let big = exec(&mut s, "SELECT zeroblob(1000000)");
        assert_eq!(big, Err(StorageError::ValueTooLarge(10)));
    }

    #[test]
    fn put_many_later_duplicates_win() {
        let (_dir, mut s) = storage();
        s.put_many(&[("a".into(), b"1".to_vec()), ("a".into(), b"2".to_vec())])
            .unwrap();
        assert_eq!(s.get("a").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn delete_all_removes_kv_entries_and_every_sql_object() {
        let (_dir, mut s) = storage();
        s.put("a", b"1").unwrap();
        exec(
            &mut s,
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY AUTOINCREMENT, p REFERENCES parent (id));
             CREATE INDEX child_p ON child (p);
             CREATE VIEW v AS SELECT * FROM child;
             CREATE TRIGGER tr AFTER INSERT ON parent BEGIN INSERT INTO child (p) VALUES (new.id); END;
             CREATE VIRTUAL TABLE docs USING fts5(body);
             INSERT INTO docs VALUES ('hello');
             INSERT INTO parent VALUES (1);",
        )
        .unwrap();
        commit(&mut s);
        s.delete_all().unwrap();
        commit(&mut s);
        s.close();
        let left = exec(
            &mut s,
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite%'",
        )
        .unwrap();
        // only the host's batch number, which recovery needs, survives
        assert_eq!(left.rows, vec![vec![text("_wasmdo_commit")]]);
        assert_eq!(s.get("a").unwrap(), None);
        s.put("b", b"2").unwrap();
        assert_eq!(s.get("b").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn delete_all_is_undone_with_its_event() {
        let (_dir, mut s) = storage();
        s.put("a", b"1").unwrap();
        exec(&mut s, "CREATE TABLE t (x)").unwrap();
        commit(&mut s);
        s.delete_all().unwrap();
        s.end_event(false).unwrap();
        assert_eq!(s.get("a").unwrap(), Some(b"1".to_vec()));
        assert!(exec(&mut s, "SELECT * FROM t").is_ok());
    }
}
