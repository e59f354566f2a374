//! Command handlers. Each parses its input, calls the library, and prints.

pub mod args;
mod audit;
mod bench;
mod docs;
pub mod error;
mod history;
mod integrity;
mod keys;
mod leak;
pub mod output;
mod principals;
mod protect;
mod serve;
mod views;
mod witness;

use std::path::{Path, PathBuf};

use keyledger::core::signing::SigningKey;
use keyledger::core::types::{CLOCK_SKEW_US, PublicKey, Timestamp};
use keyledger::protocol::ops::Ops;
use keyledger::storage::cache::Cache;
use keyledger::storage::ledger::Ledger;
use keyledger::storage::store::{self, Freshness, Replay, Until, Verified, Wait};

use args::{AsOf, Cli, Cmd};
use error::CliError;

/// What every command may need: paths, output mode, the clock, the user's cache.
pub struct Ctx {
    pub ledger: PathBuf,
    pub key: Option<PathBuf>,
    pub json: bool,
    pub wait: Wait,
    /// The time new events are dated and reads are evaluated at: this machine's clock, or
    /// an earlier `KEYLEDGER_NOW`.
    pub now: Timestamp,
    /// This user's cache of verified state (L8).
    pub cache: Cache,
    /// `--server URL`: the server, reached and its copy verified once (`through_server`);
    /// `ledger` is then this user's verified copy of the server's ledger.
    pub server: std::cell::RefCell<Option<keyledger::client::Remote>>,
    /// Whether `--server` was given (the copy in `ledger` is never written to directly).
    pub through_server: bool,
    /// `--ledger postgres://…` (issue 16): writes go to the database; `ledger` is then this
    /// user's verified copy of its frames.
    pub postgres: Option<String>,
    /// `--ledger s3://…` (issue 16): the archive's URL and what it holds; `ledger` is then
    /// the ledger rebuilt from it (read only).
    pub archive: Option<(String, keyledger::client::archive::Rebuilt)>,
}

/// The key file `init` writes beside a ledger: the same path with extension `.key`.
pub fn default_key_path(ledger: &Path) -> PathBuf {
    ledger.with_extension("key")
}

impl Ctx {
    pub fn key_path(&self) -> PathBuf {
        self.key
            .clone()
            .unwrap_or_else(|| default_key_path(&self.ledger))
    }

    /// The ledger as the user named it: the URL of a database or an archive, else the path.
    pub fn shown_ledger(&self) -> String {
        match (&self.postgres, &self.archive) {
            (Some(url), _) | (None, Some((url, _))) => url.clone(),
            (None, None) => self.ledger.display().to_string(),
        }
    }

    pub fn signing_key(&self) -> Result<SigningKey, CliError> {
        if self.key.is_none() && self.postgres.is_some() {
            return Err(CliError::usage(
                "a ledger in PostgreSQL has no key file beside it: pass --key FILE (or set KEYLEDGER_KEY)",
            ));
        }
        let p = self.key_path();
        keyledger::storage::keyfile::load(&p).map_err(|e| {
            let mut e = CliError::from(e);
            if self.key.is_none() && !p.exists() {
                e.message
                    .push_str(" (pass --key FILE or set KEYLEDGER_KEY)");
            }
            e
        })
    }

    /// Opens the ledger for writing with the signing key: the file, or (with `--server`)
    /// the server, through signed requests.
    pub fn open(&self) -> Result<(Box<dyn Ops>, SigningKey), CliError> {
        let key = self.signing_key()?;
        let l: Box<dyn Ops> = match self.server.take() {
            Some(remote) => Box::new(remote),
            None if self.through_server => {
                return Err(CliError::io(
                    "the server connection was already used by this command",
                ));
            }
            None => match &self.postgres {
                Some(url) => Box::new(keyledger::storage::postgres::PgLedger::open(
                    url,
                    &self.ledger,
                    self.wait,
                    &self.cache,
                )?),
                None => Box::new(Ledger::open_with(&self.ledger, self.wait, &self.cache)?),
            },
        };
        // Acting as the account (root) by default is said, never silent.
        if self.key.is_none() && l.actor(&key).is_ok_and(|a| a == l.state().account) {
            output::message(&format!(
                "acting as the account ({}, with {}); to act as someone else, pass --key FILE before the command",
                l.state().account,
                self.key_path().display()
            ));
        }
        Ok((l, key))
    }

