//! The client of `keyledger serve`: signs each request with the actor's own key and keeps
//! a verified copy (mirror) of the server's ledger, so that nothing it shows or decides
//! rests on the server's word (L8): the frames are fetched and verified here, and a server
//! that rewrote or dropped history the client verified before is caught at the join.

pub mod archive;
pub mod http;
pub mod s3;
pub mod witness;

use std::io::Write;
use std::path::{Path, PathBuf};

use hyper::{Method, StatusCode};

use crate::core::credentials::SecretText;
use crate::core::event::{Action, Request};
use crate::core::request;
use crate::core::signing::SigningKey;
use crate::core::state::Refusal;
use crate::core::types::{Hash32, LedgerId, Timestamp};
use crate::protocol::ops::{AuthOutcome, Ops};
use crate::protocol::wire::{
    self, AppendBody, AppendReply, AuthBody, AuthReply, Code, ErrorBody, H_END, ItemReply,
    LedgerInfo, ProtectReply, ReadAuth,
};
use crate::storage::cache::{Cache, Verified};
use crate::storage::ledger::{Appender, Outcome};
use crate::storage::store::{self, Receipt, StoreError, Wait};

pub use http::Client;

/// A server, as the domain operations see it: its state from the verified mirror, writes
/// through signed requests.
pub struct Remote {
    client: Client,
    ledger_id: LedgerId,
    v: Verified,
    /// R13: the code given for this command (`--code`), sent with the first append that
    /// holds a protected action, and then gone (a code is good once).
    code: Option<Code>,
    /// R13: asked for a code (with the name whose authenticator gives it) when a protected
    /// action needs one and none was given; the caller's channel (a terminal prompt).
    ask: Option<AskCode>,
}

/// Asks for a one-time code from `name`'s authenticator; `None`: there is none to give.
pub type AskCode = Box<dyn FnMut(&str) -> Option<String>>;

fn remote(e: String) -> StoreError {
    StoreError::Remote(e)
}

/// The server's error body as a `StoreError` (its code decides the exit status).
fn refused(status: StatusCode, body: &[u8]) -> StoreError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => StoreError::Server {
            code: e.error,
            message: e.message,
        },
        Err(_) => remote(format!(
            "the server answered {status} without an API error body"
        )),
    }
}

/// `GET /v1/ledger`.
pub fn ledger_info(client: &mut Client) -> Result<LedgerInfo, StoreError> {
    let r = client
        .request(Method::GET, "/v1/ledger", &[], Vec::new())
        .map_err(remote)?;
    if r.status != StatusCode::OK {
        return Err(refused(r.status, &r.body));
    }
    serde_json::from_slice(&r.body).map_err(|e| {
        remote(format!(
            "the server's /v1/ledger answer does not parse: {e}"
        ))
    })
}

/// Brings `mirror` up to the server's last durable event, then verifies it (with this
/// user's cache, so only the new events cost anything). Holds the mirror's writers' lock.
pub fn sync_mirror(
    client: &mut Client,
    key: &SigningKey,
    mirror: &Path,
    cache: &Cache,
) -> Result<(LedgerId, Verified), StoreError> {
    let info = ledger_info(client)?;
    let ledger_id = LedgerId::parse_hex(&info.ledger_id)
        .ok_or_else(|| remote("the server's ledger id is not 32 hex digits".into()))?;
    let mut file =
        crate::storage::files::open_mirror(mirror).map_err(StoreError::io(mirror, "open"))?;
    let meta = file.metadata().map_err(StoreError::io(mirror, "stat"))?;
    let _lock = store::lock_writers(mirror, &meta, Wait::Block)?;
    loop {
        let have = file
            .metadata()
            .map_err(StoreError::io(mirror, "stat"))?
            .len();
        if have >= info.end {
            break;
        }
        let target = format!("/v1/frames?from={have}");
        let auth = ReadAuth::sign(key, &ledger_id, &format!("GET {target}"));
        let r = client
            .request(Method::GET, &target, &auth.headers(), Vec::new())
            .map_err(remote)?;
        if r.status != StatusCode::OK {
            let e = refused(r.status, &r.body);
            return Err(match &e {
                StoreError::Server { code, .. } if code == "past-end" => StoreError::Diverged {
                    reason: format!(
                        "the server's ledger is shorter than the {have} bytes this client verified before (in {}): it dropped events",
                        mirror.display()
                    ),
                    files: vec![mirror.to_path_buf()],
                },
                _ => e,
            });
        }
        let end: Option<u64> = r
            .headers
            .get(H_END)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        if r.body.is_empty() || end != Some(have + r.body.len() as u64) {
            return Err(remote(
                "the server's /v1/frames answer is empty or does not match its keyledger-end header".into(),
            ));
        }
        file.write_all(&r.body)
            .map_err(StoreError::io(mirror, "append"))?;
    }
    file.sync_data().map_err(StoreError::io(mirror, "sync"))?;
    let (v, _) = store::head(mirror, cache).map_err(|e| diverged(mirror, e))?;
    if v.state.ledger_id != Some(ledger_id) {
        return Err(StoreError::Diverged {
            reason: format!(
                "{} holds a copy of another ledger than the server's ({})",
                mirror.display(),
                info.ledger_id
            ),
            files: vec![mirror.to_path_buf()],
        });
    }
    Ok((ledger_id, v))
}

