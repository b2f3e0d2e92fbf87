//! The cluster store on PostgreSQL (15+): six tables, each protocol step one statement or one
//! short transaction, liveness judged by the server's clock (`now()`), so hosts need no
//! synchronized clocks.
//!
//! | table | one row per |
//! |---|---|
//! | `wasmdo_meta` | setting shared by every host (the id secret) |
//! | `wasmdo_hosts` | host id: its current incarnation, URL and heartbeat |
//! | `wasmdo_objects` | object ever claimed: owner incarnation, epoch, last committed batch |
//! | `wasmdo_batches` | committed batch of an object: its number, epoch and database size |
//! | `wasmdo_pages` | page a batch wrote (from SQLite's WAL), without its longest run of zeros |
//! | `wasmdo_deploys` | deploy, in the order every host applies them |
//!
//! A commit is one statement: an `UPDATE` of the object's row guarded by owner, epoch and batch
//! number ([`super::protocol::commit_applies`]) feeding the `INSERT`s of the batch and its pages,
//! so the fence and the data are one transaction. Commits are spread over a few connections and
//! pipelined on each; the server's group commit makes one WAL flush cover many of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Statement};

use super::protocol::{self, Claim, Claimed, Found, Incarnation};
use super::store::{Beat, Change, ClusterStore, HostStatus, StoreError, StoreFuture};
use crate::storage::commit::{Changes, Image, without_zeros};

/// Connections commits and lookups are spread over (each pipelines its queries).
const CONNECTIONS: usize = 4;
/// How long connecting may take before the store counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one statement may take before the store counts as unavailable.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wasmdo_meta (
    key text PRIMARY KEY,
    value bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS wasmdo_hosts (
    id text PRIMARY KEY,
    incarnation bigint NOT NULL,
    url text NOT NULL,
    heartbeat timestamptz NOT NULL,
    started timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS wasmdo_objects (
    object text PRIMARY KEY,
    owner text NOT NULL,
    incarnation bigint NOT NULL,
    epoch bigint NOT NULL,
    seq bigint NOT NULL,
    class text NOT NULL,
    alarm_at bigint
);
CREATE INDEX IF NOT EXISTS wasmdo_objects_alarm ON wasmdo_objects (alarm_at) WHERE alarm_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS wasmdo_objects_owner ON wasmdo_objects (owner, incarnation);
CREATE TABLE IF NOT EXISTS wasmdo_deploys (
    seq bigserial PRIMARY KEY,
    kind text NOT NULL,
    target text NOT NULL,
    body bytea NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wasmdo_batches (
    object text NOT NULL,
    seq bigint NOT NULL,
    epoch bigint NOT NULL,
    page_size integer NOT NULL,
    db_pages integer NOT NULL,
    PRIMARY KEY (object, seq)
);
CREATE TABLE IF NOT EXISTS wasmdo_pages (
    object text NOT NULL,
    page integer NOT NULL,
    seq bigint NOT NULL,
    data bytea NOT NULL,
    hole integer,
    PRIMARY KEY (object, page, seq)
);
-- a store made before pages lost their zeros (the ALTER only then: it locks the table)
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                   AND table_name = 'wasmdo_pages' AND column_name = 'hole') THEN
        ALTER TABLE wasmdo_pages ADD COLUMN hole integer;
    END IF;
END $$;
";

/// Whether the owner named by `o` is alive: the host row holds that incarnation and a heartbeat
/// within the lease (`$lease` seconds).
fn alive_sql(lease: &str) -> String {
    format!(
        "coalesce(h.incarnation = o.incarnation AND h.heartbeat > now() - make_interval(secs => {lease}::float8), false)"
    )
}

const COMMIT: &str = "
WITH fenced AS (
    UPDATE wasmdo_objects SET seq = $4::bigint,
        alarm_at = CASE WHEN $9::boolean THEN $10::bigint ELSE alarm_at END
    WHERE object = $1::text AND owner = $2::text AND incarnation = $3::bigint
      AND epoch = $5::bigint AND seq = $4::bigint - 1
    RETURNING object
), batch AS (
    INSERT INTO wasmdo_batches (object, seq, epoch, page_size, db_pages)
    SELECT object, $4::bigint, $5::bigint, $6::integer, $7::integer FROM fenced
    RETURNING object
), pages AS (
    INSERT INTO wasmdo_pages (object, page, seq, data, hole)
    SELECT b.object, p.page, $4::bigint, p.data, p.hole
    FROM batch b, unnest($8::integer[], $11::bytea[], $12::integer[]) AS p(page, data, hole)
)
SELECT count(*) FROM batch";

/// One pooled connection and its prepared commit.
struct Conn {
    client: Client,
    commit: Statement,
}

/// [`ClusterStore`] on a PostgreSQL server.
pub(crate) struct Postgres {
    url: String,
    pool: Vec<Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
    /// For claims, which need a transaction of their own.
    claims: Mutex<Option<Client>>,
}

impl Postgres {
    /// A store on the server at `url` (`postgres://user@host:port/db`); connects lazily, and
    /// again after the server went away.
    pub(crate) fn new(url: &str) -> Postgres {
        Postgres {
            url: url.to_owned(),
            pool: (0..CONNECTIONS).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            claims: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        let connecting = tokio_postgres::connect(&self.url, NoTls);
        let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| StoreError("connecting to PostgreSQL timed out".into()))?
            .map_err(fail)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(target: "wasmdo.cluster", "PostgreSQL connection closed: {e}");
            }
        });
        Ok(client)
    }

    /// A pooled connection, connecting (again) if needed.
    async fn conn(&self) -> Result<Arc<Conn>, StoreError> {
        let slot = &self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(conn.clone());
        }
        let client = self.connect().await?;
        let commit = client.prepare(COMMIT).await.map_err(fail)?;
        let conn = Arc::new(Conn { client, commit });
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// A PostgreSQL error as the store's.
fn fail(e: tokio_postgres::Error) -> StoreError {
    StoreError(match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    })
}

