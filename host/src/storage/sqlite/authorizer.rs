//! The gate guest SQL runs under. While `exec` runs, the connection's authorizer checks every
//! action of the statements being prepared (no names reserved for the host, no transaction
//! control, no ATTACH, no temporary objects, only read-only pragmas) and its progress handler
//! interrupts SQL that outlives its time limit; the host's own statements pass untouched.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use super::PROGRESS_HANDLER_INSTRUCTIONS;

/// Name prefixes guest SQL may not touch (compared ASCII-case-insensitively, as SQLite compares
/// identifiers).
const RESERVED_PREFIXES: [&str; 2] = ["_cf_", "_wasmdo_"];

/// Pragmas guest SQL may run, with any argument: each only reads the schema. Together with
/// [`READ_ONLY_STATE_PRAGMAS`] this is the whole list; everything else is denied, since most
/// pragmas change how the connection or the file behaves (`journal_mode`, `synchronous`,
/// `writable_schema`, `defer_foreign_keys` which would outlive the event inside the batch, …).
const READ_ONLY_PRAGMAS: [&str; 8] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
];
/// Pragmas guest SQL may only *read* (no `= value`, no argument). FTS5 reads `data_version` and
/// FTS3 `page_size` from inside guest statements, so full-text search needs them.
const READ_ONLY_STATE_PRAGMAS: [&str; 4] =
    ["data_version", "page_size", "page_count", "freelist_count"];

/// Installs the authorizer and the progress handler; both act only while guest SQL runs (the
/// gate's deadline is set), so the host's own statements are neither checked nor timed.
pub(super) fn install_hooks(
    conn: &mut Connection,
    gate: &Arc<GuestSqlGate>,
) -> rusqlite::Result<()> {
    let authorizer_gate = Arc::clone(gate);
    conn.authorizer(Some(move |context: AuthContext<'_>| {
        let mut state = authorizer_gate.lock();
        if state.deadline.is_none() {
            return Authorization::Allow;
        }
        match authorize_guest(&context.action) {
            Ok(()) => Authorization::Allow,
            Err(reason) => {
                state.denial.get_or_insert(reason);
                Authorization::Deny
            }
        }
    }))?;
    let progress_gate = Arc::clone(gate);
    conn.progress_handler(
        PROGRESS_HANDLER_INSTRUCTIONS,
        Some(move || {
            progress_gate
                .lock()
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
        }),
    )
}

/// What the connection's hooks need to know about the SQL being run. The hooks live as long as
/// the connection and run on the actor's thread, inside SQLite calls made by this module; the
/// mutex is never contended, it only lets the hooks share the state.
#[derive(Debug, Default)]
pub(super) struct GuestSqlGate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// `Some` while guest SQL runs: the authorizer checks and the time limit applies.
    deadline: Option<Instant>,
    /// Why the authorizer denied the statement being prepared (SQLite only says "not
    /// authorized").
    denial: Option<String>,
}

impl GuestSqlGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        // The hooks never panic while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks guest SQL as running until the returned guard drops.
    pub(super) fn enter(&self, time_limit: Duration) -> GuestSqlScope<'_> {
        let mut state = self.lock();
        state.deadline = Some(Instant::now() + time_limit);
        state.denial = None;
        GuestSqlScope(self)
    }

    pub(super) fn take_denial(&self) -> Option<String> {
        self.lock().denial.take()
    }
}

pub(super) struct GuestSqlScope<'a>(&'a GuestSqlGate);

impl Drop for GuestSqlScope<'_> {
    fn drop(&mut self) {
        self.0.lock().deadline = None;
    }
}

/// The authorizer's verdict on one action of guest SQL: `Err(reason)` denies it.
fn authorize_guest(action: &AuthAction<'_>) -> Result<(), String> {
    let names: &[&str] = match *action {
        AuthAction::Select | AuthAction::Recursive | AuthAction::Function { .. } => &[],
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
            return Err(
                "transactions are not controlled from SQL: use begin-transaction, \
                        commit-transaction and rollback-transaction (every event already runs \
                        in a transaction)"
                    .into(),
            );
        }
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
            return Err(
                "ATTACH and DETACH are not allowed: an object has exactly one database".into(),
            );
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let named = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(pragma_name));
            if named(&READ_ONLY_PRAGMAS)
                || (pragma_value.is_none() && named(&READ_ONLY_STATE_PRAGMAS))
            {
                return Ok(());
            }
            return Err(format!(
                "PRAGMA {pragma_name} is not allowed; allowed: {}, and reading {}",
                READ_ONLY_PRAGMAS.join(", "),
                READ_ONLY_STATE_PRAGMAS.join(", ")
            ));
        }
        AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. } => {
            return Err(
                "temporary tables, indexes, views and triggers are not supported: \
                        an object's state lives in its database"
                    .into(),
            );
        }
        AuthAction::Read { table_name, .. }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::Analyze { table_name }
        | AuthAction::CreateVtable { table_name, .. }
        | AuthAction::DropVtable { table_name, .. } => &[table_name],
        AuthAction::CreateIndex {
            index_name,
            table_name,
        }
        | AuthAction::DropIndex {
            index_name,
            table_name,
        } => &[index_name, table_name],
        AuthAction::CreateTrigger {
            trigger_name,
            table_name,
        }
        | AuthAction::DropTrigger {
            trigger_name,
            table_name,
        } => &[trigger_name, table_name],
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => &[view_name],
        AuthAction::Reindex { index_name } => &[index_name],
        // Actions this SQLite version does not name, or that rusqlite adds later: deny what we
        // have not reviewed.
        _ => return Err(format!("this SQL operation is not allowed ({action:?})")),
    };
    match names.iter().find(|name| is_reserved(name)) {
        Some(name) => Err(format!(
            "access to `{name}` is not allowed: names starting with `_cf_` or `_wasmdo_` are \
             reserved for the host"
        )),
        None => Ok(()),
    }
}

