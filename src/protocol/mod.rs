//! Multi-step operations on a ledger that every front end runs the same way.

pub mod ops;
pub mod reveal;
pub mod wire;
