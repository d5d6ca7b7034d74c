//! The app as the HTTP side sees it: the narrow [`State`] it gets, and the app as its
//! [`StatusSource`] (run records, published refs, unique bytes, client instructions, and the
//! folders redaction hides).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::App;
use crate::config::Config;
use crate::http::access::Access;
use crate::http::status::ClientUse;
use crate::http::{IntoState, Settings, SourceState, State, StatusSource};
use crate::view::View;

impl App {
    /// The HTTP side's view of this app: its parts, and the app itself as the status source.
    pub fn http_state(self: &Arc<Self>) -> State {
        State {
            view: self.view.clone(),
            objects: self.objects.clone(),
            metrics: self.metrics.clone(),
            access: self.clone(),
            settings: Settings {
                access_log: self.config.server.access_log,
                trust_loopback: self.config.server.trust_loopback,
            },
            started: self.started,
            status: self.clone(),
            // Set by `serve`, which owns the listeners' certificate source.
            certificates: None,
        }
    }
}

impl IntoState for Arc<App> {
    fn into_state(self) -> Arc<State> {
        Arc::new(self.http_state())
    }
}

impl AsRef<Access> for App {
    fn as_ref(&self) -> &Access {
        &self.access
    }
}

impl StatusSource for App {
    fn sources(&self) -> Vec<SourceState> {
        let runs = self.runs.lock().expect("not poisoned").clone();
        let live = self.live.lock().expect("not poisoned").clone();
        let published = self.published.lock().expect("not poisoned").clone();
        self.config
            .sources
            .iter()
            .map(|source| {
                let published = published.get(&source.id).cloned().unwrap_or_default();
                SourceState {
                    id: source.id.clone(),
                    mount: source.mount.clone(),
                    kind: source.kind.name(),
                    live: live.get(&source.id).cloned().unwrap_or_default(),
                    last_run: runs.get(&source.id).cloned(),
                    refs: published.refs,
                    current_created: published.current_created,
                    unique_bytes: self
                        .unique_ready
                        .load(Ordering::Relaxed)
                        .then(|| self.unique.lock().expect("not poisoned").source(&source.id)),
                }
            })
            .collect()
    }

    fn client_use(&self, id: &str, base_url: &str, view: &View) -> ClientUse {
        let mut usage = ClientUse {
            base_url: base_url.to_string(),
            ..ClientUse::default()
        };
        if let Some(source) = self.config.source(id) {
            let at = crate::sync::kind::ClientContext {
                base_url,
                mount: &source.mount,
                view,
            };
            source.kind.client_use(&at, &mut usage);
            usage.checks = source.kind.client_checks(&crate::sync::kind::Serving {
                mount: &source.mount,
                https_listener: !self.config.server.https.is_empty(),
            });
        }
        usage
    }

    fn private_folders(&self) -> &[String] {
        &self.private_folders
    }
}

/// The message of a sync that could not reach its upstream, with what to do about it: which
/// key of which source in which file to point at another mirror. Both the log and the status
/// page show it.
pub(super) fn unreachable_advice(
    config: &Config,
    source: &crate::config::SourceConfig,
    error: &crate::sync::SyncError,
) -> String {
    let key = source.kind.upstream_key().unwrap_or("the upstream");
    format!(
        "{error}: no network? point `{key}` of source `{}` in {} at a reachable mirror, or remove the source",
        source.id,
        config.file.display()
    )
}

/// Every folder `config` names, as written and as an absolute path, for [`crate::http::redact::paths`]: the data
/// directory, `dir` paths, Puavo image and series folders, symlink targets, keys and the TLS
/// files.
pub(super) fn private_folders(config: &Config) -> Vec<String> {
    let mut list: Vec<&Path> = vec![&config.data_dir];
    if let Some(tls) = &config.server.tls {
        list.push(&tls.cert);
        list.push(&tls.key);
    }
    for source in &config.sources {
        list.extend(source.kind.local_paths());
    }
    let cwd = std::env::current_dir().ok();
    let mut out = Vec::new();
    for path in list {
        out.push(path.display().to_string());
        if path.is_relative() {
            if let Some(cwd) = &cwd {
                out.push(cwd.join(path).display().to_string());
            }
        }
        if let Ok(real) = std::fs::canonicalize(path) {
            out.push(real.display().to_string());
        }
    }
    // Longest first, so `d/sub` wins over `d`; nothing that would match every word.
    out.retain(|f| {
        let f = f.trim_end_matches('/');
        !f.is_empty() && f != "."
    });
    out.sort_by_key(|f| std::cmp::Reverse(f.len()));
    out.dedup();
    out
}
