//! Command-line arguments. Names follow the brief's CLI contract (§4).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Rule codes in messages ([R7], [L3]) name the rules listed in the README under \"Rule codes\".

Exit codes: 0 success (also when a reader stops early, as in `keyledger log | head`); 1 check
failed (verify, auth negative, audit findings); 2 bad usage or input; 3 refused by policy
(recorded as action-denied) or key not enrolled; 4 ledger needs attention (torn tail: run
`keyledger repair`; an event fails its checks; locked with --no-wait; unsafe lock file; a
--server whose history does not continue the one verified before); 5 I/O or system error
(also a server unreachable); 6 verify-bundle: the bundle is intact but signed by a key you have not said
you trust (pass --trusted-key).

Environment: KEYLEDGER_LEDGER (default --ledger), KEYLEDGER_KEY (default --key),
KEYLEDGER_SERVER (default --server), KEYLEDGER_CACHE_DIR (this user's cache of verified state; default
$XDG_CACHE_HOME/keyledger or ~/.cache/keyledger), KEYLEDGER_NOW (RFC 3339; sets the clock
back for tests and reproducible runs; never more than 5 minutes ahead of the real clock).";

#[derive(Debug, Parser)]
#[command(
    name = "keyledger",
    version,
    about = "An audit-first ledger of access keys: every action is a signed, hash-chained event",
    long_about = "keyledger issues and retires access keys (AccessKey ID + secret) and records every \
action as a blake3 hash-chained, ed25519-signed event in an append-only file. All state is \
derived by replaying that file; `verify` proves it complete and unaltered, offline.\n\n\
Start with `keyledger demo`, or `keyledger init --account NAME`.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Ledger file.
    #[arg(
        long,
        global = true,
        env = "KEYLEDGER_LEDGER",
        default_value = "keyledger.ledger"
    )]
    pub ledger: PathBuf,
    /// Signing key file of the principal acting (default: the ledger path with extension .key,
    /// which is where `init` writes the account's key). Written before the command:
    /// `keyledger --key alice.key key create …` (after `log`, `--key` names an access key ID).
    #[arg(long, env = "KEYLEDGER_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Fail at once (exit 4) if another process holds the ledger's write lock, instead of waiting.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Run the command through the keyledger server at URL (`keyledger serve`) instead of
    /// on the ledger file: every write is a request signed with --key; reads verify a copy of
    /// the server's ledger kept in the cache directory. Output and exit codes are the same.
    #[arg(long, global = true, env = "KEYLEDGER_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// With an https:// --server: trust the CA certificate(s) in FILE (PEM) instead of the
    /// system's.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Operation protection (R13): the current code from your authenticator app, for a
    /// protected action through --server (key create/disable/enable/delete/rotate, sts
    /// issue, signer enroll/revoke, grant, revoke, user delete, protect confirm/disable). `-` reads it
    /// from stdin; without it a terminal asks. A code is good once.
    #[arg(long, global = true, value_name = "CODE")]
    pub code: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Commands that never open a ledger: the global `--ledger` and `--no-wait` mean nothing to
/// them, so [`command`] hides both from their help and refuses them there.
const NO_LEDGER: [&str; 5] = ["demo", "verify-bundle", "keygen", "completions", "man"];

/// The command line as parsed, documented and completed: the derive, less the global flags on
/// commands where they mean nothing (clap propagates a global flag only to a subcommand that
/// has no argument of the same id, so a hidden refusing one takes its place).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    for name in NO_LEDGER {
        cmd = cmd.mut_subcommand(name, |s| {
            s.arg(means_nothing("ledger", "ledger", true))
                .arg(means_nothing("no_wait", "no-wait", false))
                .arg(means_nothing("server", "server", true))
                .arg(means_nothing("ca", "ca", true))
        });
    }
    // `bench` makes its own ledger; `--ledger postgres://…?ledger=NAME` measures that engine
    // (a new ledger NAME, removed afterwards), and a file --ledger is not used.
    cmd = cmd.mut_subcommand("bench", |s| {
        s.arg(means_nothing("no_wait", "no-wait", false))
            .arg(means_nothing("server", "server", true))
            .arg(means_nothing("ca", "ca", true))
    });
    cmd
}

