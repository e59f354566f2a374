//! The single writer: one thread owns the open ledger and its state. Handlers send it
//! jobs; it takes every job waiting, validates them in order against the state, appends
//! the events as one group commit (one write, one fdatasync, frames signed on all cores)
//! and only then answers each job. Answers that record nothing (a coalesced auth success,
//! a reader's key check) are given at once.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::core::event::{Action, Request};
use crate::core::request::{REQUEST_SKEW_US, replay_id};
use crate::core::signing::{Check, KeyPoints, SigningKey, learn_points, verify_each};
use crate::core::state::{RequestFault, State};
use crate::core::types::{Hash32, PublicKey, Timestamp};
use crate::protocol::ops::judge_auth;
use crate::protocol::wire::AuthReply;
use crate::storage::ledger::{Factor, Item, Outcome};
use crate::storage::live::Live;
use crate::storage::store::StoreError;

use super::protect::SeedStore;
use super::scanning::{Feedback, Match, token_hash};
use super::{Fail, Shared};

/// At most this many events in one group commit.
const MAX_BATCH: usize = 1024;

pub type ItemResult = Result<Outcome, StoreError>;

/// A gateway's check of an access key (R11), signed over `hash`.
pub struct AuthCheck {
    pub request: Request,
    pub hash: Hash32,
    pub key_id: String,
    pub secret: crate::core::credentials::SecretText,
    pub token: Option<crate::core::credentials::SecretText>,
}

impl Job {
    /// Answers the job with `fail`, appending nothing.
    fn refuse(self, fail: Fail) {
        match self {
            Job::Append { reply, .. } => drop(reply.send(Err(fail))),
            Job::Auth { reply, .. } => drop(reply.send(Err(fail))),
            Job::Reader { reply, .. } => drop(reply.send(Err(fail))),
            Job::Protect { reply, .. } => drop(reply.send(Err(fail))),
            Job::Scan { reply, .. } => drop(reply.send(Err(fail))),
            Job::Tick | Job::Follow => {}
        }
    }
}

pub enum Job {
    /// Signed requests, each with the hash its signature covers (checked here, in batches).
    Append {
        items: Vec<(Item, Hash32)>,
        /// R13: a code from the actor's authenticator, for the protected actions among them.
        code: Option<Zeroizing<String>>,
        reply: oneshot::Sender<Result<Vec<ItemResult>, Fail>>,
    },
    /// R13: `protect enable NAME`, a signed read of `target` by `key`: a new pending seed
    /// for NAME, answered with its `otpauth://` URI.
    Protect {
        key: PublicKey,
        replay: Hash32,
        time: Timestamp,
        name: String,
        reply: oneshot::Sender<Result<Zeroizing<String>, Fail>>,
    },
    /// R11: time passes; failure windows that ended are summarized.
    Tick,
    /// Another node committed events to the shared ledger: take them in.
    Follow,
    /// R14: a secret scanner's report, its signature verified by the handler.
    Scan {
        matches: Vec<Match>,
        /// BLAKE3 of the raw body: the same signed report again records nothing.
        body: Hash32,
        reply: oneshot::Sender<Result<Vec<Feedback>, Fail>>,
    },
    Auth {
        check: Box<AuthCheck>,
        reply: oneshot::Sender<Result<AuthReply, Fail>>,
    },
    /// May this key read, and is this (key, nonce) new? (The handler checked the signature.)
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
    /// The server's own event (a summary): nobody waits for it.
    Own,
}

/// An answer given once the batch's claims are durable (`None`), or refused (`Some`).
type Later = Box<dyn FnOnce(Option<Fail>) + Send>;

pub struct Writer {
    pub ledger: Live,
    pub key: SigningKey,
    pub shared: Arc<Shared>,
    /// (key, nonce)s of requests answered without an event (reads, coalesced auths).
    recent: RecentNonces,
    /// Request signers' keys, decompressed once.
    points: KeyPoints,
    cores: usize,
    /// R13: the seeds, held by this thread alone.
    seeds: SeedStore,
    /// R11: failed checks per key per minute, and the summaries due.
    failures: FailureLimiter,
    summaries: Vec<Action>,
    /// R14: scanner reports recorded lately, by body, with their answers.
    reports: SeenReports,
    /// Request ids of this batch that another node of a shared ledger used before.
    taken: HashSet<Hash32>,
    /// Answers that wait for the batch's claims to commit (a shared ledger).
    later: Vec<Later>,
}

