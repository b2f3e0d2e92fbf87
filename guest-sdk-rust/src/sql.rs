//! SQL on the object's own SQLite database.
//!
//! [`exec`] runs one or more `;`-separated statements, binding typed [`Value`]s (build them
//! with [`params!`](crate::params)) to the `?`/`?NNN` placeholders of the last one, and returns a
//! [`Cursor`] holding every row of its result. Read rows by column name or index with
//! [`Row::get`], or map each row onto a serde struct (columns to fields) with
//! [`Cursor::deserialize`]. Like KV writes, SQL writes belong to the event's implicit
//! transaction; use [`storage::transaction`](crate::storage::transaction) for an explicit one
//! (`BEGIN`/`COMMIT` in SQL are refused).
//!
//! ```no_run
//! use serde::Deserialize;
//! use wasmdo::{params, sql};
//!
//! #[derive(Deserialize)]
//! struct Seat {
//!     number: u32,
//!     passenger: Option<String>,
//! }
//!
//! # fn main() -> Result<(), wasmdo::Error> {
//! sql::exec("CREATE TABLE IF NOT EXISTS seats (number INTEGER PRIMARY KEY, passenger TEXT)", [])?;
//! sql::exec("INSERT INTO seats VALUES (?, ?)", params![7, "ada"])?;
//!
//! let seats: Vec<Seat> = sql::exec("SELECT number, passenger FROM seats", [])?.deserialize()?;
//! let taken: i64 = sql::exec("SELECT count(*) FROM seats", [])?.one()?.get(0)?;
//! let who: Option<String> = sql::exec("SELECT passenger FROM seats WHERE number = ?", params![7])?
//!     .one()?
//!     .get("passenger")?;
//! # let _ = (seats, taken, who);
//! # Ok(())
//! # }
//! ```

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Serialize, Serializer, forward_to_deserialize_any};

use crate::Error;
use crate::bindings::wasmdo::object::storage as wit;

/// Run `query` (one or more `;`-separated statements), binding `params` to the placeholders of
/// the last one, and return that statement's result.
///
/// `params` is anything that yields [`Value`]s: [`params![…]`](crate::params), `[]`, a `Vec`.
/// Errors: [`Error::Sql`] for invalid SQL or a violated constraint, and the size limits
/// ([`Error::StatementTooLarge`], [`Error::TooManyParameters`], [`Error::ResultTooLarge`]).
pub fn exec(query: &str, params: impl IntoIterator<Item = Value>) -> Result<Cursor, Error> {
    let params: Vec<wit::SqlValue> = params.into_iter().map(Value::into_wit).collect();
    let result = wit::exec(query, &params)?;
    Ok(Cursor {
        columns: result.columns,
        rows: result
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(Value::from_wit).collect())
            .collect(),
        rows_read: result.rows_read,
        rows_written: result.rows_written,
    })
}

/// Build the `Vec<Value>` of parameters for [`exec`] from plain Rust values:
/// `params![42, "text", 1.5, true, None::<i64>, vec![1u8, 2]]`.
#[macro_export]
macro_rules! params {
    () => {
        ::std::vec::Vec::<$crate::sql::Value>::new()
    };
    ($($value:expr),+ $(,)?) => {
        ::std::vec![$($crate::sql::Value::from($value)),+]
    };
}

/// A SQL parameter or a value in a result row (SQLite's storage classes).
///
/// Serialized (e.g. to JSON) as the plain value: `null`, a number, a string, or a blob as an
/// array of bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer (SQLite has no booleans: they are 0 and 1).
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    fn into_wit(self) -> wit::SqlValue {
        match self {
            Value::Null => wit::SqlValue::Null,
            Value::Integer(i) => wit::SqlValue::Integer(i),
            Value::Real(r) => wit::SqlValue::Real(r),
            Value::Text(s) => wit::SqlValue::Text(s),
            Value::Blob(b) => wit::SqlValue::Blob(b),
        }
    }

    fn from_wit(value: wit::SqlValue) -> Self {
        match value {
            wit::SqlValue::Null => Value::Null,
            wit::SqlValue::Integer(i) => Value::Integer(i),
            wit::SqlValue::Real(r) => Value::Real(r),
            wit::SqlValue::Text(s) => Value::Text(s),
            wit::SqlValue::Blob(b) => Value::Blob(b),
        }
    }
}