/// Parses this process's arguments with [`command`].
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut matches = command().try_get_matches()?;
    Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut command()))
}

fn means_nothing(id: &'static str, long: &'static str, takes_value: bool) -> clap::Arg {
    let a = clap::Arg::new(id)
        .long(long)
        .hide(true)
        .value_parser(MeansNothing(long));
    if takes_value {
        a.num_args(1)
    } else {
        a.action(clap::ArgAction::SetTrue)
    }
}

/// A value parser that refuses its flag: the flag means nothing to its command. Only a flag's
/// implicit default (`false`, the flag absent) passes.
#[derive(Clone)]
struct MeansNothing(&'static str);

impl clap::builder::TypedValueParser for MeansNothing {
    type Value = bool;
    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<bool, clap::Error> {
        let is_flag = arg.is_some_and(|a| matches!(a.get_action(), clap::ArgAction::SetTrue));
        if is_flag && value == "false" {
            return Ok(false);
        }
        let name = cmd.get_name();
        let msg = format!(
            "--{} means nothing to `keyledger {name}`, which opens no ledger; leave it out \
             (see `keyledger {name} --help`)\n",
            self.0
        );
        Err(clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, msg).with_cmd(cmd))
    }
}

/// What one client may hold of a server (`serve`, `witness serve`).
#[derive(Debug, Args, Clone)]
pub struct ConnArgs {
    /// A client must send its request headers, and then its body, within this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub client_timeout: u64,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (the `listening on` line says which).
    /// Only a loopback address may serve without TLS.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// TLS certificate chain (PEM); with --tls-key, serve https.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Record at most one auth-succeeded per key per this many seconds: the last-used
    /// granularity (R11). Failures are always recorded. 0 records every success.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub auth_coalesce: u64,
    /// Failed checks of one key recorded one by one per minute (R11); the rest of that minute
    /// are counted and recorded as one auth-failures-summarized event, so a flood of wrong
    /// secrets cannot flood the ledger (the flood is an audit finding). 0 records every one.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub auth_failures_per_minute: u64,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Also serve the log as C2SP tlog-tiles, unsigned and to anyone: `GET /checkpoint`
    /// (signed by the server's key) and `GET /tile/<L>/<N>[.p/<W>]`, `/tile/entries/…`
    /// (event hashes only, never an event), as `keyledger tiles` writes them.
    #[arg(long)]
    pub tiles: bool,
    /// Operation protection's seed store (R13): the server's own file, mode 0600, created if
    /// absent; never part of the ledger, its exports or bundles (default: the ledger path
    /// with .seeds appended). Back it up as you would the server's key.
    #[arg(long, value_name = "FILE")]
    pub seeds: Option<PathBuf>,
    /// Secret scanning (R14): accept signed leak reports at POST /v1/github/secret-scanning
    /// from the scanners whose ECDSA P-256 keys FILE lists (GitHub's
    /// https://api.github.com/meta/public_keys/secret_scanning document, saved). Each
    /// reported secret or token of this ledger is recorded as leak-reported by this server
    /// and its key disabled at once.
    #[arg(long, value_name = "FILE")]
    pub scanner_keys: Option<PathBuf>,
    /// With --scanner-keys: record the reports only, leaving the keys as they are.
    #[arg(long, requires = "scanner_keys")]
    pub scanner_report_only: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Start a server on loopback over a new ledger and drive it with concurrent signed
    /// writers, then gateways checking keys; report writes/s, auth checks/s and their
    /// p50/p99 beside this machine's fdatasync rate and Ed25519 sign and verify rates.
    Server {
        /// Concurrent clients (each its own connection).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
        clients: u32,
        /// Seconds of load in all (half writes, half auth checks); with --nodes, seconds of
        /// writes for each node count.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// With --ledger postgres://…: serve the ledger with 1, then 2, … N nodes at once
        /// (in this process), the writers spread over them; figures per node count.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
        nodes: Option<u32>,
    },
}