/// A mirror that fails verification: the server showed a history that does not verify, or
/// does not continue the one this client verified before.
fn diverged(mirror: &Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Integrity { .. } | StoreError::Format { .. } | StoreError::Diverged { .. } => {
            StoreError::Diverged {
                reason: format!(
                    "the server's ledger, as copied to {}, does not verify or does not continue the history this client verified before ({e})",
                    mirror.display()
                ),
                files: vec![mirror.to_path_buf()],
            }
        }
        other => other,
    }
}

impl Remote {
    /// Connects, brings the mirror up to date and verifies it.
    pub fn connect(
        url: &str,
        ca: Option<&Path>,
        key: &SigningKey,
        mirror: &Path,
        cache: &Cache,
    ) -> Result<Remote, StoreError> {
        Self::over(Client::new(url, ca).map_err(remote)?, key, mirror, cache)
    }

    /// As `connect`, over a client already made.
    pub fn over(
        mut client: Client,
        key: &SigningKey,
        mirror: &Path,
        cache: &Cache,
    ) -> Result<Remote, StoreError> {
        let (ledger_id, v) = sync_mirror(&mut client, key, mirror, cache)?;
        Ok(Remote {
            client,
            ledger_id,
            v,
            code: None,
            ask: None,
        })
    }

    /// R13: the code to send with the next protected action (one use).
    pub fn set_code(&mut self, code: String) {
        self.code = Some(Code(zeroize::Zeroizing::new(code)));
    }

    /// R13: how to ask for a code when a protected action needs one and none was given.
    pub fn set_ask_code(&mut self, ask: AskCode) {
        self.ask = Some(ask);
    }

    /// R13: `protect enable NAME`: a new authenticator for NAME, its `otpauth://` URI
    /// shown this once. Nothing is recorded until `protection-enabled` confirms it.
    pub fn protect_enable(
        &mut self,
        key: &SigningKey,
        name: &str,
    ) -> Result<ProtectReply, StoreError> {
        let target = format!("/v1/protect/enable?name={name}");
        let auth = ReadAuth::sign(key, &self.ledger_id, &format!("POST {target}"));
        let r = self
            .client
            .request(Method::POST, &target, &auth.headers(), Vec::new())
            .map_err(remote)?;
        if r.status != StatusCode::OK {
            return Err(refused(r.status, &r.body));
        }
        serde_json::from_slice(&r.body)
            .map_err(|_| remote("the server's /v1/protect/enable answer does not parse".into()))
    }

    /// The code for an append of `actions` signed by `key`: the one given, or one asked
    /// for, if one of them is a protected action (or the confirmation of an authenticator).
    fn code_for(&mut self, key: &SigningKey, actions: &[Action]) -> Option<Code> {
        let needs = |a: &Action| a.is_protected() || matches!(a, Action::ProtectionEnabled { .. });
        if !actions.iter().any(needs) {
            return None;
        }
        if let Some(c) = self.code.take() {
            return Some(c);
        }
        let state = &self.v.state;
        let actor = state.actor_of(&key.public()).ok()?;
        let subject = actions
            .iter()
            .find_map(|a| state.factor_subject(actor, a))?
            .to_owned();
        let ask = self.ask.as_mut()?;
        ask(&subject).map(|c| Code(zeroize::Zeroizing::new(c)))
    }

    pub fn ledger_id(&self) -> LedgerId {
        self.ledger_id
    }

    /// Sends signed requests (see `submit`).
    pub fn submit(&mut self, signed: &[(Action, Request)]) -> Result<Vec<ItemReply>, StoreError> {
        submit(&mut self.client, &self.ledger_id, signed, None)
    }
}

/// Sends signed requests to `POST /v1/append`, resending the same bytes (same nonces) if no
/// answer came: the server applies a request once and answers a resend with the original
/// receipt.
pub fn submit(
    client: &mut Client,
    ledger_id: &LedgerId,
    signed: &[(Action, Request)],
    code: Option<Code>,
) -> Result<Vec<ItemReply>, StoreError> {
    let body = AppendBody {
        ledger_id: ledger_id.hex(),
        requests: signed
            .iter()
            .map(|(a, r)| wire::encode_request(a, r))
            .collect(),
        code,
    };
    let body = serde_json::to_vec(&body).expect("encodes");
    let r = post(client, "/v1/append", body)?;
    match serde_json::from_slice::<AppendReply>(&r.1) {
        Ok(a) if a.results.len() == signed.len() => Ok(a.results),
        _ => Err(refused(r.0, &r.1)),
    }
}

