//! mirrorbox keeps mirrors of upstream repositories in a content-addressed object store,
//! publishes each sync as an immutable snapshot, swaps snapshots atomically in memory, and
//! serves them over HTTP and HTTPS.
//!
//! # Layout
//! Every module, lowest first: a module uses only modules listed before it (ARCHITECTURE.md
//! says more; `.ci/layout.py` checks the order has no cycle). Modules are crate-private unless
//! the binary, the integration tests or the fuzz targets use them.
//! - `time`, `units`, `secrets`, `urls`, `keys`, `glob`, `atomic_file`: Unix seconds and HTTP dates; `10M`
//!   and `2h` in the configuration; credentials cut out of URLs; URL path segments; reading a
//!   TOML table into typed keys with messages that name the key; globset patterns.
//! - [`store`]: objects named by sha256, refs replaced atomically, the data-dir lock, ingest of
//!   local files, partial downloads, the typed GC gate, GC and deep verify.
//! - [`manifest`]: a snapshot's entries (path, object, size, date, caching), stored as an
//!   object; what changed between two snapshots.
//! - [`puavo`]: the Puavo formats: rdiff (librsync deltas), meta, CKSUMS, series, squashfs,
//!   torrents.
//! - `page_cache`, `view`: the in-memory map from URL path to file that requests read,
//!   swapped atomically, and its listings rendered once.
//! - [`sync`]: runs one source; one module per source kind (dir, apt, files, puavo) behind a
//!   one-line registry, and what the kinds share (downloads, the previous snapshot, symlinks).
//! - `acme`: `[server.acme]` settings, the state the ACME engine shares with the listeners
//!   (the certificate in use, pending challenge answers, the last outcome), and the engine that
//!   obtains, stores and renews the certificate.
//! - [`http`]: listeners, TLS, limits, access control, the request handler, the RFC 9110
//!   file responder, listings, status and metrics; it sees a narrow state, not the app.
//! - [`config`]: the TOML file, validated once, composed from the parts' own option types;
//!   every error names file, source and key.
//! - `preflight`: the checks of a configuration against the machine that `check-config` and
//!   `serve` share.
//! - `pin`, `import_pom`: pinning a source to a snapshot; reading a proxmox-offline-mirror
//!   configuration.
//! - `export`: the current snapshots written to an offline medium as a plain tree, and the
//!   check of such a medium against its manifest.
//! - [`app`]: the running state (config, store, view, run records, GC gate, sync locks).
//! - `scheduler`, `admin`, `notify`, `serve`: schedules with jitter, the admin socket,
//!   systemd notification, the server's life cycle.
//! - [`cli`]: the command line, one file per command group.

pub mod acme;
pub(crate) mod admin;
pub mod app;
pub(crate) mod atomic_file;
pub mod cli;
pub mod config;
/// The test binary's counting allocator (allocation counts and heap peaks for tests).
#[cfg(test)]
pub(crate) mod counting_alloc;
pub(crate) mod export;
pub(crate) mod glob;
pub mod http;
pub(crate) mod import_pom;
pub(crate) mod keys;
pub mod manifest;
pub(crate) mod notify;
pub(crate) mod page_cache;
pub(crate) mod pin;
pub(crate) mod preflight;
pub mod puavo;
pub(crate) mod scheduler;
pub(crate) mod secrets;
pub(crate) mod serve;
pub mod store;
pub mod sync;
pub(crate) mod time;
pub(crate) mod units;
pub(crate) mod urls;
pub(crate) mod view;