/// The permissions `grant` and `revoke` take (and completions offer).
const PERMISSIONS: [&str; 4] = ["admin", "manage-keys", "manage-own-keys", "server"];

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a new ledger and the account's signing key; prints the trust anchor.
    Init {
        /// Name of the account (the root principal).
        #[arg(long)]
        account: String,
        /// Where to write the account's signing key (default: the ledger path with extension .key).
        #[arg(long)]
        key_out: Option<PathBuf>,
    },
    /// Generate a signing key: FILE (mode 0600) and FILE.pub.
    Keygen {
        /// The new private key file (created with mode 0600, never overwriting); the public
        /// key goes to FILE.pub, in the form --public-key takes.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Create, delete and list users.
    #[command(subcommand)]
    User(UserCmd),
    /// Enroll and revoke signing keys of principals.
    #[command(subcommand)]
    Signer(SignerCmd),
    /// Grant a permission: admin, manage-keys, manage-own-keys or server.
    Grant {
        /// The principal (user) who receives it.
        name: String,
        /// admin (users, permissions and anyone's keys), manage-keys (anyone's keys) or
        /// manage-own-keys (the principal's own keys), or server (may run `keyledger serve`,
        /// signing the frames of other principals' requests; it confers nothing else).
        #[arg(value_parser = PERMISSIONS)]
        permission: String,
    },
    /// Revoke a permission.
    Revoke {
        /// The principal (user) who loses it.
        name: String,
        /// admin, manage-keys, manage-own-keys or server.
        #[arg(value_parser = PERMISSIONS)]
        permission: String,
    },
    /// Create, disable, enable, delete, list and show access keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Copy a ledger file into the engine --ledger names (PostgreSQL: a new ledger=NAME),
    /// after verifying every frame of it; the frames are kept byte for byte.
    Import {
        /// The ledger file to import.
        file: PathBuf,
    },
    /// Upload the ledger to write-once storage: sealed segments of frames, each with a
    /// signed checkpoint, in an S3 bucket with Object Lock, retained in COMPLIANCE mode
    /// (no one, root included, can delete or overwrite them before the date).
    ///
    /// Idempotent and resumable: what is archived is read from the bucket, checked to be
    /// this ledger's, and continued. Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    /// (AWS_SESSION_TOKEN, AWS_REGION). Verify from the archive alone with
    /// `keyledger --ledger 's3://BUCKET/PREFIX?endpoint=URL' verify`.
    Archive {
        /// Where: s3://BUCKET/PREFIX (the bucket must have Object Lock enabled).
        #[arg(long)]
        to: String,
        /// The S3 endpoint, http(s)://HOST:PORT (default: AWS's, for AWS_REGION).
        #[arg(long)]
        endpoint: Option<String>,
        /// Days each uploaded object is retained (COMPLIANCE mode); 2557 is 7 years.
        #[arg(long, default_value_t = 2557, value_parser = clap::value_parser!(u32).range(1..=36600))]
        retain_days: u32,
        /// At most this many events per segment.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
        segment_events: u64,
    },
    /// Operation protection (R13): a second factor (TOTP) for a principal's critical actions.
    ///
    /// The server holds the seed; only it checks codes, so these run through --server.
    /// `enable` prints an otpauth:// URI once (scan it, or paste it into an authenticator);
    /// `confirm --code` proves the authenticator works and turns protection on (recorded);
    /// from then on the principal's key create/disable/enable/delete, sts issue, signer and
    /// permission changes, user delete and `protect disable` need `--code`.
    #[command(subcommand)]
    Protect(ProtectCmd),
    /// Temporary credentials.
    #[command(subcommand)]
    Sts(StsCmd),
    /// Check credentials read from stdin against KEY_ID; records the outcome. Exit 0 only if valid.
    ///
    /// Stdin holds the secret; for temporary credentials (KLST…), the secret and then the
    /// security token, separated by a newline or a space:
    /// `printf '%s\n%s\n' "$SECRET" "$TOKEN" | keyledger auth KLST…`. Expiry is decided on
    /// this machine's real clock.
    Auth {
        /// The access key ID presented (KLAK… or KLST…).
        key_id: String,
    },
    /// Show events, oldest first, with filters.
    Log(LogArgs),
    /// Show one event in full: fields, hash, signature, signer, byte offset.
    Inspect {
        /// The event's sequence number (0 is the genesis).
        seq: u64,
    },
    /// Verify integrity, signatures and policy of every event, and the tail against an anchor.
    Verify(VerifyArgs),
    /// Quarantine a torn tail left by an interrupted write, and record the repair.
    Repair,
    /// Write a signed checkpoint of the head (a C2SP signed note).
    Checkpoint {
        /// Write the checkpoint here (never overwriting) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the note verifier key of the signing key instead.
        #[arg(long, conflicts_with_all = ["out", "record", "witnesses"])]
        vkey: bool,
        /// Also record the checkpoint in the ledger as a `checkpoint-recorded` event.
        #[arg(long)]
        record: bool,
        #[command(flatten)]
        cosign: CosignArgs,
    },
    /// Write the log as C2SP tlog-tiles static files in DIR: `checkpoint` (signed by --key),
    /// `tile/<L>/<N>[.p/<W>]` hash tiles and `tile/entries/<N>[.p/<W>]` bundles of event
    /// hashes. Incremental: full tiles already there are checked, not written again.
    Tiles {
        /// The directory to write (created if absent); serve it with any static web server.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Export events: JSON Lines, CSV, OCSF (for SIEMs), or an evidence bundle that verifies offline.
    Export(ExportArgs),
    /// Verify an evidence bundle with no access to the ledger.
    ///
    /// Without --trusted-key, an intact bundle exits 6: anyone can sign a bundle with their
    /// own key and any ledger id, so it proves nothing until you check the signing key it
    /// prints against one obtained from the ledger's owner.
    VerifyBundle {
        /// The bundle directory that `export --format bundle` wrote.
        path: PathBuf,
        /// The public key you trust to sign for this ledger (`ed25519:<hex>` or @FILE.pub).
        #[arg(long)]
        trusted_key: Option<String>,
        #[command(flatten)]
        witnesses: WitnessKeyArgs,
    },
    /// Find the key of a leaked secret or security token (on stdin), without its ID (R14).
    ///
    /// Prints whose key it is, who created it and why, to whom and through which channel the
    /// secret was revealed, its last use, failed attempts, status and full history. The secret
    /// is never printed. `--scan FILE` instead finds every keyledger key ID, secret and token
    /// in a file (checksum-validated: no false positives) and looks each up. Exit 0 if a key
    /// of this ledger was found, 1 if not. Example: `printf %s "$SECRET" | keyledger leak`.
    Leak {
        /// Find every keyledger credential in FILE (a log, a repository dump) instead of stdin.
        #[arg(long, value_name = "FILE")]
        scan: Option<PathBuf>,
        /// Also write the evidence bundle of the key's history into DIR, for outside counsel
        /// (DIR/KEY_ID for each key when several are found). DIR must not exist.
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        /// Record the leak (`leak-reported`: source and reason, never the secret) and disable
        /// each key found, at once, in one group commit (needs the right to disable it).
        #[arg(long)]
        disable: bool,
        /// Where the credential was found, as recorded (default: the --scan file, or stdin).
        #[arg(long, value_name = "TEXT", requires = "disable")]
        source: Option<String>,
        /// Why it is reported, as recorded.
        #[arg(
            long,
            value_name = "TEXT",
            requires = "disable",
            default_value = "reported with keyledger leak"
        )]
        reason: String,
    },
    /// Run the compliance controls over the state at a time; each finding cites its events.
    Audit(AuditArgs),
    /// Serve the ledger to many clients and gateways over HTTP(S) (README "Server"). Signs
    /// the frames it writes with --key, whose principal must hold the server permission;
    /// every event still carries its actor's own signed request. Holds the ledger's writer
    /// lock while it runs; prints `listening on URL` once it accepts requests; drains and
    /// exits 0 on SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Witnesses (C2SP tlog-witness): cosign a log's checkpoints only if each is consistent
    /// with the last one cosigned, so no operator can show two histories unnoticed.
    #[command(subcommand)]
    Witness(WitnessCmd),
    /// Reports in formats other tools read.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Measure append, replay, verify, memory and query speed against this machine's limits
    /// (`bench server`: a server under concurrent clients).
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        /// `bench server`: the server's figures. With `--ledger postgres://…?ledger=NAME`
        /// (before `bench`): that engine's batched appends beside the database's own commit
        /// rate, on a scratch ledger NAME removed afterwards.
        #[command(subcommand)]
        what: Option<BenchCmd>,
        /// Events in the generated ledger.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Keep the generated ledger and its account key in DIR (new or empty).
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Internal: verify PATH and print the time and peak memory (used by `bench`).
    #[command(hide = true)]
    BenchVerifyChild { path: PathBuf },
    /// Build a realistic sample ledger, verify it, and show what happened.
    Demo {
        /// Directory to build in (default: ./keyledger-demo, or -2, -3… if that exists).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script, e.g. `keyledger completions bash > ~/.local/share/bash-completion/completions/keyledger`.
    #[command(
        after_help = "Install: bash: keyledger completions bash > ~/.local/share/bash-completion/completions/keyledger\n\
                      zsh: keyledger completions zsh > ~/.zfunc/_keyledger (with fpath+=~/.zfunc in ~/.zshrc)\n\
                      fish: keyledger completions fish > ~/.config/fish/completions/keyledger.fish\n\
                      PowerShell: keyledger completions powershell >> $PROFILE"
    )]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write man pages (keyledger.1 and one per command, keyledger-key-create.1, …) into DIR.
    #[command(after_help = "Read one with `man -l DIR/keyledger.1`, or put DIR on MANPATH.")]
    Man {
        /// Directory to write the pages into (created if missing; existing pages are not overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Shells `completions` writes for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
    Html,
}