impl Writer {
    pub fn new(ledger: Live, key: SigningKey, shared: Arc<Shared>, seeds: SeedStore) -> Self {
        let w = Writer {
            ledger,
            key,
            failures: FailureLimiter::new(shared.failures_per_minute),
            summaries: Vec::new(),
            reports: SeenReports::default(),
            taken: HashSet::new(),
            later: Vec::new(),
            shared,
            seeds,
            recent: RecentNonces::default(),
            points: KeyPoints::new(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
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
        self.flush_failures();
    }

    fn publish(&self) {
        let head = self.ledger.head();
        let mut h = self.shared.head.lock().unwrap_or_else(|p| p.into_inner());
        *h = head;
        self.shared.durable_end.store(head.end, Ordering::Release);
    }

    /// Checks the request signatures of every job in one batch per core; a job with a bad
    /// one is answered 401 here and goes no further, the others go on with those requests
    /// marked checked. Only keys of live enrolled signers are checked (and their points
    /// cached), so unknown keys cost no curve work: an append's request by an unknown or
    /// revoked key stays unchecked and is rejected by its key alone, per item, as before;
    /// an auth or read by one is answered here.
    fn checked(&mut self, jobs: Vec<Job>) -> Vec<Job> {
        // Per job: which of its requests are checked here (indexes), and their checks.
        let mut waiting: Vec<(Job, Vec<usize>, Vec<Check>)> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut idx = Vec::new();
            let mut checks = Vec::new();
            let refusal = match &job {
                Job::Append { items, .. } => {
                    let mut unsigned = false;
                    for (i, (item, h)) in items.iter().enumerate() {
                        match &item.request {
                            None => unsigned = true,
                            Some(r) if self.known(&r.key).is_ok() => {
                                idx.push(i);
                                checks.push((r.key, *h, r.sig.0));
                            }
                            Some(_) => {}
                        }
                    }
                    // Never the server's own action: every item is someone's request.
                    unsigned.then(|| Fail::new(400, "malformed", "an append holds signed requests"))
                }
                Job::Auth { check, .. } => {
                    let r = &check.request;
                    checks.push((r.key, check.hash, r.sig.0));
                    self.known(&r.key).err()
                }
                Job::Reader { .. }
                | Job::Protect { .. }
                | Job::Scan { .. }
                | Job::Tick
                | Job::Follow => None,
            };
            match refusal {
                Some(fail) => job.refuse(fail),
                None => waiting.push((job, idx, checks)),
            }
        }
        let all: Vec<Check> = waiting
            .iter()
            .flat_map(|(_, _, c)| c.iter().copied())
            .collect();
        learn_points(&all, &mut self.points);
        let verdicts = verify_each(&all, &self.points, self.cores);
        let mut verdicts = verdicts.into_iter();
        let mut out = Vec::with_capacity(waiting.len());
        for (job, idx, checks) in waiting {
            // A check without a verdict counts as failed.
            let mine = verdicts
                .by_ref()
                .take(checks.len())
                .chain(std::iter::repeat(false));
            let bad = checks
                .iter()
                .zip(mine)
                .find(|(_, ok)| !ok)
                .map(|(c, _)| c.0);
            match (bad, job) {
                (Some(key), job) => job.refuse(Fail::bad_signature(&key)),
                (
                    None,
                    Job::Append {
                        mut items,
                        code,
                        reply,
                    },
                ) => {
                    for i in idx {
                        items[i].0.sig_checked = true;
                    }
                    out.push(Job::Append { items, code, reply });
                }
                (None, job) => out.push(job),
            }
        }
        out
    }

    /// One batch, between the ledger's `lock` and `release` when it may append or claim:
    /// on a shared ledger every decision is made on the state caught up under the lock.
    fn batch(&mut self, jobs: Vec<Job>) {
        let (quiet, jobs): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|j| matches!(j, Job::Tick | Job::Follow));
        if !quiet.is_empty() {
            self.follow(quiet.iter().any(|j| matches!(j, Job::Tick)));
        }
        if jobs.is_empty() {
            return;
        }
        if let Err(e) = self.ledger.lock() {
            let fail = Fail::unavailable(format!("the ledger cannot be locked for writing: {e}"));
            for j in jobs {
                j.refuse(fail.clone());
            }
            return;
        }
        self.publish();
        let jobs = self.checked(jobs);
        let jobs = self.claimed(jobs);
        self.decide(jobs);
        let released = self.ledger.release();
        let fail = released
            .err()
            .map(|e| Fail::unavailable(format!("the ledger could not be written: {e}")));
        for answer in self.later.drain(..) {
            answer(fail.clone());
        }
        self.taken.clear();
    }