    /// Replays the ledger from its start, verified, warning on stderr about a torn tail.
    pub fn read(
        &self,
        until: Option<Until>,
        visit: impl FnMut(&store::Seen<'_>),
    ) -> Result<Replay, CliError> {
        let r = store::replay(&self.ledger, &self.cache, until, visit)?;
        if let Some(why) = &r.diverged {
            output::warn(&format!("{why}; verified it again from the start"));
        }
        warn_torn_tail(r.torn);
        Ok(r)
    }

    /// The verified state and its last event: at the head (through this user's cache), or
    /// replayed up to `until`.
    pub fn state_at(
        &self,
        until: Option<Until>,
    ) -> Result<(keyledger::core::state::State, keyledger::core::chain::Head), CliError> {
        Ok(match until {
            None => {
                let v = self.read_head()?;
                (v.state, v.head)
            }
            Some(_) => {
                let r = self.read(until, |_| {})?;
                // Replays always hold the genesis: a time before it is no state at all.
                if let Some(Until::Time(t)) = until
                    && r.head.time > t
                {
                    return Err(CliError::usage(format!(
                        "--as-of {t}: the ledger did not exist yet; its first event is dated {}",
                        r.head.time
                    )));
                }
                (r.state, r.head)
            }
        })
    }

    /// The verified state at the head (through this user's cache), with the same warnings.
    pub fn read_head(&self) -> Result<Verified, CliError> {
        let (v, freshness) = store::head(&self.ledger, &self.cache)?;
        if let Freshness::Diverged(why) = freshness {
            output::warn(&format!(
                "{why}. Verified it again from the start; appends are refused until this is resolved. Compare it with a checkpoint or a backup (`keyledger verify --checkpoint FILE`); if it was restored on purpose, remove {}",
                self.cache
                    .entry_files(&self.ledger)
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
        warn_torn_tail(v.torn);
        Ok(v)
    }
}

/// Every command that reads past a torn tail says so.
pub fn warn_torn_tail(torn: Option<store::TornTail>) {
    if let Some(t) = torn {
        output::warn(&format!(
            "{} bytes at offset {} are a torn frame (ignored); run `keyledger repair`",
            t.bytes, t.offset
        ));
    }
}

/// Parses `--as-of` / `--at-seq`; returns the limit and the time at which to evaluate expiry.
pub fn parse_as_of(a: &AsOf, now: Timestamp) -> Result<(Option<Until>, Timestamp), CliError> {
    match (&a.as_of, a.at_seq) {
        (Some(t), _) => {
            let t = parse_time("--as-of", t)?;
            Ok((Some(Until::Time(t)), t))
        }
        (None, Some(n)) => Ok((Some(Until::Seq(n)), now)),
        (None, None) => Ok((None, now)),
    }
}

pub fn parse_time(flag: &str, s: &str) -> Result<Timestamp, CliError> {
    Timestamp::parse(s).ok_or_else(|| {
        CliError::usage(format!(
            "{flag} {s:?} is not a time: use RFC 3339 (2026-06-30T00:00:00Z) or a date (2026-06-30)"
        ))
    })
}

/// A public key given as text (`ed25519:<hex>`) or as `@FILE.pub`; one that could never be
/// a signing key (not canonical, small order) is refused here, before anything is recorded.
pub fn parse_public_key(s: &str) -> Result<PublicKey, CliError> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            let bytes = keyledger::storage::files::read_regular(Path::new(path), 4096)
                .map_err(|e| CliError::usage(format!("{path}: {e}")))?;
            String::from_utf8(bytes).map_err(|_| {
                CliError::usage(format!("{path}: not a public key file (not UTF-8)"))
            })?
        }
        None => s.to_owned(),
    };
    let pk = PublicKey::parse(&text).ok_or_else(|| {
        CliError::usage(format!(
            "{:?} is not a public key: expected `ed25519:` and 64 hex digits, as in the FILE.pub that `keyledger keygen` writes (or @FILE.pub)",
            s.chars().take(80).collect::<String>()
        ))
    })?;
    if let Some(reason) = keyledger::core::signing::key_problem(&pk) {
        return Err(CliError::usage(format!(
            "{pk} cannot be a signing key: {reason}. Generate one with `keyledger keygen`"
        )));
    }
    Ok(pk)
}

/// The clock: this machine's, or `KEYLEDGER_NOW` (tests, reproducible runs), which may set
/// it back but never more than the skew forward (L9).
fn clock() -> Result<Timestamp, CliError> {
    let real = Timestamp::now();
    let Ok(s) = std::env::var("KEYLEDGER_NOW") else {
        return Ok(real);
    };
    let t = parse_time("KEYLEDGER_NOW", &s)?;
    if t > real.plus_micros(CLOCK_SKEW_US) {
        return Err(CliError::usage(format!(
            "KEYLEDGER_NOW={s} is more than 5 minutes after this machine's clock ({real}); it may only set the clock back, never date events in the future"
        )));
    }
    Ok(t)
}

/// This user's cache, or none (with one warning saying why) if its directory is unsafe.
fn usable_cache() -> Cache {
    let Some(dir) = Cache::default_dir() else {
        return Cache::none();
    };
    let cache = Cache::at(dir);
    match cache.check_dir() {
        Ok(_) => cache,
        Err(why) => {
            output::warn(&format!(
                "not using the cache of verified state ({why}): every command verifies the whole ledger, and a cut of events verified earlier goes unnoticed. Point KEYLEDGER_CACHE_DIR at a directory only you can write"
            ));
            Cache::none()
        }
    }
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    // Generated from the arguments alone: no clock, cache or ledger.
    match &cli.cmd {
        Cmd::Completions { shell } => return docs::completions(*shell),
        Cmd::Man { out } => return docs::man(out),
        _ => {}
    }
    if !cli.json {
        show_progress();
    }
    let now = clock()?;
    let cache = usable_cache();
    let mut ctx = Ctx {
        cache,
        ledger: cli.ledger,
        key: cli.key,
        server: Default::default(),
        through_server: false,
        postgres: None,
        archive: None,
        json: cli.json,
        wait: if cli.no_wait {
            Wait::NoWait
        } else {
            Wait::Block
        },
        now,
    };
    if keyledger::storage::postgres::is_url(&ctx.ledger) {
        if cli.server.is_some() {
            return Err(CliError::usage(
                "--server and a postgres:// --ledger exclude each other: a server is given its ledger by `serve --ledger`",
            ));
        }
        through_postgres(&mut ctx, &cli.cmd)?;
    }
    if keyledger::client::archive::is_url(&ctx.ledger) {
        if cli.server.is_some() {
            return Err(CliError::usage(
                "--server and an s3:// --ledger exclude each other",
            ));
        }
        through_archive(&mut ctx, &cli.cmd)?;
    }
    if let Some(url) = cli.server {
        through_server(&mut ctx, &cli.cmd, url, cli.ca)?;
    } else if cli.ca.is_some() {
        return Err(CliError::usage("--ca is for an https:// --server"));
    }
    protect::code_source(&ctx, cli.code)?;
    match cli.cmd {
        Cmd::Serve(a) => serve::serve(&ctx, a),
        Cmd::Witness(c) => witness::witness(&ctx, c),
        Cmd::Init { account, key_out } => principals::init(&ctx, &account, key_out),
        Cmd::Keygen { out } => principals::keygen(&ctx, &out),
        Cmd::User(c) => principals::user(&ctx, c),
        Cmd::Signer(c) => principals::signer(&ctx, c),
        Cmd::Grant { name, permission } => principals::permission(&ctx, &name, &permission, true),
        Cmd::Revoke { name, permission } => principals::permission(&ctx, &name, &permission, false),
        Cmd::Key(c) => keys::key(&ctx, c),
        Cmd::Import { file } => integrity::import(&ctx, &file),
        Cmd::Archive {
            to,
            endpoint,
            retain_days,
            segment_events,
        } => integrity::archive(&ctx, &to, endpoint, retain_days, segment_events),
        Cmd::Protect(c) => protect::protect(&ctx, c),
        Cmd::Sts(c) => keys::sts(&ctx, c),
        Cmd::Auth { key_id } => keys::auth(&ctx, &key_id),
        Cmd::Log(a) => history::log(&ctx, &a),
        Cmd::Inspect { seq } => history::inspect(&ctx, seq),
        Cmd::Verify(a) => integrity::verify(&ctx, &a),
        Cmd::Repair => integrity::repair(&ctx),
        Cmd::Checkpoint {
            out,
            vkey,
            record,
            cosign,
        } => integrity::checkpoint(&ctx, out.as_deref(), vkey, record, &cosign),
        Cmd::Export(a) => integrity::export(&ctx, &a),
        Cmd::Tiles { out } => integrity::tiles(&ctx, &out),
        Cmd::VerifyBundle {
            path,
            trusted_key,
            witnesses,
        } => integrity::verify_bundle(&ctx, &path, trusted_key.as_deref(), &witnesses),
        Cmd::Leak {
            scan,
            bundle,
            disable,
            source,
            reason,
        } => {
            let report = disable.then_some(leak::Report { source, reason });
            leak::leak(&ctx, scan.as_deref(), bundle.as_deref(), report)
        }
        Cmd::Audit(a) => audit::audit(&ctx, &a),
        Cmd::Report(args::ReportCmd::Credentials { as_of }) => {
            audit::credentials(&ctx, as_of.as_deref())
        }
        Cmd::Bench {
            what:
                Some(args::BenchCmd::Server {
                    clients,
                    seconds,
                    nodes,
                }),
            ..
        } => match nodes {
            Some(n) => bench::nodes(&ctx, clients as usize, seconds, n as usize),
            None => bench::server(&ctx, clients as usize, seconds),
        },
        Cmd::Bench { events, keep, .. } => bench::bench(&ctx, events, keep),
        Cmd::BenchVerifyChild { path } => bench::verify_child(&path),
        Cmd::Demo { dir } => integrity::demo(&ctx, dir),
        Cmd::Completions { .. } | Cmd::Man { .. } => unreachable!("handled above"),
    }
}

/// `--server URL`: the key stays the one named by --key (or beside --ledger); the ledger
/// becomes this user's verified copy of the server's, brought up to date now, so that every
/// read command runs unchanged on verified frames and every write goes to the server.
fn through_server(
    ctx: &mut Ctx,
    cmd: &Cmd,
    url: String,
    ca: Option<PathBuf>,
) -> Result<(), CliError> {
    let direct = match cmd {
        Cmd::Init { .. } => Some("init creates a ledger file"),
        Cmd::Repair => Some("repair works on the ledger file itself"),
        Cmd::Serve(_) => Some("serve serves the ledger --ledger names, a file or postgres://…"),
        Cmd::Import { .. } => Some("import writes into the engine --ledger names"),
        _ => None,
    };
    if let Some(why) = direct {
        return Err(CliError::usage(format!(
            "{why}; run it on the server's machine without --server (or unset KEYLEDGER_SERVER)"
        )));
    }
    let dir = ctx.cache.check_dir().map_err(|why| {
        CliError::usage(format!(
            "--server keeps a verified copy of the server's ledger in this user's cache directory, which is not usable ({why}); set KEYLEDGER_CACHE_DIR to a directory only you can write"
        ))
    })?;
    let mirror = keyledger::client::mirror_path(dir, &url);
    ctx.key = Some(ctx.key_path());
    let key = ctx.signing_key()?;
    let client = keyledger::client::Client::new(&url, ca.as_deref()).map_err(CliError::usage)?;
    let remote = keyledger::client::Remote::over(client, &key, &mirror, &ctx.cache)?;
    ctx.ledger = mirror;
    ctx.server = std::cell::RefCell::new(Some(remote));
    ctx.through_server = true;
    Ok(())
}

/// `--ledger postgres://USER@HOST:PORT/DB?ledger=NAME` (issue 16): `ledger` becomes this
/// user's verified copy of the database's frames, brought up to date now (after `init`
/// creates them), so every read command runs unchanged; writes go through the database.
fn through_postgres(ctx: &mut Ctx, cmd: &Cmd) -> Result<(), CliError> {
    let url = ctx.ledger.to_string_lossy().into_owned();
    let unsupported = match cmd {
        Cmd::Repair => Some("repair works on a ledger file (a database has no torn tail)"),
        _ => None,
    };
    if let Some(why) = unsupported {
        return Err(CliError::usage(why));
    }
    let dir = ctx.cache.check_dir().map_err(|why| {
        CliError::usage(format!(
            "a postgres:// ledger keeps a verified copy of its frames in this user's cache directory, which is not usable ({why}); set KEYLEDGER_CACHE_DIR to a directory only you can write"
        ))
    })?;
    let mirror = match cmd {
        // Each node keeps its own mirror (its writers' lock is held while it serves).
        Cmd::Serve(a) => {
            let node = match a.listen.port() {
                0 => format!("{url}#node-pid-{}", std::process::id()),
                _ => format!("{url}#node-{}", a.listen),
            };
            keyledger::client::mirror_path(dir, &node)
        }
        _ => keyledger::client::mirror_path(dir, &url),
    };
    if !matches!(
        cmd,
        Cmd::Init { .. } | Cmd::Import { .. } | Cmd::Bench { .. } | Cmd::Serve(_)
    ) {
        keyledger::storage::postgres::sync(&url, &mirror, &ctx.cache)?;
    }
    ctx.ledger = mirror;
    ctx.postgres = Some(url);
    Ok(())
}

/// `--ledger s3://BUCKET/PREFIX?endpoint=URL` (issue 16): the archive is read into a ledger
/// file in this user's cache directory (every segment downloaded again), which read
/// commands then run on; `verify` checks it against every checkpoint in the archive too.
fn through_archive(ctx: &mut Ctx, cmd: &Cmd) -> Result<(), CliError> {
    let url = ctx.ledger.to_string_lossy().into_owned();
    if !matches!(
        cmd,
        Cmd::Verify(_) | Cmd::Log(_) | Cmd::Inspect { .. } | Cmd::Audit(_) | Cmd::Export(_)
    ) {
        return Err(CliError::usage(
            "an archive is write-once and read here: verify, log, inspect, audit and export run on it; `keyledger archive --to s3://…` adds to it",
        ));
    }
    let at = keyledger::client::archive::Location::parse(&url)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let dir = ctx.cache.check_dir().map_err(|why| {
        CliError::usage(format!(
            "an archive is rebuilt into this user's cache directory, which is not usable ({why}); set KEYLEDGER_CACHE_DIR to a directory only you can write"
        ))
    })?;
    let rebuilt = keyledger::client::mirror_path(dir, &url).with_extension("archive");
    let _ = ctx.cache.forget(&rebuilt);
    let r = keyledger::client::archive::rebuild(&at, &rebuilt).map_err(integrity::archive_error)?;
    // Only verify reports an archive's problems beside its ledger; nothing else runs on it
    // as if it were whole.
    let problems = integrity::archive_problems(&r);
    if !matches!(cmd, Cmd::Verify(_)) && !problems.is_empty() {
        return Err(CliError::check_failed(format!(
            "the archive {url} is not whole: {}; `keyledger --ledger '{url}' verify` says more",
            problems.join("; ")
        )));
    }
    ctx.ledger = rebuilt;
    ctx.archive = Some((url, r));
    Ok(())
}

/// Passes over more than this many bytes show a progress bar (about 40,000 events).
const PROGRESS_MIN_BYTES: u64 = 8 << 20;

/// A progress bar on stderr for long passes, only when stderr is a terminal (never in
/// pipes, files or --json). Each pass (verify, then replay, say) gets its own bar.
fn show_progress() {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return;
    }
    let bar: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);
    keyledger::core::progress::set_hook(move |done, total| {
        if total < PROGRESS_MIN_BYTES {
            return;
        }
        let Ok(mut bar) = bar.lock() else { return };
        if done >= total {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            return;
        }
        let b = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "keyledger: reading the ledger {wide_bar} {decimal_bytes}/{decimal_total_bytes} ({eta} left)",
            ) {
                b.set_style(style);
            }
            b
        });
        b.set_position(done);
    });
}
