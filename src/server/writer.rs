//! The single writer: one thread owns the open ledger and its state. Handlers send it
//! jobs; it takes every job waiting, validates them in order against the state, appends
//! the events as one group commit (one write, one fdatasync, frames signed on all cores)
//! and only then answers each job. Answers that record nothing (a coalesced auth success,
//! a reader's key check) are given at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::core::event::{Action, Request};
use crate::core::request::{REQUEST_SKEW_US, replay_id};
use crate::core::signing::SigningKey;
use crate::core::state::{RequestFault, State};
use crate::core::types::{Hash32, PublicKey, Timestamp};
use crate::protocol::ops::judge_auth;
use crate::protocol::wire::AuthReply;
use crate::storage::ledger::{Appender, Item, Ledger, Outcome};
use crate::storage::store::StoreError;

use super::{Fail, Shared};

/// At most this many events in one group commit.
const MAX_BATCH: usize = 1024;

pub type ItemResult = Result<Outcome, StoreError>;

/// A gateway's check of an access key (R11); the request's signature is already checked.
pub struct AuthCheck {
    pub request: Request,
    pub key_id: String,
    pub secret: crate::core::credentials::SecretText,
    pub token: Option<crate::core::credentials::SecretText>,
}

pub enum Job {
    /// Signed requests whose signatures the handler verified.
    Append {
        items: Vec<Item>,
        reply: oneshot::Sender<Result<Vec<ItemResult>, Fail>>,
    },
    Auth {
        check: Box<AuthCheck>,
        reply: oneshot::Sender<Result<AuthReply, Fail>>,
    },
    /// May this key read, and is this (key, nonce) new? (The signature is checked.)
    Reader {
        key: PublicKey,
        replay: Hash32,
        time: Timestamp,
        reply: oneshot::Sender<Result<(), Fail>>,
    },
}

/// What waits for the batch's commit.
enum Pending {
    Append {
        items: usize,
        reply: oneshot::Sender<Result<Vec<ItemResult>, Fail>>,
    },
    Auth {
        user: Option<String>,
        reason: Option<String>,
        reply: oneshot::Sender<Result<AuthReply, Fail>>,
    },
}

pub struct Writer {
    pub ledger: Ledger,
    pub key: SigningKey,
    pub shared: Arc<Shared>,
    /// Nonces of requests answered without an event (reads, coalesced auths), with their
    /// times; forgotten once outside twice the skew, when their time alone refuses them.
    recent: HashMap<Hash32, Timestamp>,
}

impl Writer {
    pub fn new(ledger: Ledger, key: SigningKey, shared: Arc<Shared>) -> Self {
        let w = Writer {
            ledger,
            key,
            shared,
            recent: HashMap::new(),
        };
        w.publish();
        w
    }

