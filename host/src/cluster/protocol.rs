//! The ownership protocol, without I/O: what a host decides about an object from what it has
//! learned, and what the cluster store must check when it answers. The production adapter
//! ([`super::router`], over [`super::postgres`]) and the model check (`model.rs`) both drive
//! exactly this code.
//!
//! **The protocol.** The store keeps one row per object that has ever been claimed: its owner (a
//! host id and that host's *incarnation*, bumped at every start), an **epoch** and the number of
//! the last committed batch (`seq`).
//! - A host serves an object only after claiming it. A claim succeeds when the row is absent,
//!   already names this very incarnation, or names an owner whose heartbeat is older than the
//!   lease (judged by the store's clock, in the same statement). A claim that changes the owner
//!   increments the epoch.
//! - Every batch commit is fenced in the same store transaction as its data: it applies only if
//!   the row still holds the committing host's epoch and the batch follows the last one
//!   ([`commit_applies`]). A former owner — paused, partitioned, or simply slow — can run, but
//!   cannot commit: its batch is refused, its replies are never released, and it drops the actor.
//!   That, not clocks, is what guarantees one writer per object.
//! - A host that takes an object over serves it from its local file only if that file is exactly
//!   what the store has ([`must_rebuild`]); otherwise it rebuilds the file from the store first.
//!
//! Leases only decide *when another host may claim*; a host that notices its own lease lapsed
//! forgets everything it owned ([`Ownership::lease_lapsed`]), so that it stops serving reads from
//! objects another host may now be writing.

use std::collections::HashMap;
use std::hash::Hash;

/// One run of one host: its configured id and the incarnation it registered with at start.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Incarnation {
    pub(crate) host: String,
    pub(crate) number: i64,
}

/// The store's row for an object: who owns it, under which epoch, and the last committed batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Claim {
    pub(crate) owner: Incarnation,
    pub(crate) epoch: i64,
    pub(crate) seq: i64,
}

/// What the store answered about an object's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) claim: Claim,
    /// Whether the owner's heartbeat is within the lease (by the store's clock).
    pub(crate) alive: bool,
}

/// Where an event for an object goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// This host owns it under `epoch`: run it here.
    Local { epoch: i64 },
    /// Another live host owns it: forward the event there.
    Forward { owner: Incarnation },
    /// This host does not know: ask the store, then claim if nobody live owns it.
    Unknown,
}

/// What to do after a lookup or a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Serve locally, under `epoch`, once the local file matches the store (check it with
    /// [`must_rebuild`]) and anything kept from before (a parked connection, a snapshot) is
    /// dropped: this host is (re)adopting the object.
    Local { epoch: i64, prepare: Prepare },
    /// Forward to the live owner.
    Forward { owner: Incarnation },
    /// Claim it: `over` is the row the claim replaces (`None`: there is none yet).
    Claim { over: Option<Claim> },
}

/// What a new claim needs to check before the object serves here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prepare {
    /// The owner before this claim, if any.
    pub(crate) previous: Option<Incarnation>,
    /// The last batch the store holds.
    pub(crate) seq: i64,
}

/// A claim's outcome, as the store reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// The row now names this host under `epoch` (and holds batches up to `seq`); `previous` is
    /// who owned it before.
    Won {
        epoch: i64,
        seq: i64,
        previous: Option<Incarnation>,
    },
    /// Another claim got there first, or the owner is alive after all: the row as it is now.
    Lost(Found),
}

/// One host's view of which objects it owns and where the others live: the decisions of the
/// protocol, fed by what the store answers.
#[derive(Clone)]
pub(crate) struct Ownership<K> {
    me: Incarnation,
    views: HashMap<K, View>,
}

#[derive(Clone, Debug)]
enum View {
    Owned { epoch: i64 },
    Remote { owner: Incarnation },
}

impl<K: Clone + Eq + Hash> Ownership<K> {
    /// The view of the host run `me`, knowing nothing yet.
    pub(crate) fn new(me: Incarnation) -> Ownership<K> {
        Ownership {
            me,
            views: HashMap::new(),
        }
    }

    /// Where an event for `key` goes, from what this host knows.
    pub(crate) fn route(&self, key: &K) -> Route {
        match self.views.get(key) {
            Some(View::Owned { epoch }) => Route::Local { epoch: *epoch },
            Some(View::Remote { owner }) => Route::Forward {
                owner: owner.clone(),
            },
            None => Route::Unknown,
        }
    }

