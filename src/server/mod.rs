//! `keyledger serve`: one ledger, many clients (README "Server").
//!
//! Every write is the actor's own signed request (ledger-format.md §4.1); this process
//! signs the frames with its key, whose principal holds `server` (R15). It holds the
//! writers' lock for its lifetime, verifies every event at start, keeps the state in memory,
//! and answers a write only after its event is on disk (group commit, `writer`).

mod http;
mod listen;
pub mod metrics;
pub mod protect;
pub mod scanning;
pub mod witness;
mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::core::chain::Head;
use crate::core::event::Permission;
use crate::core::signing::SigningKey;
use crate::core::state::RequestFault;
use crate::core::types::LedgerId;
use crate::storage::cache::Cache;
use crate::storage::ledger::{Appender, Ledger};
use crate::storage::live::Live;
use crate::storage::postgres::PgLedger;
use crate::storage::store::{StoreError, Wait};

/// Where one log line per request goes (the caller's stderr); never given a secret.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

pub struct Config {
    /// The ledger file; for a PostgreSQL ledger, this node's mirror of it.
    pub ledger: PathBuf,
    /// Issue 16: the ledger is in PostgreSQL (`postgres://…?ledger=NAME`), shared with
    /// every other node serving it.
    pub postgres: Option<String>,
    pub key: SigningKey,
    pub listen: SocketAddr,
    /// `(certificate chain, private key)`, PEM.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub wait: Wait,
    pub cache: Cache,
    /// Successes of one key within this many seconds are recorded once (R11); 0 records all.
    pub auth_coalesce_seconds: u64,
    pub max_connections: usize,
    /// A client must send its headers, and then its body, within this time.
    pub client_timeout: Duration,
    pub log: LogSink,
    /// R13: the seed store (`protect::SeedStore`); `None`: the ledger's path + `.seeds`.
    pub seeds: Option<PathBuf>,
    /// R14: the secret scanning partner endpoint, if this server accepts reports.
    pub scanner: Option<scanning::Scanner>,
    /// R11: failed checks of one key recorded one by one per minute, the rest summarized.
    pub auth_failures_per_minute: u64,
    /// Issue 17: serve the log as tlog-tiles too (`/checkpoint`, `/tile/…`).
    pub tiles: bool,
}

impl Config {
    /// Where the seed store is.
    pub fn seeds_path(&self) -> PathBuf {
        self.seeds.clone().unwrap_or_else(|| {
            let mut p = self.ledger.clone().into_os_string();
            p.push(".seeds");
            p.into()
        })
    }