    /// Runs until every sender is gone (the server drained), answering each job.
    pub fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.blocking_recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.batch(jobs);
        }
    }

    fn publish(&self) {
        let head = self.ledger.head();
        let mut h = self.shared.head.lock().unwrap_or_else(|p| p.into_inner());
        *h = head;
        self.shared.durable_end.store(head.end, Ordering::Release);
    }

    fn batch(&mut self, jobs: Vec<Job>) {
        let now = Timestamp::now();
        let mut items = Vec::new();
        let mut pending = Vec::new();
        let mut coalescing: HashSet<String> = HashSet::new();
        for job in jobs {
            match job {
                Job::Append { items: its, reply } => {
                    pending.push(Pending::Append {
                        items: its.len(),
                        reply,
                    });
                    items.extend(its);
                }
                Job::Reader {
                    key,
                    replay,
                    time,
                    reply,
                } => {
                    let r = self.known(&key).and_then(|_| self.fresh(replay, time, now));
                    let _ = reply.send(r);
                }
                Job::Auth { check, reply } => match self.auth(*check, now, &mut coalescing) {
                    Ok((item, user, reason)) => {
                        items.push(item);
                        pending.push(Pending::Auth {
                            user,
                            reason,
                            reply,
                        });
                    }
                    Err(answer) => {
                        let _ = reply.send(answer);
                    }
                },
            }
        }
        if items.is_empty() {
            return;
        }
        let n = items.len();
        let started = Instant::now();
        let results = self.ledger.append_items(&self.key, items, now, false);
        let m = &self.shared.metrics;
        m.fsync_seconds.observe(started.elapsed().as_secs_f64());
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                // Nothing of this batch was acknowledged; the ledger is as it was (or the
                // handle refuses further appends, which every later job is told).
                let fail = Fail::unavailable(format!("the ledger could not be written: {e}"));
                for p in pending {
                    match p {
                        Pending::Append { reply, .. } => drop(reply.send(Err(fail.clone()))),
                        Pending::Auth { reply, .. } => drop(reply.send(Err(fail.clone()))),
                    }
                }
                return;
            }
        };
        let appended = results.iter().filter(|r| r.is_ok()).count();
        m.batch_events.observe(appended as f64);
        m.events_appended
            .fetch_add(appended as u64, Ordering::Relaxed);
        self.publish();
        debug_assert_eq!(results.len(), n);
        // Answers go out in item order; each job takes its own results from the front.
        let mut results = results.into_iter();
        for p in pending {
            match p {
                Pending::Append { items, reply } => {
                    let mine: Vec<ItemResult> = results.by_ref().take(items).collect();
                    let _ = reply.send(Ok(mine));
                }
                Pending::Auth {
                    user,
                    reason,
                    reply,
                } => {
                    let r = results.next().expect("one result per item");
                    let _ = reply.send(auth_answer(r, user, reason));
                }
            }
        }
    }

    /// The request's key is an enrolled, live signing key.
    fn known(&self, key: &PublicKey) -> Result<(), Fail> {
        self.ledger
            .state()
            .actor_of(key)
            .map(|_| ())
            .map_err(|e| Fail::fault(RequestFault::Key, format!("the request's key: {e}")))
    }

    /// Refuses a (key, nonce) applied or answered before.
    fn unseen(&self, replay: &Hash32) -> Result<(), Fail> {
        if self.ledger.state().requests.contains_key(replay) || self.recent.contains_key(replay) {
            return Err(Fail::fault(
                RequestFault::Replay,
                "this (key, nonce) was used before; sign each request with a fresh nonce".into(),
            ));
        }
        Ok(())
    }

    /// A (key, nonce) never seen, within the skew; remembered from now on.
    fn fresh(&mut self, replay: Hash32, time: Timestamp, now: Timestamp) -> Result<(), Fail> {
        self.unseen(&replay)?;
        if self.recent.len() >= 1 << 16 {
            let horizon = now.plus_micros(-2 * REQUEST_SKEW_US);
            self.recent.retain(|_, t| *t >= horizon);
        }
        self.recent.insert(replay, time);
        Ok(())
    }

    /// Decides a gateway's check: answered at once (coalesced success, or a refusal of the
    /// gateway itself), or an event to record and the verdict it carries.
    #[allow(clippy::type_complexity)]
    fn auth(
        &mut self,
        check: AuthCheck,
        now: Timestamp,
        coalescing: &mut HashSet<String>,
    ) -> Result<(Item, Option<String>, Option<String>), Result<AuthReply, Fail>> {
        let AuthCheck {
            mut request,
            key_id,
            secret,
            token,
        } = check;
        self.known(&request.key).map_err(Err)?;
        let replay = replay_id(&request);
        self.unseen(&replay).map_err(Err)?;
        let state: &State = self.ledger.state();
        let decide = now.max(self.ledger.head().time);
        let (reason, user) = judge_auth(state, &key_id, &secret, token.as_ref(), decide);
        if reason.is_none() {
            let window = self.shared.coalesce_us;
            let last = state
                .keys
                .get(&key_id)
                .and_then(|k| k.last_used)
                .map(|a| a.time);
            let recent = last.is_some_and(|t| (now.0.saturating_sub(t.0) as u64) < window);
            if window > 0 && (recent || coalescing.contains(&key_id)) {
                self.fresh(replay, request.time, now).map_err(Err)?;
                self.shared
                    .metrics
                    .auth_coalesced
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Ok(AuthReply {
                    ok: true,
                    user,
                    reason: None,
                    seq: None,
                    hash: None,
                    time: None,
                    coalesced: true,
                }));
            }
            coalescing.insert(key_id.clone());
        }
        let action = match &reason {
            None => Action::AuthSucceeded { key_id },
            Some(r) => {
                request.refused = Some(Action::AuthSucceeded {
                    key_id: key_id.clone(),
                });
                Action::AuthFailed {
                    key_id,
                    reason: r.clone(),
                }
            }
        };
        let item = Item {
            action,
            request: Some(request),
            sig_checked: true,
        };
        Ok((item, user, reason))
    }
}

/// The answer to a recorded check.
fn auth_answer(
    r: ItemResult,
    user: Option<String>,
    reason: Option<String>,
) -> Result<AuthReply, Fail> {
    let (receipt, reason) = match r {
        Ok(Ok(receipt)) => (receipt, reason),
        // Refused by policy between the verdict and the append (it expired): recorded.
        Ok(Err((refusal, receipt))) => (receipt, Some(refusal.to_string())),
        Err(e) => return Err(Fail::from_store(e)),
    };
    Ok(AuthReply {
        ok: reason.is_none(),
        user,
        reason,
        seq: Some(receipt.seq),
        hash: Some(receipt.hash.hex()),
        time: Some(receipt.time.to_string()),
        coalesced: false,
    })
}
