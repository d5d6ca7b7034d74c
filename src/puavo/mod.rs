//! Puavo image repositories: CKSUMS, `meta/<series>.json` and rdiffs (librsync deltas).

pub mod cksum;
pub mod image_name;
pub mod meta;
pub mod rdiff;
pub mod series;
pub mod squashfs;
pub mod torrent;
