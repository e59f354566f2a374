//! CLI errors and their exit codes (documented in the README and `--help`).

use std::fmt;

use keyledger::core::state::RequestFault;
use keyledger::evidence::export::BundleError;
use keyledger::protocol::reveal::RevealError;
use keyledger::storage::keyfile::KeyFileError;
use keyledger::storage::store::StoreError;

pub const CHECK_FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const REFUSED: u8 = 3;
pub const LEDGER: u8 = 4;
pub const IO: u8 = 5;
/// `verify-bundle` without `--trusted-key`: the bundle is intact, but signed by a key the
/// caller has not said they trust, so it proves nothing about whose ledger it is.
pub const UNTRUSTED: u8 = 6;

#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: USAGE,
            message: message.into(),
        }
    }

    pub fn io(message: impl fmt::Display) -> Self {
        CliError {
            code: IO,
            message: message.to_string(),
        }
    }

    /// Whoever read stdout stopped (`keyledger log | head`): like ripgrep, stop quietly with
    /// success. Where that loses something (a secret never shown), the caller says so instead.
    pub fn stdout_closed() -> Self {
        CliError {
            code: 0,
            message: String::new(),
        }
    }

    pub fn is_stdout_closed(&self) -> bool {
        self.code == 0
    }

    /// A negative check that was already reported on stdout.
    pub fn check_failed(message: impl Into<String>) -> Self {
        CliError {
            code: CHECK_FAILED,
            message: message.into(),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput => {
                USAGE
            }
            StoreError::Io { .. } => IO,
            StoreError::Exists { .. }
            | StoreError::NotFound { .. }
            | StoreError::TooLarge(_)
            | StoreError::FutureTime { .. }
            | StoreError::Usage(_) => USAGE,
            StoreError::Format { .. }
            | StoreError::Integrity { .. }
            | StoreError::Torn { .. }
            | StoreError::Locked { .. }
            | StoreError::UnsafeLock { .. }
            | StoreError::Diverged { .. }
            | StoreError::ChangedWhileRead { .. } => LEDGER,
            StoreError::Signer(_)
            | StoreError::Denied { .. }
            | StoreError::Invalid(_)
            | StoreError::AlreadyApplied(_) => REFUSED,
            StoreError::Request { fault, .. } => match fault {
                RequestFault::Key | RequestFault::Signature | RequestFault::Server => REFUSED,
                RequestFault::Shape
                | RequestFault::Time
                | RequestFault::Replay
                | RequestFault::Factor => USAGE,
            },
            StoreError::Remote(_) => IO,
            StoreError::Server { code, .. } => match code.as_str() {
                "unknown-key" | "bad-signature" | "server-key" | "forbidden" => REFUSED,
                "unavailable" | "timeout" | "too-many-connections" => IO,
                "past-end" => LEDGER,
                _ => USAGE,
            },
        };
        CliError {
            code,
            message: e.to_string(),
        }
    }
}

impl From<BundleError> for CliError {
    fn from(e: BundleError) -> Self {
        match e {
            BundleError::Store(s) => CliError::from(s),
            BundleError::NotEnrolled => CliError {
                code: REFUSED,
                message: e.to_string(),
            },
            other => CliError::io(other),
        }
    }
}

impl From<RevealError> for CliError {
    fn from(e: RevealError) -> Self {
        let message = e.to_string();
        let code = match e {
            RevealError::Create(s) => return (*s).into(),
            RevealError::Deliver { .. } => IO,
            RevealError::Record { source, .. } => CliError::from(*source).code,
        };
        CliError { code, message }
    }
}

impl From<KeyFileError> for CliError {
    fn from(e: KeyFileError) -> Self {
        let code = match &e {
            KeyFileError::Io { source, .. } if source.kind() != std::io::ErrorKind::NotFound => IO,
            _ => USAGE,
        };
        CliError {
            code,
            message: e.to_string(),
        }
    }
}
