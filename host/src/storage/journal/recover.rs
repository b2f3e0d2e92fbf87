//! Crash recovery: brings every object file up to date from the journal, before any event runs.
//!
//! For each object the journal names, in journal order: open the file (SQLite's own WAL recovery
//! gives the last commit the file holds, always a whole one), fold its WAL into it, read the
//! number of the last batch it contains (`_wasmdo_commit`), and write the pages of every later
//! batch into it, in order. Pages are whole, so batches `k+1 ..= n` written over a file at batch
//! `k` leave it exactly at batch `n`, whatever the disk kept of the file's own writes. Batches the
//! file already has are skipped; a file that is *ahead* of the journal holds a batch whose journal
//! write a crash cut off: it was never acknowledged, and the file is left as it is (a whole
//! commit, never half of one).
//!
//! A missing or empty file whose first batch is in the journal is made again from the template
//! every new database starts from. Anything else that does not fit (a gap between the file's
//! batch and the journal's) stops the host with the object's name: the journal is kept untouched
//! for an operator to look at, rather than guessing.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use super::{format, sync_dir, sync_file_system};
use crate::storage::commit::{Changes, Image, describe};
use crate::storage::sqlite::{batch_number, create_database};

/// What recovery did.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The number the next segment takes.
    pub(crate) next_segment: u64,
    /// Complete batches found in the journal.
    pub(crate) batches: usize,
    /// Batches written into object files (the others were already there).
    pub(crate) replayed: usize,
    /// Objects whose files were brought forward.
    pub(crate) objects: usize,
}

/// Replays the journal in `dir` into the object files under `data`, makes them durable and
/// clears the journal. Nothing may have the object files open.
pub(crate) fn recover(data: &Path, dir: &Path) -> Result<Recovered, String> {
    let segments =
        format::segments(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut recovered = Recovered {
        next_segment: segments.last().map_or(1, |(n, _)| n + 1),
        ..Recovered::default()
    };
    if segments.is_empty() {
        return Ok(recovered);
    }
    let mut order: Vec<Arc<str>> = Vec::new();
    let mut by_object: HashMap<Arc<str>, Vec<Changes>> = HashMap::new();
    for (number, path) in &segments {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            // deleted since it was listed: a checkpoint had made it redundant
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let segment = format::decode(&bytes, *number)
            .map_err(|e| format!("{}: {e}; move it aside to start", path.display()))?;
        if let Some((bytes, reason)) = &segment.torn {
            tracing::warn!(target: "wasmdo.journal", segment = number,
                "ignoring the last {bytes} bytes of journal segment {number}, from byte {} ({reason}): a crash cut that write short, so none of its batches was acknowledged", segment.end);
        }
        for changes in segment.records {
            recovered.batches += 1;
            let list = by_object.entry(changes.object.clone()).or_insert_with(|| {
                order.push(changes.object.clone());
                Vec::new()
            });
            list.push(changes);
        }
    }
    for object in &order {
        let records = by_object.remove(object).unwrap_or_default();
        let replayed = replay(data, object, &records).map_err(|e| {
            format!(
                "cannot recover {object} from the journal: {e}; the journal in {} is kept as it is",
                dir.display()
            )
        })?;
        if replayed > 0 {
            recovered.objects += 1;
            recovered.replayed += replayed;
        }
    }
    sync_file_system(data)
        .map_err(|e| format!("cannot sync {}: {}", data.display(), describe(&e)))?;
    for (_, path) in &segments {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot delete {}: {e}", path.display()));
            }
            _ => {}
        }
    }
    sync_dir(dir).map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
    if recovered.batches > 0 {
        tracing::info!(target: "wasmdo.journal",
            "recovered from the journal: {} batches, {} written into {} object databases",
            recovered.batches, recovered.replayed, recovered.objects);
    }
    Ok(recovered)
}

