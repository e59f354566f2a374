//! keyledger: an event-sourced, audit-first ledger of access keys.
//!
//! The core is pure and synchronous: bytes in, events, state and reports out.
//! The library never prints and never exits; the `keyledger` binary is a thin
//! layer over it. `ledger-format.md` at the repository root is the normative
//! specification of every byte this crate writes.
#![forbid(unsafe_code)]

pub mod audit;
pub mod bench;
pub mod cache;
pub mod chain;
pub mod checkpoint;
pub mod credentials;
pub mod demo;
pub mod event;
pub mod export;
pub mod files;
pub mod format;
pub mod judge;
pub mod ledger;
pub mod merkle;
pub mod msgpack;
pub mod ocsf;
pub mod ops;
pub mod pass;
pub mod pipeline;
pub mod policy;
pub mod progress;
pub mod query;
pub mod report;
pub mod signing;
pub mod state;
pub mod store;
pub mod synth;
pub mod text;
pub mod types;
pub mod verify;