    /// Takes in other nodes' events (and, on a tick, summarizes ended failure windows and
    /// forgets request ids too old to be replayed).
    fn follow(&mut self, tick: bool) {
        let now = Timestamp::now();
        let mut problems = Vec::new();
        if let Err(e) = self.ledger.follow() {
            problems.push(format!("following the shared ledger: {e}"));
        }
        if tick {
            let due = self.failures.due(now, false);
            self.summaries.extend(due);
            if let Err(e) = self.ledger.forget_nonces(4 * REQUEST_SKEW_US) {
                problems.push(format!("forgetting old request ids: {e}"));
            }
        }
        for p in problems {
            (self.shared.log)(
                &serde_json::json!({"time": now.to_string(), "error": p}).to_string(),
            );
        }
        self.publish();
        if tick && !self.summaries.is_empty() {
            self.decide(Vec::new());
            if let Err(e) = self.ledger.release() {
                (self.shared.log)(
                    &serde_json::json!({"time": now.to_string(), "error": e.to_string()})
                        .to_string(),
                );
            }
        }
    }

    /// On a shared ledger, claims every request id of `jobs` in the database under the
    /// batch's lock: one another node used is refused here as a replay (a whole append).
    fn claimed(&mut self, jobs: Vec<Job>) -> Vec<Job> {
        if !self.ledger.shared() {
            return jobs;
        }
        let state = self.ledger.state();
        let mut ids = Vec::new();
        for job in &jobs {
            match job {
                Job::Append { items, .. } => {
                    for (item, _) in items {
                        if let Some(r) = &item.request {
                            let id = replay_id(r);
                            // One applied before is answered from the chain (idempotent).
                            if !state.requests.contains_key(&id) {
                                ids.push((id, r.time));
                            }
                        }
                    }
                }
                Job::Auth { check, .. } => {
                    ids.push((replay_id(&check.request), check.request.time));
                }
                Job::Reader { replay, time, .. } | Job::Protect { replay, time, .. } => {
                    ids.push((*replay, *time));
                }
                Job::Scan { .. } | Job::Tick | Job::Follow => {}
            }
        }
        match self.ledger.claim(&ids) {
            Ok(new) => {
                self.taken = ids
                    .iter()
                    .zip(new)
                    .filter(|(_, n)| !n)
                    .map(|((id, _), _)| *id)
                    .collect();
            }
            Err(e) => {
                let fail = Fail::unavailable(format!("request ids could not be recorded: {e}"));
                for j in jobs {
                    j.refuse(fail.clone());
                }
                return Vec::new();
            }
        }
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let used = match &job {
                Job::Append { items, .. } => items.iter().any(|(i, _)| {
                    i.request
                        .as_ref()
                        .is_some_and(|r| self.taken.contains(&replay_id(r)))
                }),
                _ => false,
            };
            match used {
                true => job.refuse(Self::replayed()),
                false => out.push(job),
            }
        }
        out
    }

    fn replayed() -> Fail {
        Fail::fault(
            RequestFault::Replay,
            "this (key, nonce) was used before; sign each request with a fresh nonce".into(),
        )
    }

    /// Sends an answer that records nothing: at once for a file, after the batch's claims
    /// commit for a shared ledger.
    fn answer<T: Send + 'static>(
        &mut self,
        reply: oneshot::Sender<Result<T, Fail>>,
        r: Result<T, Fail>,
    ) {
        if !self.ledger.shared() {
            let _ = reply.send(r);
            return;
        }
        self.later.push(Box::new(move |fail| {
            let _ = reply.send(match fail {
                Some(f) => Err(f),
                None => r,
            });
        }));
    }

    fn decide(&mut self, jobs: Vec<Job>) {
        let now = Timestamp::now();
        let mut items = Vec::new();
        let mut pending = Vec::new();
        let mut coalescing: HashSet<String> = HashSet::new();
        for job in jobs {
            match job {
                Job::Append {
                    items: its,
                    code,
                    reply,
                } => {
                    pending.push(Pending::Append {
                        items: its.len(),
                        reply,
                    });
                    let mut its: Vec<Item> = its.into_iter().map(|(i, _)| i).collect();
                    self.second_factor(&mut its, code.as_deref().map(String::as_str), now);
                    items.extend(its);
                }
                Job::Protect {
                    key,
                    replay,
                    time,
                    name,
                    reply,
                } => {
                    let r = self
                        .known(&key)
                        .and_then(|_| self.fresh(replay, time, now))
                        .and_then(|_| self.begin_protection(&key, &name, now));
                    self.answer(reply, r);
                }
                Job::Reader {
                    key,
                    replay,
                    time,
                    reply,
                } => {
                    let r = self.known(&key).and_then(|_| self.fresh(replay, time, now));
                    self.answer(reply, r);
                }
                Job::Scan {
                    matches,
                    body,
                    reply,
                } => {
                    let answer = match self.reports.get(&body) {
                        Some(seen) => Ok(seen.clone()),
                        None => self.scan_report(&matches, now),
                    };
                    if let Ok(f) = &answer {
                        self.reports.remember(body, f.clone());
                    }
                    let _ = reply.send(answer);
                }
                Job::Tick | Job::Follow => {}
                Job::Auth { check, reply } => match self.auth(*check, now, &mut coalescing) {
                    Ok((item, user, reason)) => {
                        self.own_items(&mut items, &mut pending);
                        items.push(item);
                        pending.push(Pending::Auth {
                            user,
                            reason,
                            reply,
                        });
                    }
                    Err(answer) => self.answer(reply, answer),
                },
            }
        }
        self.own_items(&mut items, &mut pending);
        if items.is_empty() {
            return;
        }
        let n = items.len();
        // R13: what the seeds learn once these are on disk.
        let lifecycle: Vec<Option<(bool, String)>> = items
            .iter()
            .map(|i| match &i.action {
                Action::ProtectionEnabled { principal, .. } => Some((true, principal.clone())),
                Action::ProtectionDisabled { principal } => Some((false, principal.clone())),
                _ => None,
            })
            .collect();
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
                        // A summary not written is lost with the failed write (its
                        // failures were answered, never acknowledged as recorded).
                        Pending::Own => {}
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
        for (change, r) in lifecycle.into_iter().zip(&results) {
            if let (Some((on, name)), Ok(Ok(_))) = (change, r) {
                let saved = match on {
                    true => self.seeds.confirm(&name),
                    false => self.seeds.remove(&name),
                };
                if let Err(e) = saved {
                    (self.shared.log)(
                        &serde_json::json!({"time": now.to_string(), "error": e.to_string()})
                            .to_string(),
                    );
                }
            }
        }
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
                Pending::Own => {
                    let problem = match results.next() {
                        Some(Ok(Ok(_))) | None => None,
                        Some(Ok(Err((r, _)))) => Some(r.to_string()),
                        Some(Err(e)) => Some(e.to_string()),
                    };
                    if let Some(p) = problem {
                        (self.shared.log)(
                            &serde_json::json!({"time": now.to_string(), "error": p}).to_string(),
                        );
                    }
                }
            }
        }
    }

    /// The server's own events waiting (summaries), into this batch before what follows.
    fn own_items(&mut self, items: &mut Vec<Item>, pending: &mut Vec<Pending>) {
        for a in self.summaries.drain(..) {
            items.push(Item::own(a));
            pending.push(Pending::Own);
        }
    }

    /// R11: on the way out, every failure still counted is summarized.
    fn flush_failures(&mut self) {
        let now = Timestamp::now();
        let mut due = std::mem::take(&mut self.summaries);
        due.extend(self.failures.due(now, true));
        if due.is_empty() {
            return;
        }
        let items = due.into_iter().map(Item::own).collect();
        if let Err(e) = self.ledger.append_items(&self.key, items, now, false) {
            (self.shared.log)(
                &serde_json::json!({"time": now.to_string(), "error": format!("the failure summaries could not be written: {e}")})
                    .to_string(),
            );
        }
        self.publish();
    }

    /// R13: decides the second factor of one append's items. A code is checked only if
    /// one of them needs it (a protected action of a protected actor, or the confirmation
    /// of a new authenticator), against the first such item's subject, and then attests
    /// every item of that subject; without a code, each such item is refused by policy.
    ///
    /// A code is judged only for a request that could be applied but for it (its signature
    /// checked, never applied before, allowed by policy), so nobody can spend another
    /// principal's failures by replaying or inventing requests.
    fn second_factor(&mut self, items: &mut [Item], code: Option<&str>, now: Timestamp) {
        // Without a code, every item that needs one is refused by policy (`Factor::Absent`).
        let Some(code) = code else { return };
        let state = self.ledger.state();
        let needs: Vec<(usize, String, bool, bool)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let req = item.request.as_ref()?;
                let actor = state.actor_of(&req.key).ok()?;
                let subject = state.factor_subject(actor, &item.action)?;
                let pending = matches!(item.action, Action::ProtectionEnabled { .. });
                let fresh = !state.requests.contains_key(&replay_id(req))
                    && !self.recent.seen.contains(&replay_id(req));
                let judged =
                    item.sig_checked && fresh && state.authorize(actor, &item.action, now).is_ok();
                Some((i, subject.to_owned(), pending, judged))
            })
            .collect();
        let Some((_, subject, pending, _)) = needs.iter().find(|n| n.3) else {
            return;
        };
        let (subject, pending) = (subject.clone(), *pending);
        let floor = state.principals.get(&subject).and_then(|p| p.factor_step);
        let server = state.actor_of(&self.key.public()).unwrap_or_default();
        let event_step = crate::core::totp::step_of(now.max(self.ledger.head().time));
        let factor = if server == subject {
            Factor::Refused(format!(
                "operation protection: this server signs with a key of {subject} itself, so it cannot vouch for {subject}'s second factor (ledger-format.md §8 7a g); serve with the key of a principal of its own"
            ))
        } else if event_step > crate::core::totp::step_of(now) + 1 {
            Factor::Refused(format!(
                "operation protection: the ledger's last event is dated {}, ahead of this server's clock, so no code of now can attest an event; try again after that time",
                self.ledger.head().time
            ))
        } else {
            match self.seeds.check(&subject, code, pending, floor, now) {
                Ok(attestation) => Factor::Verified {
                    subject: subject.clone(),
                    attestation,
                },
                Err(why) => Factor::Refused(format!("operation protection: {why}")),
            }
        };
        for (i, s, _, _) in needs {
            if s == subject {
                items[i].factor = factor.clone();
            }
        }
    }

    /// R13: `protect enable NAME` by `key`'s principal, allowed as `protection-enabled`
    /// would be (the principal itself or an admin, not already on): a new pending seed.
    fn begin_protection(
        &mut self,
        key: &PublicKey,
        name: &str,
        now: Timestamp,
    ) -> Result<Zeroizing<String>, Fail> {
        let state = self.ledger.state();
        let actor = state
            .actor_of(key)
            .map_err(|e| Fail::fault(RequestFault::Key, e.to_string()))?;
        let action = Action::ProtectionEnabled {
            principal: name.to_owned(),
            factor: crate::core::event::FactorKind::Totp,
        };
        state
            .authorize(actor, &action, now)
            .map_err(|r| Fail::new(403, "denied", r.to_string()))?;
        let seed = self
            .seeds
            .begin(name)
            .map_err(|e| Fail::unavailable(e.to_string()))?;
        let label = format!("ledger-{}", &self.shared.ledger_id.hex()[..8]);
        Ok(Zeroizing::new(crate::core::totp::otpauth_uri(
            &label, name, &seed,
        )))
    }

    /// R14: records a verified scanner report, in one group commit of its own: for each
    /// token that is a secret or security token of this ledger, a `leak-reported` by this
    /// server and (unless reports only) its key's `key-disabled` right after it. Answers
    /// with one label per token, in order.
    fn scan_report(&mut self, matches: &[Match], now: Timestamp) -> Result<Vec<Feedback>, Fail> {
        use crate::core::credentials::{self, Form};
        use crate::core::state::KeyStatus;
        let report_only = self.shared.scanner.as_ref().is_none_or(|s| s.report_only);
        let state = self.ledger.state();
        let mut items = Vec::new();
        let mut feedback = Vec::with_capacity(matches.len());
        let mut disabling = HashSet::new();
        let mut reported = HashSet::new();
        for m in matches {
            let t = m.token.trim();
            let key = [Form::Secret, Form::Token]
                .into_iter()
                .find(|f| credentials::is_valid(*f, t))
                .and_then(|f| state.key_of_credential(f, t));
            let kind = scanner_text(&m.kind, 64);
            feedback.push(Feedback {
                token_hash: token_hash(t),
                token_type: kind.clone(),
                label: if key.is_some() {
                    "true_positive"
                } else {
                    "false_positive"
                }
                .into(),
            });
            // One leak report per key and report, however often the token is listed.
            let Some(k) = key.filter(|k| reported.insert(k.id.clone())) else {
                continue;
            };
            let source = scanner_text(
                m.url
                    .as_deref()
                    .filter(|u| !u.trim().is_empty())
                    .unwrap_or("GitHub secret scanning"),
                512,
            );
            let found_in = scanner_text(m.source.as_deref().unwrap_or("unknown"), 64);
            items.push(Item::own(Action::LeakReported {
                key_id: k.id.clone(),
                source,
                reason: format!("secret scanning partner report: {kind} found in {found_in}"),
            }));
            let live = k.status == KeyStatus::Active && !k.expired_at(now);
            if !report_only && live && disabling.insert(k.id.clone()) {
                items.push(Item::own(Action::KeyDisabled {
                    key_id: k.id.clone(),
                }));
            }
        }
        if items.is_empty() {
            return Ok(feedback);
        }
        let results = self
            .ledger
            .append_items(&self.key, items, now, false)
            .map_err(|e| Fail::unavailable(format!("the ledger could not be written: {e}")))?;
        self.publish();
        for r in results {
            let problem = match r {
                Ok(Ok(_)) => continue,
                Ok(Err((refusal, _))) => refusal.to_string(),
                Err(e) => e.to_string(),
            };
            (self.shared.log)(
                &serde_json::json!({"time": now.to_string(), "scanner_report": problem})
                    .to_string(),
            );
        }
        Ok(feedback)
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
        if self.ledger.state().requests.contains_key(replay)
            || self.recent.seen.contains(replay)
            || self.taken.contains(replay)
        {
            return Err(Self::replayed());
        }
        Ok(())
    }

    /// A (key, nonce) never seen, signed within the skew of `now`; remembered from now on.
    /// (The time is checked again here, on the clock `RecentNonces` forgets by.)
    fn fresh(&mut self, replay: Hash32, time: Timestamp, now: Timestamp) -> Result<(), Fail> {
        Fail::check_time(time, now)?;
        self.unseen(&replay)?;
        self.recent.remember(replay, now);
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
            hash: _,
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
                    summarized: false,
                }));
            }
            coalescing.insert(key_id.clone());
        }
        if let Some(r) = &reason {
            // R11: past the per-key rate, a failure is counted, not recorded alone.
            let bucket = match state.keys.contains_key(&key_id) {
                true => key_id.clone(),
                false => crate::core::state::UNKNOWN_KEYS.to_owned(),
            };
            let (due, record) = self.failures.admit(&bucket, now);
            self.summaries.extend(due);
            if !record {
                self.fresh(replay, request.time, now).map_err(Err)?;
                return Err(Ok(AuthReply {
                    ok: false,
                    user,
                    reason: Some(r.clone()),
                    seq: None,
                    hash: None,
                    time: None,
                    coalesced: false,
                    summarized: true,
                }));
            }
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
            // Checked in `checked`; the refused action of a failure is the signed one.
            sig_checked: true,
            factor: Factor::Absent,
        };
        Ok((item, user, reason))
    }
}

