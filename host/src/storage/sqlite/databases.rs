//! Where object databases live and how many are open: `<data>/objects/<namespace>/<xx>/<id>.sqlite`,
//! the host-wide count of open databases against `max-open-databases`, and the databases of
//! objects without an actor (evicted, hibernating) kept open — *parked* — for their next
//! activation, which adopts the connection instead of opening the file (~300 µs).
//!
//! Parked databases count as open and give way first: when too many are open, the oldest parked
//! one is closed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ParkedDatabase;
use crate::ids::{ObjectId, ObjectKey};

/// The object databases of one host.
pub(crate) struct Databases {
    data: PathBuf,
    max_open: usize,
    /// Object databases currently open (kept by the actors as they open and close them).
    open: AtomicUsize,
    parked: Mutex<Parked>,
}

#[derive(Default)]
struct Parked {
    databases: HashMap<ObjectKey, (u64, ParkedDatabase)>,
    /// The same keys by when they were parked (`seq`): the oldest is the first.
    order: BTreeMap<u64, ObjectKey>,
    next: u64,
}

impl Parked {
    fn insert(&mut self, key: ObjectKey, database: ParkedDatabase) {
        self.next += 1;
        self.order.insert(self.next, key.clone());
        if let Some((seq, _replaced)) = self.databases.insert(key, (self.next, database)) {
            self.order.remove(&seq);
        }
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<ParkedDatabase> {
        let (seq, database) = self.databases.remove(key)?;
        self.order.remove(&seq);
        Some(database)
    }

    /// The database parked longest ago, taken out.
    fn pop_oldest(&mut self) -> Option<ParkedDatabase> {
        let (_, key) = self.order.pop_first()?;
        self.databases.remove(&key).map(|(_, database)| database)
    }
}

impl Databases {
    /// The databases under `<data>/objects`, at most `max_open` open (a soft cap).
    pub(crate) fn new(data: PathBuf, max_open: usize) -> Databases {
        Databases {
            data,
            max_open,
            open: AtomicUsize::new(0),
            parked: Mutex::default(),
        }
    }

    /// `<data>/objects/<namespace>/<first two hex>/<id>.sqlite`: fan out so no directory holds
    /// millions of files. The namespace name is the class name unless the class was renamed
    /// (it keeps its predecessor's, and so its objects' files).
    pub(crate) fn path(&self, namespace: &str, id: ObjectId) -> PathBuf {
        self.data.join(&*self.name(namespace, id))
    }

    /// The database's name in the commit journal: its path under the data directory.
    pub(crate) fn name(&self, namespace: &str, id: ObjectId) -> std::sync::Arc<str> {
        let hex = id.to_hex();
        format!("objects/{namespace}/{}/{hex}.sqlite", &hex[..2]).into()
    }

    /// `<data>/objects/<namespace>`: the databases of every object of one namespace.
    pub(crate) fn namespace_dir(&self, namespace: &str) -> PathBuf {
        self.data.join("objects").join(namespace)
    }

    /// Keeps the open database of an object whose actor retires, for its next activation.
    pub(crate) fn park(&self, key: ObjectKey, database: ParkedDatabase) {
        self.parked
            .lock()
            .expect("parked databases lock")
            .insert(key, database);
        self.close_parked_while_too_many();
    }

    /// The object's parked database, if it is still open.
    pub(crate) fn unpark(&self, key: &ObjectKey) -> Option<ParkedDatabase> {
        self.parked
            .lock()
            .expect("parked databases lock")
            .remove(key)
    }

    /// Closes the parked databases of `class` (its objects are being stopped by a migration).
    /// Closes the parked database of `key`, if any (an object this host is taking over again).
    pub(crate) fn close(&self, key: &ObjectKey) {
        let closed = self
            .parked
            .lock()
            .expect("parked databases lock")
            .remove(key);
        if closed.is_some() {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn close_class(&self, class: &str) {
        let closed: Vec<_> = {
            let mut parked = self.parked.lock().expect("parked databases lock");
            let keys: Vec<_> = (parked.databases.keys())
                .filter(|k| &*k.class == class)
                .cloned()
                .collect();
            keys.iter().filter_map(|k| parked.remove(k)).collect()
        };
        self.open.fetch_sub(closed.len(), Ordering::Relaxed);
        drop(closed); // closes the connections
    }

    /// Closes parked databases, oldest first, while more databases are open than allowed.
    fn close_parked_while_too_many(&self) {
        while self.too_many_open() {
            let oldest = self
                .parked
                .lock()
                .expect("parked databases lock")
                .pop_oldest();
            let Some(closed) = oldest else {
                return;
            };
            drop(closed); // closes the connection, outside the lock
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Records that an actor opened (`+1`) or closed (`-1`) its database; returns whether more
    /// databases are open than `max-open-databases`.
    pub(crate) fn opened_or_closed(&self, opened: bool) -> bool {
        if opened {
            self.open.fetch_add(1, Ordering::Relaxed);
            // parked databases give way to those of live objects
            self.close_parked_while_too_many();
        } else {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
        self.too_many_open()
    }

    /// Whether more databases are open than `max-open-databases`.
    pub(crate) fn too_many_open(&self) -> bool {
        self.open.load(Ordering::Relaxed) > self.max_open
    }

    /// Number of object databases open right now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::test_support::{commit, storage};

    #[test]
    fn parked_databases_give_way_oldest_first() {
        let dir = tempfile::TempDir::new().unwrap();
        let databases = Databases::new(dir.path().to_path_buf(), 3);
        let key = |n: u8| {
            let id = ObjectId::from_hex(&format!("{n:02x}").repeat(32)).unwrap();
            ObjectKey::new("c", id)
        };
        let mut kept = Vec::new();
        for n in 0..3 {
            let (tmp, mut s) = storage();
            s.put("k", b"v").unwrap();
            commit(&mut s);
            databases.opened_or_closed(true);
            databases.park(key(n), s.park().expect("an open database"));
            kept.push(tmp);
        }
        assert_eq!(
            databases.open(),
            3,
            "three open, three allowed: all stay parked"
        );
        // two more objects open theirs: the two parked longest ago give way, in that order
        databases.opened_or_closed(true);
        assert!(databases.unpark(&key(0)).is_none(), "the oldest was closed");
        databases.opened_or_closed(true);
        assert!(databases.unpark(&key(1)).is_none(), "then the next oldest");
        assert_eq!(databases.open(), 3);
        assert!(databases.unpark(&key(2)).is_some());
        assert!(databases.unpark(&key(2)).is_none(), "taken once");
    }
}