fn is_reserved(name: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|prefix| {
        name.as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::test_support::*;
    use crate::storage::sqlite::{SqliteStorage, StorageError};

    fn assert_denied(s: &mut SqliteStorage, query: &str, expected: &str) {
        match exec(s, query) {
            Err(StorageError::Sql(message)) => {
                assert!(message.contains(expected), "{query}: {message}")
            }
            other => panic!("{query}: expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn guest_sql_cannot_touch_reserved_names() {
        let (_dir, mut s) = storage();
        s.put("secret", b"1").unwrap();
        for query in [
            "SELECT * FROM _cf_KV",
            "SELECT * FROM _CF_kv",
            "INSERT INTO _cf_KV VALUES ('k', x'00')",
            "DELETE FROM _cf_KV",
            "UPDATE _cf_KV SET value = x'00'",
            "DROP TABLE _cf_KV",
            "CREATE TABLE _cf_mine (x)",
            "CREATE TABLE _Wasmdo_mine (x)",
            "CREATE INDEX _cf_idx ON _cf_KV (value)",
            "CREATE TRIGGER tr AFTER INSERT ON _cf_KV BEGIN SELECT 1; END",
            "ALTER TABLE _cf_KV ADD COLUMN y",
        ] {
            assert_denied(&mut s, query, "reserved for the host");
        }
        // A view over the reserved table can be declared but not read.
        exec(&mut s, "CREATE VIEW peek AS SELECT * FROM _cf_KV").ok();
        if exec(&mut s, "SELECT 1 FROM sqlite_master WHERE name = 'peek'")
            .unwrap()
            .rows
            .len()
            == 1
        {
            assert_denied(&mut s, "SELECT * FROM peek", "reserved for the host");
        }
        // Renaming a table into the reserved space is undone.
        exec(&mut s, "CREATE TABLE mine (x)").unwrap();
        assert_denied(&mut s, "ALTER TABLE mine RENAME TO _cf_stolen", "reserved");
        assert_eq!(
            exec(&mut s, "SELECT count(*) FROM mine")
                .unwrap()
                .rows
                .len(),
            1
        );
        // The schema itself is readable; the host's data stays intact.
        assert!(exec(&mut s, "SELECT name FROM sqlite_master").is_ok());
        assert_eq!(s.get("secret").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn guest_sql_cannot_control_transactions_attach_or_change_settings() {
        let (_dir, mut s) = storage();
        for query in [
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT x",
            "RELEASE _wasmdo_event",
            "END",
        ] {
            assert_denied(&mut s, query, "begin-transaction");
        }
        assert_denied(&mut s, "ATTACH DATABASE '/tmp/other.db' AS other", "ATTACH");
        assert_denied(
            &mut s,
            "PRAGMA journal_mode = DELETE",
            "PRAGMA journal_mode",
        );
        assert_denied(&mut s, "PRAGMA synchronous", "not allowed");
        assert_denied(&mut s, "PRAGMA writable_schema = ON", "not allowed");
        assert_denied(&mut s, "CREATE TEMP TABLE scratch (x)", "temporary");
        exec(&mut s, "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)").unwrap();
        let info = exec(&mut s, "PRAGMA table_info(t)").unwrap();
        assert_eq!(info.rows.len(), 2);
        assert!(exec(&mut s, "PRAGMA table_list").is_ok());
        // The batch is still the host's: the event commits normally.
        commit(&mut s);
    }

    #[test]
    fn runaway_sql_is_interrupted_at_the_time_limit() {
        let (_dir, mut s) = storage();
        s.sql_time_limit = Duration::from_millis(20);
        let endless = exec(
            &mut s,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
        );
        assert!(
            matches!(&endless, Err(StorageError::Sql(m)) if m.contains("interrupted")),
            "{endless:?}"
        );
        // A read-only statement interrupted leaves the batch alone.
        s.put("a", b"1").unwrap();
        commit(&mut s);
    }
}
