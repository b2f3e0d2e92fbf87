//! The commit seam: how a batch an object has committed becomes durable before its replies leave
//! (the output gate).
//!
//! An object's database commits each batch to its own write-ahead log *without* syncing it, then
//! hands the pages that commit wrote ([`Changes`]) to the host's [`CommitLog`], and releases the
//! batch's replies only once the log says they are durable ([`Durable`]). Today's log is the
//! host-wide [`Journal`](super::journal::Journal): one append-only file, one fsync for every
//! batch waiting at that moment, whichever objects they come from (group commit). A cluster store
//! is meant to be another implementation of the same trait.
//!
//! Pages, not statements: what is shipped is exactly what SQLite wrote (the frames of its WAL), so
//! replaying it needs no SQL, is deterministic whatever the guest's SQL did (`random()`, triggers,
//! DDL), and brings the file to the very state the acknowledged commit left.

use std::sync::Arc;

use tokio::sync::oneshot;

/// The pages one batch commit of one object wrote, in the order SQLite wrote them.
pub(crate) struct Changes {
    /// The object's database, relative to the data directory (`objects/<namespace>/<xx>/<id>.sqlite`).
    pub(crate) object: Arc<str>,
    /// The object's commit number: 1 for its first journaled batch, +1 for each one after. The
    /// database holds the number of the last batch it contains (`_wasmdo_commit`), which is how
    /// recovery knows which batches a file already has.
    pub(crate) seq: u64,
    /// SQLite's page size for this database.
    pub(crate) page_size: u32,
    /// The size of the database in pages after the commit.
    pub(crate) db_pages: u32,
    /// The WAL frames of the commit, as SQLite wrote them: each a 24-byte frame header (page
    /// number first, big-endian) followed by the page. (Read back from a journal, only the page
    /// number of each header is kept.)
    pub(crate) frames: Vec<u8>,
    /// The object's alarm as the batch left it, if the batch touched it (`Some(None)`: cleared);
    /// for a cluster store, which fires the alarms of objects whose host died. Not journaled:
    /// the alarm's row is among the pages.
    pub(crate) alarm: Option<Option<i64>>,
}

impl Changes {
    /// Bytes of one frame: the 24-byte header and the page.
    pub(crate) fn frame_size(page_size: u32) -> usize {
        WAL_FRAME_HEADER + page_size as usize
    }

    /// The pages, in order: (page number, page bytes).
    pub(crate) fn pages(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.frames
            .chunks_exact(Self::frame_size(self.page_size))
            .map(|frame| {
                let number = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
                (number, &frame[WAL_FRAME_HEADER..])
            })
    }
}

/// An object's database at one batch, as a cluster store keeps it: the latest version of every
/// page written up to that batch, in the order they were written, and the size the batch left.
/// Written over the template every new database starts from, they make exactly that database.
pub(crate) struct Image {
    /// The batch the image stands for.
    pub(crate) seq: u64,
    pub(crate) page_size: u32,
    /// The size of the database in pages at that batch.
    pub(crate) db_pages: u32,
    /// (page number, page bytes), oldest write first.
    pub(crate) pages: Vec<(u32, Vec<u8>)>,
}

/// A page without the longest run of zeros inside it: the bytes before the run and after it
/// (most pages of a small database are mostly zeros; logs store them this way).
pub(crate) fn without_zeros(page: &[u8]) -> (&[u8], &[u8]) {
    let mut best = (page.len(), 0);
    let mut i = 0;
    while i < page.len() {
        if page[i] != 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < page.len() && page[i] == 0 {
            i += 1;
        }
        if i - start > best.1 {
            best = (start, i - start);
        }
    }
    (&page[..best.0], &page[best.0 + best.1..])
}

/// Size of a WAL frame header (SQLite's file format, section 4.1).
pub(crate) const WAL_FRAME_HEADER: usize = 24;

/// Why a batch did not become durable.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum NotDurable {
    /// The log could not keep it (an I/O error, a full disk): the commit failed.
    #[error("{0}")]
    Failed(String),
    /// A cluster store did not commit it (unreachable, or another host owns the object now):
    /// nothing was committed, and the caller may retry.
    #[error("the cluster did not commit this batch: {0}")]
    Refused(String),
}

/// A batch's durability, to be awaited before its replies are released.
pub(crate) struct Durable {
    outcome: oneshot::Receiver<Result<(), String>>,
    /// An error is a cluster's refusal, not a failure.
    refusals: bool,
}

impl Durable {
    /// A durability promise and the sender that keeps it (an error: the log failed).
    pub(crate) fn new() -> (oneshot::Sender<Result<(), String>>, Durable) {
        let (tx, outcome) = oneshot::channel();
        let durable = Durable {
            outcome,
            refusals: false,
        };
        (tx, durable)
    }

    /// A cluster store's promise (an error: the store did not commit the batch).
    pub(crate) fn from_cluster() -> (oneshot::Sender<Result<(), String>>, Durable) {
        let (tx, mut durable) = Durable::new();
        durable.refusals = true;
        (tx, durable)
    }

    /// Already decided.
    pub(crate) fn ready(outcome: Result<(), String>) -> Durable {
        let (tx, durable) = Durable::new();
        let _ = tx.send(outcome);
        durable
    }

    /// Already refused by the cluster, for `why`.
    pub(crate) fn refused(why: String) -> Durable {
        let (tx, durable) = Durable::from_cluster();
        let _ = tx.send(Err(why));
        durable
    }

    /// [`Durable::wait`] for a thread outside the async runtime.
    #[cfg(test)]
    pub(crate) fn wait_blocking(self) -> Result<(), NotDurable> {
        let refusals = self.refusals;
        judge(refusals, self.outcome.blocking_recv())
    }

    /// Waits until the batch is durable; `Err` says why it is not (it must then be undone).
    pub(crate) async fn wait(mut self) -> Result<(), NotDurable> {
        let outcome = (&mut self.outcome).await;
        judge(self.refusals, outcome)
    }
}

/// What a log's answer means: a failure, or (`refusals`, a cluster's) a refusal.
fn judge(
    refusals: bool,
    outcome: Result<Result<(), String>, oneshot::error::RecvError>,
) -> Result<(), NotDurable> {
    let outcome = outcome.unwrap_or_else(|_| Err("the commit log stopped".into()));
    outcome.map_err(|why| match refusals {
        true => NotDurable::Refused(why),
        false => NotDurable::Failed(why),
    })
}

/// Where committed batches become durable.
pub(crate) trait CommitLog: Send + Sync {
    /// Makes `changes` durable. The returned promise settles once they are (or cannot be).
    fn append(&self, changes: Changes) -> Durable;

    /// Whether a batch the log does not take (too large to copy, or unreadable from the WAL)
    /// may be made durable by syncing the object's own WAL instead. `false` for a log that is
    /// the only durable copy (a cluster store): such a batch is appended anyway, or fails.
    fn local_fallback(&self) -> bool {
        true
    }

    /// Blocks until everything appended so far is durable in the object files themselves, and
    /// no longer needed in the log: called before object files are deleted, so that a later
    /// recovery cannot bring them back.
    fn checkpoint(&self) -> Result<(), String>;
}

/// An I/O error as an operator should read it.
pub(crate) fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull => format!("the disk is full ({e})"),
        _ => e.to_string(),
    }
}