/// The (key, nonce)s of requests answered without an event, in the order they came. One is
/// forgotten once the server's clock is twice the skew past its arrival: its time was within
/// the skew of its arrival, so from then on `fresh` refuses it by its time. At most
/// `MAX_RECENT` are kept (the oldest go first), so a flood cannot grow the server without
/// bound; a request forgotten early by that cap could be answered a second time (a read
/// served again, or a coalesced success recorded once), never applied twice.
struct RecentNonces {
    seen: HashSet<Hash32>,
    order: VecDeque<(Timestamp, Hash32)>,
    cap: usize,
}

/// About 220 MB at most (the set's table and the queue).
const MAX_RECENT: usize = 1 << 21;

impl Default for RecentNonces {
    fn default() -> Self {
        RecentNonces {
            seen: HashSet::new(),
            order: VecDeque::new(),
            cap: MAX_RECENT,
        }
    }
}

impl RecentNonces {
    fn remember(&mut self, replay: Hash32, now: Timestamp) {
        let horizon = now.plus_micros(-2 * REQUEST_SKEW_US);
        while let Some(&(t, r)) = self.order.front() {
            if t >= horizon && self.order.len() < self.cap {
                break;
            }
            self.seen.remove(&r);
            self.order.pop_front();
        }
        if self.seen.insert(replay) {
            self.order.push_back((now, replay));
        }
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
        summarized: false,
    })
}