/// Bounds one store call: a server that hangs counts as unavailable.
async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(STATEMENT_TIMEOUT, call)
        .await
        .map_err(|_| StoreError("PostgreSQL did not answer in time".into()))?
}

/// Every registered host, with its liveness and how many objects it owns.
async fn hosts(client: &Client, lease: f64) -> Result<Vec<HostStatus>, StoreError> {
    let rows = client
        .query(
            "SELECT h.id, h.incarnation, h.url,
                            h.heartbeat > now() - make_interval(secs => $1::float8),
                            (extract(epoch from now() - h.heartbeat) * 1000)::bigint,
                            (SELECT count(*) FROM wasmdo_objects o
                              WHERE o.owner = h.id AND o.incarnation = h.incarnation)
                     FROM wasmdo_hosts h ORDER BY h.id",
            &[&lease],
        )
        .await
        .map_err(fail)?;
    let hosts: Vec<HostStatus> = rows
        .iter()
        .map(|row| HostStatus {
            id: row.get(0),
            incarnation: row.get(1),
            url: row.get(2),
            alive: row.get(3),
            heartbeat_age_ms: row.get(4),
            objects: row.get(5),
        })
        .collect();
    Ok(hosts)
}

fn found(row: &tokio_postgres::Row) -> Found {
    Found {
        claim: Claim {
            owner: Incarnation {
                host: row.get(0),
                number: row.get(1),
            },
            epoch: row.get(2),
            seq: row.get(3),
        },
        alive: row.get(4),
    }
}

