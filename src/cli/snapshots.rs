//! `mirrorbox snapshots` and `mirrorbox diff`: read-only looks at the retained snapshots.
//! Both read refs without the data-dir lock: refs are replaced atomically, so a reader never
//! sees half, and a running server need not be asked. `mirrorbox snapshots rm` changes refs,
//! so it runs here only with the lock, else in the server (as `pin` does).

use std::collections::HashMap;

use anyhow::Context;

use crate::admin;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::manifest::{ChangeKind, ManifestDiff};
use crate::store::{ObjectId, Store};
use crate::view::SNAPSHOT_ID_CHARS;

use super::check_sources;
use super::remote::{ask_server, open_or_busy};

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.data_dir, &config.store)
        .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))
}

/// One table row per retained snapshot of `source` (every source if `None`), with the bytes
/// only that snapshot holds, then a line per source with the bytes only it holds.
pub(crate) fn list(config: Config, source: Option<String>) -> anyhow::Result<i32> {
    if let Some(id) = &source {
        check_sources(&config, std::slice::from_ref(id))?;
    }
    let store = open_store(&config)?;
    // Every manifest is read once: for the unique bytes, then for its row.
    let mut loaded: HashMap<ObjectId, Manifest> = HashMap::new();
    let unique = crate::store::gc::unique(&store, &mut |id| {
        let manifest = Manifest::load(&store, id)?;
        let files = manifest
            .entries
            .iter()
            .map(|e| (e.object, e.size))
            .collect();
        loaded.insert(*id, manifest);
        Ok::<_, anyhow::Error>(files)
    })?;
    println!(
        "{:<20} {:<16} {:<29} {:>8} {:>14} {:>14}  current",
        "source", "snapshot", "created", "files", "bytes", "unique"
    );
    let mut summaries = Vec::new();
    for s in &config.sources {
        if source.as_ref().is_some_and(|wanted| *wanted != s.id) {
            continue;
        }
        let refs = store.read_refs(&s.id)?;
        let mut ids = refs.snapshots.clone();
        if let Some(current) = refs.current {
            if !ids.contains(&current) {
                ids.push(current);
            }
        }
        summaries.push(format!(
            "  {:<21} {:>14} bytes in {} snapshots",
            format!("{}:", s.id),
            unique.source(&s.id),
            ids.len()
        ));
        for id in ids {
            let manifest = match loaded.remove(&id) {
                Some(manifest) => manifest,
                None => Manifest::load(&store, &id)?,
            };
            println!(
                "{:<20} {:<16} {:<29} {:>8} {:>14} {:>14}  {}",
                s.id,
                id.short(SNAPSHOT_ID_CHARS),
                crate::time::http_date(manifest.created),
                manifest.entries.len(),
                manifest.total_bytes(),
                unique.snapshot(&s.id, &id),
                if Some(id) == refs.current { "*" } else { "" }
            );
        }
    }
    // Indented under a heading and with a colon, so no line but a snapshot's row starts with
    // a source id.
    println!("\nheld by no other source (what removing the source would free):");
    for summary in summaries {
        println!("{summary}");
    }
    Ok(0)
}

/// `mirrorbox snapshots rm SOURCE SNAPSHOT`: removes a retained snapshot, here or in the
/// running server; refuses the current and the pinned one (exit status 1, with the reason).
pub(crate) fn remove(config: Config, source: &str, wanted: &str) -> anyhow::Result<i32> {
    check_sources(&config, &[source.to_string()])?;
    let result = match open_or_busy(config)? {
        Ok(app) => app
            .remove_snapshot(source, wanted)
            .map_err(|e| e.to_string()),
        Err(config) => {
            let request = admin::Request::RemoveSnapshot {
                source: source.to_string(),
                snapshot: wanted.to_string(),
            };
            match ask_server(&config, &request, &[])? {
                Ok(replies) => match replies.first() {
                    Some(reply) if reply.ok => Ok(reply.message.clone()),
                    Some(reply) => Err(reply.message.clone()),
                    None => Err("the server gave no answer".into()),
                },
                Err(code) => return Ok(code),
            }
        }
    };
    match result {
        Ok(short) => {
            println!("{source}: removed snapshot {short}; the files only it held are deleted by the next GC (`mirrorbox gc`, or after the next sync that publishes a snapshot)");
            Ok(0)
        }
        Err(message) => {
            eprintln!("mirrorbox: {message}");
            Ok(1)
        }
    }
}

/// What changed from snapshot `a` to snapshot `b` of `source` (ids, prefixes or `current`).
pub(crate) fn diff(config: Config, source: &str, a: &str, b: &str) -> anyhow::Result<i32> {
    check_sources(&config, &[source.to_string()])?;
    let store = open_store(&config)?;
    let refs = store.read_refs(source)?;
    let load = |wanted: &str| -> anyhow::Result<(ObjectId, Manifest)> {
        let id = if wanted == "current" {
            refs.current
                .ok_or_else(|| anyhow::anyhow!("source `{source}` has no snapshot yet"))?
        } else {
            crate::pin::resolve(&refs, source, wanted)?
        };
        Ok((id, Manifest::load(&store, &id)?))
    };
    let (a_id, old) = load(a)?;
    let (b_id, new) = load(b)?;
    println!(
        "{source}: {} → {}",
        a_id.short(SNAPSHOT_ID_CHARS),
        b_id.short(SNAPSHOT_ID_CHARS)
    );
    print!("{}", format_diff(&old.diff(&new)));
    Ok(0)
}

/// One line per changed path (`+`, `-`, `~`), then the counts and total sizes.
fn format_diff(diff: &ManifestDiff) -> String {
    let mut text = String::new();
    for change in &diff.changes {
        let path = &change.path;
        let line = match change.kind {
            ChangeKind::Added { size } => format!("+ {path} ({size} bytes)"),
            ChangeKind::Removed { size } => format!("- {path} ({size} bytes)"),
            ChangeKind::Changed { old_size, new_size } => {
                format!("~ {path} ({old_size} → {new_size} bytes)")
            }
        };
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(&format!(
        "{} added, {} removed, {} changed ({} → {} bytes)\n",
        diff.added(),
        diff.removed(),
        diff.changed(),
        diff.bytes_before,
        diff.bytes_after
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::PathChange;

    #[test]
    fn diff_lines_mark_each_kind_and_end_with_totals() {
        let diff = ManifestDiff {
            changes: vec![
                PathChange {
                    path: "a".into(),
                    kind: ChangeKind::Removed { size: 1 },
                },
                PathChange {
                    path: "b".into(),
                    kind: ChangeKind::Added { size: 2 },
                },
                PathChange {
                    path: "c".into(),
                    kind: ChangeKind::Changed {
                        old_size: 3,
                        new_size: 4,
                    },
                },
            ],
            bytes_before: 4,
            bytes_after: 6,
        };
        assert_eq!(
            format_diff(&diff),
            "- a (1 bytes)\n+ b (2 bytes)\n~ c (3 → 4 bytes)\n1 added, 1 removed, 1 changed (4 → 6 bytes)\n"
        );
    }
}
