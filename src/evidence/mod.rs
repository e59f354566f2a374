//! What a third party checks: verification reports, signed checkpoints, exports and
//! evidence bundles, and the OCSF mapping for SIEMs.

pub mod checkpoint;
pub mod cosign;
pub mod export;
pub mod ocsf;
pub mod tiles;
pub mod verify;
