//! A model check of the ownership protocol: every interleaving, up to a bound, of two hosts
//! serving one object through the real decision code ([`Ownership`], [`claim_applies`],
//! [`claim_epoch`], [`commit_applies`], [`must_rebuild`]) against a store that applies those
//! predicates atomically — with hosts crashing (their files keeping a batch the store never
//! acknowledged), pausing past their lease (zombies), and being declared dead while still
//! running (a partition).
//!
//! Invariants, checked in every reachable state:
//! - **one writer**: the store accepts a batch only from the row's current owner and epoch;
//! - **no acknowledged write lost**: the object's value in the store equals the number of
//!   acknowledged increments (each increment reads the value it serves from and writes one more).
//!
//! A deliberately broken variant (a store that does not fence commits) must be caught.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use super::protocol::{
    Claim, Claimed, Found, Incarnation, Next, Ownership, Route, claim_applies, claim_epoch,
    commit_applies, must_rebuild,
};

const HOSTS: usize = 2;
const MAX_ACKS: u32 = 3;
const MAX_CRASHES: u32 = 2;
const MAX_CLAIMS: i64 = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Correct,
    /// The store stores every batch, fenced or not.
    NoFence,
}

#[derive(Clone)]
struct Host {
    number: i64,
    view: Ownership<u8>,
    /// The local file: (last batch, value).
    file: (i64, u32),
    /// A batch written to the file, waiting for the store: (epoch, seq, value).
    pending: Option<(i64, i64, u32)>,
    /// Paused (SIGSTOP): takes no step until resumed.
    paused: bool,
}

impl Host {
    fn me(&self, index: usize) -> Incarnation {
        Incarnation {
            host: format!("h{index}"),
            number: self.number,
        }
    }
}

impl PartialEq for Host {
    fn eq(&self, other: &Self) -> bool {
        self.number == other.number
            && self.view.route(&0) == other.view.route(&0)
            && self.file == other.file
            && self.pending == other.pending
            && self.paused == other.paused
    }
}
impl Eq for Host {}
impl Hash for Host {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.number.hash(state);
        format!("{:?}", self.view.route(&0)).hash(state);
        self.file.hash(state);
        self.pending.hash(state);
        self.paused.hash(state);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct State {
    hosts: Vec<Host>,
    /// The store's row and the value of each batch it holds (index = seq - 1).
    row: Option<Claim>,
    batches: Vec<u32>,
    /// Whether the store counts each host's current run as alive.
    alive: Vec<bool>,
    acks: u32,
    crashes: u32,
    /// Set when the store accepted a batch from anyone but the current owner and epoch.
    second_writer: bool,
}

impl State {
    fn initial() -> State {
        let hosts = (0..HOSTS)
            .map(|i| Host {
                number: 1,
                view: Ownership::new(Incarnation {
                    host: format!("h{i}"),
                    number: 1,
                }),
                file: (0, 0),
                pending: None,
                paused: false,
            })
            .collect();
        State {
            hosts,
            row: None,
            batches: Vec::new(),
            alive: vec![true; HOSTS],
            acks: 0,
            crashes: 0,
            second_writer: false,
        }
    }

    fn found(&self) -> Option<Found> {
        self.row.clone().map(|claim| {
            let owner = claim.owner.host[1..].parse::<usize>().expect("h<n>");
            let alive = self.alive[owner] && self.hosts[owner].number == claim.owner.number;
            Found { claim, alive }
        })
    }

    /// Host `h` settles the object (lookup, claim if nobody live owns it, prepare).
    fn settle(&mut self, h: usize) {
        let me = self.hosts[h].me(h);
        let found = self.found();
        let mut next = self.hosts[h].view.looked_up(&0, found);
        if let Next::Claim { .. } = next {
            let current = self.found();
            let alive = current.as_ref().is_some_and(|f| f.alive);
            let row = current.as_ref().map(|f| &f.claim);
            let outcome = if claim_applies(row, alive, &me) {
                let epoch = claim_epoch(row, &me);
                let previous = row.map(|r| r.owner.clone());
                let seq = row.map_or(0, |r| r.seq);
                self.row = Some(Claim {
                    owner: me.clone(),
                    epoch,
                    seq,
                });
                Claimed::Won {
                    epoch,
                    seq,
                    previous,
                }
            } else {
                Claimed::Lost(current.expect("a row refused the claim"))
            };
            next = self.hosts[h].view.claimed(&0, outcome);
        }
        if let Next::Local { prepare, .. } = next {
            let host = &mut self.hosts[h];
            if must_rebuild(
                &me,
                prepare.previous.as_ref(),
                Some(host.file.0),
                prepare.seq,
            ) {
                let seq = self.batches.len() as i64;
                host.file = (seq, self.batches.last().copied().unwrap_or(0));
            }
        }
    }

