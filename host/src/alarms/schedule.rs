//! The host-wide alarm schedule: which object to wake when. Durable in `<data>/alarms.sqlite`
//! (one row per object with a pending alarm), mirrored in memory as a time-ordered queue that a
//! single dispatcher task drains. A due alarm is taken off the queue when dispatched and stays
//! in the table until the object's actor settles it (removes it, reschedules it, or schedules a
//! retry), so a crash at any point re-delivers it after start-up: at least once.
//!
//! Alarms are filed by class name. A project migration that renames a class moves its alarms to
//! the new name ([`Schedule::rename_class`]); one that deletes a class forgets them
//! ([`Schedule::remove_class`]). While a migration works on a class it *holds* it: the class's
//! due alarms wait instead of being delivered (and dropped, as the class is briefly undeployed).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use crate::clock::now_ms;
use crate::ids::{ObjectId, ObjectKey};
use crate::router::Router;

#[derive(Clone)]
struct Pending {
    time: i64,
    retry: u32,
    name: Option<String>,
}

#[derive(Default)]
struct Queue {
    by_key: HashMap<ObjectKey, Pending>,
    /// Not-yet-dispatched alarms by time.
    due: BTreeSet<(i64, ObjectKey)>,
    /// Classes whose alarms wait: a migration is renaming or deleting them.
    held: HashSet<Arc<str>>,
}

/// How long a held class's due alarm waits before the dispatcher looks at it again.
const HELD_RETRY_MS: i64 = 50;

/// Holds classes' alarms (see [`Schedule::hold`]) until dropped.
pub(crate) struct Hold<'a> {
    schedule: &'a Schedule,
    classes: Vec<Arc<str>>,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut queue = self.schedule.queue.lock().expect("schedule lock");
        for class in &self.classes {
            queue.held.remove(class);
        }
        drop(queue);
        self.schedule.changed.notify_one();
    }
}

/// The schedule; see the module docs.
pub struct Schedule {
    db: Mutex<Connection>,
    queue: Mutex<Queue>,
    changed: Notify,
}

