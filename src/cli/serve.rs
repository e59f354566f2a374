//! `keyledger serve`: the server over the ledger (`keyledger::server`): a file, or a
//! PostgreSQL ledger that several nodes serve at once.

use std::sync::Arc;

use keyledger::server::{self, Config, ServerError};

use super::Ctx;
use super::args::ServeArgs;
use super::error::{CliError, IO, REFUSED, USAGE};
use super::output::print;

pub fn serve(ctx: &Ctx, a: ServeArgs) -> Result<(), CliError> {
    let key = ctx.signing_key()?;
    let log: server::LogSink = Arc::new(|line: &str| eprintln!("{line}"));
    let mut config = Config::new(ctx.ledger.clone(), key, a.listen, log);
    config.postgres = ctx.postgres.clone();
    config.tiles = a.tiles;
    config.tls = a.tls_cert.zip(a.tls_key);
    config.wait = ctx.wait;
    config.cache = ctx.cache.clone();
    config.auth_coalesce_seconds = a.auth_coalesce;
    config.auth_failures_per_minute = a.auth_failures_per_minute;
    config.max_connections = a.conn.max_connections as usize;
    config.client_timeout = std::time::Duration::from_secs(a.conn.client_timeout);
    config.seeds = a.seeds;
    if let Some(path) = &a.scanner_keys {
        let keys = server::scanning::ScannerKeys::load(path)
            .map_err(|e| CliError::usage(e.to_string()))?;
        config.scanner = Some(server::scanning::Scanner {
            keys,
            report_only: a.scanner_report_only,
        });
    }
    let running = server::start(config).map_err(|e| {
        let code = match &e {
            ServerError::Store(_) => 0,
            ServerError::NotLoopback(_) | ServerError::Tls { .. } => USAGE,
            ServerError::NoServerPermission { .. } => REFUSED,
            ServerError::Bind { .. }
            | ServerError::Runtime(_)
            | ServerError::Seeds(_)
            | ServerError::WitnessState { .. } => IO,
        };
        match e {
            ServerError::Store(s) => CliError::from(s),
            other => CliError {
                code,
                message: other.to_string(),
            },
        }
    })?;
    // Exactly one line on stdout, once requests are accepted (scripts wait for it).
    print(&format!("listening on {}\n", running.url))?;
    running
        .run_until_signal()
        .map_err(|e| CliError::io(e.to_string()))
}
