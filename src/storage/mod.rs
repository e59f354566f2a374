//! The ledger on disk: safe file handling, the writers' lock, this user's cache of verified
//! state, the verifying pass over stored frames, and the [`ledger::Ledger`] that appends.

pub mod cache;
pub mod files;
pub mod keyfile;
pub mod ledger;
pub mod live;
pub mod pass;
pub mod pipeline;
pub mod postgres;
pub mod store;