/// R14: the scanner reports recorded lately, so that a report sent again (a retry, or a
/// replay of a captured one) is answered as before and records nothing. The last
/// `MAX_REPORTS` are kept; a restart forgets them.
#[derive(Default)]
struct SeenReports {
    answers: std::collections::HashMap<Hash32, Vec<Feedback>>,
    order: VecDeque<Hash32>,
}

const MAX_REPORTS: usize = 4096;

impl SeenReports {
    fn get(&self, body: &Hash32) -> Option<&Vec<Feedback>> {
        self.answers.get(body)
    }

    fn remember(&mut self, body: Hash32, answer: Vec<Feedback>) {
        if self.answers.insert(body, answer).is_none() {
            self.order.push_back(body);
        }
        while self.order.len() > MAX_REPORTS {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
    }
}

/// One minute: the window of the per-key failure rate (R11).
const FAILURE_WINDOW_US: i64 = 60_000_000;

/// R11: per key (and one bucket for unknown IDs), the first `per_minute` failed checks of
/// each minute are recorded one by one; the rest are counted and recorded as one
/// `auth-failures-summarized` once the minute is over. Memory is one entry per key that
/// failed within the last minute.
struct FailureLimiter {
    per_minute: u64,
    buckets: std::collections::HashMap<String, Bucket>,
}

struct Bucket {
    start: Timestamp,
    recorded: u64,
    counted: u64,
    first: Timestamp,
    last: Timestamp,
}

impl FailureLimiter {
    fn new(per_minute: u64) -> Self {
        FailureLimiter {
            per_minute,
            buckets: Default::default(),
        }
    }