#[derive(Debug, Args, Clone)]
pub struct AuditArgs {
    /// Evaluate the state as it was at this time (default: now).
    #[arg(long)]
    pub as_of: Option<String>,
    /// An active key older than this many days is a finding.
    #[arg(long, default_value_t = 90)]
    pub max_key_age: i64,
    /// An active key unused (or never used) for this many days is a finding.
    #[arg(long, default_value_t = 45)]
    pub max_unused: i64,
    /// Temporary credentials issued for longer than this many hours are a finding.
    #[arg(long, default_value_t = 12)]
    pub max_temporary: i64,
    /// This many refused actions by one actor within an hour are a finding.
    #[arg(long, default_value_t = 5)]
    pub burst: usize,
    /// Exit 1 if any finding is at or above this severity: low, medium, high, critical or none.
    #[arg(long, default_value = "high")]
    pub fail_on: String,
    /// text for people, json for scripts, html for one self-contained report file.
    #[arg(long, value_enum, default_value = "text")]
    pub format: AuditFormat,
    /// Also evaluate the controls at each of the last 24 month ends (JSON `trend`; one
    /// replay of the ledger each). The HTML report always does, for its summary.
    #[arg(long)]
    pub trend: bool,
    /// Write the report to this new file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// The AWS IAM credential report layout (CSV), at a time.
    Credentials {
        /// The report as it was at this time (RFC 3339 or YYYY-MM-DD, UTC; default: now).
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user (by the account or an admin).
    Create {
        /// The new user's name: 1-64 letters, digits, '.', '_', '@' or '-' (never reused).
        name: String,
        /// A federated user: temporary credentials only.
        #[arg(long)]
        federated: bool,
        /// Enroll this signing key for the user (`ed25519:<hex>`, as in FILE.pub, or @FILE.pub).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Delete a user; refused while it has keys unless --delete-keys.
    Delete {
        /// The user to delete (not the account).
        name: String,
        /// Delete the user's keys first, each as its own event.
        #[arg(long)]
        delete_keys: bool,
    },
    /// List principals.
    List(AsOf),
}

#[derive(Debug, Subcommand)]
pub enum WitnessCmd {
    /// Run a witness: POST /add-checkpoint (tlog-witness) cosigns a checkpoint of a log it
    /// trusts if it is consistent with the last one it cosigned for that origin, recording
    /// the new size and root (fsync) before it answers. Prints `listening on http://ADDR`.
    Serve {
        /// The witness's signing key (keyledger keygen).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The witness's name, as in its cosignature lines (e.g. witness.example.com/w1).
        #[arg(long)]
        name: String,
        /// Address to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Where the latest cosigned checkpoint of each log is kept (created if absent).
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// A log's checkpoint verifier key, as `keyledger checkpoint --vkey` prints it;
        /// one --log per log (or per key of a log).
        #[arg(long = "log", value_name = "VKEY", required = true)]
        logs: Vec<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print the witness's verifier key (cosignature type 0x04), for `verify --witness-key`.
    Vkey {
        /// The witness's signing key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The witness's name.
        #[arg(long)]
        name: String,
    },
    /// From two signed checkpoints of this ledger's origin that cannot both be true, write a
    /// proof of the fork anyone can check: --b must be of the history --ledger holds.
    ProveFork {
        /// The checkpoint of the other history (the smaller size, or the same).
        #[arg(long, value_name = "FILE")]
        a: PathBuf,
        /// A checkpoint of the history --ledger holds.
        #[arg(long, value_name = "FILE")]
        b: PathBuf,
        /// Where to write the proof (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a fork proof against the log's checkpoint verifier key: exit 0 if it proves
    /// that key signed two inconsistent checkpoints.
    CheckFork {
        /// The proof `witness prove-fork` wrote.
        proof: PathBuf,
        /// A checkpoint verifier key of the log (`checkpoint --vkey`); one --vkey per key
        /// when the log signs with several (each checkpoint may be signed by any of them).
        #[arg(long = "vkey", value_name = "VKEY", required = true)]
        vkeys: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProtectCmd {
    /// A new authenticator for NAME (yourself, or anyone as an admin): prints its
    /// otpauth:// URI, once. Nothing is in force until `protect confirm`.
    Enable {
        /// The principal to protect.
        name: String,
    },
    /// Turns protection of NAME on with a first code from the new authenticator (--code).
    Confirm {
        /// The principal whose authenticator `enable` made.
        name: String,
    },
    /// Turns protection of NAME off: with NAME's own code, or an admin's code of their own
    /// (a lost authenticator).
    Disable {
        /// The principal whose protection ends.
        name: String,
    },
    /// Which principals have protection on, and which admins and key managers do not.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum SignerCmd {
    /// Enroll a signing key for a principal.
    Enroll {
        /// The principal whose key it becomes.
        name: String,
        /// The public key (`ed25519:<hex>`, as in FILE.pub, or @FILE.pub).
        #[arg(long)]
        public_key: String,
    },
    /// Revoke a principal's signing key.
    Revoke {
        /// The principal whose key it is.
        name: String,
        /// The public key to revoke (`ed25519:<hex>` or @FILE.pub).
        public_key: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RevealFormat {
    Text,
    Json,
    Env,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create a permanent access key; its secret is shown exactly once.
    Create {
        /// The user who will own the key (it authenticates only as them).
        #[arg(long)]
        user: String,
        /// Why a permanent key rather than temporary credentials.
        #[arg(long)]
        scenario: String,
        /// Confirm that it is necessary to create a permanent key.
        #[arg(long)]
        confirm_necessary: bool,
        /// Allow a key for the account itself (strongly discouraged).
        #[arg(long)]
        allow_root_key: bool,
        /// Write `AccessKey ID,AccessKey Secret` to this new file (mode 0600) instead of stdout.
        #[arg(long, conflicts_with = "format")]
        csv: Option<PathBuf>,
        /// How to print the secret on stdout.
        #[arg(long, value_enum, default_value = "text")]
        format: RevealFormat,
    },
    /// Rotate a key (AWS's procedure): create the user's next key, shown once, tied to the
    /// old one by a key-rotated event; with --disable-old, then disable the old key.
    ///
    /// A user holds at most two permanent keys (R7): rotation needs room for the second, so
    /// delete the other one first if there is one. Switch your applications to the new key,
    /// check that the old one is no longer used (`keyledger key show OLD` shows its last use),
    /// then disable it (now, with --disable-old, or later with `key disable`) and finally
    /// delete it. `audit` credits the rotation in its 90-day control.
    Rotate {
        /// The access key ID to replace (KLAK…).
        key_id: String,
        /// Write `AccessKey ID,AccessKey Secret` of the new key to this new file (mode 0600)
        /// instead of stdout.
        #[arg(long, conflicts_with = "format")]
        csv: Option<PathBuf>,
        /// How to print the new secret on stdout.
        #[arg(long, value_enum, default_value = "text")]
        format: RevealFormat,
        /// Disable the old key once the new secret has been handed over.
        #[arg(long)]
        disable_old: bool,
    },
    /// Disable an active key.
    Disable {
        /// The access key ID (KLAK… or KLST…).
        key_id: String,
    },
    /// Enable a disabled key.
    Enable {
        /// The access key ID (KLAK… or KLST…).
        key_id: String,
    },
    /// Delete a key (final).
    Delete {
        /// The access key ID (KLAK… or KLST…).
        key_id: String,
    },
    /// List keys.
    List {
        /// Only the keys of this principal.
        #[arg(long)]
        user: Option<String>,
        /// active, disabled, deleted or expired.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        as_of: AsOf,
    },
    /// A key's state and full history.
    Show {
        /// The access key ID (KLAK… or KLST…).
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StsCmd {
    /// Issue temporary credentials (15m to 12h).
    Issue {
        /// The user (or federated user) the credentials authenticate as.
        #[arg(long)]
        user: String,
        /// How long they last, 15m to 12h: e.g. 15m, 1h, 2h30m.
        #[arg(long, default_value = "1h")]
        duration: String,
        /// How to print the ID, secret and token on stdout (shown once).
        #[arg(long, value_enum, default_value = "text")]
        format: RevealFormat,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct AsOf {
    /// State as it was at this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, conflicts_with = "at_seq")]
    pub as_of: Option<String>,
    /// State as it was just after event N.
    #[arg(long)]
    pub at_seq: Option<u64>,
}

/// Event filters shared by `log` and `export`.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Events naming this access key ID (here `--key` names an access key, not a key file).
    #[arg(long = "key", id = "key_id", value_name = "KEY_ID")]
    pub key: Option<String>,
    /// Events concerning this principal, or naming a key it owns.
    #[arg(long)]
    pub user: Option<String>,
    /// Events performed by this principal.
    #[arg(long)]
    pub actor: Option<String>,
    /// Events with this action tag, e.g. key-created, action-denied.
    #[arg(long)]
    pub action: Option<String>,
    /// Events at or after this time: RFC 3339 (2026-11-22T09:30:00Z) or a date (2026-11-22).
    #[arg(long)]
    pub since: Option<String>,
    /// Events at or before this time, in the same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
    /// OCSF 1.6.0 records, one per line (JSON Lines), for SIEMs.
    Ocsf,
    Bundle,
    /// The ledger itself as a ledger file: every verified frame, byte for byte (the same
    /// genesis and head hashes), from any engine.
    Ledger,
}

#[derive(Debug, Args, Clone)]
pub struct ExportArgs {
    /// jsonl and csv: one record per event; ocsf: one OCSF 1.6.0 event per line (Account
    /// Change, Authentication or Entity Management; the ledger's seq, hashes and signature
    /// kept); bundle: a self-verifying evidence directory.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// A new file (jsonl, csv) or a new directory (bundle); never overwritten.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// bundle only: witnesses cosign the bundle's checkpoint before anything is written.
    #[command(flatten)]
    pub cosign: CosignArgs,
}

/// Witnesses to cosign a checkpoint (C2SP tlog-witness): `checkpoint` and
/// `export --format bundle`.
#[derive(Debug, Args, Clone, Default)]
pub struct CosignArgs {
    /// A witness to cosign the checkpoint (its URL, http(s)://HOST:PORT[/PREFIX]); one
    /// --witness per witness. The note is written with their cosignatures.
    #[arg(long = "witness", value_name = "URL")]
    pub witnesses: Vec<String>,
    /// At least this many witnesses must cosign, else nothing is written (default: all).
    #[arg(long, requires = "witnesses")]
    pub quorum: Option<usize>,
    /// A witness's verifier key (`witness vkey`): what a --witness returns must then be a
    /// valid cosignature by one of these keys. Recommended: without it an answer is taken
    /// as sent, and a bad line makes the note fail for whoever trusts that name.
    #[arg(long = "witness-key", value_name = "VKEY", requires = "witnesses")]
    pub witness_keys: Vec<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct LogArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most N events (the last N that match).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Newest first (default: oldest first).
    #[arg(long, conflicts_with = "follow")]
    pub newest_first: bool,
    /// After the matching events, keep printing new ones as other processes append them,
    /// until Ctrl-C or until the ledger is removed. With --json: one JSON object per line.
    #[arg(long)]
    pub follow: bool,
    /// text (a table, or tab-separated lines when following), json (as --json) or ocsf
    /// (one OCSF 1.6.0 event per line, as `export --format ocsf` writes).
    #[arg(long, value_enum)]
    pub format: Option<LogFormat>,
}

/// Output of `log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
    Ocsf,
}

#[derive(Debug, Args, Clone, Default)]
pub struct VerifyArgs {
    /// A checkpoint file written by `keyledger checkpoint`: catches a cut tail or a fork.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// A head hash printed earlier: the ledger must contain it.
    #[arg(long, conflicts_with = "checkpoint")]
    pub expect_head: Option<String>,
    /// The genesis hash printed by `init`: the trust anchor of this ledger.
    #[arg(long)]
    pub expect_genesis: Option<String>,
    #[command(flatten)]
    pub witnesses: WitnessKeyArgs,
}

/// The witnesses a verifier trusts to cosign a checkpoint (ledger-format.md §9.4).
#[derive(Debug, Args, Clone, Default)]
pub struct WitnessKeyArgs {
    /// A witness trusted to cosign the checkpoint (its verifier key, as `witness vkey`
    /// prints it); one --witness-key per witness. Every event the checkpoint covers must
    /// then be dated no later than the time by which a quorum of them had cosigned (plus 5
    /// minutes of skew).
    #[arg(long = "witness-key", value_name = "VKEY")]
    pub witness_keys: Vec<String>,
    /// At least this many distinct trusted witnesses must have cosigned the checkpoint
    /// (default: every witness given).
    #[arg(long, requires = "witness_keys")]
    pub quorum: Option<usize>,
}

#[cfg(test)]
mod tests {
    /// `--help` teaches: every command, subcommand and argument says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let p = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(p.clone());
                }
                walk(sub, &p, missing);
            }
        }
        let mut cmd = super::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "keyledger", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    /// Clap's own consistency checks (duplicate flags, bad defaults), which only run in
    /// debug builds at parse time.
    #[test]
    fn the_cli_definition_is_consistent() {
        super::command().debug_assert();
    }

    /// The same duplicate-flag check in any build (`debug_assert` is a no-op in release):
    /// global flags and each subcommand's own flags must not share a long name.
    #[test]
    fn no_subcommand_reuses_a_global_flag() {
        fn walk(cmd: &clap::Command, globals: &[String], path: &str) {
            let mut seen: Vec<String> = globals.to_vec();
            // A hidden stand-in for a global (see `command`) replaces it; it is no second one.
            for a in cmd
                .get_arguments()
                .filter(|a| !a.is_global_set() && !a.is_hide_set())
            {
                if let Some(l) = a.get_long() {
                    assert!(
                        !seen.contains(&l.to_string()),
                        "`{path}` defines --{l} twice"
                    );
                    seen.push(l.to_string());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, globals, &format!("{path} {}", sub.get_name()));
            }
        }
        let cmd = super::command();
        let globals: Vec<String> = cmd
            .get_arguments()
            .filter(|a| a.is_global_set())
            .filter_map(|a| a.get_long().map(str::to_owned))
            .collect();
        walk(&cmd, &globals, "keyledger");
    }
}
