//! Reading what a commit wrote: the frames SQLite appended to the database's WAL, for the commit
//! journal, and taking them back if the journal could not keep them.
//!
//! SQLite calls the WAL hook after every commit with the number of frames now in the log. The
//! frames of the last commit are those after the previous commit's count — unless SQLite
//! restarted the log (it does after a checkpoint that folded every frame into the database),
//! which changes the salts in the WAL header; the commit's frames then start at the first.
//! Each frame read is checked against the header's salts, so a frame of an older generation is
//! never mistaken for a new one.
//!
//! The WAL is checkpointed here too ([`WalTail::wants_checkpoint`]): a WAL hook replaces SQLite's
//! automatic checkpoints, and checkpoints must wait until the journal holds the frames anyway
//! (see [`WalTail::take_back`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rusqlite::Connection;

use crate::storage::commit::Changes;

/// Frames in the WAL after which it is folded into the database (SQLite's own default).
pub(super) const CHECKPOINT_FRAMES: u32 = 1000;
const WAL_HEADER: usize = 32;

/// The WAL of one open database, as far as the journal has taken it.
#[derive(Debug)]
pub(super) struct WalTail {
    path: PathBuf,
    file: Option<File>,
    /// Frames in the log after the last commit taken.
    frames: u32,
    /// The header's salts when `frames` was counted.
    salts: [u8; 8],
    /// Frames in the log after the latest commit, as the WAL hook reported.
    hooked: Arc<AtomicU32>,
    /// Where the last commit's frames start, until the journal has them.
    unsettled: Option<u64>,
}

impl WalTail {
    /// Installs the WAL hook on a freshly opened connection to the database at `db`, and counts
    /// the frames already in its log (none in a database just `created` from the template).
    pub(super) fn attach(
        conn: &mut Connection,
        db: &Path,
        created: bool,
    ) -> rusqlite::Result<WalTail> {
        let hooked = Arc::new(AtomicU32::new(0));
        let hook = hooked.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames| {
            hook.store(u32::try_from(frames).unwrap_or(0), Ordering::Relaxed);
            Ok(())
        }))?;
        let frames = match created {
            true => 0,
            // NOOP: only report how many frames the log holds
            false => {
                let frames: i64 =
                    conn.query_row("PRAGMA wal_checkpoint(NOOP)", [], |row| row.get(1))?;
                u32::try_from(frames).unwrap_or(0)
            }
        };
        hooked.store(frames, Ordering::Relaxed);
        let mut path = db.as_os_str().to_owned();
        path.push("-wal");
        let mut tail = WalTail {
            path: PathBuf::from(path),
            file: None,
            frames,
            salts: [0; 8],
            hooked,
            unsettled: None,
        };
        if frames > 0 {
            let header = tail.header().map_err(|e| {
                rusqlite::Error::ToSqlConversionFailure(format!("reading the WAL: {e}").into())
            })?;
            tail.salts = salts(&header);
        }
        Ok(tail)
    }

    /// The frames of the commit that just happened, as [`Changes`] for the journal.
    pub(super) fn take(&mut self, object: Arc<str>, seq: u64) -> std::io::Result<Changes> {
        let frames = self.hooked.load(Ordering::Relaxed);
        let header = self.header()?;
        let page_size = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
        let salts = salts(&header);
        let first = if salts == self.salts {
            self.frames + 1
        } else {
            1
        };
        if frames < first || !(512..=65536).contains(&page_size) {
            return Err(std::io::Error::other(format!(
                "the WAL does not hold the commit (frames {first}..={frames}, page size {page_size})"
            )));
        }
        let frame_size = Changes::frame_size(page_size);
        let start = WAL_HEADER as u64 + u64::from(first - 1) * frame_size as u64;
        let mut bytes = vec![0; (frames - first + 1) as usize * frame_size];
        self.file()?.read_exact_at(&mut bytes, start)?;
        let mut db_pages = 0;
        for frame in bytes.chunks_exact(frame_size) {
            if frame[8..16] != salts {
                return Err(std::io::Error::other("a WAL frame of another generation"));
            }
            db_pages = u32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
        }
        if db_pages == 0 {
            return Err(std::io::Error::other(
                "the commit's last WAL frame is not a commit frame",
            ));
        }
        self.unsettled = Some(start);
        self.frames = frames;
        self.salts = salts;
        Ok(Changes {
            object,
            seq,
            page_size,
            db_pages,
            frames: bytes,
            alarm: None,
        })
    }

    /// Makes the WAL durable by itself (for a commit the journal does not carry).
    pub(super) fn sync(&mut self) -> Result<(), String> {
        let path = self.path.display().to_string();
        self.file().and_then(File::sync_data).map_err(|e| {
            format!(
                "cannot sync {path}: {}",
                crate::storage::commit::describe(&e)
            )
        })
    }

    /// Forgets where the last commit ended: the next commit is read from the log's first frame.
    /// Frames carried again are harmless (replaying a log's frames in order from its first
    /// leaves the file at the last commit).
    pub(super) fn forget_position(&mut self) {
        self.salts = [0; 8];
    }

    /// The journal holds the last commit's frames.
    pub(super) fn settled(&mut self) {
        self.unsettled = None;
    }

    /// Whether the log is long enough to fold into the database (only between commits the
    /// journal holds).
    pub(super) fn wants_checkpoint(&self) -> bool {
        self.unsettled.is_none() && self.frames >= CHECKPOINT_FRAMES
    }

    /// Takes the last commit out of the log, because the journal could not keep it: cuts the WAL
    /// just before its first frame. The connection must be closed first (SQLite then forgets what
    /// it knew of the log, and the next open reads it again, without the commit). Nothing can
    /// have folded the commit into the database: checkpoints wait until the journal holds it.
    pub(super) fn take_back(mut self) -> std::io::Result<()> {
        let Some(start) = self.unsettled.take() else {
            return Ok(());
        };
        self.file()?.set_len(start)
    }

    fn header(&mut self) -> std::io::Result<[u8; WAL_HEADER]> {
        let mut header = [0; WAL_HEADER];
        self.file()?.read_exact_at(&mut header, 0)?;
        Ok(header)
    }

    fn file(&mut self) -> std::io::Result<&File> {
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)?;
            self.file = Some(file);
        }
        Ok(self.file.as_ref().expect("opened above"))
    }
}

fn salts(header: &[u8; WAL_HEADER]) -> [u8; 8] {
    header[16..24].try_into().expect("8 bytes")
}