/// POSTs `body`, up to 3 times while there is no answer or the server is unavailable.
pub fn post(
    client: &mut Client,
    path: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, Vec<u8>), StoreError> {
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(200 << attempt));
        }
        match client.request(Method::POST, path, &[], body.clone()) {
            Ok(r) if r.status == StatusCode::SERVICE_UNAVAILABLE => {
                last = String::from_utf8_lossy(&r.body).into_owned();
            }
            Ok(r) => return Ok((r.status, r.body)),
            Err(e) => last = e,
        }
    }
    Err(remote(format!(
        "{last} (tried 3 times; a later retry is safe)"
    )))
}

/// A receipt from the server's answer.
fn receipt(r: &ItemReply) -> Result<Receipt, StoreError> {
    receipt_of(r.seq, r.hash.as_deref(), r.time.as_deref(), r.offset)
}

fn receipt_of(
    seq: Option<u64>,
    hash: Option<&str>,
    time: Option<&str>,
    offset: Option<u64>,
) -> Result<Receipt, StoreError> {
    let bad = || remote("the server's receipt is incomplete".into());
    Ok(Receipt {
        seq: seq.ok_or_else(bad)?,
        hash: hash.and_then(Hash32::parse_hex).ok_or_else(bad)?,
        offset: offset.unwrap_or(0),
        time: time.and_then(Timestamp::parse).ok_or_else(bad)?,
    })
}

/// The rules a refusal may name, as the static strings `Refusal` holds.
const RULES: [&str; 26] = [
    "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15",
    "L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8", "L9", "L10", "L11",
];

fn outcome(r: &ItemReply) -> Result<Outcome, StoreError> {
    match r.status.as_str() {
        "appended" => Ok(Ok(receipt(r)?)),
        "denied" => {
            let rule = RULES
                .iter()
                .find(|x| Some(**x) == r.code.as_deref())
                .copied()
                .unwrap_or("policy");
            let refusal = Refusal {
                rule,
                message: r.message.clone().unwrap_or_default(),
            };
            Ok(Err((refusal, receipt(r)?)))
        }
        _ => Err(StoreError::Server {
            code: r.code.clone().unwrap_or_else(|| "rejected".into()),
            message: r.message.clone().unwrap_or_default(),
        }),
    }
}

impl Appender for Remote {
    fn verified(&self) -> &Verified {
        &self.v
    }

    /// Signs each action as its own request; they are applied in order in one commit.
    fn append_batch(
        &mut self,
        key: &SigningKey,
        actions: Vec<Action>,
        _now: Timestamp,
    ) -> Result<Vec<Outcome>, StoreError> {
        // A request is dated by this machine's real clock: the server checks it against
        // its own (a KEYLEDGER_NOW in the past has no say over a server's events).
        let now = Timestamp::now();
        let code = self.code_for(key, &actions);
        let signed: Vec<(Action, Request)> = actions
            .into_iter()
            .map(|a| {
                let r = request::sign(key, &self.ledger_id, now, &a);
                (a, r)
            })
            .collect();
        submit(&mut self.client, &self.ledger_id, &signed, code)?
            .iter()
            .map(outcome)
            .collect()
    }

    fn event_time(&self, _now: Timestamp) -> Result<Timestamp, StoreError> {
        Ok(Timestamp::now().max(self.v.head.time))
    }
}

impl Ops for Remote {
    /// The server checks the secret (it alone holds every fingerprint in memory) and
    /// records the outcome, coalescing successes (R11).
    fn authenticate(
        &mut self,
        signer: &SigningKey,
        key_id: &str,
        presented: &SecretText,
        token: Option<&SecretText>,
        _now: Timestamp,
    ) -> Result<AuthOutcome, StoreError> {
        let action = Action::AuthSucceeded {
            key_id: key_id.to_owned(),
        };
        let req = request::sign(signer, &self.ledger_id, Timestamp::now(), &action);
        let body = AuthBody {
            key_id: key_id.to_owned(),
            secret: presented.expose().to_owned(),
            token: token.map(|t| t.expose().to_owned()),
            request: wire::encode_request(&action, &req),
        };
        let body = zeroize::Zeroizing::new(serde_json::to_vec(&body).expect("encodes"));
        let (status, reply) = post(&mut self.client, "/v1/auth", body.to_vec())?;
        let a: AuthReply = match serde_json::from_slice(&reply) {
            Ok(a) if status == StatusCode::OK => a,
            _ => return Err(refused(status, &reply)),
        };
        let receipt = match a.seq {
            None => None,
            Some(_) => Some(receipt_of(
                a.seq,
                a.hash.as_deref(),
                a.time.as_deref(),
                None,
            )?),
        };
        Ok(AuthOutcome {
            ok: a.ok,
            reason: a.reason,
            user: a.user,
            receipt,
        })
    }
}

/// Where this user keeps the verified copy of the ledger of the server at `url`.
pub fn mirror_path(cache_dir: &Path, url: &str) -> PathBuf {
    let h = blake3::hash(url.trim_end_matches('/').as_bytes());
    cache_dir
        .join("servers")
        .join(format!("{}.ledger", &h.to_hex()[..32]))
}