    /// Host `h` runs an increment from its file and writes the batch locally.
    fn write(&mut self, h: usize, epoch: i64) {
        let host = &mut self.hosts[h];
        let (seq, value) = host.file;
        host.file = (seq + 1, value + 1);
        host.pending = Some((epoch, seq + 1, value + 1));
    }

    /// Host `h`'s pending batch reaches the store.
    fn commit(&mut self, h: usize, variant: Variant) {
        let me = self.hosts[h].me(h);
        let (epoch, seq, value) = self.hosts[h].pending.take().expect("a pending batch");
        let row = self.row.clone().expect("a writer claimed first");
        let applies = match variant {
            Variant::Correct => commit_applies(&row, &me, epoch, seq),
            Variant::NoFence => true,
        };
        if applies {
            if row.owner != me || row.epoch != epoch {
                self.second_writer = true;
            }
            self.batches.truncate((seq - 1).max(0) as usize);
            self.batches.push(value);
            let row = self.row.as_mut().expect("checked above");
            row.seq = seq;
            self.acks += 1;
        } else {
            // refused: taken back out of the file, and the object forgotten
            let host = &mut self.hosts[h];
            host.file = (seq - 1, value - 1);
            host.view.forget(&0);
        }
    }

    fn successors(&self, variant: Variant) -> Vec<State> {
        let mut out = Vec::new();
        for h in 0..HOSTS {
            let host = &self.hosts[h];
            if host.paused {
                let mut s = self.clone();
                s.hosts[h].paused = false;
                out.push(s);
                continue;
            }
            if host.pending.is_some() {
                let mut s = self.clone();
                s.commit(h, variant);
                out.push(s);
            } else if self.acks < MAX_ACKS {
                match host.view.route(&0) {
                    Route::Local { epoch } => {
                        let mut s = self.clone();
                        s.write(h, epoch);
                        out.push(s);
                    }
                    Route::Unknown | Route::Forward { .. }
                        if self.row.as_ref().is_none_or(|r| r.epoch < MAX_CLAIMS) =>
                    {
                        let mut s = self.clone();
                        s.hosts[h].view.forget(&0);
                        s.settle(h);
                        out.push(s);
                    }
                    _ => {}
                }
            }
            // pause: the host stops mid-flight (a pending batch stays pending)
            let mut s = self.clone();
            s.hosts[h].paused = true;
            out.push(s);
            // crash and restart as a new run: the file keeps what was written, acknowledged or not
            if self.crashes < MAX_CRASHES {
                let mut s = self.clone();
                s.crashes += 1;
                let host = &mut s.hosts[h];
                host.pending = None;
                host.number += 1;
                host.view = Ownership::new(host.me(h));
                s.alive[h] = true;
                out.push(s);
            }
            // the store stops hearing from the host (a partition, or a pause past the lease)
            if self.alive[h] {
                let mut s = self.clone();
                s.alive[h] = false;
                out.push(s);
            } else {
                // heard again: its heartbeat reports the lapse, and it forgets what it owned
                let mut s = self.clone();
                s.alive[h] = true;
                s.hosts[h].view.lease_lapsed();
                out.push(s);
            }
        }
        out
    }

    fn violation(&self) -> Option<String> {
        if self.second_writer {
            return Some(
                "the store accepted a batch from a host that does not own the object".into(),
            );
        }
        let value = self.batches.last().copied().unwrap_or(0);
        if value != self.acks {
            return Some(format!(
                "{} increments were acknowledged but the object holds {value}",
                self.acks
            ));
        }
        None
    }
}

/// Explores every reachable state; the first violation found, and how many states were seen.
fn check(variant: Variant) -> (Option<String>, usize) {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([State::initial()]);
    while let Some(state) = queue.pop_front() {
        if !seen.insert(state.clone()) {
            continue;
        }
        if let Some(violation) = state.violation() {
            return (Some(violation), seen.len());
        }
        queue.extend(state.successors(variant));
    }
    (None, seen.len())
}

#[test]
fn the_ownership_protocol_keeps_one_writer_and_every_acknowledged_write() {
    let (violation, states) = check(Variant::Correct);
    assert_eq!(violation, None);
    assert!(states > 10_000, "explored only {states} states");
}

#[test]
fn the_model_check_catches_a_store_that_does_not_fence_commits() {
    let (violation, _) = check(Variant::NoFence);
    assert!(violation.is_some(), "an unfenced store must lose a write");
}
