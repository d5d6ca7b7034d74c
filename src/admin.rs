//! The local admin socket (`DATA_DIR/admin.sock`): lets `mirrorbox sync|gc|verify|pin` ask a
//! running server to do the work, since the server holds the data-dir lock. Replies carry
//! the reports' own `Display` text, so the server and a local run say the same words without
//! this module knowing the CLI.
//!
//! Protocol: one JSON request line, then JSON reply lines (one per source, or one for the
//! whole request), then the end line `{"done":true,"replies":N}`, then EOF. A stream that
//! ends without the end line means the server went away mid-call: the caller must treat the
//! outcome as unknown, never as success (see [`CallError::Truncated`]).
//! Only local users with write access to the data directory can connect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::scheduler::Scheduler;
use crate::sync::SyncReport;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Sync {
        sources: Vec<String>,
    },
    Gc,
    Verify {
        sources: Vec<String>,
    },
    /// Pin a source to a snapshot, or unpin it (`snapshot: None`).
    Pin {
        source: String,
        snapshot: Option<String>,
    },
    /// Remove a retained snapshot (`mirrorbox snapshots rm`).
    RemoveSnapshot {
        source: String,
        snapshot: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub source: Option<String>,
    pub ok: bool,
    pub message: String,
    pub report: Option<SyncReport>,
}

/// The last line of every answer: the server finished, and sent `replies` replies before it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    pub done: bool,
    pub replies: usize,
}

/// Why a call did not get a complete answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No server answers on the socket (nothing was asked).
    #[error("the data directory is locked by another process, and its admin socket {path} does not answer ({source})")]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The answer stopped before its end line: the server died or was killed mid-call.
    /// `replies` holds what did arrive; anything else may or may not have happened.
    #[error("the server went away before it answered ({} of the replies arrived{}); the outcome of the rest is unknown: look at `mirrorbox snapshots` or the status page", replies.len(), reason.as_deref().map(|r| format!("; {r}")).unwrap_or_default())]
    Truncated {
        replies: Vec<Reply>,
        reason: Option<String>,
    },
    /// The server answered something this client does not understand.
    #[error("the server sent an answer this mirrorbox does not understand: {0}")]
    Garbled(String),
    #[error("talking to the server: {0}")]
    Io(#[from] std::io::Error),
}

/// The reply to a request that is not about one source.
fn outcome(result: anyhow::Result<String>) -> Reply {
    let (ok, message) = match result {
        Ok(message) => (true, message),
        Err(e) => (false, e.to_string()),
    };
    Reply {
        source: None,
        ok,
        message,
        report: None,
    }
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// Listens on the admin socket until the process ends.
pub fn start(scheduler: Arc<Scheduler>, data_dir: &Path) -> anyhow::Result<()> {
    let path = socket_path(data_dir);
    // We hold the data-dir lock, so a socket file here is a leftover of a dead process.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .map_err(|e| anyhow::anyhow!("cannot listen on admin socket {}: {e}", path.display()))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let scheduler = scheduler.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve(stream, scheduler).await {
                            tracing::debug!(error = %e, "admin connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn serve(stream: UnixStream, scheduler: Arc<Scheduler>) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let request: Request = serde_json::from_str(&line)?;
    let app = scheduler.app();
    let mut replies = Vec::new();
    match request {
        Request::Sync { sources } => {
            let sources = if sources.is_empty() {
                app.config.sources.iter().map(|s| s.id.clone()).collect()
            } else {
                sources
            };
            // Run them concurrently: each source has its own lock; store writes are shared-safe.
            let runs = sources.into_iter().map(|id| {
                let scheduler = scheduler.clone();
                async move { (id.clone(), scheduler.sync(&id).await) }
            });
            for (id, result) in futures_join_all(runs).await {
                replies.push(match result {
                    Ok(report) => Reply {
                        source: Some(id),
                        ok: true,
                        message: String::new(),
                        report: Some(report),
                    },
                    Err(message) => Reply {
                        source: Some(id),
                        ok: false,
                        message,
                        report: None,
                    },
                });
            }
        }
        Request::Gc => {
            let app = app.clone();
            let result = tokio::task::spawn_blocking(move || app.gc()).await?;
            replies.push(outcome(result.map(|r| r.to_string())));
        }
        Request::Pin { source, snapshot } => {
            let app = app.clone();
            let result =
                tokio::task::spawn_blocking(move || app.set_pin(&source, snapshot.as_deref()))
                    .await?;
            replies.push(outcome(result));
        }
        Request::RemoveSnapshot { source, snapshot } => {
            let app = app.clone();
            let result =
                tokio::task::spawn_blocking(move || app.remove_snapshot(&source, &snapshot))
                    .await?;
            replies.push(outcome(result));
        }
        Request::Verify { sources } => {
            let app = app.clone();
            let result = tokio::task::spawn_blocking(move || app.verify(&sources)).await?;
            replies.push(match result {
                Ok(r) => Reply {
                    source: None,
                    ok: r.is_clean(),
                    message: r.to_string(),
                    report: None,
                },
                Err(e) => Reply {
                    source: None,
                    ok: false,
                    message: e.to_string(),
                    report: None,
                },
            });
        }
    }
    let end = End {
        done: true,
        replies: replies.len(),
    };
    for reply in replies {
        let mut text = serde_json::to_string(&reply)?;
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
    }
    let mut text = serde_json::to_string(&end)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await?;
    Ok(())
}

async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

/// Sends a request to a running server and returns its replies, only if the answer is
/// complete (it ends with the [`End`] line and its count matches).
pub fn call(data_dir: &Path, request: &Request) -> Result<Vec<Reply>, CallError> {
    use std::io::{BufRead, Write};
    let path = socket_path(data_dir);
    let mut stream = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|source| CallError::Unreachable { path, source })?;
    let mut line = serde_json::to_string(request).map_err(|e| CallError::Garbled(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut replies = Vec::new();
    for line in std::io::BufReader::new(stream).lines() {
        let line = match line {
            Ok(line) => line,
            // A reset is how a killed server's socket often ends.
            Err(e) => {
                return Err(CallError::Truncated {
                    replies,
                    reason: Some(e.to_string()),
                })
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Ok(end) = serde_json::from_str::<End>(&line) {
            if end.done && end.replies == replies.len() {
                return Ok(replies);
            }
            return Err(CallError::Garbled(format!(
                "the end line counts {} replies, {} arrived",
                end.replies,
                replies.len()
            )));
        }
        let reply: Reply =
            serde_json::from_str(&line).map_err(|e| CallError::Garbled(format!("{e}: {line}")))?;
        replies.push(reply);
    }
    Err(CallError::Truncated {
        replies,
        reason: None,
    })
}
