//! keyledger: an event-sourced, audit-first ledger of access keys.
//!
//! The library never prints and never exits; the `keyledger` binary is a thin layer over it.
//! `ledger-format.md` at the repository root is the normative specification of every byte
//! this crate writes. Folders by concern, each importing only those listed before it:
//!
//! - [`core`]: pure and synchronous; bytes in, events and state out. No files, sockets or
//!   terminal: the format, canonical MessagePack, events, the chain, signatures, credentials,
//!   the state fold and policy, the judge of raw frames, Merkle trees.
//! - [`storage`]: the ledger on disk: files, the writers' lock, the verified-state cache, the
//!   verifying pass over stored frames, appends and repair.
//! - [`evidence`]: verification reports, checkpoints, exports, evidence bundles, OCSF.
//! - [`audit`]: the controls and the credential report, as JSON and HTML.
//! - [`protocol`]: multi-step operations both front ends run (create and reveal a key, rotate,
//!   issue temporary credentials, authenticate) over any writer (`storage::ledger::Appender`),
//!   and the server API's messages (`wire`).
//! - [`server`]: `keyledger serve`: HTTP(S) over one ledger, a single writer thread with group
//!   commit, signed requests checked on all cores. Knows nothing of the client.
//! - [`client`]: signs requests with the actor's key and keeps a verified copy of the server's
//!   ledger; a writer (`Appender`) like the file. Knows nothing of the server.
//! - [`tools`]: the demo, synthetic ledgers and the benchmark.
#![forbid(unsafe_code)]

pub mod audit;
pub mod client;
pub mod core;
pub mod evidence;
pub mod protocol;
pub mod server;
pub mod storage;
pub mod tools;
