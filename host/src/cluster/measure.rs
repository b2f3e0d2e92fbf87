//! What the cluster store sustains by itself: commits per second of many objects committing at
//! once through the production adapter (its pooled, pipelined connections and the real fenced
//! statement), each batch writing three pages like a small object's. No wasmtime, no HTTP: the
//! ceiling the store puts on a whole cluster. Used by `cargo bench -p wasmdo --bench cluster`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::postgres::Postgres;
use super::protocol::Claimed;
use super::store::ClusterStore;
use crate::storage::commit::{Changes, WAL_FRAME_HEADER};

const PAGE_SIZE: u32 = 4096;

/// Commits per second `objects` objects reached, each committing batch after batch (one in
/// flight per object, as an actor does) for `duration`, in the PostgreSQL database at `url`.
pub async fn store_commits(url: &str, objects: usize, duration: Duration) -> Result<f64, String> {
    let store = Arc::new(Postgres::new(url));
    store.migrate().await.map_err(|e| e.to_string())?;
    let me = store
        .register("measure", "http://127.0.0.1:9")
        .await
        .map_err(|e| e.to_string())?;
    let lease = Duration::from_secs(60);
    let run = std::process::id();
    let mut claimed = Vec::new();
    for o in 0..objects {
        let object: Arc<str> = format!("measure/{run}-{}/{o}.sqlite", me.number).into();
        match store.claim(&object, "measure", &me, lease).await {
            Ok(Claimed::Won { epoch, .. }) => claimed.push((object, epoch)),
            Ok(Claimed::Lost(found)) => return Err(format!("{object} is owned: {found:?}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut writers = Vec::new();
    for (object, epoch) in claimed {
        let (store, me) = (store.clone(), me.clone());
        writers.push(tokio::spawn(async move {
            let mut seq = 0;
            while Instant::now() < deadline {
                seq += 1;
                let changes = batch(object.clone(), seq);
                match store.commit(&me, epoch, &changes).await {
                    Ok(true) => {}
                    Ok(false) => return Err(format!("{object}: the fence refused batch {seq}")),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(seq)
        }));
    }
    let mut commits = 0;
    for writer in writers {
        commits += writer.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    let _ = store.leave(&me, lease).await;
    Ok(commits as f64 / elapsed.as_secs_f64())
}

/// Batch `seq` of `object`: the database header page, a table's leaf page and the page of the
/// batch number, each mostly zeros, as a small object's commit writes them.
fn batch(object: Arc<str>, seq: u64) -> Changes {
    let mut frames = Vec::new();
    for (number, head, tail) in [(1u32, 100, 64), (2, 12, 180), (5, 8, 24)] {
        frames.extend_from_slice(&number.to_be_bytes());
        frames.extend_from_slice(&[0; WAL_FRAME_HEADER - 4]);
        let mut page = vec![0u8; PAGE_SIZE as usize];
        let stamp = seq.to_le_bytes();
        for (i, byte) in page[..head].iter_mut().enumerate() {
            *byte = stamp[i % 8] ^ (i as u8) | 1;
        }
        let end = PAGE_SIZE as usize;
        for (i, byte) in page[end - tail..].iter_mut().enumerate() {
            *byte = stamp[i % 8].wrapping_add(i as u8) | 1;
        }
        frames.extend_from_slice(&page);
    }
    Changes {
        object,
        seq,
        page_size: PAGE_SIZE,
        db_pages: 5,
        frames,
        alarm: None,
    }
}