macro_rules! value_from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Integer(i64::from(v))
            }
        }
    )*};
}
value_from_integer!(i64, i32, i16, i8, u32, u16, u8, bool);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Real(f64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}

/// `None` is `NULL`.
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Integer(i) => serializer.serialize_i64(*i),
            Value::Real(r) => serializer.serialize_f64(*r),
            Value::Text(s) => serializer.serialize_str(s),
            Value::Blob(b) => serializer.serialize_bytes(b),
        }
    }
}

/// The result of the last statement [`exec`] ran.
///
/// Serializes as `{"columns":[…],"rows":[[…]],"rowsRead":n,"rowsWritten":n}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// Column names (empty for statements that return no rows, like `INSERT`).
    pub columns: Vec<String>,
    /// Every row, one value per column.
    pub rows: Vec<Vec<Value>>,
    /// Rows the statements read: rows returned plus rows stepped over by full scans.
    pub rows_read: u64,
    /// Rows inserted, updated or deleted.
    pub rows_written: u64,
}

impl Cursor {
    /// The rows, each readable by column name or index.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    /// The only row; [`Error::Serialization`] if there are none or several.
    pub fn one(&self) -> Result<Row<'_>, Error> {
        match self.rows.len() {
            1 => Ok(Row {
                columns: &self.columns,
                values: &self.rows[0],
            }),
            n => Err(Error::Serialization(format!(
                "expected exactly one row, got {n}"
            ))),
        }
    }

    /// Every row mapped onto `T`: a struct whose fields are named like the columns (extra
    /// columns are ignored; a missing one is an error unless the field is an `Option` or has
    /// `#[serde(default)]`), a map, or a tuple taking the columns in order.
    ///
    /// Integers convert to any integer type they fit, and to `bool` when 0 or 1; `NULL` is
    /// `None`; a blob is a `Vec<u8>`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        self.rows().map(|row| row.deserialize()).collect()
    }
}

/// One row of a [`Cursor`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The value of `column` (a name or a 0-based index) converted to `T`, with the rules of
    /// [`Cursor::deserialize`]: e.g. `i64`, `u32`, `f64`, `bool`, `String`, `Vec<u8>`,
    /// `Option<_>` for nullable columns.
    pub fn get<T: DeserializeOwned>(&self, column: impl ColumnIndex) -> Result<T, Error> {
        let index = column
            .index(self.columns)
            .ok_or_else(|| Error::Serialization(format!("no column {}", column.describe())))?;
        T::deserialize(ValueDeserializer(&self.values[index]))
            .map_err(|e| Error::Serialization(format!("column {}: {e}", column.describe())))
    }

    /// The raw value of `column` (a name or a 0-based index), or `None` if there is no such
    /// column.
    pub fn value(&self, column: impl ColumnIndex) -> Option<&'a Value> {
        column.index(self.columns).map(|i| &self.values[i])
    }

    /// The column names.
    pub fn columns(&self) -> &'a [String] {
        self.columns
    }

    /// The values, one per column.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }

    /// This row mapped onto `T` (see [`Cursor::deserialize`]).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(RowDeserializer(*self)).map_err(|e| Error::Serialization(e.to_string()))
    }
}

/// Names a column of a [`Row`]: its name (`&str`, `String`) or its 0-based index (`usize`).
pub trait ColumnIndex {
    /// The index of the column among `columns`, or `None` if there is no such column.
    fn index(&self, columns: &[String]) -> Option<usize>;
    /// The column as error messages name it.
    fn describe(&self) -> String;
}

impl ColumnIndex for usize {
    fn index(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }

    fn describe(&self) -> String {
        format!("#{self}")
    }
}

impl ColumnIndex for &str {
    fn index(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }

    fn describe(&self) -> String {
        format!("`{self}`")
    }
}

impl ColumnIndex for String {
    fn index(&self, columns: &[String]) -> Option<usize> {
        self.as_str().index(columns)
    }

    fn describe(&self) -> String {
        self.as_str().describe()
    }
}

type DeError = de::value::Error;

