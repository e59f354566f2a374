//! `keyledger witness serve` (issue 17): a C2SP tlog-witness. It cosigns a checkpoint of a
//! log it trusts only if it is consistent with the last one it cosigned for that origin,
//! and records the new (size, root) durably (fsync, then rename, then fsync of the
//! directory) before it answers; the check and the record are one step under one lock.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::core::merkle::Sha;
use crate::core::signing::SigningKey;
use crate::core::types::PublicKey;
use crate::evidence::cosign::{self, AddCheckpoint};

use super::{LogSink, ServerError};

/// At most this many bytes in a request body.
const MAX_BODY: usize = 64 << 10;

pub struct WitnessConfig {
    pub key: SigningKey,
    pub name: String,
    pub listen: SocketAddr,
    pub state: PathBuf,
    /// Each log: its origin and the keys that sign its checkpoints.
    pub logs: Vec<(String, Vec<PublicKey>)>,
    pub log: LogSink,
    /// Connections served at once, and how long a client has to send a request.
    pub max_connections: usize,
    pub client_timeout: std::time::Duration,
}

/// What the witness remembers per origin: the latest cosigned checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    logs: BTreeMap<String, Latest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Latest {
    size: u64,
    root: String,
    /// The checkpoint with the log's signatures and this witness's cosignature.
    checkpoint: String,
}

struct Witness {
    key: SigningKey,
    name: String,
    logs: Vec<(String, Vec<PublicKey>)>,
    state_path: PathBuf,
    state: Mutex<Saved>,
    log: LogSink,
    client_timeout: std::time::Duration,
    /// `<state>.lock`, held exclusively while this witness runs: two witnesses on one state
    /// file could each cosign one branch of a fork.
    _lock: std::fs::File,
}

