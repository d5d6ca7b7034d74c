//! Puavo image repositories: CKSUMS, meta/<series>.json and rdiffs (librsync deltas).

pub mod cksum;
pub mod rdiff;