    /// The epoch this host owns `key` under, if it does.
    pub(crate) fn epoch(&self, key: &K) -> Option<i64> {
        match self.views.get(key) {
            Some(View::Owned { epoch }) => Some(*epoch),
            _ => None,
        }
    }

    /// The store's answer to "who owns `key`?" (`None`: nobody ever claimed it).
    pub(crate) fn looked_up(&mut self, key: &K, found: Option<Found>) -> Next {
        match found {
            None => Next::Claim { over: None },
            Some(found) if found.claim.owner == self.me => {
                // this very run claimed it earlier and forgot (a commit that failed): the file
                // may lack a batch the store took, or hold one it did not
                self.views.insert(
                    key.clone(),
                    View::Owned {
                        epoch: found.claim.epoch,
                    },
                );
                Next::Local {
                    epoch: found.claim.epoch,
                    prepare: Prepare {
                        previous: Some(self.me.clone()),
                        seq: found.claim.seq,
                    },
                }
            }
            Some(found) if found.alive => {
                let owner = found.claim.owner;
                self.views.insert(
                    key.clone(),
                    View::Remote {
                        owner: owner.clone(),
                    },
                );
                Next::Forward { owner }
            }
            Some(found) => Next::Claim {
                over: Some(found.claim),
            },
        }
    }

    /// The store's answer to this host's claim of `key`.
    pub(crate) fn claimed(&mut self, key: &K, outcome: Claimed) -> Next {
        match outcome {
            Claimed::Won {
                epoch,
                seq,
                previous,
            } => {
                self.views.insert(key.clone(), View::Owned { epoch });
                Next::Local {
                    epoch,
                    prepare: Prepare { previous, seq },
                }
            }
            // as a lookup: forward to a live winner, or claim over a dead one (the adapter bounds
            // how often it tries)
            Claimed::Lost(found) => self.looked_up(key, Some(found)),
        }
    }

    /// `key` is not this host's to serve any more (its commit was refused, its owner refused a
    /// forwarded event, or its actor was dropped): forget what was known about it.
    pub(crate) fn forget(&mut self, key: &K) {
        self.views.remove(key);
    }

    /// The host run `dead` is past its lease: forget the objects it was thought to own, so the
    /// next event for each looks them up (and claims them).
    pub(crate) fn host_died(&mut self, dead: &Incarnation) {
        self.views
            .retain(|_, view| !matches!(view, View::Remote { owner } if owner == dead));
    }

    /// This host's own heartbeat lapsed: other hosts may have claimed anything it owned. Forgets
    /// everything; returns the objects it owned (their actors must be dropped).
    pub(crate) fn lease_lapsed(&mut self) -> Vec<K> {
        let owned = self
            .views
            .iter()
            .filter(|(_, view)| matches!(view, View::Owned { .. }))
            .map(|(key, _)| key.clone())
            .collect();
        self.views.clear();
        owned
    }

    /// How many objects this host owns, as far as it knows.
    pub(crate) fn owned(&self) -> usize {
        self.views
            .values()
            .filter(|view| matches!(view, View::Owned { .. }))
            .count()
    }
}

/// Whether a claim by `me` may replace `row` (`None`: no row yet), given whether the row's owner
/// is alive. The store evaluates exactly this, atomically with the write.
pub(crate) fn claim_applies(row: Option<&Claim>, owner_alive: bool, me: &Incarnation) -> bool {
    match row {
        None => true,
        Some(row) => row.owner == *me || !owner_alive,
    }
}

/// The epoch a successful claim leaves: unchanged when the claimant already owned the row, one
/// more when the owner changes (the first claim is epoch 1).
pub(crate) fn claim_epoch(row: Option<&Claim>, me: &Incarnation) -> i64 {
    match row {
        None => 1,
        Some(row) if row.owner == *me => row.epoch,
        Some(row) => row.epoch + 1,
    }
}

/// Whether a batch committed by `committer` under `epoch`, numbered `seq`, may be stored: the row
/// must still name that owner and epoch, and the batch must follow the last one stored. The store
/// evaluates exactly this in the transaction that stores the batch (`postgres.rs`, `COMMIT`, in
/// SQL; the model check runs this function).
#[cfg_attr(not(test), expect(dead_code, reason = "the store runs it as SQL"))]
pub(crate) fn commit_applies(row: &Claim, committer: &Incarnation, epoch: i64, seq: i64) -> bool {
    row.owner == *committer && row.epoch == epoch && row.seq + 1 == seq
}

