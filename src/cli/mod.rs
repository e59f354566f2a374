//! Command handlers. Each parses its input, calls the library, and prints.

pub mod args;
mod audit;
mod bench;
pub mod error;
mod history;
mod integrity;
mod keys;
pub mod output;
mod principals;

use std::path::{Path, PathBuf};

use keyledger::signing::SigningKey;
use keyledger::store::{self, Ledger, Replay, Until, Wait};
use keyledger::types::{PublicKey, Timestamp};

use args::{AsOf, Cli, Cmd};
use error::CliError;

/// What every command may need: paths, output mode, the clock.
pub struct Ctx {
    pub ledger: PathBuf,
    pub key: Option<PathBuf>,
    pub json: bool,
    pub wait: Wait,
    pub now: Timestamp,
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

    pub fn signing_key(&self) -> Result<SigningKey, CliError> {
        let p = self.key_path();
        SigningKey::load(&p).map_err(|e| {
            let mut e = CliError::from(e);
            if self.key.is_none() && !p.exists() {
                e.message
                    .push_str(" (pass --key FILE or set KEYLEDGER_KEY)");
            }
            e
        })
    }

    /// Opens the ledger for writing with the signing key.
    pub fn open(&self) -> Result<(Ledger, SigningKey), CliError> {
        let key = self.signing_key()?;
        let l = Ledger::open(&self.ledger, self.wait)?;
        Ok((l, key))
    }

    /// Reads the state, warning on stderr about a torn tail.
    pub fn read(
        &self,
        until: Option<Until>,
        visit: impl FnMut(&store::Seen<'_>),
    ) -> Result<Replay, CliError> {
        let r = store::read_with(&self.ledger, until, visit)?;
        warn_torn(&r);
        Ok(r)
    }

    /// The head state through the derived index (rebuilt if stale or not matching).
    pub fn read_indexed(&self) -> Result<keyledger::index::Indexed, CliError> {
        let i = keyledger::index::read(&self.ledger)?;
        warn_torn(&i.replay);
        Ok(i)
    }
}

fn warn_torn(r: &Replay) {
    warn_torn_tail(r.torn);
}

/// Every command that reads past a torn tail says so.
pub fn warn_torn_tail(torn: Option<store::TornTail>) {
    if let Some(t) = torn {
        eprintln!(
            "keyledger: warning: {} bytes at offset {} are a torn frame (ignored); run `keyledger repair`",
            t.bytes, t.offset
        );
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

/// A public key given as text (`ed25519:<hex>`) or as `@FILE.pub`.
pub fn parse_public_key(s: &str) -> Result<PublicKey, CliError> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| CliError::usage(format!("{path}: {e}")))?
        }
        None => s.to_owned(),
    };
    PublicKey::parse(&text).ok_or_else(|| {
        CliError::usage(format!(
            "{s:?} is not a public key: expected `ed25519:` and 64 hex digits, as in the FILE.pub that `keyledger keygen` writes (or @FILE.pub)"
        ))
    })
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    let now = match std::env::var("KEYLEDGER_NOW") {
        Ok(s) => parse_time("KEYLEDGER_NOW", &s)?,
        Err(_) => Timestamp::now(),
    };
    let ctx = Ctx {
        ledger: cli.ledger,
        key: cli.key,
        json: cli.json,
        wait: if cli.no_wait {
            Wait::NoWait
        } else {
            Wait::Block
        },
        now,
    };
    match cli.cmd {
        Cmd::Init { account, key_out } => principals::init(&ctx, &account, key_out),
        Cmd::Keygen { out } => principals::keygen(&ctx, &out),
        Cmd::User(c) => principals::user(&ctx, c),
        Cmd::Signer(c) => principals::signer(&ctx, c),
        Cmd::Grant { name, permission } => principals::permission(&ctx, &name, &permission, true),
        Cmd::Revoke { name, permission } => principals::permission(&ctx, &name, &permission, false),
        Cmd::Key(c) => keys::key(&ctx, c),
        Cmd::Sts(c) => keys::sts(&ctx, c),
        Cmd::Auth { key_id } => keys::auth(&ctx, &key_id),
        Cmd::Log(a) => history::log(&ctx, &a),
        Cmd::Inspect { seq } => history::inspect(&ctx, seq),
        Cmd::Verify(a) => integrity::verify(&ctx, &a),
        Cmd::Repair => integrity::repair(&ctx),
        Cmd::Checkpoint { out, vkey, record } => {
            integrity::checkpoint(&ctx, out.as_deref(), vkey, record)
        }
        Cmd::Export(a) => integrity::export(&ctx, &a),
        Cmd::VerifyBundle { path, trusted_key } => {
            integrity::verify_bundle(&ctx, &path, trusted_key.as_deref())
        }
        Cmd::Audit(a) => audit::audit(&ctx, &a),
        Cmd::Report(args::ReportCmd::Credentials { as_of }) => {
            audit::credentials(&ctx, as_of.as_deref())
        }
        Cmd::Bench { events, keep } => bench::bench(&ctx, events, keep),
        Cmd::BenchVerifyChild { path } => bench::verify_child(&path),
        Cmd::Demo { dir } => integrity::demo(&ctx, dir),
    }
}