    pub fn new(ledger: PathBuf, key: SigningKey, listen: SocketAddr, log: LogSink) -> Self {
        Config {
            ledger,
            postgres: None,
            key,
            listen,
            tls: None,
            wait: Wait::NoWait,
            cache: Cache::none(),
            auth_coalesce_seconds: 60,
            max_connections: 512,
            client_timeout: Duration::from_secs(10),
            log,
            seeds: None,
            scanner: None,
            auth_failures_per_minute: 10,
            tiles: false,
        }
    }
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "refusing to listen on {0} without TLS: only a loopback address may serve plain http. Give --tls-cert FILE --tls-key FILE, or listen on 127.0.0.1"
    )]
    NotLoopback(SocketAddr),
    #[error(
        "{principal} does not hold the server permission, so its key cannot sign the frames of other principals' requests (R15). An admin grants it: keyledger grant {principal} server"
    )]
    NoServerPermission { principal: String },
    #[error("TLS: {path}: {message}")]
    Tls { path: PathBuf, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting the server: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Seeds(#[from] protect::ProtectError),
    #[error("the witness state {path}: {message}")]
    WitnessState { path: PathBuf, message: String },
}

/// A refusal as the API gives it: HTTP status, stable code, message.
#[derive(Debug, Clone)]
pub struct Fail {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Fail {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Fail {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(message: String) -> Self {
        Fail::new(503, "unavailable", message)
    }

    pub fn fault(fault: RequestFault, message: String) -> Self {
        let (status, code) = match fault {
            RequestFault::Key => (401, "unknown-key"),
            RequestFault::Signature => (401, "bad-signature"),
            RequestFault::Time => (400, "stale-request"),
            RequestFault::Replay => (409, "replayed"),
            RequestFault::Shape => (400, "malformed"),
            RequestFault::Server => (503, "server-key"),
            RequestFault::Factor => (400, "malformed"),
        };
        Fail::new(status, code, message)
    }

    /// A request's time must be within the skew of this server's clock `now` (§8 7a d).
    pub fn check_time(
        t: crate::core::types::Timestamp,
        now: crate::core::types::Timestamp,
    ) -> Result<(), Fail> {
        if t.0.abs_diff(now.0) > crate::core::request::REQUEST_SKEW_US as u64 {
            return Err(Fail::new(
                400,
                "stale-request",
                format!(
                    "the request was signed at {t}, more than 5 minutes from this server's clock ({now}); check the client's clock"
                ),
            ));
        }
        Ok(())
    }

    /// A request whose signature does not verify.
    pub fn bad_signature(key: &crate::core::types::PublicKey) -> Self {
        Fail::new(
            401,
            "bad-signature",
            format!(
                "the request's signature does not verify for key {key}: it covers this ledger's id, the request's time and nonce, and what it asks (README, Server API)"
            ),
        )
    }

    /// A store error about one item (never an acknowledged write).
    pub fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::Request { fault, message } => Fail::fault(fault, message),
            StoreError::Usage(_) | StoreError::TooLarge(_) | StoreError::FutureTime { .. } => {
                Fail::new(400, "usage", e.to_string())
            }
            StoreError::Invalid(_) => Fail::new(400, "invalid", e.to_string()),
            StoreError::Signer(_) => Fail::new(
                503,
                "server-key",
                format!("this server's own key cannot sign: {e}"),
            ),
            other => Fail::unavailable(other.to_string()),
        }
    }
}

/// What handlers share with the writer.
pub struct Shared {
    pub ledger_id: LedgerId,
    pub format_version: u16,
    pub server_key: String,
    pub coalesce_us: u64,
    /// R11: failed checks of one key recorded one by one per minute; 0: all.
    pub failures_per_minute: u64,
    /// The file's length up to the last event on disk: readers serve nothing past it.
    pub durable_end: AtomicU64,
    pub head: Mutex<Head>,
    pub metrics: metrics::Metrics,
    pub ledger_path: PathBuf,
    pub log: LogSink,
    pub client_timeout: Duration,
    /// R14: whose signed reports of leaked tokens are believed, and what is done with them.
    pub scanner: Option<scanning::Scanner>,
    /// Issue 17: the event hashes read so far for tiles, and the key checkpoints are
    /// signed with (the server's); `None` unless `--tiles`.
    pub tiles: Option<http::Tiles>,
}

/// A server accepting requests.
pub struct Running {
    /// `http://ADDR` or `https://ADDR`, the address actually bound.
    pub url: String,
    runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
    shared: Arc<Shared>,
}

/// Opens the ledger (every event verified again, the writers' lock held from now on),
/// checks the key may serve, binds, and starts accepting.
pub fn start(config: Config) -> Result<Running, ServerError> {
    if config.tls.is_none() && !config.listen.ip().is_loopback() {
        return Err(ServerError::NotLoopback(config.listen));
    }
    let tls = match &config.tls {
        Some((cert, key)) => Some(listen::tls_acceptor(cert, key)?),
        None => None,
    };
    let ledger = match &config.postgres {
        None => Live::File(Box::new(Ledger::open_verifying_all(
            &config.ledger,
            config.wait,
            &config.cache,
        )?)),
        Some(url) => Live::Postgres(Box::new(PgLedger::open_verifying_all(
            url,
            &config.ledger,
            config.wait,
            &config.cache,
        )?)),
    };
    let state = ledger.state();
    let principal = ledger.file().actor(&config.key)?;
    if !state.has(&principal, Permission::Server) {
        return Err(ServerError::NoServerPermission { principal });
    }
    let seeds = protect::SeedStore::open(&config.seeds_path())?;
    let shared = Arc::new(Shared {
        ledger_id: state.ledger_id.expect("a verified ledger has a genesis"),
        format_version: state.format_version,
        server_key: config.key.public().to_string(),
        coalesce_us: config.auth_coalesce_seconds.saturating_mul(1_000_000),
        failures_per_minute: config.auth_failures_per_minute,
        durable_end: AtomicU64::new(0),
        head: Mutex::new(ledger.head()),
        metrics: metrics::Metrics::default(),
        ledger_path: config.ledger.clone(),
        log: config.log.clone(),
        client_timeout: config.client_timeout,
        scanner: config.scanner,
        tiles: config
            .tiles
            .then(|| http::Tiles::new(SigningKey::from_seed(&config.key.seed()))),
    });
    let (runtime, listener, addr) = bound(config.listen, "keyledger-serve", None)?;
    let (tx, rx) = mpsc::channel(4096);
    let node = match &ledger {
        Live::Postgres(p) => Some(p.node().to_owned()),
        Live::File(_) => None,
    };
    let w = writer::Writer::new(ledger, config.key, shared.clone(), seeds);
    let writer = std::thread::Builder::new()
        .name("keyledger-writer".into())
        .spawn(move || w.run(rx))
        .map_err(ServerError::Runtime)?;
    if let (Some(url), Some(node)) = (config.postgres.clone(), node) {
        follow_others(url, node, tx.downgrade(), config.log.clone())?;
    }
    // R11: failure windows are summarized within seconds of their end, busy or not.
    let ticks = tx.clone();
    runtime.spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            if ticks.send(writer::Job::Tick).await.is_err() {
                break;
            }
        }
    });
    let router = http::router(shared.clone(), tx);
    let (stop, stopped) = watch::channel(false);
    let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
    let accept = runtime.spawn(listen::accept_loop(
        listener,
        tls,
        router,
        listen::Limits::of(shared.clone(), config.max_connections),
        stopped,
    ));
    Ok(Running {
        url,
        runtime,
        stop,
        accept,
        writer,
        shared,
    })
}

