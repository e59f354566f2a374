//! The pure core: no files, sockets, clocks or terminal. Everything here is a function of
//! its arguments, so a verifier, the CLI and the server decide alike.

pub mod chain;
pub mod credentials;
pub mod event;
pub mod format;
pub mod judge;
pub mod merkle;
pub mod msgpack;
pub mod policy;
pub mod progress;
pub mod query;
pub mod request;
pub mod signing;
pub mod state;
pub mod text;
pub mod totp;
pub mod types;
