//! Guest SQL: `exec` (several statements, parameters bound to the last one, all or nothing) and
//! `database_size`, and the conversions between [`SqlValue`] and SQLite's values. What guest SQL
//! may touch is decided by the [`authorizer`](super::authorizer).

use std::mem::size_of;

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Batch, Statement, StatementStatus};

use super::{Budget, Db, SqlResult, SqlValue, SqliteStorage, StorageError};

impl SqliteStorage {
    /// Runs `query`: one or more `;`-separated statements, atomically (an error undoes every
    /// statement of the call). `params` bind to the last statement, whose columns and rows are
    /// returned; an earlier statement with parameters is `InvalidArgument`, and so is a parameter
    /// count that differs from the last statement's. The limits are checked before SQLite sees
    /// the text: `StatementTooLarge` for the whole `query`, `TooManyParameters` for `params` (and
    /// for `?NNN` beyond the limit).
    pub(crate) fn exec(
        &mut self,
        query: &str,
        params: &[SqlValue],
    ) -> Result<SqlResult, StorageError> {
        if query.len() as u64 > self.limits.max_statement_bytes {
            return Err(StorageError::StatementTooLarge(
                self.limits.max_statement_bytes,
            ));
        }
        if params.len() as u64 > u64::from(self.limits.max_bound_parameters) {
            return Err(StorageError::TooManyParameters(
                self.limits.max_bound_parameters,
            ));
        }
        if query.trim().is_empty() {
            return Err(StorageError::InvalidArgument(
                "exec: the query is empty".into(),
            ));
        }
        self.run(|db| {
            db.atomic(|db| {
                let result = db.exec(query, params)?;
                db.check_quota()?;
                Ok(result)
            })
        })
    }

    /// The size of the database in bytes (`page_count * page_size`, uncommitted growth of the
    /// current batch included); 0, without creating anything, if the file was never created.
    pub(crate) fn database_size(&mut self) -> Result<u64, StorageError> {
        if self.absent() {
            return Ok(0);
        }
        self.run(|db| db.database_size())
    }
}

impl Db<'_> {
    fn exec(&mut self, query: &str, params: &[SqlValue]) -> Result<SqlResult, StorageError> {
        // ALTER TABLE … RENAME TO names no table the authorizer could check, so compare the
        // reserved names before and after. Only a query containing the keyword can rename.
        let reserved_before = if contains_ignore_ascii_case(query, "alter") {
            Some(self.reserved_objects()?)
        } else {
            None
        };
        let mut result = SqlResult::default();
        {
            let _guest = self.gate.enter(self.sql_time_limit);
            let mut batch = Batch::new(self.conn, query);
            let mut statements = 0_usize;
            let mut last_parameters = 0_usize;
            while let Some(mut stmt) = batch.next().map_err(|e| self.err(e))? {
                if last_parameters > 0 {
                    return Err(StorageError::InvalidArgument(
                        "exec: only the last statement may have parameters".into(),
                    ));
                }
                statements += 1;
                last_parameters = stmt.parameter_count();
                if last_parameters > 0 {
                    self.bind(&mut stmt, params)?;
                }
                let (columns, rows, rows_read, rows_written) = self.run_statement(&mut stmt)?;
                result.columns = columns;
                result.rows = rows;
                result.rows_read += rows_read;
                result.rows_written += rows_written;
            }
            if statements == 0 {
                return Err(StorageError::InvalidArgument(
                    "exec: the query contains no statement".into(),
                ));
            }
            if last_parameters == 0 && !params.is_empty() {
                return Err(StorageError::InvalidArgument(format!(
                    "exec: {} parameters given but the last statement has none",
                    params.len()
                )));
            }
        }
        if let Some(before) = reserved_before
            && self.reserved_objects()? != before
        {
            return Err(StorageError::Sql(
                "names starting with `_cf_` or `_wasmdo_` are reserved for the host".into(),
            ));
        }
        Ok(result)
    }

    fn bind(&self, stmt: &mut Statement<'_>, params: &[SqlValue]) -> Result<(), StorageError> {
        let expected = stmt.parameter_count();
        if expected as u64 > u64::from(self.limits.max_bound_parameters) {
            return Err(StorageError::TooManyParameters(
                self.limits.max_bound_parameters,
            ));
        }
        if expected != params.len() {
            return Err(StorageError::InvalidArgument(format!(
                "exec: the statement has {expected} parameters but {} were given",
                params.len()
            )));
        }
        for (index, value) in params.iter().enumerate() {
            stmt.raw_bind_parameter(index + 1, value)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Steps `stmt` to the end; returns its columns, rows, rows read and rows written.
    #[expect(
        clippy::type_complexity,
        reason = "a private tuple read once by its only caller"
    )]
    fn run_statement(
        &self,
        stmt: &mut Statement<'_>,
    ) -> Result<(Vec<String>, Vec<Vec<SqlValue>>, u64, u64), StorageError> {
        let mut budget = Budget::new(self.limits.max_result_bytes);
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        for column in &columns {
            budget.charge(size_of::<String>() + column.len())?;
        }
        let width = columns.len();
        let changes_before = self.conn.total_changes();
        let mut rows = Vec::new();
        {
            let mut cursor = stmt.raw_query();
            while let Some(row) = cursor.next().map_err(|e| self.err(e))? {
                budget.charge(size_of::<Vec<SqlValue>>() + width * size_of::<SqlValue>())?;
                let mut values = Vec::with_capacity(width);
                for index in 0..width {
                    let value = row.get_ref(index).map_err(|e| self.err(e))?;
                    values.push(sql_value(value, &mut budget)?);
                }
                rows.push(values);
            }
        }
        let scanned = u64::try_from(stmt.get_status(StatementStatus::FullscanStep)).unwrap_or(0);
        let rows_read = rows.len() as u64 + scanned;
        let rows_written = self.conn.total_changes().saturating_sub(changes_before);
        Ok((columns, rows, rows_read, rows_written))
    }

    /// Names of schema objects with a reserved prefix (`LIKE` ignores ASCII case, like SQLite's
    /// identifiers).
    fn reserved_objects(&self) -> Result<Vec<String>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name FROM sqlite_master \
                 WHERE name LIKE '\\_cf\\_%' ESCAPE '\\' OR name LIKE '\\_wasmdo\\_%' ESCAPE '\\' \
                 ORDER BY name",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }
}

