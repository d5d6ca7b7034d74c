//! Certificates from an ACME server (RFC 8555: Let's Encrypt, or any other by URL), so HTTPS
//! needs no certbot and no renewal timer: `[server.acme]` names the domains, and the server
//! obtains, stores, renews and swaps the certificate itself.
//!
//! - `settings`: the validated `[server.acme]` keys.
//! - `state`: what the engine and the listeners share: the certificate in use, the answers to
//!   pending challenges (HTTP-01 tokens, TLS-ALPN-01 certificates) and the engine's last
//!   outcome, shown on `/.status` and in `/.metrics`.
//! - `engine`: the background loop (load, order, store, swap, schedule), on top of `client`
//!   (reqwest for instant-acme, trusting `ca_file`), `order` (one RFC 8555 order),
//!   `challenge` (TLS-ALPN-01 certificates, keys and CSRs), `store` (the files, written so a
//!   crash never pairs a key with the wrong certificate), `schedule` (when to renew or retry,
//!   pure) and `ari` (the CA's renewal window, RFC 9773).

mod ari;
mod challenge;
mod client;
pub mod engine;
mod order;
pub mod schedule;
pub mod settings;
pub mod state;
mod store;

pub use engine::start;
pub use settings::{AcmeSettings, Challenge, ExternalAccountBinding};
pub use state::{certificate_validity, AcmeOutcome, AcmeState};