impl ClusterStore for Postgres {
    fn migrate(&self) -> StoreFuture<'_, ()> {
        Box::pin(timed(async move {
            let mut client = self.connect().await?;
            let tx = client.transaction().await.map_err(fail)?;
            // hosts starting together must not race on CREATE TABLE
            tx.execute("SELECT pg_advisory_xact_lock(7301)", &[])
                .await
                .map_err(fail)?;
            tx.batch_execute("SET LOCAL client_min_messages = warning")
                .await
                .map_err(fail)?;
            tx.batch_execute(SCHEMA).await.map_err(fail)?;
            tx.commit().await.map_err(fail)
        }))
    }

    fn secret(&self, proposal: Vec<u8>) -> StoreFuture<'_, Vec<u8>> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            conn.client
                .execute(
                    "INSERT INTO wasmdo_meta (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO NOTHING",
                    &[&proposal],
                )
                .await
                .map_err(fail)?;
            let row = conn
                .client
                .query_one("SELECT value FROM wasmdo_meta WHERE key = 'secret'", &[])
                .await
                .map_err(fail)?;
            Ok(row.get(0))
        }))
    }

    fn register<'a>(&'a self, id: &'a str, url: &'a str) -> StoreFuture<'a, Incarnation> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            let row = conn
                .client
                .query_one(
                    "INSERT INTO wasmdo_hosts (id, incarnation, url, heartbeat, started)
                     VALUES ($1, 1, $2, now(), now())
                     ON CONFLICT (id) DO UPDATE SET incarnation = wasmdo_hosts.incarnation + 1,
                         url = $2, heartbeat = now(), started = now()
                     RETURNING incarnation",
                    &[&id, &url],
                )
                .await
                .map_err(fail)?;
            Ok(Incarnation {
                host: id.to_owned(),
                number: row.get(0),
            })
        }))
    }

    fn heartbeat<'a>(&'a self, me: &'a Incarnation, lease: Duration) -> StoreFuture<'a, Beat> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            let lease = lease.as_secs_f64();
            let renewed = conn
                .client
                .query_opt(
                    "WITH old AS (SELECT heartbeat FROM wasmdo_hosts WHERE id = $1 AND incarnation = $2)
                     UPDATE wasmdo_hosts h SET heartbeat = now() FROM old
                     WHERE h.id = $1 AND h.incarnation = $2
                     RETURNING old.heartbeat < now() - make_interval(secs => $3::float8)",
                    &[&me.host, &me.number, &lease],
                )
                .await
                .map_err(fail)?;
            let lapsed = renewed.is_none_or(|row| row.get::<_, bool>(0));
            let hosts = hosts(&conn.client, lease).await?;
            Ok(Beat { lapsed, hosts })
        }))
    }

    fn leave<'a>(&'a self, me: &'a Incarnation, lease: Duration) -> StoreFuture<'a, ()> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            // a heartbeat just older than the lease: dead by every host's judgement at once
            conn.client
                .execute(
                    "UPDATE wasmdo_hosts
                     SET heartbeat = now() - make_interval(secs => $3::float8) - interval '1 millisecond'
                     WHERE id = $1 AND incarnation = $2",
                    &[&me.host, &me.number, &lease.as_secs_f64()],
                )
                .await
                .map_err(fail)?;
            Ok(())
        }))
    }

    fn hosts(&self, lease: Duration) -> StoreFuture<'_, Vec<HostStatus>> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            hosts(&conn.client, lease.as_secs_f64()).await
        }))
    }

    fn lookup<'a>(&'a self, object: &'a str, lease: Duration) -> StoreFuture<'a, Option<Found>> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            let sql = format!(
                "SELECT o.owner, o.incarnation, o.epoch, o.seq, {}
                 FROM wasmdo_objects o LEFT JOIN wasmdo_hosts h ON h.id = o.owner
                 WHERE o.object = $1",
                alive_sql("$2")
            );
            let row = conn
                .client
                .query_opt(&sql, &[&object, &lease.as_secs_f64()])
                .await
                .map_err(fail)?;
            Ok(row.as_ref().map(found))
        }))
    }

    fn claim<'a>(
        &'a self,
        object: &'a str,
        class: &'a str,
        me: &'a Incarnation,
        lease: Duration,
    ) -> StoreFuture<'a, Claimed> {
        Box::pin(timed(async move {
            let mut slot = self.claims.lock().await;
            if slot.as_ref().is_none_or(Client::is_closed) {
                *slot = Some(self.connect().await?);
            }
            let client = slot.as_mut().expect("connected above");
            let tx = client.transaction().await.map_err(fail)?;
            let inserted = tx
                .query_opt(
                    "INSERT INTO wasmdo_objects (object, owner, incarnation, epoch, seq, class)
                     VALUES ($1, $2, $3, 1, 0, $4) ON CONFLICT (object) DO NOTHING RETURNING epoch",
                    &[&object, &me.host, &me.number, &class],
                )
                .await
                .map_err(fail)?;
            if inserted.is_some() {
                tx.commit().await.map_err(fail)?;
                return Ok(Claimed::Won {
                    epoch: 1,
                    seq: 0,
                    previous: None,
                });
            }
            let sql = format!(
                "SELECT o.owner, o.incarnation, o.epoch, o.seq, {}
                 FROM wasmdo_objects o LEFT JOIN wasmdo_hosts h ON h.id = o.owner
                 WHERE o.object = $1 FOR UPDATE OF o",
                alive_sql("$2")
            );
            let row = tx
                .query_one(&sql, &[&object, &lease.as_secs_f64()])
                .await
                .map_err(fail)?;
            let current = found(&row);
            if !protocol::claim_applies(Some(&current.claim), current.alive, me) {
                tx.commit().await.map_err(fail)?;
                return Ok(Claimed::Lost(current));
            }
            let epoch = protocol::claim_epoch(Some(&current.claim), me);
            tx.execute(
                "UPDATE wasmdo_objects SET owner = $2, incarnation = $3, epoch = $4 WHERE object = $1",
                &[&object, &me.host, &me.number, &epoch],
            )
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            Ok(Claimed::Won {
                epoch,
                seq: current.claim.seq,
                previous: Some(current.claim.owner),
            })
        }))
    }

    fn orphaned_alarms(
        &self,
        by: i64,
        lease: Duration,
        limit: i64,
    ) -> StoreFuture<'_, Vec<(String, String)>> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            let sql = format!(
                "SELECT o.class, o.object FROM wasmdo_objects o
                 LEFT JOIN wasmdo_hosts h ON h.id = o.owner
                 WHERE o.alarm_at IS NOT NULL AND o.alarm_at <= $1 AND NOT {}
                 ORDER BY o.alarm_at LIMIT $3",
                alive_sql("$2")
            );
            let rows = conn
                .client
                .query(&sql, &[&by, &lease.as_secs_f64(), &limit])
                .await
                .map_err(fail)?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        }))
    }

    fn commit<'a>(
        &'a self,
        me: &'a Incarnation,
        epoch: i64,
        changes: &'a Changes,
    ) -> StoreFuture<'a, bool> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            let seq = changes.seq as i64;
            let page_size = changes.page_size as i32;
            let db_pages = changes.db_pages as i32;
            // the last version of each page the batch wrote (a commit may write a page twice)
            let mut latest: std::collections::BTreeMap<u32, &[u8]> = Default::default();
            for (number, page) in changes.pages() {
                latest.insert(number, page);
            }
            let numbers: Vec<i32> = latest.keys().map(|n| *n as i32).collect();
            // stored without their longest run of zeros (a page of a small database is mostly
            // zeros): `data` is what comes before the run and after it, `hole` where it was
            let mut pages = Vec::with_capacity(latest.len());
            let mut holes = Vec::with_capacity(latest.len());
            for page in latest.values() {
                let (head, tail) = without_zeros(page);
                pages.push([head, tail].concat());
                holes.push(head.len() as i32);
            }
            let row = conn
                .client
                .query_one(
                    &conn.commit,
                    &[
                        &&*changes.object,
                        &me.host,
                        &me.number,
                        &seq,
                        &epoch,
                        &page_size,
                        &db_pages,
                        &numbers,
                        &changes.alarm.is_some(),
                        &changes.alarm.flatten(),
                        &pages,
                        &holes,
                    ],
                )
                .await
                .map_err(fail)?;
            Ok(row.get::<_, i64>(0) == 1)
        }))
    }

    fn image<'a>(&'a self, object: &'a str) -> StoreFuture<'a, Option<Image>> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            // one statement: one snapshot, whatever commits or compactions run meanwhile
            let rows = conn
                .client
                .query(
                    "WITH last AS (
                         SELECT seq, page_size, db_pages FROM wasmdo_batches
                         WHERE object = $1 ORDER BY seq DESC LIMIT 1
                     )
                     SELECT last.seq, last.page_size, last.db_pages, p.page, p.data, p.hole
                     FROM last JOIN wasmdo_pages p ON p.object = $1 AND p.seq <= last.seq
                     ORDER BY p.seq, p.page",
                    &[&object],
                )
                .await
                .map_err(fail)?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let page_size = first.get::<_, i32>(1) as u32;
            let page = |row: &tokio_postgres::Row| {
                let data: Vec<u8> = row.get(4);
                match row.get::<_, Option<i32>>(5) {
                    // the zeros go back where they were
                    Some(hole) => {
                        let hole = (hole.max(0) as usize).min(data.len());
                        let mut page = Vec::with_capacity(page_size as usize);
                        page.extend_from_slice(&data[..hole]);
                        let zeros = (page_size as usize).saturating_sub(data.len());
                        page.resize(hole + zeros, 0);
                        page.extend_from_slice(&data[hole..]);
                        page
                    }
                    None => data,
                }
            };
            Ok(Some(Image {
                seq: first.get::<_, i64>(0) as u64,
                page_size,
                db_pages: first.get::<_, i32>(2) as u32,
                pages: rows
                    .iter()
                    .map(|row| (row.get::<_, i32>(3) as u32, page(row)))
                    .collect(),
            }))
        }))
    }

    fn footprint<'a>(&'a self, object: &'a str) -> StoreFuture<'a, (i64, i64)> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            let row = conn
                .client
                .query_one(
                    "SELECT count(*), coalesce(sum(length(data)), 0)::bigint FROM wasmdo_pages WHERE object = $1",
                    &[&object],
                )
                .await
                .map_err(fail)?;
            Ok((row.get(0), row.get(1)))
        }))
    }

    fn compact<'a>(&'a self, object: &'a str, upto: i64) -> StoreFuture<'a, u64> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            let dropped = conn
                .client
                .execute(
                    "DELETE FROM wasmdo_pages p
                     WHERE p.object = $1 AND p.seq < $2 AND EXISTS (
                         SELECT 1 FROM wasmdo_pages q
                         WHERE q.object = p.object AND q.page = p.page
                           AND q.seq > p.seq AND q.seq <= $2)",
                    &[&object, &upto],
                )
                .await
                .map_err(fail)?;
            conn.client
                .execute(
                    "DELETE FROM wasmdo_batches WHERE object = $1 AND seq < $2",
                    &[&object, &upto],
                )
                .await
                .map_err(fail)?;
            Ok(dropped)
        }))
    }

    fn lock_deploys(&self) -> StoreFuture<'_, Box<dyn Send + Sync>> {
        Box::pin(async move {
            // a connection of its own: the session lock goes with it when it closes
            let client = timed(self.connect()).await?;
            // deploys may queue behind a long one (a big component compiles for seconds)
            tokio::time::timeout(
                Duration::from_secs(300),
                client.execute("SELECT pg_advisory_lock(7302)", &[]),
            )
            .await
            .map_err(|_| {
                StoreError("another deploy held the cluster's deploy lock for 5 minutes".into())
            })?
            .map_err(fail)?;
            Ok(Box::new(client) as Box<dyn Send + Sync>)
        })
    }

    fn record<'a>(&'a self, change: &'a Change) -> StoreFuture<'a, i64> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            let row = conn
                .client
                .query_one(
                    "INSERT INTO wasmdo_deploys (kind, target, body) VALUES ($1, $2, $3) RETURNING seq",
                    &[&change.kind, &change.target, &change.body],
                )
                .await
                .map_err(fail)?;
            Ok(row.get(0))
        }))
    }

    fn recorded(&self, after: i64) -> StoreFuture<'_, Vec<(i64, Change)>> {
        Box::pin(timed(async move {
            let conn = self.conn().await?;
            let rows = conn
                .client
                .query(
                    "SELECT seq, kind, target, body FROM wasmdo_deploys WHERE seq > $1 ORDER BY seq",
                    &[&after],
                )
                .await
                .map_err(fail)?;
            Ok(rows
                .iter()
                .map(|row| {
                    let change = Change {
                        kind: row.get(1),
                        target: row.get(2),
                        body: row.get(3),
                    };
                    (row.get(0), change)
                })
                .collect())
        }))
    }
}
