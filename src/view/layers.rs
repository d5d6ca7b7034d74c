//! A view seen as layers: one path index served under one URL prefix, in the order that
//! decides who wins a path (every source's current snapshot in config order, then what
//! retained snapshots fill in at current paths, newest first, then every retained snapshot
//! at its own `/.snapshots/…` URL).

use super::files::FileTable;
use super::part::{SnapshotIndex, SourcePart};
use super::paths::PathIndex;
use super::{is_fill_in_path, FileNode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Current,
    /// Only paths that [`is_fill_in_path`] accepts, at the source's mount.
    FillIn,
    /// Served immutable at the snapshot's own URL.
    Snapshot,
}

#[derive(Clone, Copy)]
pub struct Layer<'v> {
    /// `""` for the root, else `/a/b`.
    pub mount: &'v str,
    pub index: &'v SnapshotIndex,
    pub files: &'v FileTable,
    pub role: Role,
    /// Which source part (in config order) the layer belongs to.
    pub part: usize,
}

/// The layers of `parts`, first winner first.
pub fn layers(parts: &[std::sync::Arc<SourcePart>]) -> impl Iterator<Item = Layer<'_>> + '_ {
    let current = parts.iter().enumerate().filter_map(|(n, part)| {
        Some(Layer {
            mount: &part.mount,
            index: part.current()?,
            files: &part.files,
            role: Role::Current,
            part: n,
        })
    });
    let fill_in = parts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.fill_in)
        .flat_map(|(n, part)| {
            part.retained.iter().rev().map(move |index| Layer {
                mount: &part.mount,
                index,
                files: &part.files,
                role: Role::FillIn,
                part: n,
            })
        });
    let snapshots = parts.iter().enumerate().flat_map(|(n, part)| {
        part.retained.iter().map(move |index| Layer {
            mount: &index.url,
            index,
            files: &part.files,
            role: Role::Snapshot,
            part: n,
        })
    });
    current.chain(fill_in).chain(snapshots)
}

/// Paths up to this long are extended with a `/` on the stack.
const STACK_PATH: usize = 512;

impl<'v> Layer<'v> {
    pub fn paths(&self) -> &'v PathIndex {
        &self.index.paths
    }

    /// The newest Last-Modified this layer serves, `None` if it serves nothing.
    pub fn newest(&self) -> Option<i64> {
        match self.role {
            Role::FillIn => self.index.newest_fill_in,
            Role::Current | Role::Snapshot => self.index.newest,
        }
    }

    /// `key` relative to this layer's mount (`""` for the mount itself).
    pub fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        relative(key, self.mount)
    }

    /// The file this layer serves at `key`.
    pub fn file(&self, key: &str) -> Option<FileNode> {
        let rel = self.relative(key)?;
        if self.role == Role::FillIn && !is_fill_in_path(rel) {
            return None;
        }
        let row = self.paths().get(rel.as_bytes())?;
        let mut file = self.files.get(row);
        if self.role == Role::Snapshot {
            file.immutable = true;
        }
        Some(file)
    }

    /// Whether this layer serves a file below `key` (`/a/b` form, root `/`).
    pub fn has_below(&self, key: &str) -> bool {
        if key == "/"
            || self.mount.starts_with(key) && self.mount.as_bytes().get(key.len()) == Some(&b'/')
        {
            return self.serves_any("");
        }
        match self.relative(key) {
            Some("") => self.serves_any(""),
            Some(rel) => with_slash(rel, |dir| self.serves_any_bytes(dir)),
            None => false,
        }
    }

    fn serves_any(&self, prefix: &str) -> bool {
        self.serves_any_bytes(prefix.as_bytes())
    }

    /// Whether a served path starts with `prefix`. A fill-in layer serves only some paths,
    /// so it walks the range until it meets one.
    fn serves_any_bytes(&self, prefix: &[u8]) -> bool {
        if !self.paths().has_prefix(prefix) {
            return false;
        }
        if self.role != Role::FillIn {
            return true;
        }
        let mut any = false;
        self.paths().scan_prefix(prefix, |path, _| {
            any = std::str::from_utf8(path).is_ok_and(is_fill_in_path);
            !any
        });
        any
    }
}

/// `key` relative to `mount`: `/a/b/c` under `/a` is `b/c`, `/a` itself is `""`.
pub fn relative<'k>(key: &'k str, mount: &str) -> Option<&'k str> {
    let rest = key.strip_prefix(mount)?;
    if rest.is_empty() {
        return (!mount.is_empty()).then_some("");
    }
    rest.strip_prefix('/')
}

/// Calls `with` with `rel` and a `/` after it, without allocating for usual lengths.
fn with_slash<T>(rel: &str, with: impl FnOnce(&[u8]) -> T) -> T {
    let rel = rel.as_bytes();
    if rel.len() < STACK_PATH {
        let mut buffer = [0u8; STACK_PATH];
        buffer[..rel.len()].copy_from_slice(rel);
        buffer[rel.len()] = b'/';
        with(&buffer[..=rel.len()])
    } else {
        let mut owned = rel.to_vec();
        owned.push(b'/');
        with(&owned)
    }
}
