//! `apt` sources: a signed upstream apt repository, mirrored into snapshots.

pub mod keyring;
pub mod release;
pub mod repository;