/// Whether a host that just claimed an object must rebuild its local file from the store before
/// serving it: unless the file holds exactly the batches the store has (`local_seq == store_seq`)
/// *and* the object's previous owner was this same host (another incarnation of it: a restart),
/// the file may hold batches the store never acknowledged or lack batches another host stored.
pub(crate) fn must_rebuild(
    me: &Incarnation,
    previous: Option<&Incarnation>,
    local_seq: Option<i64>,
    store_seq: i64,
) -> bool {
    let same_host = previous.is_none_or(|p| p.host == me.host);
    let in_step = local_seq.unwrap_or(0) == store_seq;
    !(same_host && in_step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(host: &str, number: i64) -> Incarnation {
        Incarnation {
            host: host.into(),
            number,
        }
    }

    #[test]
    fn an_unknown_object_is_claimed_and_then_served_locally() {
        let mut view = Ownership::<u32>::new(run("a", 1));
        assert_eq!(view.route(&7), Route::Unknown);
        assert_eq!(view.looked_up(&7, None), Next::Claim { over: None });
        let won = Claimed::Won {
            epoch: 1,
            seq: 0,
            previous: None,
        };
        let next = view.claimed(&7, won);
        assert_eq!(
            next,
            Next::Local {
                epoch: 1,
                prepare: Prepare {
                    previous: None,
                    seq: 0
                }
            }
        );
        assert_eq!(view.route(&7), Route::Local { epoch: 1 });
        assert_eq!(view.owned(), 1);
    }

    #[test]
    fn a_live_owner_gets_the_event_and_a_dead_one_is_taken_over() {
        let mut view = Ownership::<u32>::new(run("a", 1));
        let b = Claim {
            owner: run("b", 3),
            epoch: 4,
            seq: 9,
        };
        let alive = Found {
            claim: b.clone(),
            alive: true,
        };
        assert_eq!(
            view.looked_up(&1, Some(alive)),
            Next::Forward { owner: run("b", 3) }
        );
        view.host_died(&run("b", 3));
        assert_eq!(view.route(&1), Route::Unknown);
        let dead = Found {
            claim: b.clone(),
            alive: false,
        };
        assert_eq!(
            view.looked_up(&1, Some(dead)),
            Next::Claim { over: Some(b) }
        );
    }

    #[test]
    fn the_store_fences_claims_and_commits() {
        let (a, b) = (run("a", 1), run("b", 1));
        let row = Claim {
            owner: a.clone(),
            epoch: 2,
            seq: 5,
        };
        assert!(!claim_applies(Some(&row), true, &b));
        assert!(claim_applies(Some(&row), false, &b));
        assert!(claim_applies(Some(&row), true, &a));
        assert_eq!(claim_epoch(Some(&row), &b), 3);
        assert_eq!(claim_epoch(Some(&row), &a), 2);
        assert!(commit_applies(&row, &a, 2, 6));
        assert!(!commit_applies(&row, &a, 1, 6), "a stale epoch");
        assert!(!commit_applies(&row, &b, 2, 6), "another owner");
        assert!(!commit_applies(&row, &a, 2, 7), "a gap");
    }

    #[test]
    fn a_takeover_rebuilds_unless_the_file_is_this_hosts_and_in_step() {
        let me = run("a", 2);
        assert!(!must_rebuild(&me, Some(&run("a", 1)), Some(5), 5));
        assert!(must_rebuild(&me, Some(&run("a", 1)), Some(6), 5));
        assert!(must_rebuild(&me, Some(&run("b", 1)), Some(5), 5));
        assert!(!must_rebuild(&me, None, None, 0));
        assert!(must_rebuild(&me, None, Some(1), 0));
    }

    #[test]
    fn a_lapsed_lease_forgets_everything_owned() {
        let mut view = Ownership::<u32>::new(run("a", 1));
        for key in [1, 2] {
            view.looked_up(&key, None);
            view.claimed(
                &key,
                Claimed::Won {
                    epoch: 1,
                    seq: 0,
                    previous: None,
                },
            );
        }
        let mut dropped = view.lease_lapsed();
        dropped.sort();
        assert_eq!(dropped, vec![1, 2]);
        assert_eq!(view.route(&1), Route::Unknown);
    }
}
