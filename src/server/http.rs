//! Routes and handlers. A handler decodes and checks what needs no state (shape, ledger id,
//! time, the request's signature, on whichever core it runs) and leaves the rest to the
//! writer; every refusal is a JSON `ErrorBody` with a 4xx (5xx: the server's own trouble).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::core::credentials::SecretText;
use crate::core::event::{Action, Request as Signed};
use crate::core::request;
use crate::core::types::{Hash32, LedgerId, Timestamp};
use crate::protocol::wire::{
    self, AppendBody, AppendReply, AuthBody, ErrorBody, H_END, ItemReply, LedgerInfo, ReadAuth,
};
use crate::storage::ledger::Item;
use crate::storage::store::StoreError;

use super::writer::{AuthCheck, ItemResult, Job};
use super::{Fail, Shared, scanning};
use crate::core::state::MAX_ID;

/// At most this many signed requests in one append.
const MAX_ITEMS: usize = 256;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
}

pub fn router(shared: Arc<Shared>, jobs: mpsc::Sender<Job>) -> Router {
    let app = App { shared, jobs };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/ledger", get(ledger_info))
        .route("/v1/frames", get(frames))
        .route("/v1/append", post(append))
        .route("/v1/auth", post(auth))
        .route("/v1/protect/enable", post(protect_enable))
        .route("/v1/github/secret-scanning", post(secret_scanning))
        .route("/checkpoint", get(tile_checkpoint))
        .route("/tile/{*rest}", get(tile))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), log_request))
        .with_state(app)
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = ErrorBody {
            error: self.code.into(),
            message: self.message,
        };
        (status, axum::Json(body)).into_response()
    }
}

fn json<T: Serialize>(status: u16, v: &T) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, axum::Json(v)).into_response()
}

/// One line per request on the log sink: time, method, path, status, microseconds. Never a
/// body or a header value (a body may hold a secret).
async fn log_request(State(app): State<App>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let endpoint = match path.as_str() {
        "/healthz"
        | "/metrics"
        | "/v1/ledger"
        | "/v1/frames"
        | "/v1/append"
        | "/v1/auth"
        | "/v1/protect/enable"
        | "/v1/github/secret-scanning" => path.clone(),
        _ => "other".into(),
    };
    let res = next.run(req).await;
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    let m = &app.shared.metrics;
    m.count_request(&endpoint, &status.to_string());
    m.request_seconds.observe(elapsed.as_secs_f64());
    let line = serde_json::json!({
        "time": Timestamp::now().to_string(),
        "method": method.as_str(),
        "path": endpoint,
        "status": status,
        "micros": elapsed.as_micros() as u64,
    });
    (app.shared.log)(&line.to_string());
    res
}

async fn not_found() -> Fail {
    Fail::new(
        404,
        "not-found",
        "no such endpoint; see the README's Server API: /healthz, /metrics, /v1/ledger, /v1/frames, /v1/append, /v1/auth",
    )
}

/// The tlog-tiles view (issue 17): every event hash up to the last event on disk, read from
/// the ledger file as it grows (the writer verified those frames), and their tree; a tile
/// request copies at most 256 hashes.
pub struct Tiles {
    key: crate::core::signing::SigningKey,
    read: std::sync::Mutex<(
        u64,
        crate::evidence::tiles::TileTree,
        crate::core::merkle::TreeBuilder,
    )>,
}

impl Tiles {
    pub fn new(key: crate::core::signing::SigningKey) -> Self {
        Tiles {
            key,
            read: std::sync::Mutex::new((
                crate::core::format::HEADER_LEN,
                Default::default(),
                Default::default(),
            )),
        }
    }
}