/// Copies a result value out of SQLite, charging it first. Text that is not UTF-8 (SQL can make
/// such text with `CAST`) is repaired with U+FFFD rather than failing the call.
fn sql_value(value: ValueRef<'_>, budget: &mut Budget) -> Result<SqlValue, StorageError> {
    Ok(match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(bytes) => {
            budget.charge(bytes.len())?;
            SqlValue::Text(String::from_utf8_lossy(bytes).into_owned())
        }
        ValueRef::Blob(bytes) => {
            budget.charge(bytes.len())?;
            SqlValue::Blob(bytes.to_vec())
        }
    })
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::test_support::*;
    use crate::storage::sqlite::{ListOptions, StorageLimits};

    #[test]
    fn exec_binds_parameters_and_reports_columns_rows_and_writes() {
        let (_dir, mut s) = storage();
        let created = exec(
            &mut s,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)",
        )
        .unwrap();
        assert_eq!(created, SqlResult::default());
        let insert = s
            .exec(
                "INSERT INTO t (name, score, data) VALUES (?1, ?2, ?3), (?1, NULL, NULL)",
                &[text("ann"), SqlValue::Real(1.5), SqlValue::Blob(vec![1, 2])],
            )
            .unwrap();
        assert_eq!(insert.rows_written, 2);
        assert!(insert.columns.is_empty() && insert.rows.is_empty());
        let select = s
            .exec(
                "SELECT id, name AS who, score, data FROM t WHERE name = ? ORDER BY id",
                &[text("ann")],
            )
            .unwrap();
        assert_eq!(select.columns, ["id", "who", "score", "data"]);
        assert_eq!(
            select.rows,
            vec![
                vec![
                    SqlValue::Integer(1),
                    text("ann"),
                    SqlValue::Real(1.5),
                    SqlValue::Blob(vec![1, 2])
                ],
                vec![
                    SqlValue::Integer(2),
                    text("ann"),
                    SqlValue::Null,
                    SqlValue::Null
                ],
            ]
        );
        assert_eq!(select.rows_written, 0);
        // Full scan: both rows stepped over, both returned.
        assert!(select.rows_read >= 2, "{}", select.rows_read);
        let update = exec(&mut s, "UPDATE t SET score = 0").unwrap();
        assert_eq!(update.rows_written, 2);
    }

    #[test]
    fn exec_runs_every_statement_and_returns_the_last_ones_rows() {
        let (_dir, mut s) = storage();
        let result = s
            .exec(
                "CREATE TABLE t (x); -- a comment\n INSERT INTO t VALUES (1), (2);;\
                 SELECT count(*) AS n FROM t WHERE x > ?",
                &[SqlValue::Integer(0)],
            )
            .unwrap();
        assert_eq!(result.columns, ["n"]);
        assert_eq!(result.rows, vec![vec![SqlValue::Integer(2)]]);
        assert_eq!(result.rows_written, 2);
    }

    #[test]
    fn exec_rejects_misplaced_or_miscounted_parameters_and_undoes_the_call() {
        let (_dir, mut s) = storage();
        exec(&mut s, "CREATE TABLE t (x)").unwrap();
        let early = s.exec(
            "INSERT INTO t VALUES (?); INSERT INTO t VALUES (2)",
            &[SqlValue::Integer(1)],
        );
        assert!(
            matches!(early, Err(StorageError::InvalidArgument(_))),
            "{early:?}"
        );
        let extra = s.exec("INSERT INTO t VALUES (3)", &[SqlValue::Integer(1)]);
        assert!(
            matches!(extra, Err(StorageError::InvalidArgument(_))),
            "{extra:?}"
        );
        let missing = s.exec("INSERT INTO t VALUES (? + ?)", &[SqlValue::Integer(1)]);
        assert!(
            matches!(missing, Err(StorageError::InvalidArgument(_))),
            "{missing:?}"
        );
        assert_eq!(
            exec(&mut s, "SELECT count(*) FROM t").unwrap().rows,
            vec![vec![SqlValue::Integer(0)]]
        );
        for empty in ["", "  ", "-- nothing\n", ";;"] {
            let result = exec(&mut s, empty);
            assert!(
                matches!(result, Err(StorageError::InvalidArgument(_))),
                "{empty:?}: {result:?}"
            );
        }
    }

    #[test]
    fn exec_is_atomic_when_a_later_statement_fails() {
        let (_dir, mut s) = storage();
        exec(&mut s, "CREATE TABLE t (x UNIQUE)").unwrap();
        let failed = exec(&mut s, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)");
        assert!(
            matches!(&failed, Err(StorageError::Sql(m)) if m.contains("UNIQUE")),
            "{failed:?}"
        );
        assert_eq!(
            exec(&mut s, "SELECT count(*) FROM t").unwrap().rows,
            vec![vec![SqlValue::Integer(0)]]
        );
        // The event and the batch go on.
        commit(&mut s);
    }

    #[test]
    fn sql_errors_are_data() {
        let (_dir, mut s) = storage();
        let syntax = exec(&mut s, "SELEC 1");
        assert!(
            matches!(&syntax, Err(StorageError::Sql(m)) if m.contains("syntax")),
            "{syntax:?}"
        );
        let missing = exec(&mut s, "SELECT * FROM nowhere");
        assert!(
            matches!(&missing, Err(StorageError::Sql(m)) if m.contains("no such table")),
            "{missing:?}"
        );
        exec(&mut s, "CREATE TABLE t (x NOT NULL)").unwrap();
        let constraint = exec(&mut s, "INSERT INTO t VALUES (NULL)");
        assert!(
            matches!(&constraint, Err(StorageError::Sql(m)) if m.contains("NOT NULL")),
            "{constraint:?}"
        );
        // The event is intact.
        s.put("a", b"1").unwrap();
        commit(&mut s);
        assert_eq!(s.get("a").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn statement_and_parameter_limits_are_enforced() {
        let limits = StorageLimits {
            max_statement_bytes: 40,
            max_bound_parameters: 2,
            ..Default::default()
        };
        let (_dir, mut s) = storage_with(limits);
        let long = format!("SELECT '{}'", "x".repeat(40));
        assert_eq!(
            exec(&mut s, &long),
            Err(StorageError::StatementTooLarge(40))
        );
        let three = [SqlValue::Null, SqlValue::Null, SqlValue::Null];
        assert_eq!(
            s.exec("SELECT ?, ?, ?", &three),
            Err(StorageError::TooManyParameters(2))
        );
        assert_eq!(
            exec(&mut s, "SELECT ?, ?, ?"),
            Err(StorageError::TooManyParameters(2))
        );
        assert_eq!(
            exec(&mut s, "SELECT ?3"),
            Err(StorageError::TooManyParameters(2))
        );
        // Past SQLite's own limit (which never goes below MIN_ENGINE_VARIABLES) SQLite refuses
        // to prepare; its message is recognised.
        assert_eq!(
            exec(&mut s, "SELECT ?9"),
            Err(StorageError::TooManyParameters(2))
        );
        assert!(s.exec("SELECT ?, ?", &three[..2]).is_ok());
        // The host's own statements are longer than 40 bytes and still work.
        s.put("k", b"v").unwrap();
        assert_eq!(
            keys(
                &s.list(&ListOptions {
                    prefix: Some("k".into()),
                    ..Default::default()
                })
                .unwrap()
            ),
            ["k"]
        );
    }
}