    /// A failure of `bucket` at `now`: the summary of its previous window if that ended,
    /// and whether to record this one.
    fn admit(&mut self, bucket: &str, now: Timestamp) -> (Option<Action>, bool) {
        if self.per_minute == 0 {
            return (None, true);
        }
        let fresh = || Bucket {
            start: now,
            recorded: 0,
            counted: 0,
            first: now,
            last: now,
        };
        let b = self.buckets.entry(bucket.to_owned()).or_insert_with(fresh);
        let mut due = None;
        if now.0 - b.start.0 >= FAILURE_WINDOW_US {
            due = summary(bucket, b);
            *b = fresh();
        }
        if b.recorded < self.per_minute {
            b.recorded += 1;
            return (due, true);
        }
        if b.counted == 0 {
            b.first = now;
        }
        b.counted += 1;
        b.last = now.max(b.last);
        (due, false)
    }

    /// The summaries of windows over by `now` (every window with `all`); those buckets go.
    fn due(&mut self, now: Timestamp, all: bool) -> Vec<Action> {
        let mut out = Vec::new();
        self.buckets.retain(|k, b| {
            let over = all || now.0 - b.start.0 >= FAILURE_WINDOW_US;
            if over {
                out.extend(summary(k, b));
            }
            !over
        });
        out
    }
}

fn summary(key_id: &str, b: &Bucket) -> Option<Action> {
    (b.counted > 0).then(|| Action::AuthFailuresSummarized {
        key_id: key_id.to_owned(),
        count: b.counted,
        first: b.first,
        last: b.last,
    })
}

/// Text from a scanner, fit for an event: control characters as spaces, at most `max`
/// bytes, never empty; and if it holds anything like a credential, also once
/// percent-decoded or without invisible characters (a URL may carry a token in any
/// encoding), withheld entirely (§7.2).
fn scanner_text(s: &str, max: usize) -> String {
    use crate::core::credentials::{contains_credential, looks_like_credential};
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let visible: String = clean.chars().filter(|c| !invisible(*c)).collect();
    let probes = [clean.clone(), visible.clone(), percent_decoded(&visible)];
    if probes.iter().any(|p| {
        let lower = p.to_ascii_lowercase();
        contains_credential(p)
            || looks_like_credential(p)
            || lower.contains("klsk")
            || lower.contains("kltk")
    }) {
        return "(withheld: it held something like a credential)".into();
    }
    let clean = clean.trim().to_owned();
    let mut out = String::new();
    for c in clean.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    if out.trim().is_empty() {
        out = "unknown".into();
    }
    out
}

/// Characters that show nothing (zero-width, joiners, soft hyphen, BOM, bidi controls).
fn invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// `%XX` sequences decoded (repeatedly, as a doubly encoded URL would need); bytes that do
/// not form UTF-8 stay as they were.
fn percent_decoded(s: &str) -> String {
    let mut text = s.to_owned();
    for _ in 0..3 {
        let b = text.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = |x: u8| (x as char).to_digit(16);
            match (
                b[i],
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (x, _, _) => {
                    out.push(x);
                    i += 1;
                }
            }
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == text {
            break;
        }
        text = next;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::Bytes;

    /// R11: per window, the first `per_minute` are recorded and the rest counted; the count
    /// comes out once the window is over (at the next failure or a tick), never twice.
    #[test]
    fn failures_past_the_rate_are_counted_once_per_window() {
        let mut f = FailureLimiter::new(2);
        let t0 = Timestamp(1_767_225_600_000_000);
        let at = |s: i64| t0.plus_micros(s * 1_000_000);
        let admitted: Vec<bool> = (0..5).map(|i| f.admit("K", at(i)).1).collect();
        assert_eq!(admitted, [true, true, false, false, false]);
        assert!(f.due(at(59), false).is_empty(), "the window is not over");
        // The next failure after the window: the summary of the last one, then recorded.
        let (due, record) = f.admit("K", at(61));
        assert!(record);
        assert_eq!(
            due,
            Some(Action::AuthFailuresSummarized {
                key_id: "K".into(),
                count: 3,
                first: at(2),
                last: at(4),
            })
        );
        f.admit("K", at(62));
        f.admit("K", at(63));
        assert!(f.due(at(100), false).is_empty(), "still within 60 s of 61");
        let due = f.due(at(121), false);
        assert_eq!(due.len(), 1);
        assert!(
            f.due(at(200), true).is_empty(),
            "nothing is summarized twice"
        );
        assert!(FailureLimiter::new(0).admit("K", at(0)).1);
    }

    /// Each arrival costs O(1) however many are remembered; one is kept until twice the
    /// skew has passed, and at most `cap` are kept.
    #[test]
    fn recent_nonces_are_forgotten_by_age_and_by_count() {
        let mut r = RecentNonces {
            cap: 3,
            ..RecentNonces::default()
        };
        let t0 = Timestamp(1_767_225_600_000_000);
        let n = |i: u8| Bytes([i; 32]);
        r.remember(n(1), t0);
        r.remember(n(2), t0.plus_micros(1));
        assert!(r.seen.contains(&n(1)) && r.seen.contains(&n(2)));
        // Just within twice the skew: still remembered.
        r.remember(n(3), t0.plus_micros(2 * REQUEST_SKEW_US));
        assert!(r.seen.contains(&n(1)));
        // Past it: the first is forgotten; the fourth arrival also pushes out by count.
        r.remember(n(4), t0.plus_micros(2 * REQUEST_SKEW_US + 1));
        assert!(!r.seen.contains(&n(1)));
        assert_eq!(r.order.len(), 3);
        r.remember(n(5), t0.plus_micros(2 * REQUEST_SKEW_US + 2));
        assert!(!r.seen.contains(&n(2)) && r.seen.contains(&n(5)));
        assert_eq!(r.seen.len(), r.order.len());
    }
}