/// The state file's one true path: links followed (the file, or its directory if the file
/// is not there yet), so that every name of it takes the same lock and is written the same
/// way; a state file with more than one hard link is refused (its names could not share a
/// lock).
fn real_state_path(path: &Path) -> Result<PathBuf, ServerError> {
    use std::os::unix::fs::MetadataExt;
    let bad = |message: String| ServerError::WitnessState {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.nlink() > 1 => Err(bad(format!(
            "it has {} hard links; a witness's state has one name, so that one lock guards it",
            m.nlink()
        ))),
        Ok(_) => std::fs::canonicalize(path).map_err(|e| bad(e.to_string())),
        // A link to a state not there yet: its target's name cannot be known for sure (and
        // another link could name the same file), so it is refused.
        Err(_) if std::fs::symlink_metadata(path).is_ok() => Err(bad(
            "a link to a file that does not exist; name the state file itself".into(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let name = path
                .file_name()
                .ok_or_else(|| bad("not a file name".into()))?;
            Ok(std::fs::canonicalize(dir)
                .map_err(|e| bad(format!("{}: {e}", dir.display())))?
                .join(name))
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Takes `<state>.lock` exclusively (`path` is the real path), or says that another
/// witness holds it.
fn lock_state(path: &Path) -> Result<std::fs::File, ServerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock = PathBuf::from(name);
    let bad = |message: String| ServerError::WitnessState {
        path: path.to_path_buf(),
        message,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock)
        .map_err(|e| bad(format!("{}: {e}", lock.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(bad(format!(
            "another witness is running on this state file (it holds {}); run one witness per state file",
            lock.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(bad(format!("{}: {e}", lock.display()))),
    }
}

fn load(path: &Path) -> Result<Saved, ServerError> {
    let bad = |message: String| ServerError::WitnessState {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read(path) {
        Ok(b) => {
            let s: Saved = serde_json::from_slice(&b)
                .map_err(|e| bad(format!("not a witness state file: {e}")))?;
            for (o, l) in &s.logs {
                let ok = B64.decode(&l.root).is_ok_and(|r| r.len() == 32);
                if !ok {
                    return Err(bad(format!(
                        "the root recorded for {o} is not 32 bytes of base64"
                    )));
                }
            }
            Ok(s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved {
            version: 1,
            ..Saved::default()
        }),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Writes `s` to `path` durably: a fresh file (never through a link planted at its name)
/// fsynced, renamed over, the directory fsynced.
fn persist(path: &Path, s: &Saved) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    crate::storage::files::write_new(
        &tmp,
        &serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?,
        0o600,
    )?;
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// The timestamp of a cosignature line.
fn line_time(line: &str) -> Option<u64> {
    let blob = B64.decode(line.rsplit(' ').next()?).ok()?;
    Some(u64::from_be_bytes(blob.get(4..12)?.try_into().ok()?))
}

impl Witness {
    /// add-checkpoint: judged and, if cosigned, recorded before the answer.
    fn add(&self, body: &[u8]) -> (StatusCode, &'static str, String) {
        let text = |status: u16, body: String| {
            let ct = match status {
                409 => "text/x.tlog.size",
                _ => "text/plain; charset=utf-8",
            };
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                ct,
                body,
            )
        };
        let Some(req) = std::str::from_utf8(body)
            .ok()
            .and_then(AddCheckpoint::parse)
        else {
            return text(
                400,
                "not an add-checkpoint body: old N, proof lines, an empty line, a checkpoint\n"
                    .into(),
            );
        };
        let refused = |r: cosign::Refusal| {
            (self.log)(&serde_json::json!({"witness": self.name, "status": r.status, "answer": r.body.trim_end()}).to_string());
            text(r.status, r.body)
        };
        // Signatures are checked before the lock: a flood of costly notes holds no one up.
        let (cp, note_text, log_lines) = match cosign::precheck(&req, &self.logs) {
            Ok(v) => v,
            Err(r) => return refused(r),
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let latest = state.logs.get(&cp.origin).map(|l| {
            let root: Sha = B64
                .decode(&l.root)
                .ok()
                .and_then(|r| r.try_into().ok())
                .expect("checked when loaded");
            (l.size, root)
        });
        if let Err(r) = cosign::extends(&req, &cp, latest) {
            return refused(r);
        }
        let time = crate::core::types::Timestamp::now().0.max(1_000_000) as u64 / 1_000_000;
        // The very checkpoint cosigned last, again, within the same second: its line again,
        // with nothing written (resubmissions cost at most one fsync a second).
        if let Some(l) = state.logs.get(&cp.origin)
            && l.checkpoint.starts_with(&format!("{note_text}\n"))
            && let Some(line) = l.checkpoint.lines().last()
            && line_time(line) == Some(time)
        {
            return (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                format!("{line}\n"),
            );
        }
        let line = cosign::cosign(&self.key, &self.name, &note_text, time);
        let mut next = state.clone();
        next.logs.insert(
            cp.origin.clone(),
            Latest {
                size: cp.size,
                root: B64.encode(cp.root),
                // What the log signed and this witness's line: nothing else the submitter sent.
                checkpoint: format!("{note_text}\n{log_lines}{line}"),
            },
        );
        if let Err(e) = persist(&self.state_path, &next) {
            return text(
                500,
                format!("the witness could not record its state: {e}\n"),
            );
        }
        *state = next;
        (self.log)(&serde_json::json!({"witness": self.name, "status": 200, "origin": cp.origin, "size": cp.size}).to_string());
        (StatusCode::OK, "text/plain; charset=utf-8", line)
    }
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, req: axum::extract::Request) -> Response {
    // The body within the client timeout and the size limit, or the connection's slot goes
    // to someone else.
    let read = axum::body::to_bytes(req.into_body(), MAX_BODY);
    let body: Bytes = match tokio::time::timeout(w.client_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a request body is at most {MAX_BODY} bytes\n"),
            )
                .into_response();
        }
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time\n",
            )
                .into_response();
        }
    };
    let (status, ct, body) = match tokio::task::spawn_blocking(move || w.add(&body)).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            "the witness failed\n".into(),
        ),
    };
    (status, [(header::CONTENT_TYPE, ct)], body).into_response()
}

/// The monitoring API: the latest cosigned checkpoint of the log whose origin hashes to
/// `hash` (SHA-256, lower-case hex).
async fn latest(State(w): State<Arc<Witness>>, UrlPath(hash): UrlPath<String>) -> Response {
    // The state's lock is held across an fsync by add-checkpoint: wait off the async workers.
    let found = tokio::task::spawn_blocking(move || {
        let state = w.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .logs
            .iter()
            .find(|(o, _)| crate::core::types::to_hex(&Sha256::digest(o.as_bytes())) == hash)
            .map(|(_, l)| l.checkpoint.clone())
    })
    .await
    .ok()
    .flatten();
    match found {
        Some(checkpoint) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            checkpoint,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no checkpoint cosigned for that log\n",
        )
            .into_response(),
    }
}

/// A witness accepting requests.
pub struct RunningWitness {
    pub url: String,
    runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<()>,
}

pub fn start(config: WitnessConfig) -> Result<RunningWitness, ServerError> {
    // Locked before the state is read: what is read is what no one else will change.
    let state_path = real_state_path(&config.state)?;
    let lock = lock_state(&state_path)?;
    let state = load(&state_path)?;
    let w = Arc::new(Witness {
        key: config.key,
        name: config.name,
        logs: config.logs,
        state_path,
        state: Mutex::new(state),
        log: config.log,
        client_timeout: config.client_timeout,
        _lock: lock,
    });
    let router = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{hash}/checkpoint", get(latest))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(w);
    let (runtime, listener, addr) = super::bound(config.listen, "keyledger-witness", Some(2))?;
    let (stop, stopped) = watch::channel(false);
    let limits = super::listen::Limits {
        max_connections: config.max_connections,
        timeout: config.client_timeout,
        on_busy: Box::new(|| {}),
    };
    let serving = runtime.spawn(super::listen::accept_loop(
        listener, None, router, limits, stopped,
    ));
    Ok(RunningWitness {
        url: format!("http://{addr}"),
        runtime,
        stop,
        serving,
    })
}

impl RunningWitness {
    /// Serves until SIGTERM or SIGINT.
    pub fn run_until_signal(self) -> Result<(), ServerError> {
        super::until_signal(&self.runtime)?;
        let _ = self.stop.send(true);
        let _ = self.runtime.block_on(self.serving);
        Ok(())
    }
}
