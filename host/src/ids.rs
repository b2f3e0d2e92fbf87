//! Object ids: how a class name and an object name (or a random seed) become the 64-hex-char id
//! that addresses one object.
//!
//! An id is 16 bytes of body followed by a 16-byte tag, `HMAC-SHA-256(namespace key, body)`, so
//! `id-from-string` can refuse ids minted for another class (or made up) without a lookup. The
//! body of a named id is itself keyed (`HMAC(namespace key, "name:" ‖ name)`), so names cannot be
//! recovered from ids and ids cannot be predicted without the host secret. Each class's namespace
//! key is derived from the host secret kept in the data directory and the class's *namespace
//! name*: ids are stable across restarts and differ between hosts. The namespace name is the
//! class name, except for a class renamed by a project migration, which keeps its predecessor's
//! (so `idFromName("x")` is the same id before and after the rename).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of an id in bytes (rendered as twice as many hex characters).
const ID_BYTES: usize = 32;
const BODY_BYTES: usize = 16;

/// The id of one object: 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; ID_BYTES]);

impl ObjectId {
    /// Lowercase hex rendering.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`Self::to_hex`] output without checking the namespace: for ids the host wrote
    /// itself (the alarm schedule). Ids from users go through [`Namespace::id_from_string`].
    pub(crate) fn from_hex(s: &str) -> Option<ObjectId> {
        hex::decode(s).ok()?.try_into().ok().map(ObjectId)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.to_hex())
    }
}

/// Identifies one object on this host: its class and its id. The key of everything kept per
/// object (live actors, alarms, WebSockets, parked databases, snapshots).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ObjectKey {
    pub(crate) class: Arc<str>,
    pub(crate) id: ObjectId,
}

impl ObjectKey {
    /// Object `id` of `class`.
    pub fn new(class: &str, id: ObjectId) -> ObjectKey {
        ObjectKey {
            class: class.into(),
            id,
        }
    }
}

/// The secret every namespace key is derived from, kept in `<data>/host.key`.
#[derive(Clone)]
pub struct HostSecret([u8; 32]);

impl HostSecret {
    /// Loads the secret from `path`, creating it with fresh random bytes on first start.
    pub fn load_or_create(path: &Path) -> std::io::Result<HostSecret> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0; 32];
                key.copy_from_slice(&bytes);
                Ok(HostSecret(key))
            }
            Ok(_) => Err(std::io::Error::other(format!(
                "{} is not a 32-byte host key; restore it from a backup (ids depend on it)",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                // write-then-rename so a crash never leaves a truncated key behind
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, key)?;
                std::fs::rename(&tmp, path)?;
                Ok(HostSecret(key))
            }
            Err(e) => Err(e),
        }
    }

    /// The secret's bytes (to share it with the other hosts of a cluster).
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A secret from 32 bytes (a cluster's shared one).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<HostSecret> {
        bytes.try_into().ok().map(HostSecret)
    }

    /// The namespace named `name` (a class's namespace name: its own name unless renamed).
    pub fn namespace(&self, name: &str) -> Namespace {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("any key length");
        mac.update(b"wasmdo namespace\0");
        mac.update(name.as_bytes());
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        Namespace(HmacSha256::new_from_slice(&key).expect("any key length"))
    }
}

/// Mints and checks the ids of one class. Holds its HMAC already keyed: keying hashes two
/// blocks, which every id would otherwise pay again (ids are derived on every call by name).
#[derive(Clone)]
pub struct Namespace(HmacSha256);

/// Why a string is not an id of this namespace.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidId {
    /// Wrong length or not hex.
    #[error("an object id is 64 hex characters")]
    Malformed,
    /// Well-formed, but minted for another class (or made up).
    #[error("this id does not belong to this class")]
    WrongNamespace,
}

impl Namespace {
    fn tag(&self, body: &[u8]) -> [u8; ID_BYTES - BODY_BYTES] {
        let mut mac = self.0.clone();
        mac.update(b"tag\0");
        mac.update(body);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        full[..ID_BYTES - BODY_BYTES].try_into().expect("16 bytes")
    }

    fn assemble(&self, body: [u8; BODY_BYTES]) -> ObjectId {
        let mut id = [0; ID_BYTES];
        id[..BODY_BYTES].copy_from_slice(&body);
        id[BODY_BYTES..].copy_from_slice(&self.tag(&body));
        ObjectId(id)
    }

    /// The id of the object called `name` (always the same id for the same name).
    pub fn id_from_name(&self, name: &str) -> ObjectId {
        let mut mac = self.0.clone();
        mac.update(b"name\0");
        mac.update(name.as_bytes());
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        self.assemble(full[..BODY_BYTES].try_into().expect("16 bytes"))
    }

    /// A fresh, random id.
    pub fn new_unique_id(&self) -> ObjectId {
        let mut body = [0; BODY_BYTES];
        getrandom::fill(&mut body).expect("the OS random source is available");
        self.assemble(body)
    }

    /// Parses an id rendered by [`ObjectId::to_hex`], refusing ids of other namespaces.
    pub fn id_from_string(&self, s: &str) -> Result<ObjectId, InvalidId> {
        let bytes = hex::decode(s).map_err(|_| InvalidId::Malformed)?;
        let bytes: [u8; ID_BYTES] = bytes.try_into().map_err(|_| InvalidId::Malformed)?;
        let body: [u8; BODY_BYTES] = bytes[..BODY_BYTES].try_into().expect("16 bytes");
        // constant-time comparison is unnecessary: ids are not secrets, the tag only scopes them
        if self.tag(&body) != bytes[BODY_BYTES..] {
            return Err(InvalidId::WrongNamespace);
        }
        Ok(ObjectId(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> HostSecret {
        HostSecret([7; 32])
    }

    #[test]
    fn names_map_to_stable_distinct_ids() {
        let ns = secret().namespace("counter");
        assert_eq!(ns.id_from_name("alice"), ns.id_from_name("alice"));
        assert_ne!(ns.id_from_name("alice"), ns.id_from_name("bob"));
        assert_eq!(ns.id_from_name("alice").to_hex().len(), 64);
    }

    #[test]
    fn ids_round_trip_and_are_scoped_to_their_class() {
        let counter = secret().namespace("counter");
        let room = secret().namespace("room");
        for id in [counter.id_from_name("x"), counter.new_unique_id()] {
            assert_eq!(counter.id_from_string(&id.to_hex()), Ok(id));
            assert_eq!(
                room.id_from_string(&id.to_hex()),
                Err(InvalidId::WrongNamespace)
            );
        }
        assert_ne!(
            counter.id_from_name("x"),
            room.id_from_name("x"),
            "same name, other class"
        );
        assert_eq!(counter.id_from_string("zz"), Err(InvalidId::Malformed));
        assert_eq!(
            counter.id_from_string(&"0".repeat(64)),
            Err(InvalidId::WrongNamespace)
        );
    }

    #[test]
    fn ids_are_the_documented_hmacs() {
        // computed independently (Python's hmac): ids must never change, objects' data is
        // filed under them
        let ns = secret().namespace("counter");
        assert_eq!(
            ns.id_from_name("alice").to_hex(),
            "5efd803d60051be0e0e61801aebd359819c8040b34993c196990dbc9d83f8b9d"
        );
    }

    #[test]
    fn unique_ids_differ() {
        let ns = secret().namespace("counter");
        assert_ne!(ns.new_unique_id(), ns.new_unique_id());
    }
}