/// Runs `f` on the event hashes of every event on disk (read on from where it stopped, at
/// most 4 MiB at a time). Blocking: callers run it off the async workers.
fn with_leaves<T>(
    app: &App,
    f: impl FnOnce(&crate::evidence::tiles::TileTree, &crate::core::merkle::TreeBuilder) -> T,
) -> Result<T, Fail> {
    const CHUNK: u64 = 4 << 20;
    let tiles = app.shared.tiles.as_ref().ok_or_else(|| {
        Fail::new(
            404,
            "not-found",
            "this server does not serve tiles (serve --tiles)",
        )
    })?;
    let mut g = tiles.read.lock().unwrap_or_else(|p| p.into_inner());
    let end = app.shared.durable_end.load(Ordering::Acquire);
    if end > g.0 {
        let file = std::fs::File::open(&app.shared.ledger_path)
            .map_err(|e| Fail::unavailable(format!("reading the ledger: {e}")))?;
        // Whole frames of each chunk; a frame cut by the chunk's end is read with the next.
        while g.0 < end {
            let mut bytes = vec![0u8; (end - g.0).min(CHUNK) as usize];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, g.0)
                .map_err(|e| Fail::unavailable(format!("reading the ledger: {e}")))?;
            let mut at = 0usize;
            while at + 4 <= bytes.len() {
                let len =
                    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
                if at + 4 + len + 64 > bytes.len() {
                    break;
                }
                let hash = crate::core::chain::event_hash(&bytes[at + 4..at + 4 + len]);
                g.1.push(hash);
                g.2.push(&hash);
                at += 4 + len + 64;
            }
            if at == 0 {
                return Err(Fail::unavailable(
                    "reading the ledger: a frame does not fit where the writer said".into(),
                ));
            }
            g.0 += at as u64;
        }
    }
    Ok(f(&g.1, &g.2))
}

async fn tile_checkpoint(State(app): State<App>) -> Response {
    let note = tokio::task::spawn_blocking(move || {
        with_leaves(&app, |leaves, tree| {
            let tiles = app.shared.tiles.as_ref().expect("checked");
            crate::evidence::checkpoint::Checkpoint {
                origin: crate::evidence::checkpoint::origin(&app.shared.ledger_id),
                size: leaves.size(),
                root: tree.root(),
            }
            .sign(&tiles.key)
        })
    })
    .await
    .unwrap_or_else(|_| Err(Fail::unavailable("the tile reader failed".into())));
    match note {
        Ok(n) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            n,
        )
            .into_response(),
        Err(f) => f.into_response(),
    }
}