/// A runtime (`threads` workers, default one per core) and a listener bound to `addr` on it.
pub(crate) fn bound(
    addr: SocketAddr,
    name: &str,
    threads: Option<usize>,
) -> Result<(tokio::runtime::Runtime, tokio::net::TcpListener, SocketAddr), ServerError> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    let runtime = b
        .enable_all()
        .thread_name(name)
        .build()
        .map_err(ServerError::Runtime)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(ServerError::Runtime)?;
    Ok((runtime, listener, local))
}

/// Waits on `runtime` for SIGTERM or SIGINT.
pub(crate) fn until_signal(runtime: &tokio::runtime::Runtime) -> Result<(), ServerError> {
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(ServerError::Runtime)?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<(), ServerError>(())
    })
}

/// A shared ledger's node hears of other nodes' commits (LISTEN) and has its writer take
/// them in; every second without one it looks anyway. Ends with the writer.
fn follow_others(
    url: String,
    node: String,
    writer: mpsc::WeakSender<writer::Job>,
    log: LogSink,
) -> Result<(), ServerError> {
    let wake = move || match writer.upgrade() {
        // A full queue means the writer is busy: its next batch catches up under the lock.
        Some(tx) => !matches!(
            tx.try_send(writer::Job::Follow),
            Err(mpsc::error::TrySendError::Closed(_))
        ),
        None => false,
    };
    std::thread::Builder::new()
        .name("keyledger-follow".into())
        .spawn(move || {
            let mut wake = wake;
            loop {
                match crate::storage::postgres::listen(&url, &node, Duration::from_secs(1), &mut wake) {
                    Ok(()) => return,
                    Err(e) => {
                        log(&serde_json::json!({"time": crate::core::types::Timestamp::now().to_string(), "error": format!("listening for other nodes' commits: {e}")}).to_string());
                        std::thread::sleep(Duration::from_secs(1));
                        if !wake() {
                            return;
                        }
                    }
                }
            }
        })
        .map(drop)
        .map_err(ServerError::Runtime)
}

impl Running {
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.shared.metrics
    }

    /// Serves until SIGTERM or SIGINT, then drains (`stop`).
    pub fn run_until_signal(self) -> Result<(), ServerError> {
        until_signal(&self.runtime)?;
        self.stop();
        Ok(())
    }

    /// Graceful drain: no new connections; requests in flight are answered (their writes
    /// committed) within 10 s; then the writer finishes its queue and releases the ledger.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.runtime.block_on(self.accept);
        // The router (holding the writer's channel) is gone with the accept loop and its
        // connections; the writer ends when the last sender is dropped.
        self.runtime.shutdown_timeout(Duration::from_secs(1));
        let _ = self.writer.join();
    }
}