/// Makes the object file `object` (its path under `data`) again from `image` (`None`: the
/// object has no batch, and no file): the file, its WAL and shared-memory file are deleted
/// first, then the template is written with the image's pages. Nothing may have the file open.
pub(crate) fn rebuild(data: &Path, object: &str, image: Option<&Image>) -> Result<(), String> {
    let path = data.join(object);
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", Path::new(&file).display())),
        }
    }
    let Some(image) = image else {
        return Ok(());
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    create_database(&path).map_err(|e| format!("cannot create the file: {e}"))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open: {e}"))?;
    for (number, page) in &image.pages {
        let offset = u64::from(number.saturating_sub(1)) * u64::from(image.page_size);
        file.write_all_at(page, offset)
            .map_err(|e| format!("cannot write page {number}: {}", describe(&e)))?;
    }
    file.set_len(u64::from(image.db_pages) * u64::from(image.page_size))
        .map_err(|e| format!("cannot set the size: {}", describe(&e)))?;
    file.sync_all()
        .map_err(|e| format!("cannot sync: {}", describe(&e)))?;
    drop(file);
    match file_batch(&path)? {
        Some(now) if now == image.seq => Ok(()),
        other => Err(format!(
            "the rebuilt file holds batch {other:?}, not {}",
            image.seq
        )),
    }
}

/// Brings one object file forward; returns how many batches it wrote.
fn replay(data: &Path, object: &str, records: &[Changes]) -> Result<usize, String> {
    let relative = Path::new(object);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain || !object.starts_with("objects/") || !object.ends_with(".sqlite") {
        return Err("not an object database path".into());
    }
    let path = data.join(relative);
    let last = records.last().map_or(0, |r| r.seq);
    let has_first = records.iter().any(|r| r.seq == 1);
    let at = match file_batch(&path) {
        Ok(Some(at)) => at,
        // never made durable: the journal holds the object's whole history
        Ok(None) if has_first => {
            create_database(&path).map_err(|e| format!("cannot create the file: {e}"))?;
            0
        }
        Ok(None) => {
            return Err(format!(
                "the file is missing and the journal starts at batch {}",
                records[0].seq
            ));
        }
        Err(e) if has_first => {
            tracing::warn!(target: "wasmdo.journal", object, "the file cannot be read ({e}); making it again from its whole history in the journal");
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove the unreadable file: {e}"))?;
            create_database(&path).map_err(|e| format!("cannot create the file: {e}"))?;
            0
        }
        Err(e) => return Err(e),
    };
    if at >= last {
        return Ok(0);
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let mut size = None;
    for (expected, record) in (at + 1..).zip(records.iter().filter(|r| r.seq > at)) {
        if record.seq != expected {
            return Err(format!(
                "the file holds batch {at} and the journal has batch {} but not batch {expected}",
                record.seq
            ));
        }
        for (number, page) in record.pages() {
            let offset = u64::from(number.saturating_sub(1)) * u64::from(record.page_size);
            file.write_all_at(page, offset)
                .map_err(|e| format!("cannot write page {number}: {}", describe(&e)))?;
        }
        size = Some(u64::from(record.db_pages) * u64::from(record.page_size));
    }
    if let Some(size) = size {
        file.set_len(size)
            .map_err(|e| format!("cannot set the size: {}", describe(&e)))?;
    }
    file.sync_all()
        .map_err(|e| format!("cannot sync: {}", describe(&e)))?;
    drop(file);
    match file_batch(&path)? {
        Some(now) if now == last => {}
        other => {
            return Err(format!(
                "after replay the file holds batch {other:?}, not {last}"
            ));
        }
    }
    tracing::info!(target: "wasmdo.journal", object, from = at, to = last, "replayed");
    Ok((last - at) as usize)
}

/// The last batch the file at `path` holds (`None`: no file, or an empty one), after folding its
/// WAL into it so that page writes land on the file SQLite reads.
pub(crate) fn file_batch(path: &Path) -> Result<Option<u64>, String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot stat: {e}")),
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| format!("cannot open: {e}"))?;
    let read = || -> rusqlite::Result<u64> {
        conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        // a database older than the table holds no journaled batch
        Ok(batch_number(&conn)?.unwrap_or(0))
    };
    let seq = read().map_err(|e| format!("cannot read: {e}"))?;
    conn.close()
        .map_err(|(_, e)| format!("cannot close: {e}"))?;
    Ok(Some(seq))
}