/// A row as a serde map (column → value), or as a sequence for tuples.
struct RowDeserializer<'a>(Row<'a>);

impl<'de> de::Deserializer<'de> for RowDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Row { columns, values } = self.0;
        let entries = columns
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(ValueDeserializer));
        let mut map = MapDeserializer::new(entries);
        let value = visitor.visit_map(&mut map)?;
        map.end()?;
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let mut seq = SeqDeserializer::new(self.0.values.iter().map(ValueDeserializer));
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // Structs ignore columns they have no field for, so do not insist on consuming all.
        let Row { columns, values } = self.0;
        let entries = columns
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(ValueDeserializer));
        visitor.visit_map(MapDeserializer::new(entries))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct map enum identifier ignored_any
    }
}

/// One SQL value as serde data, with the conversions SQLite's types need.
#[derive(Clone, Copy)]
struct ValueDeserializer<'a>(&'a Value);

impl<'de> IntoDeserializer<'de, DeError> for ValueDeserializer<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Real(r) => visitor.visit_f64(*r),
            Value::Text(s) => visitor.visit_str(s),
            Value::Blob(b) => visitor.visit_bytes(b),
        }
    }

    // SQLite stores booleans as integers.
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Integer(0) => visitor.visit_bool(false),
            Value::Integer(1) => visitor.visit_bool(true),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    // `Vec<u8>` deserializes from a sequence, not from bytes.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Blob(b) => {
                let mut seq = SeqDeserializer::new(b.iter().copied());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    // Unit-only enums are stored as their variant's name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Text(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            columns: vec!["id".into(), "name".into(), "admin".into(), "photo".into()],
            rows: vec![
                vec![1.into(), "ada".into(), true.into(), Value::Blob(vec![1, 2])],
                vec![2.into(), Value::Null, 0.into(), Value::Null],
            ],
            rows_read: 2,
            rows_written: 0,
        }
    }

    #[test]
    fn rows_map_onto_structs_by_column_name() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct User {
            name: Option<String>,
            id: u32,
            admin: bool,
        }
        let users: Vec<User> = cursor().deserialize().unwrap();
        assert_eq!(
            users,
            [
                User {
                    name: Some("ada".into()),
                    id: 1,
                    admin: true
                },
                User {
                    name: None,
                    id: 2,
                    admin: false
                },
            ]
        );
    }

    #[test]
    fn rows_map_onto_tuples_in_column_order() {
        type UserRow = (i64, Option<String>, bool, Option<Vec<u8>>);
        let rows: Vec<UserRow> = cursor().deserialize().unwrap();
        assert_eq!(rows[0], (1, Some("ada".into()), true, Some(vec![1, 2])));
        assert_eq!(rows[1], (2, None, false, None));
    }

    #[test]
    fn get_reads_by_name_or_index_and_reports_mismatches() {
        let cursor = cursor();
        let row = cursor.rows().next().unwrap();
        assert_eq!(row.get::<String>("name").unwrap(), "ada");
        assert_eq!(row.get::<i64>(0).unwrap(), 1);
        assert_eq!(row.get::<Vec<u8>>("photo").unwrap(), [1, 2]);
        assert!(matches!(
            row.get::<i64>("name"),
            Err(Error::Serialization(_))
        ));
        assert!(
            matches!(row.get::<i64>("nope"), Err(Error::Serialization(m)) if m.contains("nope"))
        );
        assert!(matches!(cursor.one(), Err(Error::Serialization(_))));
    }

    #[test]
    fn cursor_serializes_as_camel_case_json() {
        let json = serde_json::to_string(&cursor()).unwrap();
        assert_eq!(
            json,
            r#"{"columns":["id","name","admin","photo"],"rows":[[1,"ada",1,[1,2]],[2,null,0,null]],"rowsRead":2,"rowsWritten":0}"#
        );
    }

    #[test]
    fn params_convert_plain_values() {
        let none: Option<i64> = None;
        assert_eq!(
            params![1, "a", 1.5, false, none, vec![7u8]],
            [
                Value::Integer(1),
                Value::Text("a".into()),
                Value::Real(1.5),
                Value::Integer(0),
                Value::Null,
                Value::Blob(vec![7]),
            ]
        );
        assert!(params![].is_empty());
    }
}
