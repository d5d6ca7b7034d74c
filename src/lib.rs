//! mirrorbox keeps mirrors of upstream repositories in a content-addressed object store,
//! publishes each sync as an immutable snapshot, swaps snapshots atomically in memory, and
//! serves them over HTTP and HTTPS.
//!
//! # Layout
//! The modules follow the data's way through the program:
//! - [`config`]: the TOML file, validated once; every error names file, source and key.
//! - [`sync`]: turns a source (a local folder, an apt repository, a file tree, Puavo images)
//!   into a new snapshot.
//! - [`store`]: objects named by sha256, refs replaced atomically, GC, deep verify, the lock.
//! - [`manifest`]: a snapshot's file list, itself stored as an object.
//! - [`view`]: the in-memory map from URL path to file that requests read, swapped atomically.
//! - [`page_cache`]: listings rendered once per view.
//! - [`preflight`]: the checks of a configuration against the machine that `check-config`
//!   and `serve` share.
//! - [`http`]: listeners, the request handler, and an RFC 9110 file responder.
//! - [`app`], [`scheduler`], [`admin`], [`serve`], [`cli`]: how the pieces run together.
//! - [`time`]: Unix seconds and HTTP dates, shared by sync, serving and the CLI.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod glob;
pub mod http;
pub mod import_pom;
pub mod keys;
pub mod manifest;
pub mod notify;
pub mod page_cache;
pub mod pin;
pub mod preflight;
pub mod puavo;
pub mod scheduler;
pub mod secrets;
pub mod serve;
pub mod store;
pub mod sync;
pub mod time;
pub mod units;
pub mod urls;
pub mod view;
