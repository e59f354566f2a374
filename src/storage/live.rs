//! The ledger a server writes: a file, or a PostgreSQL ledger through its mirror. The
//! writer runs each batch between `lock` and `release` (a transaction on the head row for
//! PostgreSQL; nothing for a file, whose writers' lock is held for the process's life).

use crate::core::chain::Head;
use crate::core::signing::SigningKey;
use crate::core::state::State;
use crate::core::types::{Hash32, Timestamp};
use crate::storage::ledger::{Appender, Item, Ledger, Outcome};
use crate::storage::postgres::PgLedger;
use crate::storage::store::StoreError;

pub enum Live {
    File(Box<Ledger>),
    Postgres(Box<PgLedger>),
}

impl Live {
    /// The file appended to: the ledger itself, or the PostgreSQL ledger's mirror.
    pub fn file(&self) -> &Ledger {
        match self {
            Live::File(l) => l,
            Live::Postgres(p) => p.ledger(),
        }
    }

    pub fn head(&self) -> Head {
        self.file().head()
    }

    pub fn state(&self) -> &State {
        self.file().state()
    }

    /// Whether other writers append too (and request ids are claimed in the database).
    pub fn shared(&self) -> bool {
        matches!(self, Live::Postgres(_))
    }

    /// Begins a batch: no other writer chains until `append_items` or `release`, and the
    /// state is caught up with every event committed before.
    pub fn lock(&mut self) -> Result<(), StoreError> {
        match self {
            Live::File(_) => Ok(()),
            Live::Postgres(p) => p.lock(),
        }
    }

    /// Ends a batch that appended nothing, keeping its claims.
    pub fn release(&mut self) -> Result<(), StoreError> {
        match self {
            Live::File(_) => Ok(()),
            Live::Postgres(p) => p.release(),
        }
    }

    /// Takes in what other writers committed.
    pub fn follow(&mut self) -> Result<(), StoreError> {
        match self {
            Live::File(_) => Ok(()),
            Live::Postgres(p) => p.follow(),
        }
    }

    /// Records request ids as used by this batch: whether each was new. A file's single
    /// writer remembers them itself (every one is new here).
    pub fn claim(&mut self, ids: &[(Hash32, Timestamp)]) -> Result<Vec<bool>, StoreError> {
        match self {
            Live::File(_) => Ok(vec![true; ids.len()]),
            Live::Postgres(p) => p.claim(ids),
        }
    }

    /// Forgets request ids signed more than `age_us` ago.
    pub fn forget_nonces(&mut self, age_us: i64) -> Result<(), StoreError> {
        match self {
            Live::File(_) => Ok(()),
            Live::Postgres(p) => p.forget_nonces(age_us),
        }
    }

    /// `Ledger::append_items`, committed to the database first for PostgreSQL.
    pub fn append_items(
        &mut self,
        key: &SigningKey,
        items: Vec<Item>,
        now: Timestamp,
        all_or_nothing: bool,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        match self {
            Live::File(l) => l.append_items(key, items, now, all_or_nothing),
            Live::Postgres(p) => p.append_items(key, items, now, all_or_nothing),
        }
    }
}