impl Schedule {
    /// Opens (or creates) the schedule at `path` and loads every pending alarm. `durable`: fsync
    /// each change (the host's `durable-commits`).
    pub(crate) fn open(path: &Path, durable: bool) -> rusqlite::Result<Schedule> {
        let conn = Connection::open(path)?;
        let synchronous = if durable { "FULL" } else { "NORMAL" };
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS alarms (
                 class TEXT NOT NULL, id TEXT NOT NULL, name TEXT,
                 time INTEGER NOT NULL, retry INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (class, id)) WITHOUT ROWID;",
        )?;
        let mut queue = Queue::default();
        {
            let mut stmt = conn.prepare("SELECT class, id, name, time, retry FROM alarms")?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, u32>(4)?,
                ))
            })?;
            for row in rows {
                let (class, id, name, time, retry) = row?;
                let Some(id) = ObjectId::from_hex(&id) else {
                    tracing::warn!(target: "wasmdo.alarms", class, id, "skipping a malformed alarm row");
                    continue;
                };
                let key = ObjectKey {
                    class: class.into(),
                    id,
                };
                queue.due.insert((time, key.clone()));
                queue.by_key.insert(key, Pending { time, retry, name });
            }
        }
        Ok(Schedule {
            db: Mutex::new(conn),
            queue: Mutex::new(queue),
            changed: Notify::new(),
        })
    }

    /// Number of pending alarms.
    pub fn pending(&self) -> usize {
        self.queue.lock().expect("schedule lock").by_key.len()
    }

    /// Schedules `key` at `time` (replacing what was there), durably, then wakes the dispatcher.
    /// The object's own database stays the authority: a wake-up for an object that has no alarm
    /// due is harmless.
    pub fn set(
        &self,
        key: &ObjectKey,
        name: Option<&str>,
        time: i64,
        retry: u32,
    ) -> Result<(), String> {
        {
            let db = self.db.lock().expect("schedule db lock");
            db.prepare_cached(
                "INSERT INTO alarms (class, id, name, time, retry) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (class, id) DO UPDATE SET name = coalesce(excluded.name, name),
                 time = excluded.time, retry = excluded.retry",
            )
            .and_then(|mut stmt| {
                stmt.execute(rusqlite::params![
                    &*key.class,
                    key.id.to_hex(),
                    name,
                    time,
                    retry
                ])
            })
            .map_err(|e| format!("cannot write the alarm schedule: {e}"))?;
        }
        let mut queue = self.queue.lock().expect("schedule lock");
        if let Some(old) = queue.by_key.get(key) {
            let old_time = old.time;
            queue.due.remove(&(old_time, key.clone()));
        }
        let name = name
            .map(str::to_string)
            .or_else(|| queue.by_key.get(key).and_then(|p| p.name.clone()));
        queue.due.insert((time, key.clone()));
        queue
            .by_key
            .insert(key.clone(), Pending { time, retry, name });
        drop(queue);
        self.changed.notify_one();
        Ok(())
    }

    /// Forgets `key`'s alarm.
    pub(crate) fn remove(&self, key: &ObjectKey) -> Result<(), String> {
        {
            let db = self.db.lock().expect("schedule db lock");
            db.prepare_cached("DELETE FROM alarms WHERE class = ?1 AND id = ?2")
                .and_then(|mut stmt| stmt.execute(rusqlite::params![&*key.class, key.id.to_hex()]))
                .map_err(|e| format!("cannot write the alarm schedule: {e}"))?;
        }
        let mut queue = self.queue.lock().expect("schedule lock");
        if let Some(old) = queue.by_key.remove(key) {
            queue.due.remove(&(old.time, key.clone()));
        }
        Ok(())
    }

    /// Holds the alarms of `classes` until the returned guard is dropped: due ones wait (in
    /// memory; the table keeps their times) instead of going to their objects.
    pub(crate) fn hold(&self, classes: &[&str]) -> Hold<'_> {
        let classes: Vec<Arc<str>> = classes.iter().map(|c| Arc::from(*c)).collect();
        let mut queue = self.queue.lock().expect("schedule lock");
        queue.held.extend(classes.iter().cloned());
        Hold {
            schedule: self,
            classes,
        }
    }

    /// Files every alarm of class `from` under `to` (the class was renamed; its objects keep
    /// their ids). Idempotent.
    pub(crate) fn rename_class(&self, from: &str, to: &str) -> Result<(), String> {
        {
            let db = self.db.lock().expect("schedule db lock");
            db.execute(
                "UPDATE alarms SET class = ?2 WHERE class = ?1",
                rusqlite::params![from, to],
            )
            .map_err(|e| format!("cannot write the alarm schedule: {e}"))?;
        }
        let mut queue = self.queue.lock().expect("schedule lock");
        let moved: Vec<ObjectKey> = (queue.by_key.keys())
            .filter(|k| &*k.class == from)
            .cloned()
            .collect();
        let to: Arc<str> = to.into();
        for key in moved {
            let pending = queue.by_key.remove(&key).expect("listed above");
            let was_due = queue.due.remove(&(pending.time, key.clone()));
            let renamed = ObjectKey {
                class: to.clone(),
                id: key.id,
            };
            if was_due {
                queue.due.insert((pending.time, renamed.clone()));
            }
            queue.by_key.insert(renamed, pending);
        }
        drop(queue);
        self.changed.notify_one();
        Ok(())
    }

    /// Forgets every alarm of `class` (the class was deleted with its objects). Idempotent.
    pub(crate) fn remove_class(&self, class: &str) -> Result<(), String> {
        {
            let db = self.db.lock().expect("schedule db lock");
            db.execute("DELETE FROM alarms WHERE class = ?1", [class])
                .map_err(|e| format!("cannot write the alarm schedule: {e}"))?;
        }
        let mut queue = self.queue.lock().expect("schedule lock");
        queue.by_key.retain(|k, _| &*k.class != class);
        queue.due.retain(|(_, k)| &*k.class != class);
        Ok(())
    }

    /// Dispatches due alarms to their objects through `router` until it is gone (the host
    /// stopped).
    pub(crate) async fn run(self: Arc<Self>, router: Weak<dyn Router>) {
        loop {
            let next = {
                let mut queue = self.queue.lock().expect("schedule lock");
                let now = now_ms();
                let mut due = Vec::new();
                let mut waiting = Vec::new();
                while let Some((time, key)) = queue.due.first().cloned() {
                    if time > now {
                        break;
                    }
                    queue.due.pop_first();
                    if queue.held.contains(&key.class) {
                        waiting.push(key);
                        continue;
                    }
                    let pending = queue.by_key.get(&key).cloned();
                    if let Some(pending) = pending {
                        due.push((key, pending));
                    }
                }
                // a held class's alarms look again shortly (in memory only: the table keeps
                // their times, so a restart delivers them)
                for key in waiting {
                    let later = now + HELD_RETRY_MS;
                    if let Some(pending) = queue.by_key.get_mut(&key) {
                        pending.time = later;
                        queue.due.insert((later, key));
                    }
                }
                let next = queue.due.first().map(|(t, _)| *t);
                drop(queue);
                let Some(router) = router.upgrade() else {
                    return;
                };
                for (key, pending) in due {
                    router.deliver_alarm(&key, pending.name.as_deref(), pending.retry);
                }
                next
            };
            let wait = match next {
                Some(time) => Duration::from_millis((time - now_ms()).max(0) as u64),
                None => Duration::from_secs(3600),
            };
            // `notified` is registered before sleeping, so a change made meanwhile wakes us
            let _ = tokio::time::timeout(wait, self.changed.notified()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::HostSecret;

    fn keys(schedule: &Schedule) -> Vec<(String, i64)> {
        let queue = schedule.queue.lock().unwrap();
        let mut keys: Vec<_> = (queue.due.iter())
            .map(|(time, key)| (key.class.to_string(), *time))
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn a_renamed_class_keeps_its_alarms_and_a_deleted_one_loses_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alarms.sqlite");
        let secret = HostSecret::load_or_create(&dir.path().join("host.key")).unwrap();
        let id = secret.namespace("Store").id_from_name("a");
        let schedule = Schedule::open(&path, false).unwrap();
        schedule
            .set(&ObjectKey::new("Store", id), Some("a"), 10, 0)
            .unwrap();
        schedule
            .set(&ObjectKey::new("Other", id), None, 20, 0)
            .unwrap();
        schedule.rename_class("Store", "Vault").unwrap();
        assert_eq!(
            keys(&schedule),
            [("Other".into(), 20), ("Vault".into(), 10)]
        );
        // repeating it changes nothing, and the table says the same after a restart
        schedule.rename_class("Store", "Vault").unwrap();
        drop(schedule);
        let schedule = Schedule::open(&path, false).unwrap();
        assert_eq!(
            keys(&schedule),
            [("Other".into(), 20), ("Vault".into(), 10)]
        );
        schedule.remove_class("Vault").unwrap();
        assert_eq!(schedule.pending(), 1);
        drop(schedule);
        let schedule = Schedule::open(&path, false).unwrap();
        assert_eq!(keys(&schedule), [("Other".into(), 20)]);
    }
}