async fn tile(State(app): State<App>, uri: axum::http::Uri) -> Response {
    // The path exactly as sent (not percent-decoded), and no query: one name per tile.
    let path = uri.path().strip_prefix('/').unwrap_or_default();
    let parsed = match uri.query() {
        None => crate::evidence::tiles::parse_path(path),
        Some(_) => None,
    };
    let Some((level, n, width)) = parsed else {
        return Fail::new(
            404,
            "not-found",
            "not a tile path: tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]",
        )
        .into_response();
    };
    let got = tokio::task::spawn_blocking(move || {
        with_leaves(&app, |leaves, _| leaves.tile(level, n, width))
    })
    .await
    .unwrap_or_else(|_| Err(Fail::unavailable("the tile reader failed".into())));
    match got {
        Ok(Some(bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => {
            Fail::new(404, "not-found", "the tree does not hold that tile yet").into_response()
        }
        Err(f) => f.into_response(),
    }
}

async fn healthz(State(app): State<App>) -> Response {
    let head = *app.shared.head.lock().unwrap_or_else(|p| p.into_inner());
    json(200, &serde_json::json!({"status": "ok", "seq": head.seq}))
}

async fn metrics(State(app): State<App>) -> Response {
    let mut res = app.shared.metrics.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    res
}

async fn ledger_info(State(app): State<App>) -> Response {
    let s = &app.shared;
    let head = *s.head.lock().unwrap_or_else(|p| p.into_inner());
    json(
        200,
        &LedgerInfo {
            ledger_id: s.ledger_id.hex(),
            format_version: s.format_version,
            seq: head.seq,
            head: head.hash.hex(),
            end: head.end,
            server_key: s.server_key.clone(),
            auth_coalesce_seconds: s.coalesce_us / 1_000_000,
        },
    )
}

/// The body, read within the client timeout and the size limit.
async fn body(app: &App, req: Request) -> Result<axum::body::Bytes, Fail> {
    let read = axum::body::to_bytes(req.into_body(), wire::MAX_REQUEST_BODY);
    match tokio::time::timeout(app.shared.client_timeout, read).await {
        Err(_) => Err(Fail::new(
            408,
            "timeout",
            format!(
                "the request body did not arrive within {} s",
                app.shared.client_timeout.as_secs()
            ),
        )),
        Ok(Err(_)) => Err(Fail::new(
            413,
            "too-large",
            format!(
                "the request body is larger than {} bytes (or was cut off)",
                wire::MAX_REQUEST_BODY
            ),
        )),
        Ok(Ok(b)) => Ok(b),
    }
}

fn malformed(what: impl std::fmt::Display) -> Fail {
    Fail::new(400, "malformed", format!("malformed request: {what}"))
}

fn check_ledger(app: &App, id: &str) -> Result<(), Fail> {
    match LedgerId::parse_hex(id) {
        Some(i) if i == app.shared.ledger_id => Ok(()),
        Some(_) => Err(Fail::new(
            400,
            "wrong-ledger",
            format!(
                "the request is for ledger {id}; this server holds ledger {}",
                app.shared.ledger_id.hex()
            ),
        )),
        None => Err(malformed("ledger_id is not 32 hex digits")),
    }
}

/// A request's time must be within the skew of this server's clock (§8 7a d), checked
/// again by the writer against the event's time.
fn check_time(t: Timestamp) -> Result<(), Fail> {
    Fail::check_time(t, Timestamp::now())
}

/// Decodes one signed write and the hash its signature must cover; the writer checks the
/// signatures of everything waiting in one batch on every core (`writer::Writer::checked`).
fn signed(app: &App, text: &str) -> Result<(Action, Signed, Hash32), Fail> {
    let bytes = wire::unb64(text).ok_or_else(|| malformed("a request is not base64"))?;
    let (action, req) = Signed::decode_signed(&bytes).map_err(malformed)?;
    if req.refused.is_some() {
        return Err(malformed(
            "a client's request carries no refused action; the server records refusals",
        ));
    }
    check_time(req.time)?;
    let hash = request::request_hash(&app.shared.ledger_id, req.time, &req.nonce, &action);
    Ok((action, req, hash))
}

async fn ask<T>(
    app: &App,
    job: Job,
    answer: oneshot::Receiver<Result<T, Fail>>,
) -> Result<T, Fail> {
    let gone = || Fail::unavailable("the server is stopping; retry with the same request".into());
    app.jobs.send(job).await.map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?
}

async fn append(State(app): State<App>, req: Request) -> Response {
    match append_inner(&app, req).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

async fn append_inner(app: &App, req: Request) -> Result<Response, Fail> {
    let bytes = body(app, req).await?;
    let b: AppendBody = serde_json::from_slice(&bytes).map_err(malformed)?;
    check_ledger(app, &b.ledger_id)?;
    if b.requests.is_empty() || b.requests.len() > MAX_ITEMS {
        return Err(malformed(format!(
            "an append holds 1 to {MAX_ITEMS} requests, not {}",
            b.requests.len()
        )));
    }
    let mut items = Vec::with_capacity(b.requests.len());
    for r in &b.requests {
        let (action, req, hash) = signed(app, r)?;
        let item = Item {
            action,
            request: Some(req),
            sig_checked: false,
            factor: Default::default(),
        };
        items.push((item, hash));
    }
    let (tx, rx) = oneshot::channel();
    let job = Job::Append {
        items,
        code: b.code.map(|c| c.0),
        reply: tx,
    };
    let results = ask(app, job, rx).await?;
    let (replies, statuses): (Vec<ItemReply>, Vec<u16>) =
        results.into_iter().map(item_reply).unzip();
    // The first request not appended gives the status and the error, so a one-request
    // client can go by them as by any refusal.
    let first = replies.iter().zip(&statuses).find(|(_, s)| **s != 200);
    let (status, error, message) = match first {
        Some((r, s)) => {
            let code = match r.status.as_str() {
                "denied" => "denied".into(),
                _ => r.code.clone().unwrap_or_default(),
            };
            (*s, Some(code), r.message.clone())
        }
        None => (200, None, None),
    };
    Ok(json(
        status,
        &AppendReply {
            results: replies,
            error,
            message,
        },
    ))
}

/// One request's reply, and the HTTP status it alone would get.
fn item_reply(r: ItemResult) -> (ItemReply, u16) {
    let receipt = |status: &str, r: &crate::storage::store::Receipt| ItemReply {
        status: status.into(),
        seq: Some(r.seq),
        hash: Some(r.hash.hex()),
        time: Some(r.time.to_string()),
        offset: Some(r.offset),
        replayed: false,
        code: None,
        message: None,
    };
    match r {
        Ok(Ok(r)) => (receipt("appended", &r), 200),
        Ok(Err((refusal, r))) => {
            let reply = ItemReply {
                code: Some(refusal.rule.into()),
                message: Some(refusal.message),
                ..receipt("denied", &r)
            };
            (reply, 403)
        }
        Err(StoreError::AlreadyApplied(a)) => {
            let reply = ItemReply {
                status: if a.refused { "denied" } else { "appended" }.into(),
                seq: Some(a.seq),
                hash: Some(a.hash.hex()),
                time: Some(a.time.to_string()),
                offset: None,
                replayed: true,
                code: None,
                message: Some(format!(
                    "this request was applied before, at seq {}; nothing new was appended",
                    a.seq
                )),
            };
            // The original answer again: a denial stays a 403.
            (reply, if a.refused { 403 } else { 200 })
        }
        Err(e) => {
            let f = Fail::from_store(e);
            let reply = ItemReply {
                status: "rejected".into(),
                seq: None,
                hash: None,
                time: None,
                offset: None,
                replayed: false,
                code: Some(f.code.into()),
                message: Some(f.message),
            };
            (reply, f.status)
        }
    }
}

async fn auth(State(app): State<App>, req: Request) -> Response {
    let r = async {
        let bytes = body(&app, req).await?;
        // Never serde's words: they may quote a value of the body, which holds a secret.
        let b: AuthBody = serde_json::from_slice(&bytes).map_err(|_| {
            malformed("the body is not {\"key_id\", \"secret\", \"token\", \"request\"} as JSON")
        })?;
        if b.key_id.len() > MAX_ID {
            return Err(malformed(format!("key_id is longer than {MAX_ID} bytes")));
        }
        let (action, request, hash) = signed(&app, &b.request)?;
        if action
            != (Action::AuthSucceeded {
                key_id: b.key_id.clone(),
            })
        {
            return Err(malformed(
                "an auth request signs auth-succeeded for the key_id it presents",
            ));
        }
        let check = AuthCheck {
            request,
            hash,
            key_id: b.key_id,
            secret: SecretText::from_input(&b.secret),
            token: b.token.as_deref().map(SecretText::from_input),
        };
        let (tx, rx) = oneshot::channel();
        ask(
            &app,
            Job::Auth {
                check: Box::new(check),
                reply: tx,
            },
            rx,
        )
        .await
    }
    .await;
    match r {
        Ok(reply) => json(200, &reply),
        Err(f) => f.into_response(),
    }
}

/// `GET /v1/frames?from=OFFSET`: the ledger file's bytes from OFFSET to the last event on
/// disk (at most `MAX_FRAMES_REPLY`), for a signed reader; the client verifies them.
/// The signed read of `req` (README, Server API), checked: its signature over `target`
/// and its time; the writer checks its key and nonce.
fn read_auth(app: &App, req: &Request, target: &str) -> Result<ReadAuth, Fail> {
    let auth = ReadAuth::from_headers(|name| req.headers().get(name).and_then(|v| v.to_str().ok()))
        .ok_or_else(|| {
            Fail::new(
                401,
                "unsigned",
                "a read is signed: keyledger-key, keyledger-time, keyledger-nonce and keyledger-signature headers (README, Server API)",
            )
        })?;
    check_time(auth.time)?;
    if !auth.verify(&app.shared.ledger_id, target) {
        return Err(Fail::bad_signature(&auth.key));
    }
    Ok(auth)
}

/// `method path?query` of `req`: what a signed read signs.
fn target(req: &Request, method: &str, path: &str) -> String {
    format!(
        "{method} {}",
        req.uri().path_and_query().map_or(path, |p| p.as_str())
    )
}

/// R13: a new authenticator for `?name=NAME`, by NAME itself or an admin; the seed stays
/// with the server, the URI goes to the requester once.
async fn protect_enable(State(app): State<App>, req: Request) -> Response {
    let r = async {
        let target = target(&req, "POST", "/v1/protect/enable");
        let name = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("name="))
            .filter(|n| crate::core::types::valid_name(n))
            .ok_or_else(|| malformed("give ?name=NAME, a principal's name"))?
            .to_owned();
        let auth = read_auth(&app, &req, &target)?;
        drop(req);
        let (tx, rx) = oneshot::channel();
        let job = Job::Protect {
            key: auth.key,
            replay: auth.replay_id(),
            time: auth.time,
            name: name.clone(),
            reply: tx,
        };
        let uri = ask(&app, job, rx).await?;
        let mut res = json(
            200,
            &wire::ProtectReply {
                name,
                uri: uri.to_string(),
            },
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok::<Response, Fail>(res)
    }
    .await;
    r.unwrap_or_else(|f: Fail| f.into_response())
}

/// R14: a secret scanner's signed report (GitHub's partner program): 401 and nothing
/// recorded unless its signature verifies with a configured key; then the writer records
/// it and the answer labels each token.
async fn secret_scanning(State(app): State<App>, req: Request) -> Response {
    let r = async {
        if app.shared.scanner.is_none() {
            return Err(Fail::new(
                404,
                "not-found",
                "this server takes no secret scanning reports (serve --scanner-keys FILE)",
            ));
        }
        let header = |req: &Request, name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let id = header(&req, "github-public-key-identifier");
        let sig = header(&req, "github-public-key-signature");
        let bytes = body(&app, req).await?;
        let scanner = app.shared.scanner.as_ref().expect("checked above");
        let (Some(id), Some(sig)) = (id, sig) else {
            return Err(Fail::new(
                401,
                "unsigned",
                "a report carries Github-Public-Key-Identifier and Github-Public-Key-Signature headers",
            ));
        };
        if !scanner.keys.verify(&id, &sig, &bytes) {
            return Err(Fail::new(
                401,
                "bad-signature",
                "the report's signature does not verify with the scanner key it names; nothing was recorded",
            ));
        }
        // Never serde's words: they may quote a token.
        let matches: Vec<scanning::Match> = serde_json::from_slice(&bytes).map_err(|_| {
            malformed("a report is a JSON array of {\"token\", \"type\", \"url\", \"source\"}")
        })?;
        if matches.len() > scanning::MAX_MATCHES {
            return Err(malformed(format!(
                "a report holds at most {} matches",
                scanning::MAX_MATCHES
            )));
        }
        let (tx, rx) = oneshot::channel();
        let body = crate::core::types::Bytes(*blake3::hash(&bytes).as_bytes());
        let job = Job::Scan {
            matches,
            body,
            reply: tx,
        };
        let feedback = ask(&app, job, rx).await?;
        Ok(json(200, &feedback))
    }
    .await;
    r.unwrap_or_else(|f: Fail| f.into_response())
}

async fn frames(State(app): State<App>, req: Request) -> Response {
    let r = async {
        let target = target(&req, "GET", "/v1/frames");
        let from: u64 = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("from="))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed("give ?from=OFFSET (a byte offset, 0 for the start)"))?;
        let auth = read_auth(&app, &req, &target)?;
        drop(req);
        let (tx, rx) = oneshot::channel();
        let job = Job::Reader {
            key: auth.key,
            replay: auth.replay_id(),
            time: auth.time,
            reply: tx,
        };
        ask(&app, job, rx).await?;
        let end = app.shared.durable_end.load(Ordering::Acquire);
        if from > end {
            return Err(Fail::new(
                416,
                "past-end",
                format!("the ledger ends at byte {end}; ask from at most that"),
            ));
        }
        let upto = end.min(from + wire::MAX_FRAMES_REPLY);
        let path = app.shared.ledger_path.clone();
        let bytes = tokio::task::spawn_blocking(move || read_range(&path, from, upto))
            .await
            .map_err(|e| Fail::unavailable(e.to_string()))?
            .map_err(|e| Fail::unavailable(format!("reading the ledger: {e}")))?;
        let mut res = Response::new(Body::from(bytes));
        let hs = res.headers_mut();
        hs.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        hs.insert(H_END, HeaderValue::from(upto));
        Ok(res)
    }
    .await;
    r.unwrap_or_else(|f: Fail| f.into_response())
}

fn read_range(path: &std::path::Path, from: u64, upto: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; (upto - from) as usize];
    f.read_exact_at(&mut buf, from)?;
    Ok(buf)
}
